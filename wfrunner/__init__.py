"""wfrunner: JSON workflows run as Celery tasks, choreographed by a Redis token counter.

The Celery app is ``wfrunner.app`` (``celery -A wfrunner worker``); ``start_run`` is its
task. Both are imported lazily so that compile-only uses (``wfrunner validate``) do not
pay for importing Celery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfrunner.errors import WfrunnerError
from wfrunner.handlers import handler

if TYPE_CHECKING:  # what the lazy names below are, for type checkers (py.typed)
    from wfrunner.client import get_run, list_runs, register_workflow, submit_run, wait_for_run
    from wfrunner.context import NodeContext
    from wfrunner.control import (
        approve,
        cancel_run,
        decide_approval,
        pause_run,
        reject,
        rerun,
        resume_run,
    )
    from wfrunner.doctor.run import diagnose
    from wfrunner.doctor.run import repair as repair_run
    from wfrunner.documents import NodeDocument, PathStep, RunDocument, RunStats
    from wfrunner.replay import replay_run
    from wfrunner.states import NodeStatus, RunStatus
    from wfrunner.tasks.app import app
    from wfrunner.tasks.runs import start_run

__all__ = [
    "NodeContext",
    "NodeDocument",
    "NodeStatus",
    "PathStep",
    "RunDocument",
    "RunStats",
    "RunStatus",
    "WfrunnerError",
    "__version__",
    "app",
    "approve",
    "cancel_run",
    "decide_approval",
    "diagnose",
    "get_run",
    "handler",
    "list_runs",
    "pause_run",
    "register_workflow",
    "reject",
    "repair_run",
    "replay_run",
    "rerun",
    "resume_run",
    "start_run",
    "submit_run",
    "wait_for_run",
]
__version__ = "0.1.0"

_LAZY = {
    "app": ("wfrunner.tasks.app", "app"),
    "start_run": ("wfrunner.tasks.runs", "start_run"),
    "register_workflow": ("wfrunner.client", "register_workflow"),
    "get_run": ("wfrunner.client", "get_run"),
    "list_runs": ("wfrunner.client", "list_runs"),
    "replay_run": ("wfrunner.replay", "replay_run"),
    "diagnose": ("wfrunner.doctor.run", "diagnose"),
    "repair_run": ("wfrunner.doctor.run", "repair"),
    "submit_run": ("wfrunner.client", "submit_run"),
    "wait_for_run": ("wfrunner.client", "wait_for_run"),
    "cancel_run": ("wfrunner.control", "cancel_run"),
    "decide_approval": ("wfrunner.control", "decide_approval"),
    "approve": ("wfrunner.control", "approve"),
    "reject": ("wfrunner.control", "reject"),
    "pause_run": ("wfrunner.control", "pause_run"),
    "resume_run": ("wfrunner.control", "resume_run"),
    "rerun": ("wfrunner.control", "rerun"),
    "NodeContext": ("wfrunner.context", "NodeContext"),
    "RunDocument": ("wfrunner.documents", "RunDocument"),
    "NodeDocument": ("wfrunner.documents", "NodeDocument"),
    "PathStep": ("wfrunner.documents", "PathStep"),
    "RunStats": ("wfrunner.documents", "RunStats"),
    "RunStatus": ("wfrunner.states", "RunStatus"),
    "NodeStatus": ("wfrunner.states", "NodeStatus"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'wfrunner' has no attribute {name!r}")
