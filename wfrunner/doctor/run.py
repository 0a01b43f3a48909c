"""Diagnosing runs and repairing stuck ones: what ``wfrunner doctor``, ``GET
/runs/{id}/diagnosis``, ``GET /diagnosis`` and ``POST /runs/{id}/repair`` call.

A diagnosis only reads. A repair goes through the engine's own code paths: ``requeue``
is the reconciler's republish (lua/claim_stalled.lua: a token a live delivery holds, or
whose retry or approval is due later, is left alone), ``rebuild`` the reconciler's
rebuild from PostgreSQL under the run's writer lock, ``fail`` the timeout detector's
end, ``cancel`` :func:`wfrunner.control.cancel_run`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from wfrunner import fencing, lifecycle, recovery, telemetry
from wfrunner.doctor.describe import token_name
from wfrunner.doctor.read import Reader
from wfrunner.doctor.reasons import (
    ACTIONS,
    CANCEL,
    FAIL,
    LOST_MESSAGE,
    REBUILD,
    REQUEUE,
    Diagnosis,
)
from wfrunner.doctor.reasons import (
    diagnose as decide,
)
from wfrunner.engine.runstate import RUNNING
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConflictError, WfrunnerError
from wfrunner.runtime import Runtime, runtime
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus

log = logging.getLogger(__name__)

#: who a repair is recorded as when nobody is named
OPERATOR = "an operator"


def diagnose(run_id: str, rt: Runtime | None = None, *, broker: bool = True) -> Diagnosis:
    """Why the run is (or is not) stuck, read from Redis and PostgreSQL without changing
    anything. NotFoundError for an unknown run; an ended run is diagnosed as not stuck.
    ``broker``: read the broker's queues too (tells a queued token from a lost one)."""
    rt = rt or runtime()
    run = rt.store.get_run(run_id)
    return decide(Reader(rt, broker).snapshot(run))


def diagnose_runs(
    run_ids: Sequence[str] = (),
    *,
    stuck_only: bool = False,
    older_than: float | None = None,
    rt: Runtime | None = None,
) -> list[Diagnosis]:
    """Diagnoses of the runs named (NotFoundError for an unknown one), or of every
    RUNNING and WAITING run; ``stuck_only`` keeps the stuck ones, ``older_than`` those
    that have not progressed for at least that many seconds."""
    rt = rt or runtime()
    runs = [rt.store.get_run(r) for r in run_ids] if run_ids else _active(rt)
    reader = Reader(rt)
    found = []
    for run in runs:
        try:
            diagnosis = decide(reader.snapshot(run))
        except WfrunnerError as exc:  # a run purged or gone since it was listed
            log.warning("run %s not diagnosed: %s", run.id, exc)
            continue
        if stuck_only and not diagnosis.stuck:
            continue
        if older_than is not None and diagnosis.idle < older_than:
            continue
        found.append(diagnosis)
    return found


def _active(rt: Runtime) -> list[Any]:
    runs = []
    for run_id in rt.store.list_active_runs():
        try:
            runs.append(rt.store.get_run(run_id))
        except WfrunnerError:
            continue  # purged since the listing
    return sorted(runs, key=lambda r: r.created_at)


@dataclass(frozen=True)
class Repair:
    run_id: str
    action: str
    #: one line: what was done
    summary: str
    #: the nodes of the tokens published again (requeue, rebuild)
    tokens: list[str] = field(default_factory=list)
    #: the run's status after the repair
    status: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "action": self.action,
            "summary": self.summary,
            "tokens": self.tokens,
            "status": self.status,
        }


def repair(
    run_id: str,
    action: str,
    *,
    reason: str | None = None,
    by: str | None = None,
    rt: Runtime | None = None,
) -> Repair:
    """Repair a stuck run: ``requeue``, ``rebuild``, ``fail`` or ``cancel``.
    NotFoundError for an unknown run, ConflictError for one that has ended."""
    rt = rt or runtime()
    if action not in ACTIONS:
        raise WfrunnerError(f"repair {action!r} is not one of {', '.join(ACTIONS)}")
    run = rt.store.get_run(run_id)
    if run.status in TERMINAL_RUN_STATES:
        raise ConflictError(
            f"run '{run_id}' has ended ({run.status.value}): it is not stuck, nothing to repair"
        )
    if run.status not in (RunStatus.RUNNING, RunStatus.WAITING):
        raise ConflictError(
            f"run '{run_id}' is {run.status.value}: it has not started; the reconciler "
            "starts it should its start message be lost (or cancel it)"
        )
    done = _ACTIONS[action](rt, run_id, reason, by)
    telemetry.repaired(f"doctor_{action}")
    status = rt.store.get_run(run_id).status.value
    log.info("run %s repaired (%s) by %s: %s", run_id, action, by or OPERATOR, done.summary)
    return Repair(run_id, action, done.summary, done.tokens, status)


@dataclass(frozen=True)
class _Done:
    summary: str
    tokens: list[str] = field(default_factory=list)


def _requeue(rt: Runtime, run_id: str, reason: str | None, by: str | None) -> _Done:
    meta = rt.state.meta(run_id)
    if not meta:
        raise ConflictError(
            f"run '{run_id}' has no hot state in Redis: nothing to requeue; "
            "--repair rebuild rebuilds it from PostgreSQL"
        )
    if meta.get("state") != RUNNING:
        raise ConflictError(
            f"run '{run_id}' ended ({meta.get('state')}) in Redis: the reconciler records "
            "its end; nothing to requeue"
        )
    # a token the reconciler published again whose message is gone anyway is published
    # now, not when its republish mark expires (WFRUNNER_VISIBILITY_TIMEOUT)
    found = diagnose(run_id, rt)
    force = any(f.kind == LOST_MESSAGE and "republished_at" in f.details for f in found.findings)
    tokens = recovery.republish(rt, run_id, 0.0, by=_who("doctor", by), force=force)
    _publish(rt, run_id, tokens)
    if not tokens:
        return _Done("nothing to requeue: every token is running, queued recently or due later")
    names = [token_name(t) for t in tokens]
    return _Done(f"published {_tokens(len(tokens))} again: {', '.join(names)}", names)


def _rebuild(rt: Runtime, run_id: str, reason: str | None, by: str | None) -> _Done:
    why = f"rebuilt by {by or OPERATOR} (wfrunner doctor)" + (f": {reason}" if reason else "")
    with fencing.writer(rt, run_id, wait=10.0) as held:
        if not held:
            raise ConflictError(f"run '{run_id}': another writer kept its lock for 10 s; try again")
        if rt.state.meta(run_id):
            fencing.flush_held(rt, run_id)  # what Redis holds and PostgreSQL lacks is kept
        tokens = recovery.rebuild(rt, run_id, why=why, by=_who("doctor", by))
    _publish(rt, run_id, tokens)
    names = [token_name(t) for t in tokens]
    listed = f": {', '.join(names)}" if names else ""
    return _Done(
        f"hot state rebuilt from PostgreSQL; {_tokens(len(tokens))} published again{listed}", names
    )


def _fail(rt: Runtime, run_id: str, reason: str | None, by: str | None) -> _Done:
    found = diagnose(run_id, rt)
    stuck = [f.summary for f in found.findings if f.stuck]
    why = reason or (stuck[0] if stuck else "an operator failed it")
    error = f"failed by {by or OPERATOR} (wfrunner doctor): {why}"
    if not lifecycle.fail(rt, run_id, error, detected_by="doctor", found=stuck):
        raise ConflictError(f"run '{run_id}' has already ended: nothing to fail")
    return _Done(error)


def _cancel(rt: Runtime, run_id: str, reason: str | None, by: str | None) -> _Done:
    from wfrunner.control import cancel_run

    doc = cancel_run(run_id, reason or "stuck (wfrunner doctor)", by=by, rt=rt)
    return _Done(str(doc["error"]))


_ACTIONS = {REQUEUE: _requeue, REBUILD: _rebuild, FAIL: _fail, CANCEL: _cancel}


def _tokens(count: int) -> str:
    return f"{count} token" if count == 1 else f"{count} tokens"


def _who(tool: str, by: str | None) -> str:
    return f"{tool} ({by})" if by else tool


def _publish(rt: Runtime, run_id: str, tokens: list[Token]) -> None:
    if not tokens:
        return
    from wfrunner.tasks.execution import dispatch, publishing

    workflow_id = rt.store.get_run(run_id).workflow_id
    with publishing() as producer:
        dispatch(tokens, workflow_id, rt.ir(workflow_id), producer=producer)


def age_text(seconds: float) -> str:
    """A run's age as ``3m12s``-like text for tables."""
    delta = timedelta(seconds=int(max(0.0, seconds)))
    return str(delta) if delta.days == 0 else f"{delta.days}d"
