"""Pausing and resuming a run (``wfrunner pause|resume``, the REST API).

Pausing sets the run's hot state to ``paused`` in one atomic step (``lua/pause_run.lua``,
with a ``run_paused`` event): from then on no delivery begins a node of it (begin_node
answers "paused"; the token stays in the run's outbox, pending, and is not counted as an
attempt), while the nodes already running finish and commit. What they emit waits in the
outbox. The reconciler neither publishes a paused run's tokens nor counts it idle, and
the run timeout does not apply while it is paused. A paused run whose last running node
commits with nothing left to do completes; one with tokens left waits.

Resuming (``lua/resume_run.lua``, a ``run_resumed`` event) sets it running again and
publishes every pending token that no delivery is running, so the run goes on exactly
where it stopped: nothing that committed runs again, nothing pending is lost.

PostgreSQL records the run PAUSED meanwhile (``wfrunner runs --status PAUSED``). Redis is
changed first (it is what stops the nodes); should PostgreSQL miss the change, pausing
or resuming again repairs it. Cancelling a paused run works as for a running one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from wfrunner import fencing
from wfrunner.engine import keys
from wfrunner.engine.events import event
from wfrunner.engine.runstate import GONE, PAUSED, RUNNING
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConflictError, CounterError
from wfrunner.resources import lua_source
from wfrunner.runtime import Runtime
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus

_RUNNABLE = (RunStatus.RUNNING, RunStatus.WAITING)


@dataclass(frozen=True)
class Resumed:
    run_id: str
    workflow_id: str
    #: the tokens to publish, each with the seconds to wait first (a retry not yet due)
    tokens: list[tuple[Token, float]]


def pause(rt: Runtime, run_id: str, reason: str | None = None, by: str | None = None) -> None:
    """Pause the run; NotFoundError for an unknown run, ConflictError when it has ended,
    is paused already, or has not started."""
    run = rt.store.get_run(run_id)
    if run.status in TERMINAL_RUN_STATES:
        raise _ended(run_id, run.status, "pause")
    reply = _script(rt, "pause_run", run_id, event("run_paused", by=by, reason=reason))
    changed, state = bool(reply[0]), str(reply[1])
    if changed or state == PAUSED:
        rt.store.transition_run(run_id, RunStatus.PAUSED, from_states=_RUNNABLE)
        if not changed:
            raise ConflictError(
                f"run '{run_id}' is paused already: `wfrunner resume {run_id}` resumes it"
            )
        return
    if state == GONE:
        _without_hot_state(rt, run_id, RunStatus.PAUSED, _RUNNABLE)
        return
    raise _ended(run_id, RunStatus(state.upper()), "pause")


def resume(rt: Runtime, run_id: str, by: str | None = None) -> Resumed:
    """Resume the paused run; the tokens to publish. NotFoundError for an unknown run,
    ConflictError when it is not paused."""
    run = rt.store.get_run(run_id)
    if run.status in TERMINAL_RUN_STATES:
        raise _ended(run_id, run.status, "resume")
    reply = _script(
        rt,
        "resume_run",
        run_id,
        event("run_resumed", by=by),
        time.time(),
        float(rt.settings.visibility_timeout),
    )
    changed, state = bool(reply[0]), str(reply[1])
    if changed:
        waiting = int(rt.state.meta(run_id).get("waiting") or 0)
        to = RunStatus.WAITING if waiting > 0 else RunStatus.RUNNING
        rt.store.transition_run(run_id, to, from_states=[RunStatus.PAUSED])
        pairs = reply[2:]
        tokens = [
            (Token.from_dict(json.loads(pairs[i])), float(pairs[i + 1]))
            for i in range(0, len(pairs), 2)
        ]
        return Resumed(run_id, run.workflow_id, tokens)
    if state == RUNNING:
        # PostgreSQL may have missed an earlier resume: it follows Redis
        rt.store.transition_run(run_id, RunStatus.RUNNING, from_states=[RunStatus.PAUSED])
        raise ConflictError(f"run '{run_id}' is not paused: nothing to resume")
    if state == GONE:
        _without_hot_state(rt, run_id, RunStatus.RUNNING, [RunStatus.PAUSED])
        return Resumed(run_id, run.workflow_id, [])
    raise _ended(run_id, RunStatus(state.upper()), "resume")


def _without_hot_state(
    rt: Runtime, run_id: str, to: RunStatus, from_states: tuple[RunStatus, ...] | list[RunStatus]
) -> None:
    """Redis holds nothing of the run: it is QUEUED (not started), or Redis lost it and the
    reconciler rebuilds it from PostgreSQL, paused or not as PostgreSQL then says. Under
    the run's writer lock (which a rebuild holds), PostgreSQL's status is changed while
    Redis still holds nothing; otherwise the caller is told to try again."""
    with fencing.writer(rt, run_id, wait=5.0) as held:
        if (
            held
            and not rt.state.meta(run_id)
            and rt.store.transition_run(run_id, to, from_states=from_states)
        ):
            return
    status = rt.store.get_run(run_id).status
    if status in TERMINAL_RUN_STATES:
        raise _ended(run_id, status, "pause" if to is RunStatus.PAUSED else "resume")
    raise ConflictError(
        f"run '{run_id}' is {status.value} and cannot be "
        f"{'paused' if to is RunStatus.PAUSED else 'resumed'} now"
        + (" (it has not started yet)" if status is RunStatus.QUEUED else ": try again")
    )


def _ended(run_id: str, status: RunStatus, verb: str) -> ConflictError:
    return ConflictError(f"run '{run_id}' has already ended ({status.value}): nothing to {verb}")


def _script(rt: Runtime, name: str, run_id: str, evt: dict[str, Any], *args: float) -> list[Any]:
    """Run ``lua/<name>.lua`` (an operator's action, not a node's: loaded when used)."""
    script = rt.redis.register_script(lua_source(name))
    names = [keys.meta_key(run_id), keys.events_key(run_id)]
    if name == "resume_run":
        names += [keys.pending_key(run_id), keys.running_key(run_id)]
    try:
        return list(script(keys=names, args=[json.dumps(evt, separators=(",", ":")), *args]))
    except redis.RedisError as exc:
        raise CounterError(f"run {run_id!r}: Redis refused {name}: {exc}") from exc
