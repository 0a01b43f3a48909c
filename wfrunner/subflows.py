"""Sub-workflows across the stack (docs/subworkflows.md): starting a subworkflow node's
child run, deciding the parent's waiting node when the child ends, cancelling a run's
children, and the checks a workflow with subworkflow nodes passes at registration.

What one delivery of the node does is :mod:`wfrunner.engine.subflow`; this module is
what needs PostgreSQL and Celery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from wfrunner import history
from wfrunner.compiler.ir import IR, IRNode
from wfrunner.compiler.subworkflows import child_reference
from wfrunner.engine.events import event
from wfrunner.engine.tokens import Token
from wfrunner.errors import CompileError, ConflictError, NodeError
from wfrunner.runtime import Runtime
from wfrunner.states import NodeStatus, RunStatus
from wfrunner.store import RunRecord, WorkflowRecord

log = logging.getLogger(__name__)

SUBWORKFLOW = "subworkflow"


def has_subworkflows(ir: IR) -> bool:
    return any(node.type == SUBWORKFLOW for node in ir.nodes.values())


def _reference(node: IRNode) -> tuple[str, int | None, str]:
    """(workflow name or id, version, how a message names it) of a subworkflow node."""
    ref, version = child_reference(node.config)
    named = f"config.workflow {ref!r}" + (f" (version {version})" if version else "")
    return ref, version, named


def launch(rt: Runtime, token: Token, node: IRNode, node_input: Any, child_run_id: str) -> None:
    """Start the child run of a subworkflow node's token: recorded QUEUED with its parent,
    then ``start_run`` sent with the child's id as its task id. Both are idempotent: a
    redelivered token starts the same child, never a second one. NodeError when the
    child's workflow is not registered or the runs would nest too deep."""
    from wfrunner.tasks.runs import start_run

    ref, version, named = _reference(node)
    record = rt.store.find_workflow(ref, version)
    if record is None:
        raise NodeError(f"node {node.id!r}: {named} is not a registered workflow")
    depth = len(rt.store.ancestors(token.run_id)) + 1
    limit = rt.settings.max_subworkflow_depth
    if depth > limit:
        raise NodeError(
            f"node {node.id!r}: its child run would be nested {depth} deep, more than "
            f"WFRUNNER_MAX_SUBWORKFLOW_DEPTH ({limit})"
        )
    entries = len(rt.ir(record.id).entry_nodes)
    parent = {"parent_run_id": token.run_id, "parent_node": node.id, "parent_token": token.key}
    rt.store.create_run(record.id, node_input, entries, run_id=child_run_id, parent=parent)
    start_run.apply_async(args=[record.id], kwargs={"inputs": node_input}, task_id=child_run_id)
    log.info("run %s: node %s started child run %s", token.run_id, node.id, child_run_id)


def child_output(
    ir: IR, events: Sequence[Mapping[str, Any]], outputs: Mapping[str, Any]
) -> dict[str, Any]:
    """A completed child's output, what its parent's node gets: ``{terminal node id:
    output}`` of its terminal nodes that completed (a terminal node on a path not taken
    is left out)."""
    found = history.progress(ir.nodes, events)
    return {
        node_id: outputs.get(p.output_refs[-1])
        for node_id, p in found.items()
        if ir.nodes[node_id].is_terminal
        and p.output_refs
        and p.status(True) is NodeStatus.COMPLETED
    }


def child_ended(rt: Runtime, child: RunRecord, status: RunStatus, output: Any) -> None:
    """Record how ``child`` ended for its parent's waiting node (at most once) and publish
    the node's token; a parent that has ended meanwhile is left alone."""
    from wfrunner.tasks.execution import dispatch

    if not child.parent_run_id or not child.parent_token:
        return
    outcome = {
        "child_run_id": child.id,
        "status": status.value,
        "output": output if status is RunStatus.COMPLETED else None,
        "error": child.error,
    }
    told = event(
        "child_ended",
        child.parent_node,
        child_run_id=child.id,
        status=status.value,
        **({"error": child.error} if child.error else {}),
    )
    _, decided, token, workflow_id = rt.state.decide_child(
        child.parent_run_id, child.parent_token, outcome, told, time.time()
    )
    if decided == "decided" and token is not None:
        # should this publish be lost, the reconciler publishes the token (it is due now)
        dispatch([token], workflow_id, rt.ir(workflow_id))


def cancel_children(rt: Runtime, run_id: str, status: RunStatus) -> list[str]:
    """Cancel the child runs of ``run_id`` still running; their ids."""
    from wfrunner.control import cancel_run

    cancelled = []
    for child in rt.store.child_runs(run_id, active_only=True):
        try:
            cancel_run(child.id, f"its parent run {run_id} ended {status.value}", rt=rt)
        except ConflictError:  # it ended meanwhile
            continue
        cancelled.append(child.id)
    return cancelled


def reconcile_children(rt: Runtime) -> int:
    """Pass on the ends of child runs whose parent still waits for them: should the
    process that recorded a child's end have died before deciding the parent's node, the
    parent would wait forever (the reconciler calls this every pass). A node decided
    already is left as it is. Returns how many were passed on."""
    from wfrunner.client import get_run

    passed = 0
    for child in rt.store.ended_children_of_active_parents():
        parent, token_key = str(child.parent_run_id), str(child.parent_token)
        if rt.state.child_outcome(parent, token_key) is not None:
            continue
        output = None
        if child.status is RunStatus.COMPLETED:
            ir = rt.ir(child.workflow_id)
            nodes = get_run(child.id, rt)["nodes"]
            output = {
                n: d["output"]
                for n, d in nodes.items()
                if ir.nodes[n].is_terminal and d["status"] == NodeStatus.COMPLETED.value
            }
        child_ended(rt, child, child.status, output)
        passed += 1
    return passed


def registration_problems(rt: Runtime, name: str, ir: IR) -> list[str]:
    """What refuses to register workflow ``name`` (compiled to ``ir``): a subworkflow node
    naming a workflow that is not registered, one that would include ``name`` itself
    (directly or through its own children), or children nested deeper than
    WFRUNNER_MAX_SUBWORKFLOW_DEPTH."""
    problems = []
    limit = rt.settings.max_subworkflow_depth
    for node in ir.nodes.values():
        if node.type != SUBWORKFLOW:
            continue
        ref, version, named = _reference(node)
        record = rt.store.find_workflow(ref, version)
        where = f"node {node.id!r}: {named}"
        if record is None:
            problems.append(
                f"{where} is not a registered workflow: register it first, or name a "
                "registered workflow by its name or id"
            )
            continue
        cycle, depth = _walk(rt, record, name, [name, record.name])
        if cycle:
            problems.append(
                f"{where} would run workflow {name!r} inside itself ({' -> '.join(cycle)}): "
                "a workflow may not include itself, directly or through its sub-workflows"
            )
        elif depth + 1 > limit:
            problems.append(
                f"{where} nests sub-workflows {depth + 1} deep, more than "
                f"WFRUNNER_MAX_SUBWORKFLOW_DEPTH ({limit})"
            )
    return problems


def _walk(rt: Runtime, record: WorkflowRecord, root: str, path: list[str]) -> tuple[list[str], int]:
    """(the path back to ``root`` when ``record`` includes it, else []; how deep its
    sub-workflows nest)."""
    if record.name == root:
        return path, 0
    deepest = 0
    for node in IR.from_dict(record.ir).nodes.values():
        if node.type != SUBWORKFLOW:
            continue
        ref, version, _ = _reference(node)
        child = rt.store.find_workflow(ref, version)
        if child is None or child.name in path[1:]:
            continue  # checked when it was registered
        cycle, depth = _walk(rt, child, root, [*path, child.name])
        if cycle:
            return cycle, 0
        deepest = max(deepest, depth + 1)
    return [], deepest


def check_registration(rt: Runtime, name: str, ir: IR, source: str | None = None) -> None:
    """CompileError listing :func:`registration_problems`, if there are any."""
    if not has_subworkflows(ir):
        return
    problems = registration_problems(rt, name, ir)
    if problems:
        raise CompileError(problems, source)
