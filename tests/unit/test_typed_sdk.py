"""Users' type checkers see wfrunner's types (py.typed): mypy run on a user's snippet."""

from __future__ import annotations

import textwrap
from pathlib import Path

import mypy.api
import pytest

import wfrunner

USER_CODE = """
    from typing import Any

    import wfrunner
    from wfrunner import NodeContext, NodeStatus, RunDocument, RunStatus


    @wfrunner.handler("user.charge")
    def charge(value: dict[str, Any], config: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
        ctx.logger.info("charging on attempt %d", ctx.attempt)
        ctx.heartbeat()
        return {"key": ctx.idempotency_key, "pass": ctx.iteration}


    def finished(run_id: str) -> tuple[RunStatus, int, NodeStatus, float | None]:
        doc: RunDocument = wfrunner.wait_for_run(run_id, timeout=60)
        node = doc.nodes["charge"]
        first = doc.path[0].from_node
        assert first is None
        plain: dict[str, Any] = doc.to_dict()
        assert plain["status"] == doc["status"]
        return doc.status, doc.stats.nodes_executed, node.status, node.seconds
"""

#: each line must be an error: the types are real, not Any
USER_MISTAKES = """
    import wfrunner

    doc = wfrunner.get_run("r1")
    count: str = doc.stats.tokens_emitted
    name: int = doc.nodes["A"].status
    wfrunner.wait_for_run(42)
    doc.nodes["A"].outputs
"""


def _mypy(tmp_path: Path) -> str:
    """One strict mypy run (they take seconds) over both snippets; its report. It runs
    away from the repository, where mypy would read wfrunner as the user's own source:
    from there it finds wfrunner as an installed package, typed only with py.typed."""
    for name, code in (("user_code.py", USER_CODE), ("user_mistakes.py", USER_MISTAKES)):
        (tmp_path / name).write_text(textwrap.dedent(code))
    out, err, _ = mypy.api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--python-version",
            "3.11",
            str(tmp_path / "user_code.py"),
            str(tmp_path / "user_mistakes.py"),
        ]
    )
    return out + err


def test_the_package_is_marked_typed() -> None:
    assert (Path(wfrunner.__file__).parent / "py.typed").is_file()


def test_users_see_wfrunners_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The typed code checks clean, and each mistake is an error: the types mypy sees
    are wfrunner's own, not Any (which an untyped package would give)."""
    monkeypatch.chdir(tmp_path)
    report = _mypy(tmp_path)
    lines = report.splitlines()
    assert not [line for line in lines if "user_code.py" in line], report
    mistakes = [line for line in lines if "user_mistakes.py" in line]
    assert len(mistakes) == 4, report
    assert 'expression has type "int", variable has type "str"' in mistakes[0]
    assert 'expression has type "NodeStatus", variable has type "int"' in mistakes[1]
    assert 'Argument 1 to "wait_for_run" has incompatible type "int"' in mistakes[2]
    assert '"NodeDocument" has no attribute "outputs"' in mistakes[3]
