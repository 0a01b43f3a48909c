"""Human approval nodes: what a delivery of a ``human`` node's token does, as pure decisions.

A ``human`` node does not run code. Its first delivery stores an approval request in the
run's hot state and lets the token go: the token stays pending (the run's counter counts
it, so the run cannot complete while any approval waits) and no worker holds anything.
``wfrunner approve|reject`` (or the REST API) records a decision and publishes the token
again; that delivery completes the node (approve: the decision is its output) or fails
it and the run (reject). A request with a deadline (the node's ``timeout_ms``) that nobody
decided in time is delivered again by the reconciler once the deadline passes, and the
node's ``config.on_timeout`` decides (``reject`` by default, or ``approve``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from wfrunner.compiler.ir import IRNode

APPROVE = "approve"
REJECT = "reject"
DECISIONS = (APPROVE, REJECT)
#: the ``by`` of a decision the node's timeout made
TIMEOUT = "timeout"
#: the until of a request without a deadline (year 2286): the token is left alone
NO_DEADLINE = 9_999_999_999.0


@dataclass(frozen=True)
class Verdict:
    """What the delivery does: ``wait`` (nothing decided yet), ``approve`` (``output`` is
    the node's output) or ``reject`` (``reason`` fails the node)."""

    action: Literal["wait", "approve", "reject"]
    output: Any = None
    reason: str = ""
    #: the decision the node's timeout made now (to be recorded), when it did
    timed_out: dict[str, Any] | None = None


def request(node: IRNode, scope: str, now: float) -> dict[str, Any]:
    """The approval request a first delivery stores (and the API shows)."""
    deadline = now + node.timeout_ms / 1000 if node.timeout_ms else None
    return {
        "node": node.id,
        "scope": scope,
        "requested_at": round(now, 6),
        "deadline": None if deadline is None else round(deadline, 6),
        "on_timeout": on_timeout(node),
        "prompt": node.config.get("prompt"),
    }


def on_timeout(node: IRNode) -> str:
    policy = node.config.get("on_timeout", REJECT)
    return policy if policy in DECISIONS else REJECT


def until(req: dict[str, Any]) -> float:
    deadline = req.get("deadline")
    return float(deadline) if deadline is not None else NO_DEADLINE


def decision(
    choice: str, by: str | None, comment: str | None, data: Any, now: float
) -> dict[str, Any]:
    return {"decision": choice, "by": by, "comment": comment, "data": data, "at": round(now, 6)}


def verdict(req: dict[str, Any], made: dict[str, Any] | None, now: float) -> Verdict:
    """The delivery's course from the stored request and decision."""
    timed_out = None
    if made is None:
        if req.get("deadline") is None or now < float(req["deadline"]):
            return Verdict("wait")
        made = timed_out = decision(str(req.get("on_timeout") or REJECT), TIMEOUT, None, None, now)
    if made["decision"] == APPROVE:
        return Verdict("approve", output=_output(made), timed_out=timed_out)
    return Verdict("reject", reason=rejection(made, req), timed_out=timed_out)


def _output(made: dict[str, Any]) -> dict[str, Any]:
    """The node's output: what successors and CEL conditions see (``output.approved``)."""
    return {
        "approved": made["decision"] == APPROVE,
        "decision": made["decision"],
        "by": made.get("by"),
        "comment": made.get("comment"),
        "data": made.get("data"),
        "decided_at": made.get("at"),
    }


def rejection(made: dict[str, Any], req: dict[str, Any]) -> str:
    if made.get("by") == TIMEOUT:
        waited = float(made["at"]) - float(req["requested_at"])
        return f"approval timed out after {waited:.0f} s (timeout_ms; on_timeout is reject)"
    who = f" by {made['by']}" if made.get("by") else ""
    said = f": {made['comment']}" if made.get("comment") else ""
    return f"rejected{who}{said}"
