"""Errors from the servers and the libraries behind the CLI are one line on stderr, never a
traceback unless ``-v`` asks for it. Real PostgreSQL, the installed ``wfrunner`` script."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.entry_point import invoke
from wfrunner.store import migrate


def env(redis_url: str, database_url: str) -> dict[str, str]:
    return {**os.environ, "WFRUNNER_REDIS_URL": redis_url, "WFRUNNER_DATABASE_URL": database_url}


def test_db_upgrade_to_an_unknown_revision(redis_url: str, database_url: str) -> None:
    done = invoke("db", "upgrade", "bogus", env=env(redis_url, database_url))
    assert done.returncode == 2
    assert done.stderr == (
        "error: Can't locate revision identified by 'bogus': use head, base or one of "
        "0001, 0002, 0003, 0004, 0005, 0006_parent_runs, 0007_schedules, 0008_paused_runs\n"
    )


@pytest.fixture()
def role_without_grants(database_url: str) -> Iterator[str]:
    """A migrated database and a role that may connect to it but read none of its tables:
    PostgreSQL's own error, which wfrunner does not translate."""
    migrate.upgrade(database_url)
    role = f"wfr_nogrant_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
    url = sa.make_url(database_url).set(username=role).render_as_string(hide_password=False)
    yield url
    with engine.connect() as connection:
        connection.execute(sa.text(f"DROP ROLE {role}"))
    engine.dispose()


def test_an_unexpected_library_error_is_one_line_and_exit_3(
    redis_url: str, role_without_grants: str
) -> None:
    done = invoke("status", "some-run", env=env(redis_url, role_without_grants))
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: sqlalchemy: ProgrammingError: ")
    assert "permission denied for table runs" in done.stderr
    assert done.stderr.endswith("(unexpected: 'wfrunner -v ...' shows the traceback)\n")
    verbose = invoke("-v", "status", "some-run", env=env(redis_url, role_without_grants))
    assert verbose.returncode == 3
    assert verbose.stderr.startswith("Traceback (most recent call last):")
    assert verbose.stderr.splitlines()[-1].startswith("error: sqlalchemy: ProgrammingError")
