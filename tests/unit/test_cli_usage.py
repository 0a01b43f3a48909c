"""The command line behaves like git, celery or alembic when it is used wrongly: a usage
error is one line and the usage (exit 2), bad input one line (exit 2), never a traceback.
Every case is decided before a server is reached: the settings point at closed ports, so a
command that tried would fail with a different message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import wfrunner
from tests.entry_point import ROOT, invoke

#: no server listens there: reaching one is a test failure, not an embedded server started
NOWHERE = {
    "WFRUNNER_REDIS_URL": "redis://127.0.0.1:1/0",
    "WFRUNNER_DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere",
    "PATH": "/usr/bin:/bin",
    # the checkout under test, not whichever one the installed script was installed from
    "PYTHONPATH": str(ROOT),
}
WORKFLOW = str(ROOT / "examples" / "sequential.json")


def cli(*args: str | bytes) -> tuple[int, str, str]:
    done = invoke(*args, env=NOWHERE)
    assert "Traceback" not in done.stdout + done.stderr
    return done.returncode, done.stdout, done.stderr


def test_version() -> None:
    assert cli("--version") == (0, f"wfrunner {wfrunner.__version__}\n", "")


@pytest.mark.parametrize("group", [[], ["db"], ["dlq"]])
def test_a_bare_group_prints_its_help_and_exits_1_like_git(group: list[str]) -> None:
    code, out, err = cli(*group)
    assert code == 1
    assert f"Usage: {' '.join(['wfrunner', *group])} [OPTIONS] COMMAND" in out
    assert err == ""


def test_help_exits_0() -> None:
    code, out, _ = cli("--help")
    assert code == 0
    assert "WFRUNNER_REDIS_URL" in out  # the settings are documented in --help


@pytest.mark.parametrize(
    "args, message, usage",
    [
        (["status"], "Missing argument 'RUN_ID'.", "wfrunner status [OPTIONS] {RUN_ID}"),
        (["trace"], "Missing argument 'RUN_ID'.", "wfrunner trace [OPTIONS] {RUN_ID}"),
        (["replay"], "Missing argument 'RUN_ID'.", "wfrunner replay [OPTIONS] {RUN_ID}"),
        (
            [b"replay", b"\xff"],
            "Invalid value for 'RUN_ID': '\\xff' is not UTF-8 text",
            "wfrunner replay [OPTIONS] {RUN_ID}",
        ),
        (["--bogus"], "No such option: --bogus", "wfrunner [OPTIONS] COMMAND"),
        (["stats"], "No such command 'stats'.", "wfrunner [OPTIONS] COMMAND"),
        (["run", WORKFLOW, "--nmae", "x"], "No such option: --nmae", "wfrunner run [OPTIONS]"),
        (
            ["dlq", "retry", "1; drop"],
            "Invalid value for 'LETTER_ID': '1; drop' is not a dead letter id",
            "wfrunner dlq retry [OPTIONS] {LETTER_ID}",
        ),
        (
            ["dlq", "retry", "9" * 5000],
            "Invalid value for 'LETTER_ID': '99999",
            "wfrunner dlq retry [OPTIONS] {LETTER_ID}",
        ),
        (
            [b"status", b"\xff\xfe"],
            "Invalid value for 'RUN_ID': '\\xff\\xfe' is not UTF-8 text",
            "wfrunner status [OPTIONS] {RUN_ID}",
        ),
        (
            [b"run", WORKFLOW.encode(), b"--input", b'{"s": "\xff"}'],
            "Invalid value for '--input': the text is not UTF-8",
            "wfrunner run [OPTIONS] {FILE|WORKFLOW_ID|NAME[@VERSION]}",
        ),
        (
            ["graph", WORKFLOW, "--format", "svg+xml"],
            "Invalid value for '--format': 'svg+xml' is not one of mermaid, dot, svg, png",
            "wfrunner graph [OPTIONS] {FILE|RUN_ID}",
        ),
    ],
)
def test_usage_error_is_one_line_and_the_usage(
    args: list[str | bytes], message: str, usage: str
) -> None:
    code, out, err = cli(*args)
    assert code == 2
    assert out == ""
    first, usage_line, hint = err.splitlines()
    assert first.startswith(f"error: {message}")
    assert usage_line.startswith(f"Usage: {usage}")
    assert hint.startswith("Try 'wfrunner") and hint.endswith(" --help' for help.")


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"x": NaN}', "--input: not valid JSON: NaN is not a JSON number"),
        ('{"x": -Infinity}', "--input: not valid JSON: -Infinity is not a JSON number"),
        ('{"s": "\\ud800"}', "--input: not valid Unicode: a string holds a lone surrogate"),
        ("[" * 3000 + "]" * 3000, "--input: JSON nested too deeply"),
        ("{x: 1}", "--input: not valid JSON: Expecting property name enclosed in double quotes"),
    ],
)
def test_bad_input_is_one_line(text: str, message: str) -> None:
    code, out, err = cli("run", WORKFLOW, "--input", text)
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_name_without_a_collection_file() -> None:
    code, _, err = cli("run", "x", "--name", "par")
    assert code == 2
    assert err == "error: x: no such file (--name picks a workflow of a collection file)\n"


def test_name_not_in_the_collection(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    one = json.loads(Path(WORKFLOW).read_text())
    path.write_text(json.dumps({"one": one, "two": one}))
    for command in ("register", "run", "compile"):
        code, _, err = cli(command, str(path), "--name", "three")
        assert code == 2
        assert err == f"error: {path}: no workflow named 'three' (it has: one, two)\n"
        code, _, err = cli(command, str(path))
        assert code == 2
        assert "holds several workflows (one, two): choose one with --name" in err
