"""Definition (workflow.schema.json format) -> validated :class:`IR`.

Pure: no I/O. Every problem is collected before failing, so a user fixes a definition in
one round instead of one error at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from wfrunner.compiler import checks
from wfrunner.compiler.graph import cycle_path, reachable, strongly_connected
from wfrunner.compiler.ir import IR, Branch, BranchRule, IRNode, Loop, RetryPolicy
from wfrunner.compiler.schema import node_types, schema_problems, show
from wfrunner.errors import CompileError


@dataclass
class _Edge:
    source: str
    target: str
    condition: str | None


@dataclass
class _Draft:
    """What has been read so far; problems accumulate instead of raising."""

    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[_Edge] = field(default_factory=list)
    loops: dict[str, Loop] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def compile_workflow(doc: Any, source: str | None = None) -> IR:
    """Validate ``doc`` and build its IR, or raise :class:`CompileError` listing every problem."""
    draft = _Draft(problems=schema_problems(doc))
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise CompileError(draft.problems or ["workflow: expected an object with 'nodes'"], source)
    _read_nodes(draft, doc["nodes"])
    edges = doc.get("edges")
    _read_edges(draft, edges if isinstance(edges, list) else [])
    _read_configs(draft)
    successors = _forward_successors(draft)
    _check_cycles(draft, successors)
    _check_loop_targets(draft, successors)
    ir = _assemble(draft, successors, doc.get("metadata"))
    if not ir.entry_nodes:
        draft.problems.append("workflow: no entry node: every node has an incoming edge")
    if ir.nodes and not ir.terminal_nodes():
        draft.problems.append(
            "workflow: no terminal node: every node has outgoing edges or a loop; "
            "add a node with no outgoing edges (or a loop break_path that ends)"
        )
    if draft.problems:
        raise CompileError(draft.problems, source)
    return ir


def _read_nodes(draft: _Draft, nodes: list[Any]) -> None:
    first_index: dict[str, int] = {}
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            continue  # reported by the schema
        node_id = node["id"]
        if node_id in first_index:
            draft.problems.append(
                f"node {node_id!r}: duplicate id (nodes[{first_index[node_id]}] and nodes[{index}])"
            )
            continue
        first_index[node_id] = index
        draft.raw[node_id] = node


def _read_edges(draft: _Draft, edges: list[Any]) -> None:
    seen: set[tuple[str, str]] = set()
    for edge in edges:
        if not isinstance(edge, dict):
            continue
        source, target = edge.get("from"), edge.get("to")
        if not isinstance(source, str) or not isinstance(target, str):
            continue
        where = f"edge {source}->{target}"
        unknown = [n for n in (source, target) if n not in draft.raw]
        for node_id in dict.fromkeys(unknown):
            draft.problems.append(f"{where}: unknown node {show(node_id)}")
        if (source, target) in seen:
            draft.problems.append(f"{where}: appears more than once")
        condition = edge.get("condition")
        if condition is not None:
            problem = checks.cel_problem(where, "condition", condition)
            draft.problems += [problem] if problem else []
        if unknown or (source, target) in seen:
            continue
        seen.add((source, target))
        draft.edges.append(_Edge(source, target, condition if isinstance(condition, str) else None))


def _read_configs(draft: _Draft) -> None:
    known = set(draft.raw)
    for node_id, node in draft.raw.items():
        raw_config = node.get("config")
        config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
        node_type = node.get("type")
        if node_type not in node_types():
            continue  # reported by the schema
        if node_type == "loop":
            loop, problems = checks.loop_config(node_id, config, known)
            draft.problems += problems
            if loop is not None:
                draft.loops[node_id] = loop
        if node_type != "loop" or config.get("function_name") is not None:
            draft.problems += checks.node_problems(node_id, node_type, config)
    for edge in draft.edges:
        if edge.source in draft.loops and edge.condition is not None:
            draft.problems.append(
                f"edge {edge.source}->{edge.target}: a loop node's exits follow its loop "
                "config; move this condition into config.condition or break_path"
            )
    _merge_loop_edges(draft)


def _merge_loop_edges(draft: _Draft) -> None:
    """A plain edge out of a loop node joins its break_path (unless it is the loop-back)."""
    for node_id, loop in draft.loops.items():
        extra = [
            e.target
            for e in draft.edges
            if e.source == node_id
            and e.target != loop.loop_back_to
            and e.target not in loop.break_path
        ]
        if extra:
            draft.loops[node_id] = replace(loop, break_path=loop.break_path + tuple(extra))


def _forward_successors(draft: _Draft) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {node_id: [] for node_id in draft.raw}
    for edge in draft.edges:
        if edge.source in draft.loops:
            continue  # loop exits come from the loop config; loop-backs are not forward
        if edge.target not in succ[edge.source]:
            succ[edge.source].append(edge.target)
    for node_id, loop in draft.loops.items():
        succ[node_id].extend(t for t in loop.exits() if t not in succ[node_id])
    return succ


def _check_cycles(draft: _Draft, succ: dict[str, list[str]]) -> None:
    for component in strongly_connected(draft.raw, succ):
        path = " -> ".join(cycle_path(component, succ))
        draft.problems.append(
            f"cycle {path} is not declared as a loop: make its last node a loop node "
            "(type 'loop', config.loop_back_to) or remove an edge"
        )


def _check_loop_targets(draft: _Draft, succ: dict[str, list[str]]) -> None:
    for node_id, loop in draft.loops.items():
        back = loop.loop_back_to
        if back != node_id and node_id not in reachable(back, succ):
            draft.problems.append(
                f"loop {node_id!r}: config.loop_back_to {back!r} is not upstream of the loop; "
                "it must be the loop node itself or a node that leads to it"
            )


def _assemble(draft: _Draft, succ: dict[str, list[str]], metadata: Any) -> IR:
    preds: dict[str, list[str]] = {node_id: [] for node_id in draft.raw}
    for source, targets in succ.items():
        for target in targets:
            preds[target].append(source)
    nodes = {node_id: _node(draft, node_id, preds[node_id]) for node_id in draft.raw}
    entries = tuple(node_id for node_id in draft.raw if not preds[node_id])
    return IR(
        nodes=nodes, entry_nodes=entries, metadata=metadata if isinstance(metadata, dict) else {}
    )


def _node(draft: _Draft, node_id: str, dependencies: list[str]) -> IRNode:
    raw = draft.raw[node_id]
    loop = draft.loops.get(node_id)
    outgoing = [e for e in draft.edges if e.source == node_id] if loop is None else []
    dependents = tuple(e.target for e in outgoing if e.condition is None)
    rules = tuple(BranchRule(e.condition, (e.target,)) for e in outgoing if e.condition is not None)
    branch = Branch(rules=rules) if rules else None
    retry = raw.get("retry")
    return IRNode(
        id=node_id,
        type=str(raw.get("type")),
        dependencies=tuple(dependencies),
        dependents=dependents,
        is_terminal=not dependents and branch is None and loop is None,
        wait_for_all=len(dependencies) > 1,
        branch=branch,
        loop=loop,
        config=dict(raw["config"]) if isinstance(raw.get("config"), dict) else {},
        timeout_ms=raw["timeout_ms"] if isinstance(raw.get("timeout_ms"), int) else None,
        retry=RetryPolicy.from_dict(retry) if isinstance(retry, dict) else None,
    )
