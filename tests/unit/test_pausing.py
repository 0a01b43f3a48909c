"""Pure decisions about paused runs: the completion check, and what a replay makes of
run_paused / run_resumed / run_redriven."""

from __future__ import annotations

from tests.unit.test_completion import diamond as diamond_ir
from tests.unit.test_replay_fold import D_JOIN, DIAMOND, diamond, fold
from wfrunner.engine.completion import decide
from wfrunner.engine.runstate import CompletionView
from wfrunner.states import RunStatus


def paused(counter: int | None, joins: dict[str, int]) -> CompletionView:
    return CompletionView(meta={"state": "paused"}, counter=counter, joins=joins)


def test_a_paused_run_with_tokens_left_is_not_completed() -> None:
    assert decide(diamond_ir(), paused(1, {"D|": 1})) == ("paused", None)
    assert decide(diamond_ir(), paused(None, {})) == ("paused", None)


def test_a_paused_run_with_nothing_left_completes() -> None:
    """Its last running node committed while it was paused: nothing waits for a resume."""
    verdict, end = decide(diamond_ir(), paused(0, {"D|": 2}))
    assert verdict == "completed" and end is not None and end[0] == "completed"


def test_replay_folds_a_pause_and_its_resume() -> None:
    log = diamond(until_c=True)
    log.add("run_paused", by="ops", reason="maintenance")
    assert fold(log, DIAMOND, D_JOIN).status is RunStatus.PAUSED
    log.add("run_resumed", by="ops")
    state = fold(log, DIAMOND, D_JOIN)
    assert state.status is RunStatus.RUNNING
    assert not state.notes


def test_replay_folds_a_rerun_as_a_rebuild_and_notes_what_it_cannot_discard() -> None:
    log = diamond(until_c=True)
    log.add("run_failed", error="boom")
    log.add("run_redriven", attempt=2, **{"from": None})
    state = fold(log, DIAMOND, D_JOIN)
    assert (state.status, state.error) == (RunStatus.RUNNING, None)
    log.add("run_failed", error="again")
    log.add("run_redriven", attempt=3, **{"from": "B"})
    assert any("rerun from 'B'" in note for note in fold(log, DIAMOND, D_JOIN).notes)
