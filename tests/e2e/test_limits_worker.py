"""A handler slot held by a ``celery -A wfrunner worker`` that is SIGKILLed mid-node comes
back: nothing renews it, it expires with the node's lease, and the node then runs again
on another worker (the reconciler republishes its token)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import celery, node_name
from tests.e2e.waiting import until
from tests.entry_point import invoke

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def worker(
    env: dict[str, str], name: str, log: Path, *extra: str
) -> Iterator[subprocess.Popen[str]]:
    """A worker in a process group of its own (killed whole), once it answers a ping."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "wfrunner", "worker", "-c", "1",
         "--loglevel=INFO", "-n", name, "-f", str(log), "-Q", "wfrunner.tasks,wfrunner.completion",
         *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "pong" not in celery(env, ROOT, "inspect", "ping", "-d", name, "-t", "1").stdout:
            assert proc.poll() is None, "the worker exited"
            if time.monotonic() > deadline:
                pytest.fail(f"worker {name} did not answer a ping within 60 s")
            time.sleep(0.5)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


def busy(env: dict[str, str]) -> int | None:
    shown = invoke("limits", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    handlers = {h["handler"]: h for h in json.loads(shown.stdout)["handlers"]}
    found = handlers.get("limits.slow_once")
    return None if found is None else int(found["busy"])


def test_the_slot_of_a_killed_worker_comes_back(worker_env: dict[str, str], tmp_path: Path) -> None:
    env = {
        **worker_env,
        "WFRUNNER_HANDLERS": "tests.e2e.limit_handlers",
        "WFRUNNER_LEASE_SECONDS": "3",
        "WFRUNNER_RECONCILE_INTERVAL": "1",
        "PYTHONPATH": str(ROOT),
    }
    marker = tmp_path / "entered"
    definition = tmp_path / "slow.json"
    definition.write_text(
        json.dumps(
            {
                "metadata": {"name": "slow-once"},
                "nodes": [
                    {
                        "id": "slow",
                        "type": "function",
                        "config": {"function_name": "limits.slow_once", "marker": str(marker)},
                    }
                ],
                "edges": [],
            }
        )
    )
    with worker(env, node_name("limits-a"), tmp_path / "a.log") as first:
        started = invoke("run", str(definition), env=env)
        assert started.returncode == 0, started.stderr
        run_id = started.stdout.strip()
        until(marker.exists, 60, every=0.3)
        assert until(lambda: busy(env) == 1, 20, every=0.3)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    # nothing renews the dead delivery's slot: it expires with its lease
    until(lambda: busy(env) == 0, 30, every=0.3)
    schedule = tmp_path / "beat-schedule"
    with worker(env, node_name("limits-b"), tmp_path / "b.log", "-B", "-s", str(schedule)):
        done = until(lambda: _ended(env, run_id), 90, every=0.3)
    assert done["status"] == "COMPLETED", done
    assert done["nodes"]["slow"]["output"] == {"again": True}
    assert done["nodes"]["slow"]["attempts"] == 2  # the killed delivery, then the next
    assert busy(env) == 0


def _ended(env: dict[str, str], run_id: str) -> dict[str, Any] | None:
    shown = invoke("status", run_id, "--json", env=env)
    doc: dict[str, Any] = json.loads(shown.stdout)
    return doc if doc["status"] in ("COMPLETED", "FAILED", "CANCELLED") else None
