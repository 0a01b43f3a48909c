"""``celeryconfig.py`` in the folder ``celery -A wfrunner worker`` runs from is read, as
Celery users expect, and may not move the broker off wfrunner's Redis. Real workers started
through the installed ``celery`` script (which, unlike ``python -m celery``, does not put
the current folder on ``sys.path``) from a temporary folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

CELERY = str(Path(sys.executable).parent / "celery")
OWNER_KEY = "wfrunner:test-session-owner"


@pytest.fixture()
def worker_env(redis_url: str, database_url: str) -> Iterator[dict[str, str]]:
    """The Redis database after the tests' (their in-process worker must not see this
    one's tasks), emptied before and after."""
    base, db = redis_url.rsplit("/", 1)
    url = f"{base}/{(int(db or 0) + 1) % 16}"
    client = redis.Redis.from_url(url)
    if client.dbsize() and not client.exists(OWNER_KEY):
        pytest.fail(f"{url} holds keys that are not the tests': empty it")
    client.flushdb()
    client.set(OWNER_KEY, "1")
    yield {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WFRUNNER_", "CELERY_"))},
        "WFRUNNER_REDIS_URL": url,
        "WFRUNNER_DATABASE_URL": database_url,
    }
    client.flushdb()
    client.close()


def _celery(env: dict[str, str], folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``celery -A wfrunner ARGS``; a worker that was to be refused is stopped after 30 s."""
    return subprocess.run(
        [CELERY, "-A", "wfrunner", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_celeryconfig_in_the_current_folder_is_read(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "celeryconfig.py").write_text("worker_prefetch_multiplier = 7\n")
    name = f"conf-test@{socket.gethostname()}"
    worker = subprocess.Popen(
        [CELERY, "-A", "wfrunner", "worker", "-c", "1", "-n", name, "--loglevel=WARNING"],
        cwd=tmp_path,
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert worker.poll() is None, worker.communicate()[1]
            shown = _celery(
                worker_env, tmp_path, "inspect", "conf", "-d", name, "--json", "-t", "2"
            )
            if shown.returncode == 0 and shown.stdout.strip():
                break
            time.sleep(0.5)
        conf = json.loads(shown.stdout)[name]
        assert conf["worker_prefetch_multiplier"] == 7
        assert conf["task_acks_late"] is True  # still wfrunner's safety settings
    finally:
        worker.terminate()
        worker.wait(30)


@pytest.mark.parametrize("how", ["celeryconfig", "celery -b"])
def test_a_broker_elsewhere_is_refused(
    worker_env: dict[str, str], tmp_path: Path, how: str
) -> None:
    other = worker_env["WFRUNNER_REDIS_URL"].rsplit("/", 1)[0] + "/14"
    if how == "celeryconfig":
        (tmp_path / "celeryconfig.py").write_text(f"broker_url = {other!r}\n")
        refused = _celery(worker_env, tmp_path, "worker", "-P", "solo")
        source = "celeryconfig.broker_url"
    else:
        refused = _celery(worker_env, tmp_path, "-b", other, "worker", "-P", "solo")
        source = "CELERY_BROKER_URL (celery -b)"
    assert refused.returncode != 0
    errors = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, refused.stderr
    assert errors[0].startswith(f"Error: {source}={other} is not the Redis")
    assert f"WFRUNNER_REDIS_URL={worker_env['WFRUNNER_REDIS_URL']}" in errors[0]
