"""The command line of sub-workflows, as a user runs it (the console script), on real
PostgreSQL: ``children``, the parent line of ``status``, and ``register`` refusing a
subworkflow node whose workflow is not registered."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.entry_point import invoke
from wfrunner.compiler import compile_workflow
from wfrunner.states import RunStatus
from wfrunner.store import Store

CHILD = {
    "metadata": {"name": "child"},
    "nodes": [{"id": "a", "type": "function", "config": {"function_name": "h"}}],
    "edges": [],
}
PARENT = {
    "metadata": {"name": "parent"},
    "nodes": [{"id": "S", "type": "subworkflow", "config": {"workflow": "child"}}],
    "edges": [],
}


@pytest.fixture()
def env(redis_url: str, database_url: str) -> dict[str, str]:
    return {**os.environ, "WFRUNNER_REDIS_URL": redis_url, "WFRUNNER_DATABASE_URL": database_url}


def test_children_and_the_parent_of_a_child_run(env: dict[str, str], store: Store) -> None:
    child_wf = store.register_workflow("child", CHILD, compile_workflow(CHILD).to_dict())
    parent_wf = store.register_workflow("parent", PARENT, compile_workflow(PARENT).to_dict())
    parent = store.create_run(parent_wf.id, {}, 1).id
    link = {"parent_run_id": parent, "parent_node": "S", "parent_token": "t1"}
    child = store.create_run(child_wf.id, {"x": 1}, 1, run_id="c" * 32, parent=link).id
    store.transition_run(child, RunStatus.FAILED, error="node 'a' failed: boom")

    listed = invoke("children", parent, env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:3] == ["S", child, "FAILED"]
    as_json = json.loads(invoke("children", parent, "--json", env=env).stdout)
    assert as_json == [
        {
            "node": "S",
            "run_id": child,
            "workflow_id": child_wf.id,
            "status": "FAILED",
            "error": "node 'a' failed: boom",
        }
    ]
    shown = invoke("status", child, env=env)
    assert f"parent    run {parent} (node S)" in shown.stdout
    doc = json.loads(invoke("status", child, "--json", env=env).stdout)
    assert doc["parent"] == {"run_id": parent, "node": "S"}
    assert invoke("children", "nosuchrun", env=env).returncode == 2


def test_register_refuses_an_unknown_child_workflow(
    env: dict[str, str], store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "parent.json"
    path.write_text(json.dumps(PARENT))
    refused = invoke("register", str(path), env=env)
    assert refused.returncode == 2
    assert "node 'S': config.workflow 'child' is not a registered workflow" in refused.stderr
    assert "Traceback" not in refused.stderr
    store.register_workflow("child", CHILD, compile_workflow(CHILD).to_dict())
    accepted = invoke("register", str(path), env=env)
    assert accepted.returncode == 0, accepted.stderr
