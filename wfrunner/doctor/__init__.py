"""``wfrunner doctor``: why a run is stuck, and the repairs that unstick it.

:mod:`.reasons` turns a snapshot of a run into findings (pure), :mod:`.read` reads the
snapshot from Redis, PostgreSQL and the broker, :mod:`.run` diagnoses and repairs
(:func:`diagnose`, :func:`diagnose_runs`, :func:`repair`), :mod:`.describe` holds the
words shared with the reconciler's events. See docs/operating.md ("Stuck runs").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfrunner.doctor.reasons import Diagnosis, Finding
    from wfrunner.doctor.run import Repair, diagnose, diagnose_runs, repair

__all__ = ["Diagnosis", "Finding", "Repair", "diagnose", "diagnose_runs", "repair"]

# imported when used: the reconciler imports .describe, and .run imports the reconciler
_LAZY = {
    "Diagnosis": "wfrunner.doctor.reasons",
    "Finding": "wfrunner.doctor.reasons",
    "Repair": "wfrunner.doctor.run",
    "diagnose": "wfrunner.doctor.run",
    "diagnose_runs": "wfrunner.doctor.run",
    "repair": "wfrunner.doctor.run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wfrunner.doctor' has no attribute {name!r}")
