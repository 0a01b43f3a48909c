"""``wfrunner graph``'s drawings stay valid whatever the node ids and conditions: Mermaid
reads ``end`` as the end of a block and ``a--b`` as an arrow; a quote ends a label."""

from __future__ import annotations

import itertools
import re
from typing import Any

from wfrunner.compiler import compile_workflow
from wfrunner.compiler.render import to_dot, to_mermaid

AWKWARD = ["start", "end", "my-node", "a--b", "1st", "node_0", "End", "graph"]

#: what the drawing may contain: a node line or an arrow line, ids plain names
_ID = r"[A-Za-z][A-Za-z0-9_]*"
_LABEL = r'"[^"\n]*"'
_NODE = re.compile(rf"    ({_ID})\[{_LABEL}\]")
_ARROW = re.compile(rf"    ({_ID}) (?:-->|-\.->)(?:\|{_LABEL}\|)? ({_ID})")


def chain(ids: list[str]) -> dict[str, Any]:
    nodes = [{"id": n, "type": "transform", "config": {"expression": "input"}} for n in ids]
    edges = [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]
    edges[0]["condition"] = 'input != "#x<y>"'
    return {"nodes": nodes, "edges": edges}


def test_mermaid_ids_are_plain_names_and_no_keyword() -> None:
    text = to_mermaid(compile_workflow(chain(AWKWARD)))
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes = [_NODE.fullmatch(line) for line in lines[1 : 1 + len(AWKWARD)]]
    arrows = [_ARROW.fullmatch(line) for line in lines[1 + len(AWKWARD) :]]
    assert all(nodes) and all(arrows), text
    ids = [m.group(1) for m in nodes if m]
    assert len(set(ids)) == len(AWKWARD)
    assert not {i.lower() for i in ids} & {"end"}
    assert ids[0] == "start" and ids[5] == "node_0"  # plain names kept, no clash
    assert [(m.group(1), m.group(2)) for m in arrows if m] == list(itertools.pairwise(ids))
    assert '["a--b (transform)"]' in text
    assert '-->|"input != #quot;#35;x#lt;y>#quot;"|' in text


def test_dot_ids_are_escaped() -> None:
    text = to_dot(compile_workflow(chain(AWKWARD)))
    assert '    "start" -> "end" [label="input != \\"#x<y>\\""];' in text
    assert '    "end" -> "my-node";' in text
    # every quote that is not escaped opens or closes a string: an even number per line
    for line in text.splitlines():
        assert len(re.findall(r'(?<!\\)"', line)) % 2 == 0, line
