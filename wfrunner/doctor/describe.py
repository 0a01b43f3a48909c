"""How stuck tokens are told to people: the words ``wfrunner doctor``, the reconciler's
``reconciler_repaired`` events and ``wfrunner trace`` share (pure: values in, text out)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from wfrunner.engine.events import event
from wfrunner.engine.leases import APPROVAL, REPUBLISHED, RETRY, Lease, place_of, task_of
from wfrunner.engine.tokens import Token

#: the ``repair`` of a reconciler_repaired event that published tokens again
REPUBLISHED_KIND = "republished"


def clock(when: float) -> str:
    """``12:03:04 UTC``: a time of day, which is what someone reading a stuck run needs."""
    return datetime.fromtimestamp(when, UTC).strftime("%H:%M:%S UTC")


def stamp(when: float) -> str:
    """ISO-8601 with its zone, to the second (JSON output)."""
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")


def span(seconds: float) -> str:
    """``42 s``, ``5.0 min``, ``2.5 h``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def token_name(token: Token) -> str:
    """``B`` for a token to node B, ``B (loop pass 2)`` inside a loop."""
    return f"{token.to_node} (scope {token.scope})" if token.scope else token.to_node


def holder_text(holder: str) -> str:
    """Who held a lease: ``task 1f2e... on host:1234``, as far as the holder tells."""
    task = task_of(holder)
    place = place_of(holder)
    parts = [f"task {task}" if task else f"holder {holder}"]
    if place:
        parts.append(f"on {place[0]} (pid {place[1]})")
    return " ".join(parts)


def stall_cause(previous: Lease | None, now: float, idle_for: float) -> tuple[str, str]:
    """(cause, words) for a token the reconciler found stalled, from the running entry it
    had: ``dead_worker`` (its delivery's lease expired), ``retry_overdue``,
    ``republish_lost`` (published again earlier, still not taken) or ``lost_message``."""
    if previous is None or previous.holder == "":
        return "lost_message", f"no worker took it for {span(idle_for)}"
    if previous.holder == RETRY:
        return "retry_overdue", f"its retry was due at {clock(previous.until)}; no worker took it"
    if previous.holder == REPUBLISHED:
        return (
            "republish_lost",
            f"published again before, still not taken at {clock(now)}",
        )
    if previous.holder == APPROVAL:
        return "approval_due", f"its approval's deadline passed at {clock(previous.until)}"
    return (
        "dead_worker",
        f"its worker stopped renewing the lease ({holder_text(previous.holder)}; "
        f"expired at {clock(previous.until)})",
    )


def republished_event(
    stalled: Sequence[tuple[Token, Lease | None]], now: float, idle_for: float, by: str
) -> dict[str, Any]:
    """The ``reconciler_repaired`` event recording what a republish found and did."""
    tokens = []
    for token, previous in stalled:
        cause, words = stall_cause(previous, now, idle_for)
        entry: dict[str, Any] = {
            "node": token.to_node,
            "from": token.from_node,
            "scope": token.scope,
            "cause": cause,
            "why": words,
        }
        if previous is not None and cause == "dead_worker":
            entry["holder"] = previous.holder
            entry["expired_at"] = previous.until
        tokens.append(entry)
    return event(
        "reconciler_repaired",
        None,
        repair=REPUBLISHED_KIND,
        by=by,
        summary=republished_summary(stalled, now, idle_for),
        tokens=tokens,
    )


def republished_summary(
    stalled: Sequence[tuple[Token, Lease | None]], now: float, idle_for: float
) -> str:
    """``republished 2 tokens at 12:03:04 UTC: B (no worker took it for 300 s), C (...)``."""
    noun = "token" if len(stalled) == 1 else "tokens"
    parts = [f"{token_name(t)} ({stall_cause(p, now, idle_for)[1]})" for t, p in stalled]
    return f"republished {len(stalled)} {noun} at {clock(now)}: " + ", ".join(parts)
