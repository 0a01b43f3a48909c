"""``celeryconfig.py`` in the folder ``celery -A wfrunner worker`` runs from is read, as
Celery users expect, and may not move the broker off wfrunner's Redis. Real workers started
through the installed ``celery`` script from a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.procs import celery, node_name, running_worker


def test_celeryconfig_in_the_current_folder_is_read(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "celeryconfig.py").write_text("worker_prefetch_multiplier = 7\n")
    with running_worker(worker_env, tmp_path, node_name("conf-test")) as name:
        shown = celery(worker_env, tmp_path, "inspect", "conf", "-d", name, "--json", "-t", "5")
    conf = json.loads(shown.stdout)[name]
    assert conf["worker_prefetch_multiplier"] == 7
    assert conf["task_acks_late"] is True  # still wfrunner's safety settings


@pytest.mark.parametrize("how", ["celeryconfig", "celery -b"])
def test_a_broker_elsewhere_is_refused(
    worker_env: dict[str, str], tmp_path: Path, how: str
) -> None:
    base, db = worker_env["WFRUNNER_REDIS_URL"].rsplit("/", 1)
    other = f"{base}/{(int(db) + 5) % 16}"  # any database but wfrunner's
    if how == "celeryconfig":
        (tmp_path / "celeryconfig.py").write_text(f"broker_url = {other!r}\n")
        refused = celery(worker_env, tmp_path, "worker", "-P", "solo")
        source = "celeryconfig.broker_url"
    else:
        refused = celery(worker_env, tmp_path, "-b", other, "worker", "-P", "solo")
        source = "CELERY_BROKER_URL (celery -b)"
    assert refused.returncode != 0
    errors = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, refused.stderr
    assert errors[0].startswith(f"Error: {source}={other} is not the Redis")
    assert f"WFRUNNER_REDIS_URL={worker_env['WFRUNNER_REDIS_URL']}" in errors[0]


@pytest.mark.parametrize("broker", ["amqp://127.0.0.1:1/", "redis://127.0.0.1:1/0"])
def test_an_unreachable_broker_stops_the_worker(
    worker_env: dict[str, str], tmp_path: Path, broker: str
) -> None:
    """A broker apart from the state Redis is tried once at start: a worker does not sit
    retrying a broker that is not there (Celery would, for ever)."""
    refused = celery(
        {**worker_env, "WFRUNNER_BROKER_URL": broker}, tmp_path, "worker", "-P", "solo"
    )
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: WFRUNNER_BROKER_URL={broker} does not accept connections: start the broker "
        "there, or unset the variable to use the state Redis"
    ], refused.stderr
    assert "Traceback" not in refused.stderr
