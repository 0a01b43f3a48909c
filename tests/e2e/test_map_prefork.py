"""A 1,000-element map on a ``celery -A wfrunner worker`` subprocess (prefork, one pool
process), driven through the command line as a user would."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import node_name, running_worker
from tests.entry_point import invoke

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefork_env(worker_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A ``celery -A wfrunner worker`` subprocess (prefork) on the tests' second Redis
    database, with the map handlers."""
    env = {**worker_env, "WFRUNNER_HANDLERS": "tests.e2e.map_handlers", "PYTHONPATH": str(ROOT)}
    with running_worker(env, ROOT, node_name("map")):
        yield env


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
    print(f"\n1,000-element map on a prefork worker (-c 1): {took:.2f} s, run --wait")
    assert ran.returncode == 0, ran.stderr
    run_id, output = ran.stdout.splitlines()
    assert json.loads(output) == 2 * sum(range(1000))
    status = json.loads(invoke("status", run_id, "--json", env=prefork_env).stdout)
    assert status["nodes"]["M"]["items"] == {"total": 1000, "done": 1000}
    assert status["nodes"]["M"]["output"] == [2 * i for i in range(1000)]
