"""Handler names are checked where the handlers are known (``WFRUNNER_HANDLERS`` set): a
misspelt ``function_name`` fails ``validate``, ``compile`` and ``graph`` naming the node,
the closest registered name and the others; without the variable nothing is judged. The
CLI runs as a user runs it: the installed ``wfrunner`` entry point, from the folder that
holds the handler module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wfrunner.compiler import compile_workflow
from wfrunner.errors import CompileError

ROOT = Path(__file__).resolve().parents[2]
WFRUNNER = str(Path(sys.executable).parent / "wfrunner")
MISSPELT = {
    "metadata": {"name": "typo"},
    "nodes": [
        {"id": "A", "type": "function", "config": {"function_name": "examples.increment"}},
        {"id": "B", "type": "function", "config": {"function_name": "examples.incremnet"}},
    ],
    "edges": [{"from": "A", "to": "B"}],
}


def wfrunner(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WFRUNNER, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )


def environment(handlers: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WFRUNNER_HANDLERS"}
    return env if handlers is None else {**env, "WFRUNNER_HANDLERS": handlers}


@pytest.mark.parametrize("command", ["validate", "compile", "graph"])
def test_a_misspelt_handler_fails_with_the_closest_name(tmp_path: Path, command: str) -> None:
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(MISSPELT))
    result = wfrunner(environment("examples.handlers"), command, str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert (
        "node 'B': no handler registered under 'examples.incremnet' (did you mean "
        "'examples.increment'? registered: examples.double, examples.fetch_with_retry, "
        "examples.increment, examples.report, examples.score)"
    ) in output
    assert "node 'A'" not in output
    assert "Traceback" not in output


def test_without_handler_modules_names_are_not_judged(tmp_path: Path) -> None:
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(MISSPELT))
    result = wfrunner(environment(None), "validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok ")


def test_the_examples_validate_against_their_handlers() -> None:
    files = sorted(str(p) for p in (ROOT / "examples").glob("*.json"))
    result = wfrunner(environment("examples.handlers"), "validate", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(files)


def test_the_compiler_lists_every_unknown_name_with_the_other_problems() -> None:
    doc = {**MISSPELT, "edges": [*MISSPELT["edges"], {"from": "B", "to": "ghost"}]}
    with pytest.raises(CompileError) as info:
        compile_workflow(doc, handlers={"examples.increment"})
    assert info.value.problems == [
        'edge B->ghost: unknown node "ghost"',
        "node 'B': no handler registered under 'examples.incremnet' (did you mean "
        "'examples.increment'? registered: examples.increment)",
    ]
    with pytest.raises(CompileError, match="no handler is registered"):
        compile_workflow(MISSPELT, handlers=set())
    assert compile_workflow(MISSPELT).nodes["B"].function_name == "examples.incremnet"
