"""``WFRUNNER_DATABASE_URL=postgresql://user@host/db`` (and ``postgres://``), the forms every
host and guide hands out, work against the real PostgreSQL with the installed driver:
through the Python API and through ``wfrunner db upgrade`` (the installed entry point)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wfrunner.servers import resolve_database_url
from wfrunner.store import Store, migrate

WFRUNNER = str(Path(sys.executable).parent / "wfrunner")
DEFINITION = {"nodes": [{"id": "A", "type": "transform", "config": {"expression": "1"}}]}


def plain(url: str, scheme: str) -> str:
    """``url`` with its scheme and driver replaced by ``scheme``."""
    return f"{scheme}://{url.split('://', 1)[1]}"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_plain_url_migrates_stores_and_resolves(
    database_url: str, tmp_path: Path, scheme: str
) -> None:
    url = plain(database_url, scheme)
    migrate.upgrade(url)
    assert migrate.current(url) is not None
    store = Store(url)
    try:
        first = store.register_workflow("one", DEFINITION, {"nodes": {}})
        assert store.get_workflow(first.id).name == "one"
    finally:
        store.close()
    assert resolve_database_url(url, tmp_path) == plain(database_url, "postgresql+psycopg2")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_db_upgrade_on_a_plain_url(database_url: str, scheme: str) -> None:
    env = {**os.environ, "WFRUNNER_DATABASE_URL": plain(database_url, scheme)}
    result = subprocess.run(
        [WFRUNNER, "db", "upgrade"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("database at revision ")
    assert migrate.current(database_url) is not None
