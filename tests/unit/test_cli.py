"""The CLI's compile-side commands, run as a user would (a subprocess per call)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.entry_point import invoke

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "workflows"
#: the workflow format users already have: examples, the schema, and a stray Markdown file
REFERENCE = ROOT / "tests" / "fixtures" / "reference"


def wfrunner(*args: str) -> subprocess.CompletedProcess[str]:
    return invoke(*args, timeout=60)


def test_validate_valid_files_exit_0() -> None:
    result = wfrunner("validate", *map(str, sorted((FIXTURES / "valid").glob("*.json"))))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(list((FIXTURES / "valid").glob("*.json")))


def test_validate_invalid_exit_2_one_line_per_problem() -> None:
    result = wfrunner("validate", str(FIXTURES / "invalid" / "cycle_no_terminal.json"))
    assert result.returncode == 2
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("error ") for line in lines)
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{not json", "not valid JSON: Expecting property name"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
        (b"[1, 2]", "not a workflow"),
        (b'{"nodes": [], "edges": [], "x": NaN}', "not valid JSON: NaN is not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
    ],
)
def test_validate_unreadable_input(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "wf.json"
    path.write_bytes(content)
    result = wfrunner("validate", str(path))
    assert result.returncode == 2
    assert message in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_file_is_a_clear_error() -> None:
    result = wfrunner("compile", "no/such/file.json")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no/such/file.json: no such file"


def test_compile_prints_contract_ir() -> None:
    result = wfrunner("compile", str(FIXTURES / "valid" / "parallel.json"))
    assert result.returncode == 0, result.stderr
    ir = json.loads(result.stdout)
    assert ir["entry_nodes"] == ["A"]
    assert ir["nodes"]["D"]["dependencies"] == ["B", "C"]
    assert ir["nodes"]["D"]["wait_for_all"] is True
    assert ir["nodes"]["D"]["is_terminal"] is True
    assert ir["nodes"]["A"]["dependents"] == ["B", "C"]


def test_compile_invalid_exit_2_without_traceback() -> None:
    result = wfrunner("compile", str(FIXTURES / "invalid" / "many_problems.json"))
    assert result.returncode == 2
    assert "workflow has 12 problems" in result.stderr
    assert "Traceback" not in result.stderr


def test_verbose_shows_traceback() -> None:
    result = wfrunner("-v", "compile", str(FIXTURES / "invalid" / "many_problems.json"))
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_graph_formats() -> None:
    path = str(FIXTURES / "valid" / "branch_join.json")
    mermaid = wfrunner("graph", path)
    assert mermaid.returncode == 0
    assert mermaid.stdout.startswith("flowchart TD")
    assert 'evaluate -->|"output.score >= 80"| high' in mermaid.stdout
    dot = wfrunner("graph", path, "--format", "dot")
    assert dot.returncode == 0
    assert '"evaluate" -> "high" [label="output.score >= 80"];' in dot.stdout
    bad = wfrunner("graph", path, "--format", "gif")
    assert bad.returncode == 2
    assert "'gif' is not one of mermaid, dot, svg, png" in bad.stderr


def test_graph_shows_loop_edges() -> None:
    result = wfrunner("graph", str(FIXTURES / "valid" / "loop.json"))
    assert 'check -.->|"loop: output.n < inputs.target"| step' in result.stdout
    assert 'check -.->|"after 5"| gave_up' in result.stdout


def test_collection_needs_name_to_compile(tmp_path: Path) -> None:
    doc = {
        "one": json.loads((FIXTURES / "valid" / "sequential.json").read_text()),
        "two": json.loads((FIXTURES / "valid" / "parallel.json").read_text()),
    }
    path = tmp_path / "many.json"
    path.write_text(json.dumps(doc))
    result = wfrunner("compile", str(path))
    assert result.returncode == 2
    assert "choose one with --name" in result.stderr
    assert json.loads(wfrunner("compile", str(path), "--name", "two").stdout)["entry_nodes"] == [
        "A"
    ]


def test_every_reference_file_gives_success_or_clear_messages() -> None:
    result = wfrunner("validate", *map(str, sorted(REFERENCE.iterdir())))
    out = result.stdout
    assert "Traceback" not in out + result.stderr
    assert "ok    " in out and "parallel_fanout" in out
    assert "notes.md: not valid JSON" in out
    assert "workflow.schema.json: this is a JSON Schema, not a workflow definition" in out
    assert (
        "simple_sequential: node 'transform': transform node without config.function_name "
        "needs config.expression" in out
    )
    for line in out.splitlines():
        assert line.startswith(("ok    ", "error "))
