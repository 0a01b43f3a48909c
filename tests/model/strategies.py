"""Random small valid workflows (3-10 nodes) and their inputs, for the model-based test.

Shape: nodes ``n0..n{k}`` in topological order, each later node with 0 (another entry),
1 or 2-3 earlier parents (a join: ``aggregate`` ``concat``). Every output is a non-empty
list of integers, so every join can concatenate and every condition can look at
``output[0]``. Edges get random CEL conditions: per source node one base predicate ``P``
is drawn, and each edge takes ``P``, ``!(P)`` (an exclusive pair), ``true``, ``false``,
another predicate, or none — so branches are exclusive, both-true and none-true.

Optionally one loop: a single-parent node becomes a ``loop`` node that goes back either
to itself or to an upstream node ``X`` whose path to the loop is a plain chain (each
node between has one parent and one child, unconditional edges), so every pass is a
closed body. The loop's children become its ``break_path`` / ``timeout_path``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from wfrunner.compiler import compile_workflow
from wfrunner.errors import CompileError

SMALL = st.integers(min_value=0, max_value=6)


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


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(min_value=3, max_value=10))
    ids = [f"n{i}" for i in range(n)]
    parents: dict[int, list[int]] = {0: []}
    for j in range(1, n):
        k = min(j, draw(st.sampled_from([0, 1, 1, 1, 1, 2, 2, 3])))
        parents[j] = sorted(
            draw(st.lists(st.integers(0, j - 1), min_size=k, max_size=k, unique=True))
        )
    children: dict[int, list[int]] = {i: [] for i in range(n)}
    for j, ps in parents.items():
        for p in ps:
            children[p].append(j)

    conditions: dict[tuple[int, int], str | None] = {}
    for i in range(n):
        base = draw(predicate())
        for j in children[i]:
            kind = draw(st.sampled_from(["none", "none", "P", "notP", "true", "false", "other"]))
            conditions[(i, j)] = (
                {
                    "none": None,
                    "P": base,
                    "notP": f"!({base})",
                    "true": "true",
                    "false": "false",
                }.get(kind)
                if kind != "other"
                else draw(predicate())
            )
    conditional = {e for e, c in conditions.items() if c is not None}

    nodes: dict[int, dict[str, Any]] = {}
    for i in range(n):
        if len(parents[i]) >= 2:
            nodes[i] = {"id": ids[i], "type": "aggregate", "config": {"strategy": "concat"}}
        elif not parents[i]:
            nodes[i] = {
                "id": ids[i],
                "type": "transform",
                "config": {"expression": draw(entry_expression())},
            }
        else:
            nodes[i] = {
                "id": ids[i],
                "type": "transform",
                "config": {"expression": draw(list_expression())},
            }

    loop_at = None
    candidates = [i for i in range(1, n) if len(parents[i]) == 1]
    if candidates and draw(st.booleans()):
        loop_at = draw(st.sampled_from(candidates))
        targets = _chain_targets(loop_at, parents, children, conditional)
        back = draw(st.sampled_from([loop_at, *targets]))
        exits = children[loop_at]
        in_timeout = draw(st.lists(st.booleans(), min_size=len(exits), max_size=len(exits)))
        nodes[loop_at] = {
            "id": ids[loop_at],
            "type": "loop",
            "config": {
                "max_iterations": draw(st.integers(min_value=1, max_value=4)),
                "loop_back_to": ids[back],
                "condition": draw(loop_condition()),
                "break_path": [ids[c] for c, t in zip(exits, in_timeout, strict=True) if not t],
                "timeout_path": [ids[c] for c, t in zip(exits, in_timeout, strict=True) if t],
            },
        }

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
