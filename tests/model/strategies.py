"""Random small valid workflows (3-10 nodes) and their inputs, for the model-based test.

Shape: nodes ``n0..n{k}`` in topological order, each later node with 0 (another entry),
1 or 2-3 earlier parents (a join: ``aggregate`` ``concat``). Every output is a non-empty
list of integers, so every join can concatenate and every condition can look at
``output[0]``. Edges get random CEL conditions: per source node one base predicate ``P``
is drawn, and each edge takes ``P``, ``!(P)`` (an exclusive pair), ``true``, ``false``,
another predicate, or none — so branches are exclusive, both-true and none-true.

A join may carry a join rule (``JOIN_RULES``). Optionally one node that fails on inputs
shorter than 3 (so some runs end FAILED), and optionally (2 in 3) one loop: a
single-parent node becomes a ``loop`` node that goes back either to itself or to an
upstream node ``X`` whose path to the loop is a plain chain (each node between has one
parent and one child, unconditional edges), so every pass is a closed body. The loop's
children become its ``break_path`` / ``timeout_path``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from wfrunner.compiler import compile_workflow
from wfrunner.errors import CompileError

SMALL = st.integers(min_value=0, max_value=6)

Graph = dict[int, list[int]]


@st.composite
def entry_expression(draw: st.DrawFn) -> str:
    k = draw(SMALL)
    return draw(
        st.sampled_from(
            [
                f"[input.a + {k}]",
                f"[input.b, {k}]",
                f"[inputs.a * {k} + input.b]",
                f"[input.a, input.b + {k}]",
            ]
        )
    )


@st.composite
def list_expression(draw: st.DrawFn) -> str:
    """Over a non-empty list input, giving a non-empty list."""
    k = draw(SMALL)
    return draw(
        st.sampled_from(
            [
                f"input + [{k}]",
                f"input.map(x, x + {k})",
                f"[input.size() + {k}]",
                f"input.filter(x, x % 2 == 1) + [{k}]",
                f"[input[0] * 2 + inputs.b, {k}]",
            ]
        )
    )


@st.composite
def predicate(draw: st.DrawFn) -> str:
    """A condition over a non-empty list ``output``."""
    k = draw(SMALL)
    return draw(
        st.sampled_from(
            [
                f"output.size() > {k % 4}",
                f"output[0] % 2 == {k % 2}",
                f"output[output.size() - 1] > {k}",
                f"output.exists(v, v > {k})",
                f"inputs.a > {k}",
            ]
        )
    )


@st.composite
def loop_condition(draw: st.DrawFn) -> str:
    k = draw(st.integers(min_value=1, max_value=4))
    return draw(
        st.sampled_from(
            [
                f"iteration < {k}",
                f"output.size() < {k + 2}",
                f"output[0] % 2 == {k % 2}",
                "true",
                "false",
                f"iteration < {k} && output[0] > {k}",
            ]
        )
    )


def _chain_targets(
    node: int,
    parents: dict[int, list[int]],
    children: dict[int, list[int]],
    conditional: set[tuple[int, int]],
) -> list[int]:
    """Upstream nodes X that a loop at ``node`` may go back to (besides itself)."""
    found: list[int] = []
    below = node
    cur = parents[node][0]
    while True:
        if not parents[cur] or children[cur] != [below] or (cur, below) in conditional:
            return found
        found.append(cur)
        if len(parents[cur]) != 1:
            return found  # a join may be the loop's target, but the chain stops there
        below, cur = cur, parents[cur][0]


def _dag(draw: st.DrawFn, n: int) -> tuple[Graph, Graph]:
    """Parents and children of nodes 0..n-1; edges only go forward."""
    parents: Graph = {0: []}
    for j in range(1, n):
        k = min(j, draw(st.sampled_from([0, 1, 1, 1, 1, 2, 2, 3])))
        parents[j] = sorted(
            draw(st.lists(st.integers(0, j - 1), min_size=k, max_size=k, unique=True))
        )
    children: Graph = {i: [] for i in range(n)}
    for j, ps in parents.items():
        for p in ps:
            children[p].append(j)
    return parents, children


def _conditions(draw: st.DrawFn, children: Graph) -> dict[tuple[int, int], str | None]:
    """Per source one base predicate P; each edge: none, P, !(P), true, false or another."""
    conditions: dict[tuple[int, int], str | None] = {}
    for i, kids in children.items():
        base = draw(predicate())
        for j in kids:
            kind = draw(st.sampled_from(["none", "none", "P", "notP", "true", "false", "other"]))
            fixed = {"none": None, "P": base, "notP": f"!({base})", "true": "true"}
            fixed["false"] = "false"
            conditions[(i, j)] = draw(predicate()) if kind == "other" else fixed[kind]
    return conditions


#: join rules whose end does not depend on arrival order (each holds only once every
#: input is in): the model cannot say which arrivals an "any" join fires on
JOIN_RULES: list[Any] = [
    None,
    None,
    None,
    {"at_least": "all"},
    {"condition": "count + dead == expected"},
    {"condition": "count == expected && arrived.size() == expected"},
]


def _node(draw: st.DrawFn, node_id: str, n_parents: int) -> dict[str, Any]:
    if n_parents >= 2:
        node = {"id": node_id, "type": "aggregate", "config": {"strategy": "concat"}}
        rule = draw(st.sampled_from(JOIN_RULES))
        if rule == {"at_least": "all"}:
            rule = {"at_least": n_parents}
        return node if rule is None else {**node, "join": rule}
    expression = draw(entry_expression() if n_parents == 0 else list_expression())
    return {"id": node_id, "type": "transform", "config": {"expression": expression}}


def _loop(
    draw: st.DrawFn,
    at: int,
    ids: list[str],
    parents: Graph,
    children: Graph,
    conditional: set[tuple[int, int]],
) -> dict[str, Any]:
    back = draw(st.sampled_from([at, *_chain_targets(at, parents, children, conditional)]))
    exits = children[at]
    in_timeout = draw(st.lists(st.booleans(), min_size=len(exits), max_size=len(exits)))
    return {
        "id": ids[at],
        "type": "loop",
        "config": {
            "max_iterations": draw(st.sampled_from([1, 2, 3, 3, 4])),
            "loop_back_to": ids[back],
            "condition": draw(loop_condition()),
            "break_path": [ids[c] for c, t in zip(exits, in_timeout, strict=True) if not t],
            "timeout_path": [ids[c] for c, t in zip(exits, in_timeout, strict=True) if t],
        },
    }


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(min_value=3, max_value=10))
    ids = [f"n{i}" for i in range(n)]
    parents, children = _dag(draw, n)
    conditions = _conditions(draw, children)
    nodes = {i: _node(draw, ids[i], len(parents[i])) for i in range(n)}
    plain = [i for i in range(1, n) if len(parents[i]) == 1]
    if plain and draw(st.integers(0, 3)) == 0:
        # one node that fails (a CEL error: index out of range) on short inputs; only one,
        # so which node fails the run does not depend on delivery order
        failing = draw(st.sampled_from(plain))
        nodes[failing]["config"] = {"expression": f"[input[2] + {draw(SMALL)}]"}
    loop_at = None
    if plain and draw(st.integers(0, 2)) > 0:
        loop_at = draw(st.sampled_from(plain))
        conditional = {e for e, c in conditions.items() if c is not None}
        nodes[loop_at] = _loop(draw, loop_at, ids, parents, children, conditional)
    edges = []
    for (i, j), condition in sorted(conditions.items()):
        if i == loop_at:
            continue  # a loop's exits are in its config
        edge: dict[str, Any] = {"from": ids[i], "to": ids[j]}
        if condition is not None:
            edge["condition"] = condition
        edges.append(edge)
    definition = {"nodes": [nodes[i] for i in range(n)], "edges": edges}
    try:
        compile_workflow(definition)
    except CompileError:
        assume(False)
    return definition


inputs = st.fixed_dictionaries(
    {"a": st.integers(min_value=-3, max_value=9), "b": st.integers(min_value=-3, max_value=9)}
)
