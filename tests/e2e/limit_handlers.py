"""Handlers of the concurrency-limit tests (tests/e2e/test_limits.py); the worker
subprocess of those tests imports this module too (WFRUNNER_HANDLERS)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import wfrunner
from wfrunner import redisclient

#: gate name -> event a test sets to let ``limits.hold`` return
gates: dict[str, threading.Event] = {}
_lock = threading.Lock()


def gate(name: str) -> threading.Event:
    with _lock:
        return gates.setdefault(name, threading.Event())


@wfrunner.handler("limits.hold")
def hold(value: Any, config: dict[str, Any]) -> Any:
    """Blocks until the test opens the gate the run's input names (at most 60 s)."""
    gate(value["gate"]).wait(60)
    return value


@wfrunner.handler("limits.charge", max_concurrency=2)
def charge(value: Any, config: dict[str, Any]) -> Any:
    """A rate-limited API: records in Redis how many calls are inside it at once (each
    entry pushes the count it saw on ``<key>:seen``), stays a while, leaves."""
    client = redisclient.connect(os.environ["WFRUNNER_REDIS_URL"])
    key = str(config["key"])
    try:
        inside = client.incr(key)
        client.rpush(f"{key}:seen", inside)
        time.sleep(float(config.get("seconds", 0.5)))
        return [inside]
    finally:
        client.decr(key)
        client.close()


@wfrunner.handler("limits.slow_once", max_concurrency=1)
def slow_once(value: Any, config: dict[str, Any]) -> Any:
    """Writes its marker file and hangs (its worker is killed meanwhile); once the marker
    exists it returns at once."""
    marker = Path(config["marker"])
    if marker.exists():
        return {"again": True}
    marker.write_text(str(os.getpid()))
    time.sleep(120)
    return {"again": False}
