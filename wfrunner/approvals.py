"""Deciding a human node's approval (``wfrunner approve|reject``, the REST API).

The decision is recorded in the run's hot state at most once (``lua/decide_approval.lua``),
with an ``approval_decided`` event naming who decided, when, and what they said; the
caller then publishes the node's token, whose delivery completes the node (approve) or
fails it and the run (reject): see :mod:`wfrunner.engine.human`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wfrunner.engine import human
from wfrunner.engine.events import event
from wfrunner.engine.payloads import encode_payload
from wfrunner.engine.runstate import LIVE
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConflictError, NotFoundError, WfrunnerError
from wfrunner.runtime import Runtime
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus


@dataclass(frozen=True)
class Decision:
    run_id: str
    workflow_id: str
    node_id: str
    decision: dict[str, Any]
    #: the node's token, now due: the caller publishes it
    token: Token
    #: the run's approvals still undecided
    waiting: int


def pending(rt: Runtime, run_id: str) -> list[dict[str, Any]]:
    """The run's approval requests (with their decisions), oldest first."""
    found = rt.state.approvals(run_id)
    return sorted(
        ({"token": key, **req} for key, req in found.items()), key=lambda r: r["requested_at"]
    )


def history(rt: Runtime, run_id: str) -> list[dict[str, Any]]:
    """The run's approval requests in order, each with its decision (None while it
    waits), from its events: live or ended alike."""
    from wfrunner.client import run_events

    made: list[dict[str, Any]] = []
    for evt in run_events(rt.store.get_run(run_id), rt):
        where = (evt.get("node"), evt.get("scope") or "")
        if evt["type"] == "approval_requested":
            made.append(
                {
                    "node": where[0],
                    "scope": where[1],
                    "requested_at": evt["t"],
                    "deadline": evt.get("deadline"),
                    "prompt": evt.get("prompt"),
                    "decision": None,
                }
            )
        elif evt["type"] == "approval_decided":
            for req in made:
                if (req["node"], req["scope"]) == where and req["decision"] is None:
                    keep = ("decision", "by", "comment", "data", "at")
                    req["decision"] = {k: evt.get(k) for k in keep}
                    break
    return made


def decide(
    rt: Runtime,
    run_id: str,
    node_id: str,
    choice: str,
    *,
    comment: str | None = None,
    by: str | None = None,
    data: Any = None,
) -> Decision:
    """Record the decision on the node's oldest undecided approval (a loop's node waits
    once per pass, each pass decided in turn)."""
    if choice not in human.DECISIONS:
        raise WfrunnerError(f"decision {choice!r} is not one of {', '.join(human.DECISIONS)}")
    run = rt.store.get_run(run_id)
    nodes = rt.ir(run.workflow_id).nodes
    node = nodes.get(node_id)
    if node is None or node.type != "human":
        humans = [n.id for n in nodes.values() if n.type == "human"]
        listed = ", ".join(humans) if humans else "none"
        raise NotFoundError(
            f"run '{run_id}' has no human node '{node_id}' (its human nodes: {listed})"
        )
    if run.status in TERMINAL_RUN_STATES:
        raise _ended(run_id, node_id, run.status)
    encode_payload(data, rt.settings.max_payload_bytes)  # JSON within the size limit
    requests = [r for r in pending(rt, run_id) if r["node"] == node_id]
    open_ = [r for r in requests if r["decision"] is None]
    if not open_:
        raise _not_waiting(run_id, node_id, requests)
    chosen = open_[0]
    now = time.time()
    made = human.decision(choice, by, comment, data, now)
    decided = rt.state.decide_approval(
        run_id,
        chosen["token"],
        made,
        event("approval_decided", node_id, scope=chosen["scope"], **made),
        now,
    )
    if decided.state not in LIVE:
        status = rt.store.get_run(run_id).status
        raise _ended(run_id, node_id, status if status in TERMINAL_RUN_STATES else None)
    if decided.token is None:
        raise _not_waiting(run_id, node_id, [{**chosen, "decision": decided.earlier}])
    return Decision(run_id, run.workflow_id, node_id, made, decided.token, decided.waiting)


def _ended(run_id: str, node_id: str, status: RunStatus | None) -> ConflictError:
    how = f" ({status.value})" if status else ""
    return ConflictError(
        f"run '{run_id}' has ended{how}: its approval of '{node_id}' can no longer be decided"
    )


def _not_waiting(run_id: str, node_id: str, requests: list[dict[str, Any]]) -> ConflictError:
    decided = [r["decision"] for r in requests if r.get("decision")]
    if decided:
        last = decided[-1]
        who = f" by {last['by']}" if last.get("by") else ""
        when = datetime.fromtimestamp(float(last["at"]), UTC).isoformat(timespec="seconds")
        return ConflictError(
            f"node '{node_id}' of run '{run_id}' was already decided ({last['decision']}"
            f"{who} at {when})"
        )
    return ConflictError(
        f"node '{node_id}' of run '{run_id}' is not waiting for approval (yet): "
        "`wfrunner status` shows the run's nodes"
    )
