"""``wfrunner pause|resume|rerun`` against a real ``celery -A wfrunner worker``
subprocess (prefork pool)."""

from __future__ import annotations

import json
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from tests.e2e.test_cli_worker import celery_worker, cli_env, wfrunner  # noqa: F401

#: the fixtures above, imported: this module starts a worker subprocess of its own


def register(env: dict[str, str], tmp_path: Path, nodes: list[dict[str, Any]]) -> str:
    path = tmp_path / "flow.json"
    edges = [{"from": a["id"], "to": b["id"]} for a, b in pairwise(nodes)]
    path.write_text(json.dumps({"metadata": {"name": "cli-pause"}, "nodes": nodes, "edges": edges}))
    done = wfrunner(env, "register", str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def status(env: dict[str, str], run_id: str) -> dict[str, Any]:
    done = wfrunner(env, "status", run_id, "--json")
    assert done.returncode in (0, 1), done.stderr  # 1: the run failed
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def until(env: dict[str, str], run_id: str, check: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = status(env, run_id)
        if check(doc):
            return doc
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} never got there: {doc}")


def sleeper(node_id: str, seconds: float) -> dict[str, Any]:
    return {"id": node_id, "type": "function",
            "config": {"function_name": "cli.sleep", "seconds": seconds}}  # fmt: skip


def test_pause_and_resume_from_the_cli(
    cli_env: dict[str, str],  # noqa: F811
    celery_worker: object,  # noqa: F811
    tmp_path: Path,
) -> None:
    workflow_id = register(cli_env, tmp_path, [sleeper("slow", 10), sleeper("next", 0)])
    started = wfrunner(cli_env, "run", workflow_id, "--input", "{}")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip().splitlines()[0]
    until(cli_env, run_id, lambda d: d["nodes"]["slow"]["status"] == "RUNNING")
    paused = wfrunner(cli_env, "pause", run_id, "-m", "maintenance")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"{run_id} PAUSED"
    listed = wfrunner(cli_env, "runs", "--status", "PAUSED")
    assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr
    again = wfrunner(cli_env, "pause", run_id)
    assert again.returncode == 2
    assert again.stderr == (
        f"error: run '{run_id}' is paused already: `wfrunner resume {run_id}` resumes it\n"
    )
    until(cli_env, run_id, lambda d: d["nodes"]["slow"]["status"] == "COMPLETED")
    time.sleep(2.0)
    doc = status(cli_env, run_id)
    assert doc["status"] == "PAUSED" and doc["nodes"]["next"]["status"] == "PENDING"
    resumed = wfrunner(cli_env, "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    done = until(cli_env, run_id, lambda d: d["status"] == "COMPLETED")
    assert [n["attempts"] for n in done["nodes"].values()] == [1, 1]
    not_paused = wfrunner(cli_env, "resume", run_id)
    assert not_paused.returncode == 2
    assert "has already ended (COMPLETED): nothing to resume" in not_paused.stderr
    unknown = wfrunner(cli_env, "pause", "no-such-run")
    assert unknown.returncode == 2 and "no run with id 'no-such-run'" in unknown.stderr


def test_rerun_from_the_cli(
    cli_env: dict[str, str],  # noqa: F811
    celery_worker: object,  # noqa: F811
    tmp_path: Path,
) -> None:
    fixed = tmp_path / "fixed"
    fragile = {"id": "fragile", "type": "function",
               "config": {"function_name": "cli.fail_until_file", "path": str(fixed)}}  # fmt: skip
    workflow_id = register(cli_env, tmp_path, [sleeper("first", 0), fragile, sleeper("last", 0)])
    ran = wfrunner(cli_env, "run", workflow_id, "--input", "{}", "--wait", "--timeout", "60")
    assert ran.returncode != 0
    run_id = ran.stdout.strip().splitlines()[0]
    assert status(cli_env, run_id)["status"] == "FAILED"
    refused = wfrunner(cli_env, "rerun", run_id, "--from", "last")
    assert refused.returncode == 2
    assert "node 'last' never completed in this run" in refused.stderr
    fixed.write_text("ok")
    rerun = wfrunner(cli_env, "rerun", run_id, "-m", "fixed the file")
    assert rerun.returncode == 0, rerun.stderr
    done = until(cli_env, run_id, lambda d: d["status"] == "COMPLETED")
    assert done["attempt"] == 2 and done["redrives"][0]["reason"] == "fixed the file"
    assert done["nodes"]["first"]["attempts"] == 1  # it did not run again
    assert done["nodes"]["fragile"]["attempts"] == 2
    shown = wfrunner(cli_env, "status", run_id).stdout.splitlines()
    assert "attempt   2 (rerun after FAILED by" in shown[3] and "fixed the file" in shown[3]
    completed = wfrunner(cli_env, "rerun", run_id)
    assert completed.returncode == 2
    assert f"run '{run_id}' is COMPLETED: only a FAILED or CANCELLED run can be rerun" in (
        completed.stderr
    )
