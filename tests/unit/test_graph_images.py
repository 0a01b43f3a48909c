"""``wfrunner graph FILE --format svg|png``: pictures drawn by Graphviz's dot, and a one-line
error naming what to install when dot is missing (whether or not this machine has it: the
command is run with a PATH that holds no dot)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.entry_point import executable, invoke

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workflows" / "valid"
BRANCH = str(FIXTURES / "branch_join.json")

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot is not installed (.ci/run installs it)"
)


@needs_dot
def test_svg_to_stdout() -> None:
    result = invoke("graph", BRANCH, "--format", "svg", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.lstrip().startswith("<?xml")
    assert "<svg" in result.stdout
    assert "<title>evaluate&#45;&gt;high</title>" in result.stdout


@needs_dot
def test_png_to_output_file(tmp_path: Path) -> None:
    out = tmp_path / "wf.png"
    result = invoke("graph", BRANCH, "--format", "png", "--output", str(out), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@needs_dot
def test_png_to_a_pipe() -> None:
    done = subprocess.run(
        [executable(), "graph", BRANCH, "--format", "png"], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"\x89PNG")


def test_png_refused_on_a_terminal() -> None:
    """stdout a terminal (a pseudo-terminal here): PNG bytes would garble it."""
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [executable(), "graph", BRANCH, "--format", "png"],
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 2
    assert "PNG is not written to a terminal: give --output PATH" in done.stderr.decode()


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_missing_dot_is_one_line(tmp_path: Path, fmt: str) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty folder: no dot on it
    out = tmp_path / "picture"
    result = invoke("graph", BRANCH, "--format", fmt, "--output", str(out), env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr == (
        "error: Graphviz's 'dot' is not installed: install Graphviz (apt-get install "
        "graphviz / brew install graphviz) or use --format dot|mermaid\n"
    )
    assert not out.exists()


def test_text_formats_need_no_dot(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    out = tmp_path / "wf.dot"
    result = invoke("graph", BRANCH, "--format", "dot", "-o", str(out), env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert '"evaluate" -> "high" [label="output.score >= 80"];' in out.read_text()


def test_unwritable_output_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "folder" / "wf.mmd"
    result = invoke("graph", BRANCH, "--output", str(out), timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: Invalid value for '--output': cannot write {out}: No such file or directory"
    )
    assert "Traceback" not in result.stderr
