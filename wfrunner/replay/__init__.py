"""Replay: a run's state rebuilt from its event log alone, compared with what is stored.

:mod:`.fold` folds events into a :class:`ReplayedState` (pure), :mod:`.compare` holds it
against each stored part (pure), :mod:`.run` reads a run and reports
(``wfrunner replay RUN_ID``, :func:`replay_run`). See docs/replay.md.
"""

from __future__ import annotations

from wfrunner.replay.compare import Difference
from wfrunner.replay.fold import HANDLERS, ReplayedExecution, ReplayedNode, ReplayedState, replay
from wfrunner.replay.run import ReplayReport, replay_run

__all__ = [
    "HANDLERS",
    "Difference",
    "ReplayReport",
    "ReplayedExecution",
    "ReplayedNode",
    "ReplayedState",
    "replay",
    "replay_run",
]
