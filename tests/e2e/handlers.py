"""Handlers the engine tests register (imported by tests/e2e/conftest.py)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import wfrunner

#: (run-independent) number of calls per handler name, for "ran exactly once" checks
calls: Counter[str] = Counter()
_lock = threading.Lock()


def _count(name: str) -> None:
    with _lock:
        calls[name] += 1


@wfrunner.handler("t.increment")
def increment(value: Any, config: dict[str, Any]) -> Any:
    _count("t.increment")
    return {"x": (value or {}).get("x", 0) + int(config.get("by", 1))}


@wfrunner.handler("t.echo")
def echo(value: Any, config: dict[str, Any]) -> Any:
    _count("t.echo")
    return value


@wfrunner.handler("t.join_count")
def join_count(value: Any, config: dict[str, Any]) -> Any:
    _count(f"t.join_count:{config.get('tag', '')}")
    return {"inputs": sorted(value)}


@wfrunner.handler("t.boom")
def boom(value: Any, config: dict[str, Any]) -> Any:
    raise ValueError(config.get("message", "boom"))


@wfrunner.handler("t.poll")
def poll(value: Any, config: dict[str, Any]) -> Any:
    """A loop body: counts attempts up in its output."""
    attempts = (value or {}).get("attempts", 0) + 1
    succeed_at = int(config.get("succeed_at", 3))
    return {"attempts": attempts, "status": "success" if attempts >= succeed_at else "pending"}


#: events a test sets to let a blocked handler finish
gates: dict[str, threading.Event] = {}


@wfrunner.handler("t.wait")
def wait(value: Any, config: dict[str, Any]) -> Any:
    """Blocks until the test opens the gate named in config (at most 30 s)."""
    _count(f"t.wait:{config['gate']}")
    gates.setdefault(config["gate"], threading.Event()).wait(30)
    return value


@wfrunner.handler("t.count")
def count(value: Any, config: dict[str, Any]) -> Any:
    _count(f"t.count:{config['tag']}")
    return value
