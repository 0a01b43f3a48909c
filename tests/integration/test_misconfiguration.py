"""Misconfiguration fails loudly: an unreachable Redis or PostgreSQL, or a malformed
``WFRUNNER_*`` value, is one line naming the setting (CLI exit 2, no traceback), and a
``celery -A wfrunner worker`` or ``beat`` refuses to start with it; Celery never falls
back to another broker. Real subprocesses, real servers for the settings that are good."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.entry_point import invoke
from tests.redis_cluster import RedisClusterProcesses
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings
from wfrunner.store import migrate

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = str(ROOT / "tests/fixtures/workflows/valid/sequential.json")
NO_REDIS = "redis://127.0.0.1:1/0"
NO_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"

#: name -> (settings to apply over good ones, the variable the message must name)
BAD = {
    "redis-down": ({"WFRUNNER_REDIS_URL": NO_REDIS}, "WFRUNNER_REDIS_URL"),
    "redis-not-a-url": ({"WFRUNNER_REDIS_URL": "not a url"}, "WFRUNNER_REDIS_URL"),
    "postgres-down": ({"WFRUNNER_DATABASE_URL": NO_POSTGRES}, "WFRUNNER_DATABASE_URL"),
    "postgres-not-a-url": ({"WFRUNNER_DATABASE_URL": "garbage"}, "WFRUNNER_DATABASE_URL"),
    "malformed-number": ({"WFRUNNER_RUN_TIMEOUT": "soon"}, "WFRUNNER_RUN_TIMEOUT"),
    "number-too-small": ({"WFRUNNER_FLUSH_INTERVAL": "0"}, "WFRUNNER_FLUSH_INTERVAL"),
}
COMMANDS = {
    "register": ["register", WORKFLOW],
    "run": ["run", WORKFLOW],
    "status": ["status", "some-run"],
    "trace": ["trace", "some-run"],
    "replay": ["replay", "some-run"],
    "doctor": ["doctor"],
    "dlq-list": ["dlq", "list"],
    "dlq-retry": ["dlq", "retry", "1"],
}


def _env(good: dict[str, str], bad: dict[str, str], home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WFRUNNER_")}
    return {**base, **good, "WFRUNNER_HOME": str(home), "PYTHONPATH": str(ROOT), **bad}


@pytest.fixture()
def good(redis_url: str, database_url: str) -> dict[str, str]:
    migrate.upgrade(database_url)
    return {"WFRUNNER_REDIS_URL": redis_url, "WFRUNNER_DATABASE_URL": database_url}


def _assert_one_line(output: str, variable: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error:")]
    assert len(errors) == 1 and variable in errors[0], output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("bad", list(BAD), ids=list(BAD))
@pytest.mark.parametrize("command", list(COMMANDS), ids=list(COMMANDS))
def test_cli_names_the_bad_setting(
    command: str, bad: str, good: dict[str, str], tmp_path: Path
) -> None:
    settings, variable = BAD[bad]
    done = invoke(*COMMANDS[command], env=_env(good, settings, tmp_path), timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    _assert_one_line(done.stderr, variable)


@pytest.mark.parametrize("bad", ["postgres-down", "malformed-number"])
def test_db_commands_name_the_bad_setting(bad: str, good: dict[str, str], tmp_path: Path) -> None:
    settings, variable = BAD[bad]
    done = invoke("db", "upgrade", env=_env(good, settings, tmp_path), timeout=60)
    assert done.returncode == 2
    _assert_one_line(done.stderr, variable)


def test_run_with_redis_down_records_no_queued_run(good: dict[str, str], tmp_path: Path) -> None:
    done = invoke("run", WORKFLOW, env=_env(good, {"WFRUNNER_REDIS_URL": NO_REDIS}, tmp_path))
    assert done.returncode == 2
    rt = Runtime(Settings(database_url=good["WFRUNNER_DATABASE_URL"]))
    try:
        assert rt.store.find_idle_runs(0) == []  # nothing left QUEUED or RUNNING
    finally:
        rt.close()


@pytest.mark.parametrize("bad", ["redis-down", "postgres-down", "malformed-number"])
@pytest.mark.parametrize("program", ["worker", "beat"])
def test_worker_and_beat_refuse_to_start(
    program: str, bad: str, good: dict[str, str], tmp_path: Path
) -> None:
    settings, variable = BAD[bad]
    args = ["worker", "-c", "1", "--without-mingle", "--without-gossip"]
    if program == "beat":
        args = ["beat", "--schedule", str(tmp_path / "schedule"), "--pidfile", ""]
    output = _refused(args, _env(good, settings, tmp_path))
    errors = [line for line in output.splitlines() if "Error: " in line]
    assert len(errors) == 1 and variable in errors[0], output
    assert "Traceback" not in output, output


def test_a_worker_on_a_redis_cluster_without_a_broker_refuses_to_start(
    good: dict[str, str], redis_cluster: RedisClusterProcesses, tmp_path: Path
) -> None:
    """The cluster answers (it holds the state), but Celery cannot use it: the worker
    stops at once, naming WFRUNNER_BROKER_URL, and never falls back to another broker."""
    env = _env(good, {"WFRUNNER_REDIS_URL": redis_cluster.url}, tmp_path)
    output = _refused(["worker", "-c", "1"], env)
    errors = [line for line in output.splitlines() if "Error: " in line]
    assert len(errors) == 1 and "set WFRUNNER_BROKER_URL=" in errors[0], output


def _refused(args: list[str], env: dict[str, str]) -> str:
    """The output of ``celery -A wfrunner <args>``, which must exit before it consumes
    anything and never fall back to Celery's default broker."""
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "wfrunner", *args, "--loglevel=INFO"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "amqp://guest" not in output  # never a fallback broker
    assert " ready." not in output  # refused before consuming anything
    return output
