"""A 1,000-element map on a ``celery -A wfrunner worker`` subprocess (prefork, two pool
processes), driven through the command line as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.entry_point import invoke

ROOT = Path(__file__).resolve().parents[2]
_CELERY = [sys.executable, "-m", "celery", "-A", "wfrunner"]


@pytest.fixture(scope="module")
def prefork_env(worker_env: dict[str, str]) -> Iterator[dict[str, str]]:
    env = {**worker_env, "WFRUNNER_HANDLERS": "tests.e2e.map_handlers", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            *_CELERY,
            "worker",
            "-c",
            "2",
            "-Q",
            "wfrunner.tasks,wfrunner.completion",
            "--loglevel=WARNING",
            "-n",
            "map@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while "pong" not in _ping(env):
            if time.monotonic() > deadline:
                pytest.fail("the celery worker did not answer a ping within 60 s")
            time.sleep(0.5)
        yield env
    finally:
        proc.terminate()
        proc.wait(30)


def _ping(env: dict[str, str]) -> str:
    return subprocess.run(
        [*_CELERY, "inspect", "ping", "-t", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    ).stdout


def test_a_thousand_elements_on_a_prefork_worker(
    prefork_env: dict[str, str], tmp_path: Path
) -> None:
    definition = {
        "nodes": [
            {"id": "start", "type": "transform", "config": {"expression": "inputs.xs"}},
            {
                "id": "M",
                "type": "function",
                "config": {"function_name": "t.map_double", "map_over": "input"},
            },
            {"id": "total", "type": "aggregate", "config": {"operation": "sum"}},
        ],
        "edges": [{"from": "start", "to": "M"}, {"from": "M", "to": "total"}],
    }
    path = tmp_path / "map.json"
    path.write_text(json.dumps(definition))
    registered = invoke("register", str(path), env=prefork_env)
    assert registered.returncode == 0, registered.stderr
    inputs = json.dumps({"xs": list(range(1000))})
    began = time.monotonic()
    ran = invoke(
        "run",
        registered.stdout.strip(),
        "--input",
        inputs,
        "--wait",
        "--timeout",
        "300",
        env=prefork_env,
    )
    took = time.monotonic() - began
    print(f"\n1,000-element map on a prefork worker (-c 2): {took:.2f} s, run --wait")
    assert ran.returncode == 0, ran.stderr
    run_id, output = ran.stdout.splitlines()
    assert json.loads(output) == 2 * sum(range(1000))
    status = json.loads(invoke("status", run_id, "--json", env=prefork_env).stdout)
    assert status["nodes"]["M"]["items"] == {"total": 1000, "done": 1000}
    assert status["nodes"]["M"]["output"] == [2 * i for i in range(1000)]
