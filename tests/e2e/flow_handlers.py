"""Handlers of the failure-handling and sub-workflow tests (imported by those tests)."""

from __future__ import annotations

import threading
from typing import Any

import wfrunner

#: run id -> what the workflow's on_failure handler was called with, each call
failure_calls: dict[str, list[dict[str, Any]]] = {}
#: how many times t.flaky ran per tag
attempts: dict[str, int] = {}
_lock = threading.Lock()


@wfrunner.handler("t.notify_ops")
def notify_ops(value: Any, config: dict[str, Any]) -> Any:
    with _lock:
        failure_calls.setdefault(value["run_id"], []).append(value)
    return {"notified": True}


@wfrunner.handler("t.notify_broken")
def notify_broken(value: Any, config: dict[str, Any]) -> Any:
    with _lock:
        failure_calls.setdefault(value["run_id"], []).append(value)
    raise RuntimeError("pager is down")


@wfrunner.handler("t.always_fails")
def always_fails(value: Any, config: dict[str, Any]) -> Any:
    tag = str(config.get("tag", ""))
    with _lock:
        attempts[tag] = attempts.get(tag, 0) + 1
    raise ValueError(f"disk on fire ({tag})")


@wfrunner.handler("t.recover")
def recover(value: Any, config: dict[str, Any]) -> Any:
    """An on_error handler: says what it caught."""
    return {"recovered": value["node"], "error": value["error"], "was_given": value["input"]}
