"""Draw an IR as Mermaid or Graphviz DOT text (``wfrunner graph``).

Node ids are the user's: ``end`` closes a Mermaid block, ``a--b`` reads as an arrow. Mermaid
gets a node id as its own only when it is a plain name and no keyword, else an id made up
for the drawing (the label always shows the real id). Labels (CEL conditions with quotes,
``#``, ``<``) and DOT's quoted ids are escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from wfrunner.compiler.ir import IR

FORMATS = ("mermaid", "dot")


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    label: str | None
    style: str  # "solid" | "dashed" (loop-back) | "dotted" (timeout, on error)


def arrows(ir: IR) -> Iterator[Arrow]:
    for node in ir.nodes.values():
        for target in node.dependents:
            yield Arrow(node.id, target, None, "solid")
        if node.branch:
            for rule in node.branch.rules:
                for target in rule.next_nodes:
                    yield Arrow(node.id, target, rule.condition, "solid")
        if node.loop:
            loop = node.loop
            yield Arrow(node.id, loop.loop_back_to, f"loop: {loop.condition}", "dashed")
            for target in loop.break_path:
                yield Arrow(node.id, target, "break", "solid")
            for target in loop.timeout_path:
                yield Arrow(node.id, target, f"after {loop.max_iterations}", "dotted")
        if node.on_error:
            yield Arrow(node.id, node.on_error, "on error", "dotted")


_MERMAID_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
#: words a Mermaid flowchart reads as syntax where an id is expected
_MERMAID_KEYWORDS = frozenset(
    "end graph flowchart subgraph direction style classdef class click linkstyle "
    "default call href interpolate accTitle accDescr".lower().split()
)


def mermaid_ids(ir: IR) -> Mapping[str, str]:
    """Node id -> Mermaid id: the node id itself when it is a plain name and no keyword,
    else ``node_<n>`` (numbered past any node id already of that form)."""
    plain = {n for n in ir.nodes if _MERMAID_NAME.match(n) and n.lower() not in _MERMAID_KEYWORDS}
    ids: dict[str, str] = {}
    count = 0
    for node_id in ir.nodes:
        if node_id in plain:
            ids[node_id] = node_id
            continue
        while f"node_{count}" in plain:
            count += 1
        ids[node_id] = f"node_{count}"
        count += 1
    return ids


#: a ``<`` that would open an HTML tag in a label (``a < b`` is left as it is)
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def mermaid_text(text: str) -> str:
    """Text for a quoted Mermaid label: entity codes for what would end or mark it up."""
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("\n", " "), ("\r", " ")):
        text = text.replace(char, code)
    return _TAG_START.sub("#lt;", text)


def to_mermaid(ir: IR) -> str:
    lines = ["flowchart TD"]
    ids = mermaid_ids(ir)
    for node in ir.nodes.values():
        lines.append(f'    {ids[node.id]}["{mermaid_text(f"{node.id} ({node.type})")}"]')
    for arrow in arrows(ir):
        link = {"solid": "-->", "dashed": "-.->", "dotted": "-.->"}[arrow.style]
        label = f'|"{mermaid_text(arrow.label)}"|' if arrow.label else ""
        lines.append(f"    {ids[arrow.source]} {link}{label} {ids[arrow.target]}")
    return "\n".join(lines) + "\n"


def dot_text(text: str) -> str:
    """Text for a double-quoted DOT string (ids and labels)."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return text.replace("\r", "").replace("\n", "\\n")


def to_dot(ir: IR) -> str:
    lines = ["digraph workflow {", "    rankdir=TB;", "    node [shape=box];"]
    for node in ir.nodes.values():
        shape = ", shape=diamond" if node.branch or node.loop else ""
        label = dot_text(f"{node.id} ({node.type})")
        lines.append(f'    "{dot_text(node.id)}" [label="{label}"{shape}];')
    for arrow in arrows(ir):
        attrs = [] if arrow.style == "solid" else [f"style={arrow.style}"]
        if arrow.label:
            attrs.append(f'label="{dot_text(arrow.label)}"')
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        source, target = dot_text(arrow.source), dot_text(arrow.target)
        lines.append(f'    "{source}" -> "{target}"{suffix};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(ir: IR, fmt: str) -> str:
    if fmt == "mermaid":
        return to_mermaid(ir)
    if fmt == "dot":
        return to_dot(ir)
    raise ValueError(f"unknown graph format {fmt!r}; expected one of {FORMATS}")
