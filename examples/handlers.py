"""Handlers used by the example workflows: ``WFRUNNER_HANDLERS=examples.handlers``."""

from __future__ import annotations

import random
from typing import Any

import wfrunner


@wfrunner.handler("examples.increment")
def increment(value: Any, config: dict[str, Any]) -> dict[str, Any]:
    """``{"x": n}`` -> ``{"x": n + by}``."""
    return {"x": (value or {}).get("x", 0) + int(config.get("by", 1))}


@wfrunner.handler("examples.double")
def double(value: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {"x": (value or {}).get("x", 0) * 2}


@wfrunner.handler("examples.score")
def score(value: Any, config: dict[str, Any]) -> dict[str, Any]:
    """A stand-in for a scoring service: the input's score, or a random one."""
    given = (value or {}).get("score")
    return {"score": given if given is not None else random.randint(0, 100)}  # noqa: S311


@wfrunner.handler("examples.fetch_with_retry")
def fetch_with_retry(value: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Pretends to fail until the attempt named by ``succeed_on`` (a loop body)."""
    attempts = (value or {}).get("attempts", 0) + 1
    ok = attempts >= int(config.get("succeed_on", 3))
    return {"attempts": attempts, "status": "success" if ok else "retry"}


@wfrunner.handler("examples.report")
def report(value: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {"report": value}
