"""Draw an IR as Mermaid or Graphviz DOT text (``wfrunner graph``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from wfrunner.compiler.ir import IR

FORMATS = ("mermaid", "dot")


@dataclass(frozen=True)
class _Arrow:
    source: str
    target: str
    label: str | None
    style: str  # "solid" | "dashed" (loop-back) | "dotted" (timeout)


def _arrows(ir: IR) -> Iterator[_Arrow]:
    for node in ir.nodes.values():
        for target in node.dependents:
            yield _Arrow(node.id, target, None, "solid")
        if node.branch:
            for rule in node.branch.rules:
                for target in rule.next_nodes:
                    yield _Arrow(node.id, target, rule.condition, "solid")
        if node.loop:
            loop = node.loop
            yield _Arrow(node.id, loop.loop_back_to, f"loop: {loop.condition}", "dashed")
            for target in loop.break_path:
                yield _Arrow(node.id, target, "break", "solid")
            for target in loop.timeout_path:
                yield _Arrow(node.id, target, f"after {loop.max_iterations}", "dotted")


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(ir: IR) -> str:
    lines = ["flowchart TD"]
    for node in ir.nodes.values():
        lines.append(f'    {node.id}["{_mermaid_text(f"{node.id} ({node.type})")}"]')
    for arrow in _arrows(ir):
        link = {"solid": "-->", "dashed": "-.->", "dotted": "-.->"}[arrow.style]
        label = f'|"{_mermaid_text(arrow.label)}"|' if arrow.label else ""
        lines.append(f"    {arrow.source} {link}{label} {arrow.target}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(ir: IR) -> str:
    lines = ["digraph workflow {", "    rankdir=TB;", "    node [shape=box];"]
    for node in ir.nodes.values():
        shape = ", shape=diamond" if node.branch or node.loop else ""
        lines.append(f'    "{node.id}" [label="{_dot_text(f"{node.id} ({node.type})")}"{shape}];')
    for arrow in _arrows(ir):
        attrs = [] if arrow.style == "solid" else [f"style={arrow.style}"]
        if arrow.label:
            attrs.append(f'label="{_dot_text(arrow.label)}"')
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f'    "{arrow.source}" -> "{arrow.target}"{suffix};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(ir: IR, fmt: str) -> str:
    if fmt == "mermaid":
        return to_mermaid(ir)
    if fmt == "dot":
        return to_dot(ir)
    raise ValueError(f"unknown graph format {fmt!r}; expected one of {FORMATS}")
