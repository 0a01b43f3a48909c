"""Waiting for what a worker does: the one polling loop the e2e tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def until(check: Callable[[], Any], timeout: float = 30, every: float = 0.05) -> Any:
    """``check()``'s first true answer within ``timeout`` seconds, asked every ``every``
    seconds (a check that runs a command asks less often); else the test fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not true within {timeout} s: {check}")
