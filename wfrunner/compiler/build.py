"""Definition (workflow.schema.json format) -> validated :class:`IR`.

Pure: no I/O. Every problem is collected before failing, so a user fixes a definition in
one round instead of one error at a time. A definition over the size limits of
:mod:`wfrunner.compiler.limits` is refused with those problems alone, before any slower
check runs, and every step after that is linear in the size of the definition.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from wfrunner.compiler import checks, failures, limits
from wfrunner.compiler.graph import cycle_path, strongly_connected, topological_order
from wfrunner.compiler.ir import IR, Branch, BranchRule, IRNode, Loop, RetryPolicy
from wfrunner.compiler.joins import feeders, join_rule
from wfrunner.compiler.limits import edge_label
from wfrunner.compiler.mapcheck import map_problems
from wfrunner.compiler.schema import locate, node_types, schema_problems, show
from wfrunner.errors import CompileError
from wfrunner.schedules.spec import problems as schedule_problems


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
    #: node id -> the node its on_error names
    on_error: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    cyclic: bool = False

    def outgoing(self) -> dict[str, list[_Edge]]:
        """Edges by source node, in edge order."""
        out: dict[str, list[_Edge]] = {node_id: [] for node_id in self.raw}
        for edge in self.edges:
            out[edge.source].append(edge)
        return out


def compile_workflow(
    doc: Any, source: str | None = None, handlers: Collection[str] | None = None
) -> IR:
    """Validate ``doc`` and build its IR, or raise :class:`CompileError` listing every problem.

    ``handlers``: the handler names registered, when they are known (``WFRUNNER_HANDLERS``
    is set): a ``function_name`` outside them is a problem like any other. ``None`` checks
    no name: what the workers will have registered is not known here.
    """
    early = _limit_problems(doc)
    if early:
        raise CompileError(limits.clip(early), source)
    draft = _Draft(problems=schema_problems(doc))
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        found = draft.problems or ["workflow: expected an object with 'nodes'"]
        raise CompileError(limits.clip(found), source)
    draft.problems += schedule_problems(doc.get("schedule"))
    _read_nodes(draft, doc["nodes"])
    edges = doc.get("edges")
    edges = edges if isinstance(edges, list) else []
    draft.problems += limits.degree_problems(edges)
    _read_edges(draft, edges)
    _read_configs(draft)
    reached: dict[str, set[str]] = {n: set(lp.exits()) for n, lp in draft.loops.items()}
    for edge in draft.edges:
        reached.setdefault(edge.source, set()).add(edge.target)
    draft.on_error, found = failures.on_error_targets(draft.raw, reached)
    draft.problems += found
    on_failure, found = failures.on_failure_handler(doc, handlers)
    draft.problems += found
    successors = _forward_successors(draft)
    _check_cycles(draft, successors)
    _check_loop_targets(draft, successors)
    ir = replace(
        _assemble(draft, successors, doc.get("metadata"), doc.get("concurrency")),
        on_failure=on_failure,
    )
    if handlers is not None:
        named = [(n.id, n.function_name) for n in ir.nodes.values() if n.function_name]
        draft.problems += checks.handler_problems(named, handlers)
    _check_loop_joins(draft, successors, ir)
    ir = _cancel_feeders(draft, successors, ir)
    if ir.nodes and not ir.entry_nodes:  # (no nodes at all is a problem reported already)
        draft.problems.append("workflow: no entry node: every node has an incoming edge")
    if ir.nodes and not ir.terminal_nodes():
        draft.problems.append(
            "workflow: no terminal node: every node has outgoing edges or a loop; "
            "add a node with no outgoing edges (or a loop break_path that ends)"
        )
    if draft.problems:
        raise CompileError(limits.clip(draft.problems), source)
    return ir


def _limit_problems(doc: Any) -> list[str]:
    """Counts, then nesting depth, then the amount of CEL: each cheap, each first."""
    if isinstance(doc, dict):
        problems = limits.count_problems(doc)
        if problems:
            return problems
    path = limits.too_deep(doc, limits.MAX_DEPTH)
    if path is not None:
        where = locate(doc, path[:6]) + ("..." if len(path) > 6 else "")
        return [
            f"{where}: objects and arrays nested more than {limits.MAX_DEPTH} levels deep "
            f"(the limit)"
        ]
    return limits.expression_problems(doc) if isinstance(doc, dict) else []


def _read_nodes(draft: _Draft, nodes: list[Any]) -> None:
    first_index: dict[str, int] = {}
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            continue  # reported by the schema
        node_id = node["id"]
        problem = limits.id_problem(node_id)
        if problem:
            draft.problems.append(problem)
            continue
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
        where = edge_label(source, target)
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
        draft.problems += map_problems(node_id, node_type, config, "on_error" in node)
    for edge in draft.edges:
        if edge.source in draft.loops and edge.condition is not None:
            draft.problems.append(
                f"{edge_label(edge.source, edge.target)}: a loop node's exits follow its loop "
                "config; move this condition into config.condition or break_path"
            )
    _merge_loop_edges(draft)


def _merge_loop_edges(draft: _Draft) -> None:
    """A plain edge out of a loop node joins its break_path (unless it is the loop-back)."""
    if not draft.loops:
        return
    outgoing = draft.outgoing()
    for node_id, loop in draft.loops.items():
        taken = {loop.loop_back_to, *loop.break_path}
        extra = [e.target for e in outgoing[node_id] if e.target not in taken]
        if extra:
            draft.loops[node_id] = replace(loop, break_path=loop.break_path + tuple(extra))


def _forward_successors(draft: _Draft) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {node_id: [] for node_id in draft.raw}
    for edge in draft.edges:
        if edge.source not in draft.loops:
            # loop exits come from the loop config; loop-backs are not forward.
            # _read_edges dropped repeated edges, so targets are already distinct.
            succ[edge.source].append(edge.target)
    for node_id, loop in draft.loops.items():
        succ[node_id] = list(dict.fromkeys(loop.exits()))
    for node_id, target in draft.on_error.items():  # a failure's path is a forward edge
        succ[node_id].append(target)
    return succ


def _cycle_text(path: list[str]) -> str:
    if len(path) > 12:
        middle = " -> ... -> "
        return f"{' -> '.join(path[:8])}{middle}{' -> '.join(path[-2:])} ({len(path) - 1} nodes)"
    return " -> ".join(path)


def _check_cycles(draft: _Draft, succ: dict[str, list[str]]) -> None:
    for component in strongly_connected(draft.raw, succ):
        draft.cyclic = True
        path = _cycle_text(cycle_path(component, succ))
        draft.problems.append(
            f"cycle {path} is not declared as a loop: make its last node a loop node "
            "(type 'loop', config.loop_back_to) or remove an edge"
        )


def _check_loop_targets(draft: _Draft, succ: dict[str, list[str]]) -> None:
    """Each loop's target must lead to it: one pass in reverse topological order that
    gives every node the set (an int of bits) of the loops it reaches."""
    far = [n for n, loop in draft.loops.items() if loop.loop_back_to != n]
    if not far or draft.cyclic:
        return  # with a cycle there is no order; the cycle is reported and comes first
    bit = {node_id: 1 << index for index, node_id in enumerate(far)}
    reaches: dict[str, int] = {}
    for node in reversed(topological_order(draft.raw, succ)):
        mask = 0
        for nxt in succ[node]:
            mask |= bit.get(nxt, 0) | reaches[nxt]
        reaches[node] = mask
    for node_id in far:
        back = draft.loops[node_id].loop_back_to
        if not reaches[back] & bit[node_id]:
            draft.problems.append(
                f"loop {node_id!r}: config.loop_back_to {back!r} is not upstream of the loop; "
                "it must be the loop node itself or a node that leads to it"
            )


def _loop_bodies(draft: _Draft, succ: dict[str, list[str]]) -> tuple[list[str], dict[str, int]]:
    """Far loops (loop_back_to another node) and, per node, the bits of the loops whose
    body it is in: reachable from the loop's target and leading to the loop node."""
    far = [n for n, loop in draft.loops.items() if loop.loop_back_to != n]
    order = topological_order(draft.raw, succ)
    bit = {node_id: 1 << index for index, node_id in enumerate(far)}
    reaches: dict[str, int] = {}
    for node in reversed(order):
        mask = bit.get(node, 0)
        for nxt in succ[node]:
            mask |= reaches[nxt]
        reaches[node] = mask
    starts: dict[str, int] = {}
    for loop_id in far:
        back = draft.loops[loop_id].loop_back_to
        starts[back] = starts.get(back, 0) | bit[loop_id]
    reached: dict[str, int] = dict.fromkeys(order, 0)
    for node in order:
        reached[node] |= starts.get(node, 0)
        for nxt in succ[node]:
            reached[nxt] |= reached[node]
    return far, {node: reaches[node] & reached[node] for node in order}


def _check_loop_joins(draft: _Draft, succ: dict[str, list[str]], ir: IR) -> None:
    """A join outside a loop must not mix inputs from the loop's body with inputs from
    outside it: body tokens carry their pass (scope), so the two would never meet."""
    if draft.cyclic or not any(lp.loop_back_to != n for n, lp in draft.loops.items()):
        return
    far, body = _loop_bodies(draft, succ)
    for node in ir.nodes.values():
        if not node.wait_for_all:
            continue
        for index, loop_id in enumerate(far):
            flag = 1 << index
            if body.get(node.id, 0) & flag:
                continue
            inside = [d for d in node.dependencies if d != loop_id and body.get(d, 0) & flag]
            outside = [d for d in node.dependencies if d == loop_id or not body.get(d, 0) & flag]
            if inside and outside:
                draft.problems.append(
                    f"join {node.id!r} takes inputs from inside loop {loop_id!r} "
                    f"({', '.join(inside)}) and from outside it ({', '.join(outside)}): "
                    "leave the loop through its break_path or timeout_path instead"
                )


def _cancel_feeders(draft: _Draft, succ: dict[str, list[str]], ir: IR) -> IR:
    """Each ``join_rest: "cancel"`` join's feeders (compiler/joins.py); a loop, a node in a
    loop's body, a human node and a subworkflow node (its child run would go on) are never
    cut."""
    joins = [n for n in ir.nodes.values() if n.join is not None and n.join.rest == "cancel"]
    if not joins or draft.cyclic:
        return ir
    fixed = {
        n.id for n in ir.nodes.values() if n.loop is not None or n.type in ("human", "subworkflow")
    }
    if draft.loops:
        _, body = _loop_bodies(draft, succ)
        fixed |= {node for node, bits in body.items() if bits}
    pred = {n.id: list(n.dependencies) for n in ir.nodes.values()}
    nodes = dict(ir.nodes)
    for join in joins:
        assert join.join is not None
        cut = feeders(join.id, succ, pred, fixed)
        nodes[join.id] = replace(join, join=replace(join.join, cut=cut))
    return replace(ir, nodes=nodes)


def _assemble(
    draft: _Draft, succ: dict[str, list[str]], metadata: Any, concurrency: Any = None
) -> IR:
    preds: dict[str, list[str]] = {node_id: [] for node_id in draft.raw}
    for source, targets in succ.items():
        for target in targets:
            preds[target].append(source)
    outgoing = draft.outgoing()
    nodes = {
        node_id: _node(draft, node_id, preds[node_id], outgoing[node_id]) for node_id in draft.raw
    }
    entries = tuple(node_id for node_id in draft.raw if not preds[node_id])
    max_runs = concurrency.get("max_runs") if isinstance(concurrency, dict) else None
    return IR(
        nodes=nodes,
        entry_nodes=entries,
        metadata=metadata if isinstance(metadata, dict) else {},
        max_runs=max_runs if type(max_runs) is int and max_runs >= 1 else None,
    )


def _node(draft: _Draft, node_id: str, dependencies: list[str], edges: list[_Edge]) -> IRNode:
    raw = draft.raw[node_id]
    loop = draft.loops.get(node_id)
    outgoing = edges if loop is None else []
    dependents = tuple(e.target for e in outgoing if e.condition is None)
    rules = tuple(BranchRule(e.condition, (e.target,)) for e in outgoing if e.condition is not None)
    branch = Branch(rules=rules) if rules else None
    retry = raw.get("retry")
    join = join_rule(node_id, raw, len(dependencies))
    if isinstance(join, str):
        draft.problems.append(join)
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
        on_error=draft.on_error.get(node_id),
        join=None if isinstance(join, str) else join,
    )
