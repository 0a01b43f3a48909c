"""A finished run drawn as SVG by Graphviz (wfrunner.pictures.run_svg, and ``wfrunner graph
RUN_ID``): the nodes filled with their status's colour, the edges its tokens took bold and
coloured, the branch not taken dashed."""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from tests.entry_point import invoke
from wfrunner import pictures, runtime
from wfrunner.pictures.coloured import FILLS, TAKEN, UNTAKEN

pytestmark = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot is not installed (.ci/run installs it)"
)

SVG = "{http://www.w3.org/2000/svg}"

BRANCH = {
    "metadata": {"name": "pictures_branch"},
    "nodes": [
        {"id": "score", "type": "transform", "config": {"expression": "{'score': inputs.score}"}},
        {"id": "evaluate", "type": "conditional"},
        {"id": "high", "type": "transform", "config": {"expression": "{'tier': 'premium'}"}},
        {"id": "low", "type": "function", "config": {"function_name": "t.boom"}},
        {"id": "finalize", "type": "aggregate", "config": {"strategy": "merge"}},
    ],
    "edges": [
        {"from": "score", "to": "evaluate"},
        {"from": "evaluate", "to": "high", "condition": "output.score >= 80"},
        {"from": "evaluate", "to": "low", "condition": "output.score < 80"},
        {"from": "high", "to": "finalize"},
        {"from": "low", "to": "finalize"},
    ],
}


def shapes(svg: bytes) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], dict[str, str]]]:
    """Node title -> its shape's attributes; (from, to) -> its edge path's attributes."""
    root = ET.fromstring(svg)
    nodes: dict[str, dict[str, str]] = {}
    edges: dict[tuple[str, str], dict[str, str]] = {}
    for group in root.iter(f"{SVG}g"):
        title = group.findtext(f"{SVG}title") or ""
        if group.get("class") == "node":
            shape = group.find(f"{SVG}path")
            shape = shape if shape is not None else group.find(f"{SVG}polygon")
            assert shape is not None, title
            nodes[title] = dict(shape.attrib)
        elif group.get("class") == "edge":
            source, target = title.split("->")
            path = group.find(f"{SVG}path")
            assert path is not None, title
            edges[(source, target)] = dict(path.attrib)
    return nodes, edges


def test_finished_branch_run_as_svg(run_workflow: Any) -> None:
    doc = run_workflow(BRANCH, {"score": 90})
    assert doc["status"] == "COMPLETED", doc
    nodes, edges = shapes(pictures.run_svg(doc["run_id"], runtime.runtime()))
    assert {n: a["fill"] for n, a in nodes.items()} == {
        "score": FILLS["COMPLETED"],
        "evaluate": FILLS["COMPLETED"],
        "high": FILLS["COMPLETED"],
        "low": FILLS["SKIPPED"],
        "finalize": FILLS["COMPLETED"],
    }
    taken = {k for k, a in edges.items() if a["stroke"] == TAKEN and "stroke-dasharray" not in a}
    dashed = {k for k, a in edges.items() if a["stroke"] == UNTAKEN and "stroke-dasharray" in a}
    assert taken == {("score", "evaluate"), ("evaluate", "high"), ("high", "finalize")}
    assert dashed == {("evaluate", "low"), ("low", "finalize")}


def test_failed_run_through_the_cli(run_workflow: Any) -> None:
    doc = run_workflow(BRANCH, {"score": 10})
    assert doc["status"] == "FAILED", doc
    result = invoke("graph", doc["run_id"], "--format", "svg", env=os.environ, timeout=60)
    assert result.returncode == 0, result.stderr
    nodes, edges = shapes(result.stdout.encode())
    assert nodes["low"]["fill"] == FILLS["FAILED"]
    assert nodes["high"]["fill"] == FILLS["SKIPPED"]
    assert edges[("evaluate", "low")]["stroke"] == TAKEN
    assert "stroke-dasharray" in edges[("evaluate", "high")]
    mermaid = invoke("graph", doc["run_id"], env=os.environ, timeout=60)
    assert mermaid.returncode == 0, mermaid.stderr
    lines = mermaid.stdout.splitlines()
    assert "    class low FAILED" in lines and "    class high,finalize SKIPPED" in lines
    assert '    evaluate ==>|"output.score < 80"| low' in lines


def test_workflow_svg_and_unknown_run(run_workflow: Any) -> None:
    from wfrunner.client import register_workflow

    workflow_id = register_workflow(BRANCH)
    nodes, edges = shapes(pictures.workflow_svg(workflow_id, runtime.runtime()))
    assert set(nodes) == {"score", "evaluate", "high", "low", "finalize"}
    assert len(edges) == 5
    result = invoke("graph", "no-such-run", env=os.environ, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "no-such-run" in result.stderr
    assert len(result.stderr.splitlines()) == 1
