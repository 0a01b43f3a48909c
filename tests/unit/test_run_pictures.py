"""A run's picture (wfrunner.pictures.coloured): each node filled by its status, the edges
its tokens took bold and coloured, the others dashed, loop passes counted. Pure: a run
document written by hand, no server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from wfrunner.compiler import compile_workflow, load_definitions
from wfrunner.compiler.ir import IR
from wfrunner.pictures.coloured import FILLS, TAKEN, UNTAKEN, run_dot, run_mermaid

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workflows" / "valid"


def ir_of(name: str) -> IR:
    item = load_definitions(FIXTURES / name)[0]
    return compile_workflow(item.definition, item.source)


def document(
    statuses: dict[str, str], path: list[tuple[str | None, str]], **nodes: Any
) -> dict[str, Any]:
    return {
        "run_id": "r1",
        "status": "COMPLETED",
        "nodes": {n: {"status": s, "iterations": nodes.get(n, 1)} for n, s in statuses.items()},
        "path": [{"from": a, "to": b} for a, b in path],
    }


BRANCH_RUN = document(
    {
        "score": "COMPLETED",
        "evaluate": "COMPLETED",
        "high": "COMPLETED",
        "low": "SKIPPED",
        "finalize": "COMPLETED",
    },
    [(None, "score"), ("score", "evaluate"), ("evaluate", "high"), ("high", "finalize")],
)


def dot_nodes(text: str) -> dict[str, str]:
    return dict(re.findall(r'^    "([^"]+)" \[label=.*fillcolor="([^"]+)"', text, re.M))


def dot_edges(text: str) -> dict[tuple[str, str], str]:
    return {
        (a, b): attrs
        for a, b, attrs in re.findall(r'^    "([^"]+)" -> "([^"]+)" \[(.*)\];', text, re.M)
    }


def test_branch_run_nodes_filled_by_status() -> None:
    ir = ir_of("branch_join.json")
    assert set(ir.nodes) == {"score", "evaluate", "high", "low", "finalize"}
    fills = dot_nodes(run_dot(ir, BRANCH_RUN))
    assert fills == {
        "score": FILLS["COMPLETED"],
        "evaluate": FILLS["COMPLETED"],
        "high": FILLS["COMPLETED"],
        "low": FILLS["SKIPPED"],
        "finalize": FILLS["COMPLETED"],
    }


def test_taken_edges_bold_untaken_dashed() -> None:
    edges = dot_edges(run_dot(ir_of("branch_join.json"), BRANCH_RUN))
    taken = {
        k for k, attrs in edges.items() if f'color="{TAKEN}"' in attrs and "style=bold" in attrs
    }
    dashed = {
        k for k, attrs in edges.items() if f'color="{UNTAKEN}"' in attrs and "style=dashed" in attrs
    }
    assert taken == {("score", "evaluate"), ("evaluate", "high"), ("high", "finalize")}
    assert dashed == {("evaluate", "low"), ("low", "finalize")}


def test_every_status_has_its_colour() -> None:
    ir = ir_of("sequential.json")
    statuses = dict(zip(ir.nodes, ["FAILED", "RUNNING", "PENDING"], strict=False))
    fills = dot_nodes(run_dot(ir, document(statuses, [])))
    assert [fills[n] for n in statuses] == [FILLS["FAILED"], FILLS["RUNNING"], FILLS["PENDING"]]
    assert FILLS["RUNNING"] == FILLS["WAITING"] != FILLS["PENDING"]
    assert len({FILLS[s] for s in ("COMPLETED", "FAILED", "RUNNING", "SKIPPED", "PENDING")}) == 5


def test_loop_passes_in_labels() -> None:
    ir = ir_of("loop.json")
    loop_node = next(n for n in ir.nodes.values() if n.loop)
    back = loop_node.loop.loop_back_to if loop_node.loop else ""
    path: list[tuple[str | None, str]] = [(None, ir.entry_nodes[0])]
    path += [(loop_node.id, back)] * 2
    statuses = {n: "COMPLETED" for n in ir.nodes}
    text = run_dot(ir, document(statuses, path, **{loop_node.id: 3}))
    assert re.search(
        rf'"{loop_node.id}" \[label="{loop_node.id} \(loop\)\\nCOMPLETED\\n3 passes"', text
    )
    assert re.search(
        rf'"{loop_node.id}" -> "{back}" \[color="{TAKEN}".*label="loop: [^"]*x2"\]', text
    )


_MERMAID_ARROW = re.compile(r'    (\w+) (==>|-\.->)(?:\|"[^"]*"\|)? (\w+)')


def test_mermaid_classes_and_link_styles() -> None:
    text = run_mermaid(ir_of("branch_join.json"), BRANCH_RUN)
    lines = text.splitlines()
    arrows = [m.groups() for m in map(_MERMAID_ARROW.fullmatch, lines) if m]
    assert [(a, b) for a, link, b in arrows if link == "==>"] == [
        ("score", "evaluate"),
        ("evaluate", "high"),
        ("high", "finalize"),
    ]
    assert {(a, b) for a, link, b in arrows if link == "-.->"} == {
        ("evaluate", "low"),
        ("low", "finalize"),
    }
    taken_numbers = [str(i) for i, (_, link, _) in enumerate(arrows) if link == "==>"]
    assert f"    linkStyle {','.join(taken_numbers)} stroke:{TAKEN},stroke-width:3px" in lines
    assert "    class low SKIPPED" in lines
    assert "    class score,evaluate,high,finalize COMPLETED" in lines
    assert f"    classDef SKIPPED fill:{FILLS['SKIPPED']},stroke:#333" in lines


def test_keyword_ids_get_drawing_ids() -> None:
    wf = {
        "nodes": [
            {"id": "a-b", "type": "transform", "config": {"expression": "input"}},
            {"id": "end", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [{"from": "a-b", "to": "end"}],
    }
    ir = compile_workflow(wf)
    doc = document({"a-b": "COMPLETED", "end": "FAILED"}, [(None, "a-b"), ("a-b", "end")])
    assert '    "a-b" -> "end" [color=' in run_dot(ir, doc)
    mermaid = run_mermaid(ir, doc)
    assert re.findall(r"^    (\w+)\[", mermaid, re.M) == ["node_0", "node_1"]
    assert "    node_0 ==> node_1" in mermaid.splitlines()
    assert "    class node_1 FAILED" in mermaid.splitlines()
