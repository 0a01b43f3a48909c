"""The CLI against a real ``celery -A wfrunner worker`` subprocess (prefork pool)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.entry_point import invoke
from wfrunner.store import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cli_env(redis_url: str, engine_database: str) -> Iterator[dict[str, str]]:
    """A Redis database of its own, so only the subprocess worker serves these runs: the
    database after WFRUNNER_TEST_REDIS_URL's (15 -> 0), which must be empty or the tests'."""
    base = redis.Redis.from_url(redis_url)
    db = int(base.connection_pool.connection_kwargs.get("db", 0))
    own_url = redis_url.rsplit("/", 1)[0] + f"/{(db + 1) % 16}"
    own = redis.Redis.from_url(own_url)
    if own.dbsize() and not own.exists("wfrunner:test-session-owner"):
        pytest.fail(
            f"{own_url} holds {own.dbsize()} keys that are not the tests': the CLI worker "
            "tests use the Redis database after WFRUNNER_TEST_REDIS_URL's; empty it or "
            "point WFRUNNER_TEST_REDIS_URL elsewhere"
        )
    own.flushdb()
    own.set("wfrunner:test-session-owner", "1")
    env = {
        **os.environ,
        "WFRUNNER_REDIS_URL": own_url,
        "WFRUNNER_DATABASE_URL": engine_database,
        "WFRUNNER_HANDLERS": "examples.handlers,tests.e2e.cli_handlers",
        "PYTHONPATH": str(ROOT),
    }
    yield env
    own.flushdb()
    own.close()
    base.close()


@pytest.fixture(scope="module")
def celery_worker(cli_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "wfrunner",
            "worker",
            "-Q",
            "wfrunner.tasks,wfrunner.completion",
            "-c",
            "2",
            "--loglevel=WARNING",
            "-n",
            "cli-test@%h",
        ],
        cwd=ROOT,
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ping = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "wfrunner", "inspect", "ping", "-t", "1"],
            cwd=ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
        )
        if "pong" in ping.stdout:
            break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the celery worker did not answer a ping within 60 s")
    yield proc
    proc.terminate()
    proc.wait(30)


def wfrunner(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return invoke(*args, env=env)


def test_register_run_wait_status_trace(cli_env: dict[str, str], celery_worker: object) -> None:
    registered = wfrunner(cli_env, "register", "examples/sequential.json")
    assert registered.returncode == 0, registered.stderr
    workflow_id = registered.stdout.strip()
    again = wfrunner(cli_env, "register", "examples/sequential.json")
    assert again.stdout.strip() == workflow_id  # same definition, same id

    ran = wfrunner(cli_env, "run", workflow_id, "--input", '{"x": 5}', "--wait", "--timeout", "60")
    assert ran.returncode == 0, ran.stderr
    assert "no worker answered" not in ran.stderr  # the subprocess worker ran it
    run_id, output = ran.stdout.splitlines()  # results on stdout, progress on stderr
    assert json.loads(output) == {"x": 8}
    assert f"run {run_id}: COMPLETED" in ran.stderr

    status = wfrunner(cli_env, "status", run_id, "--json")
    assert status.returncode == 0
    doc = json.loads(status.stdout)
    assert doc["status"] == "COMPLETED"
    assert doc["nodes"]["C"]["output"] == {"x": 8}
    assert [p["to"] for p in doc["path"]] == ["A", "B", "C"]

    trace = wfrunner(cli_env, "trace", run_id)
    assert trace.returncode == 0
    kinds = [line.split()[2] for line in trace.stdout.splitlines()]
    assert kinds[0] == "run_started" and kinds[-1] == "run_completed"
    assert kinds.count("node_completed") == 3
    emitted = [line for line in trace.stdout.splitlines() if "token_emitted" in line]
    assert emitted[1].split()[3:] == ["A", "to=B"]  # the token's internals are left out
    assert "payload_ref" not in trace.stdout and "token=" not in trace.stdout
    events = json.loads(wfrunner(cli_env, "trace", run_id, "--json").stdout)
    assert [e["type"] for e in events] == kinds
    assert events[1]["token"]["to_node"] == "A"  # ...and kept for scripts


def write_collection(tmp_path: Path) -> Path:
    """Two workflows in one file; "ordered" lists its nodes neither alphabetically nor by
    length (PostgreSQL's JSONB order), and its first node sleeps."""

    def sleeper(node_id: str, seconds: float) -> dict[str, object]:
        return {
            "id": node_id,
            "type": "function",
            "config": {"function_name": "cli.sleep", "seconds": seconds},
        }

    path = tmp_path / "collection.json"
    sequential = json.loads((ROOT / "examples" / "sequential.json").read_text())
    ordered = {
        "nodes": [sleeper("zeta", 0.2), sleeper("alpha", 0), sleeper("mid", 0)],
        "edges": [{"from": "zeta", "to": "alpha"}, {"from": "alpha", "to": "mid"}],
    }
    path.write_text(json.dumps({"sequential": sequential, "ordered": ordered}))
    return path


def test_name_picks_a_workflow_of_a_collection_and_status_shows_workflow_order(
    cli_env: dict[str, str], celery_worker: object, tmp_path: Path
) -> None:
    path = str(write_collection(tmp_path))
    several = wfrunner(cli_env, "register", path)
    assert several.returncode == 2
    assert "holds several workflows (sequential, ordered): choose one with --name" in several.stderr
    registered = wfrunner(cli_env, "register", path, "--name", "ordered")
    assert registered.returncode == 0, registered.stderr
    ran = wfrunner(cli_env, "run", path, "--name", "ordered", "--input", '{"v": 1}', "--wait")
    assert ran.returncode == 0, ran.stderr
    run_id, output = ran.stdout.splitlines()
    assert json.loads(output) == {"v": 1}
    assert json.loads(wfrunner(cli_env, "status", run_id, "--json").stdout)["workflow_id"] == (
        registered.stdout.strip()
    )

    status = wfrunner(cli_env, "status", run_id)
    assert status.returncode == 0, status.stderr
    rows = [line.split() for line in status.stdout.splitlines()]
    header = rows.index(["node", "status", "attempts", "passes", "time"])
    table = rows[header + 2 : header + 5]  # after the header's rule
    assert [row[0] for row in table] == ["zeta", "alpha", "mid"]
    assert all(row[1:4] == ["COMPLETED", "1", "1"] for row in table)
    doc = json.loads(wfrunner(cli_env, "status", run_id, "--json").stdout)
    assert doc["nodes"]["zeta"]["seconds"] >= 0.2  # it slept that long, at least


def test_worker_is_in_the_registry(cli_env: dict[str, str], celery_worker: object) -> None:
    store = Store(cli_env["WFRUNNER_DATABASE_URL"])
    workers = {w.worker_id: w for w in store.list_workers()}
    store.close()
    names = [name for name in workers if name.startswith("cli-test@")]
    assert names and workers[names[0]].status == "online"


def test_the_worker_obeys_flowers_enable_events(
    cli_env: dict[str, str], celery_worker: object
) -> None:
    """Task events are off by default (WFRUNNER_TASK_EVENTS); Flower sends enable_events
    when it connects, and that is how tasks show in Flower: the worker must obey it."""

    def control(command: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "wfrunner", "control", command, "-t", "5"],
            cwd=ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
        )
        return " ".join((done.stdout + done.stderr).split())

    try:
        assert "OK task events enabled" in control("enable_events")
        assert "OK task events already enabled" in control("enable_events")
    finally:
        assert "OK task events disabled" in control("disable_events")


def test_failed_run_exits_1(cli_env: dict[str, str], celery_worker: object, tmp_path: Path) -> None:
    path = tmp_path / "divide.json"
    path.write_text(
        json.dumps(
            {
                "nodes": [
                    {
                        "id": "divide",
                        "type": "transform",
                        "config": {"expression": "1 / input.zero"},
                    }
                ],
                "edges": [],
            }
        )
    )
    ran = wfrunner(cli_env, "run", str(path), "--input", '{"zero": 0}', "--wait", "--timeout", "60")
    assert ran.returncode == 1
    assert "FAILED: node 'divide' failed: CEL expression '1 / input.zero'" in ran.stderr
    assert "Traceback" not in ran.stderr
    status = wfrunner(cli_env, "status", ran.stdout.strip())
    assert status.returncode == 1  # the run ended without completing
    assert "divide: node 'divide' failed: CEL expression '1 / input.zero'" in status.stdout


def test_bad_input_exits_2_without_traceback(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad_json = wfrunner(cli_env, "run", "examples/sequential.json", "--input", "{x:1}")
    assert bad_json.returncode == 2
    assert "error: --input: not valid JSON" in bad_json.stderr
    unknown = wfrunner(cli_env, "status", "no-such-run")
    assert unknown.returncode == 2
    assert "error: no run with id 'no-such-run'" in unknown.stderr
    path = tmp_path / "missing_handler.json"
    path.write_text(
        json.dumps(
            {
                "nodes": [
                    {"id": "A", "type": "function", "config": {"function_name": "examples.nope"}}
                ],
                "edges": [],
            }
        )
    )
    missing = wfrunner(cli_env, "register", str(path))
    assert missing.returncode == 2
    assert "node 'A': no handler registered under 'examples.nope'" in missing.stderr
    for result in (bad_json, unknown, missing):
        assert "Traceback" not in result.stderr


def test_timeout_ms_fails_a_slow_node(
    cli_env: dict[str, str], celery_worker: object, tmp_path: Path
) -> None:
    path = tmp_path / "slow.json"
    path.write_text(
        json.dumps(
            {
                "nodes": [
                    {
                        "id": "slow",
                        "type": "function",
                        "timeout_ms": 500,
                        "config": {"function_name": "cli.sleep", "seconds": 5},
                    }
                ],
                "edges": [],
            }
        )
    )
    ran = wfrunner(cli_env, "run", str(path), "--wait", "--timeout", "60")
    assert ran.returncode == 1
    assert "node 'slow' failed: timed out after 500 ms (timeout_ms)" in ran.stderr


def test_dead_letter_listed_and_retried(
    cli_env: dict[str, str], celery_worker: object, tmp_path: Path
) -> None:
    fixed = tmp_path / "fixed"
    path = tmp_path / "fragile.json"
    path.write_text(
        json.dumps(
            {
                "nodes": [
                    {"id": "first", "type": "transform", "config": {"expression": "{'n': 1}"}},
                    {
                        "id": "fragile",
                        "type": "function",
                        "retry": {"max_attempts": 2, "backoff_ms": 100},
                        "config": {"function_name": "cli.fail_until_file", "path": str(fixed)},
                    },
                    {"id": "last", "type": "transform", "config": {"expression": "input"}},
                ],
                "edges": [{"from": "first", "to": "fragile"}, {"from": "fragile", "to": "last"}],
            }
        )
    )
    ran = wfrunner(cli_env, "run", str(path), "--wait", "--timeout", "60")
    assert ran.returncode == 1
    run_id = ran.stdout.strip()
    shown = wfrunner(cli_env, "status", run_id).stdout  # the handler's traceback, indented
    assert "    Traceback (most recent call last)" in shown
    assert "in fail_until_file" in shown and "RuntimeError: " in shown
    listed = wfrunner(cli_env, "dlq", "list")
    line = next(row for row in listed.stdout.splitlines() if run_id in row)
    assert "node fragile" in line and "attempts 2" in line
    letter_id = line.split()[0]
    fixed.touch()
    retried = wfrunner(cli_env, "dlq", "retry", letter_id)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == run_id
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = json.loads(wfrunner(cli_env, "status", run_id, "--json").stdout)
        if doc["status"] == "COMPLETED":
            break
        time.sleep(0.5)
    assert doc["status"] == "COMPLETED", doc
    assert doc["nodes"]["last"]["output"] == {"fixed": True}
    assert doc["nodes"]["fragile"]["attempts"] == 3
    again = wfrunner(cli_env, "dlq", "retry", letter_id)
    assert again.returncode == 2
    assert "only dead letters of FAILED runs can be retried" in again.stderr


def _wait_status(env: dict[str, str], run_id: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = json.loads(wfrunner(env, "status", run_id, "--json").stdout)
        if check(doc):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} never got there: {doc['status']} {doc['nodes']}")


def test_approve_and_reject_from_the_command_line(
    cli_env: dict[str, str], celery_worker: object, tmp_path: Path
) -> None:
    definition = {
        "nodes": [
            {"id": "gate", "type": "human", "config": {"prompt": "go?"}},
            {"id": "after", "type": "transform", "config": {"expression": "input.data"}},
        ],
        "edges": [{"from": "gate", "to": "after"}],
    }
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(definition))
    approved = wfrunner(cli_env, "run", str(path)).stdout.strip()
    rejected = wfrunner(cli_env, "run", str(path)).stdout.strip()
    for run_id in (approved, rejected):
        _wait_status(cli_env, run_id, lambda d: d["status"] == "WAITING")

    ok = wfrunner(cli_env, "approve", approved, "gate", "-m", "fine", "--data", '{"n": 3}')
    assert ok.returncode == 0, ok.stderr
    # the run goes on at once: it may have completed by the time the command reads it
    assert ok.stdout.split() in ([approved, "RUNNING"], [approved, "COMPLETED"])
    no = wfrunner(cli_env, "reject", rejected, "gate", "--comment", "not today", "--by", "dan")
    assert no.returncode == 0, no.stderr
    done = _wait_status(cli_env, approved, lambda d: d["status"] == "COMPLETED")
    assert done["nodes"]["after"]["output"] == {"n": 3}
    failed = _wait_status(cli_env, rejected, lambda d: d["status"] == "FAILED")
    assert failed["error"] == "node 'gate' failed: rejected by dan: not today"

    again = wfrunner(cli_env, "approve", rejected, "gate")
    assert again.returncode == 2
    assert again.stderr.startswith(f"error: run '{rejected}' has ended (FAILED)")
    bad = wfrunner(cli_env, "approve", approved, "gate", "--data", "{nope")
    assert bad.returncode == 2 and "--data" in bad.stderr


def test_cancel_terminates_the_running_handler_of_a_prefork_worker(
    cli_env: dict[str, str], celery_worker: object, tmp_path: Path
) -> None:
    pid_file = tmp_path / "handler.pid"
    definition = {
        "nodes": [
            {"id": "long", "type": "function",
             "config": {"function_name": "cli.pid_sleep", "seconds": 60,
                        "pid_file": str(pid_file)}},
            {"id": "after", "type": "function",
             "config": {"function_name": "cli.sleep", "seconds": 0}},
        ],
        "edges": [{"from": "long", "to": "after"}],
    }  # fmt: skip
    path = tmp_path / "long.json"
    path.write_text(json.dumps(definition))
    run_id = wfrunner(cli_env, "run", str(path)).stdout.strip()
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = int(pid_file.read_text())

    cancelled = wfrunner(cli_env, "cancel", run_id, "--reason", "wrong input", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    doc = json.loads(cancelled.stdout)
    assert doc["status"] == "CANCELLED"
    assert doc["nodes"]["long"]["error"].startswith("cancelled while running")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the pool process running the handler is gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the handler's process {pid} still runs after the cancel")
    assert not Path(f"{pid_file}.done").exists()
    again = wfrunner(cli_env, "cancel", run_id)
    assert again.returncode == 2
    assert "has already ended (CANCELLED)" in again.stderr
    # the worker goes on serving runs after losing a pool process
    after = wfrunner(cli_env, "run", "examples/sequential.json", "--input", '{"x": 1}',
                     "--wait", "--timeout", "60")  # fmt: skip
    assert after.returncode == 0, after.stderr
