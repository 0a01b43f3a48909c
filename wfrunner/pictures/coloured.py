"""A run drawn over its workflow: nodes filled by status, the path its tokens took.

Pure (IR + run document in, DOT or Mermaid text out), so that the CLI, the REST API and the
tests draw the same picture without a server. The run document (docs/run-document.md)
gives each node's ``status`` and ``iterations`` and the ``path``: every token ``{from,
to}`` in emission order, loop-backs included, dead paths not. An edge is taken when a
token went along it; a loop-back taken twice is labelled ``x2``, a node that ran more than
one pass ``3 passes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wfrunner.compiler.ir import IR
from wfrunner.compiler.render import Arrow, arrows, dot_text, mermaid_ids, mermaid_text

#: node status -> fill colour; RUNNING and WAITING share amber (the node is not done)
FILLS: Mapping[str, str] = {
    "COMPLETED": "#b6e3a8",
    "FAILED": "#f4a3a3",
    "RUNNING": "#ffd27a",
    "WAITING": "#ffd27a",
    "SKIPPED": "#d9d9d9",
    "PENDING": "#ffffff",
}
#: colour of an edge a token went along
TAKEN = "#1f7a1f"
#: colour of an edge no token went along (also dashed)
UNTAKEN = "#9a9a9a"
#: fill of a status this module does not know (a newer server's)
UNKNOWN_FILL = "#ffffff"


@dataclass(frozen=True)
class _Edge:
    arrow: Arrow
    #: tokens that went along it (0: not taken)
    tokens: int

    @property
    def label(self) -> str | None:
        count = f"x{self.tokens}" if self.tokens > 1 else ""
        parts = [p for p in (self.arrow.label, count) if p]
        return " ".join(parts) if parts else None


def _edges(ir: IR, path: Iterable[Mapping[str, Any]]) -> list[_Edge]:
    """Each arrow of the workflow with the tokens that went along it. Two arrows between
    the same nodes (a branch rule and the default) both count the pair's tokens."""
    taken = Counter((step.get("from"), step.get("to")) for step in path)
    return [_Edge(a, taken[(a.source, a.target)]) for a in arrows(ir)]


def _status(doc: Mapping[str, Any], node_id: str) -> str:
    info = doc.get("nodes", {}).get(node_id) or {}
    return str(info.get("status") or "PENDING")


def _label(ir: IR, doc: Mapping[str, Any], node_id: str, sep: str = "\n") -> str:
    node = ir.nodes[node_id]
    info = doc.get("nodes", {}).get(node_id) or {}
    passes = info.get("iterations") or 0
    parts = [f"{node.id} ({node.type})", _status(doc, node_id)]
    if isinstance(passes, int) and passes > 1:
        parts.append(f"{passes} passes")
    return sep.join(parts)


def run_dot(ir: IR, doc: Mapping[str, Any]) -> str:
    """Graphviz DOT of the run ``doc`` of the workflow ``ir``."""
    title = f"run {doc.get('run_id', '')}: {doc.get('status', '')}"
    lines = [
        "digraph run {",
        "    rankdir=TB;",
        f'    label="{dot_text(title)}"; labelloc=t;',
        '    node [shape=box, style="rounded,filled"];',
    ]
    for node in ir.nodes.values():
        fill = FILLS.get(_status(doc, node.id), UNKNOWN_FILL)
        shape = ", shape=diamond" if node.branch or node.loop else ""
        label = dot_text(_label(ir, doc, node.id))
        lines.append(f'    "{dot_text(node.id)}" [label="{label}", fillcolor="{fill}"{shape}];')
    for edge in _edges(ir, doc.get("path") or []):
        if edge.tokens:
            attrs = [f'color="{TAKEN}"', "penwidth=2.5", "style=bold"]
        else:
            attrs = [f'color="{UNTAKEN}"', "style=dashed"]
        if edge.label:
            attrs.append(f'label="{dot_text(edge.label)}"')
        source, target = dot_text(edge.arrow.source), dot_text(edge.arrow.target)
        lines.append(f'    "{source}" -> "{target}" [{", ".join(attrs)}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_mermaid(ir: IR, doc: Mapping[str, Any]) -> str:
    """Mermaid flowchart of the run ``doc``: a class per status, taken edges thick
    (``==>``) and coloured, untaken ones dotted (``-.->``)."""
    ids = mermaid_ids(ir)
    lines = ["flowchart TD"]
    for node in ir.nodes.values():
        label = mermaid_text(_label(ir, doc, node.id, sep=" · "))
        lines.append(f'    {ids[node.id]}["{label}"]')
    taken: list[int] = []
    for number, edge in enumerate(_edges(ir, doc.get("path") or [])):
        link = "==>" if edge.tokens else "-.->"
        label = f'|"{mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {ids[edge.arrow.source]} {link}{label} {ids[edge.arrow.target]}")
        if edge.tokens:
            taken.append(number)
    for status, fill in FILLS.items():
        lines.append(f"    classDef {status} fill:{fill},stroke:#333")
    by_status: dict[str, list[str]] = {}
    for node_id in ir.nodes:
        status = _status(doc, node_id)
        by_status.setdefault(status if status in FILLS else "PENDING", []).append(ids[node_id])
    for status, members in by_status.items():
        lines.append(f"    class {','.join(members)} {status}")
    if taken:
        lines.append(f"    linkStyle {','.join(map(str, taken))} stroke:{TAKEN},stroke-width:3px")
    return "\n".join(lines) + "\n"


#: the text formats of a run's picture; svg and png are drawn by Graphviz from run_dot
TEXT_FORMATS = ("mermaid", "dot")


def render_run(ir: IR, doc: Mapping[str, Any], fmt: str) -> str:
    if fmt == "dot":
        return run_dot(ir, doc)
    if fmt == "mermaid":
        return run_mermaid(ir, doc)
    raise ValueError(f"unknown graph format {fmt!r}; expected one of {TEXT_FORMATS}")
