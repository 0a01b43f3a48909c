"""The completion double-check run by ``wfrunner.check_completion``.

A zero counter says no token is in flight. Before declaring the run COMPLETED the check
also confirms no human node's approval is pending (their tokens are in flight, so the
counter counts them as well) and no join is still waiting for an arrival (with dead-path
elimination none can be, so one that is reveals a fault and fails the run rather than
leaving it RUNNING).
"""

from __future__ import annotations

from wfrunner.compiler.ir import IR
from wfrunner.engine.events import event
from wfrunner.engine.runstate import GONE, LIVE, CompletionView, RunEnd

NOT_DONE = "running"


def decide(ir: IR, view: CompletionView) -> tuple[str, RunEnd | None]:
    """The run's state after the check (running, completed, failed, cancelled or gone),
    and the end to record when this check ends the run (None otherwise). Pure: the caller
    records the end with its first write of the run's finish (``lifecycle.finish``).
    ``view``: the run's hot state as the caller just read it."""
    meta = view.meta
    if not meta:
        return GONE, None
    if meta.get("state") not in LIVE:
        return meta.get("state", GONE), None
    if view.counter is None or view.counter > 0:  # a paused run included: it waits
        return meta.get("state", NOT_DONE), None
    # pending approvals: their tokens are counted too; this guards against a lost one
    if int(meta.get("waiting") or 0) > 0:
        return NOT_DONE, None
    waiting = [
        instance
        for instance, arrived in view.joins.items()
        if arrived < len(ir.nodes[instance.split("|", 1)[0]].dependencies)
    ]
    if waiting:
        node = waiting[0].split("|", 1)[0]
        error = f"join {node!r} was left waiting for inputs that can no longer arrive"
        return "failed", ("failed", error, [event("run_failed", None, error=error)])
    return "completed", ("completed", None, [event("run_completed")])
