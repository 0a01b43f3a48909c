"""Run limits: at most ``concurrency.max_runs`` runs of a workflow at once, the others
QUEUED and started first come first served.

The limit belongs to the workflow's *name*: every version registered under it shares the
slots. The slots and the queue live in Redis under a hash tag of the name
(``wfr:{wf:<name>}:slots`` and ``:queue``), changed only by two atomic scripts:

- ``lua/admit_run.lua``, from a run's start: the run takes a free slot, or joins the queue
  in submission order. A start delivered again finds its run holding its slot (or keeping
  its place): a run never holds two slots.
- ``lua/release_run.lua``, once the run's end is recorded in PostgreSQL (the one place runs
  end, :func:`wfrunner.lifecycle.finish`, and the ends of runs that never went live): the
  slot is freed and the oldest queued runs are moved into the free slots in the same
  script, so a freed slot goes to one run only. Those runs are then sent ``start_run``.

A worker can die between any two of these steps; the reconciler (:func:`repair`) frees the
slot of a run PostgreSQL says has ended, drops ended runs from the queue, and a run moved
into a slot whose start message was lost is still QUEUED there: the reconciler's lost-start
pass starts it, and its admission finds the slot it holds.

Workflows without a limit never reach this module: the IR says so, in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import redis
from redis.commands.core import Script

from wfrunner.compiler.ir import IR
from wfrunner.engine.keys import PREFIX
from wfrunner.resources import lua_source
from wfrunner.runtime import Runtime
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus

log = logging.getLogger(__name__)

#: what SCAN matches to find every workflow whose limit was applied
MAX_PATTERN = f"{PREFIX}:{{wf:*}}:max"


def _tag(name: str) -> str:
    return f"{PREFIX}:{{wf:{quote(name, safe='')}}}"


def workflow_keys(name: str) -> list[str]:
    """The slots, queue and limit keys of the workflow name (one hash tag)."""
    tag = _tag(name)
    return [f"{tag}:slots", f"{tag}:queue", f"{tag}:max"]


def name_of(key: str) -> str:
    """The workflow name of one of its keys."""
    start = key.index("{wf:") + len("{wf:")
    return unquote(key[start : key.index("}", start)])


@dataclass(frozen=True)
class Admission:
    """What admit_run.lua did for a run."""

    admitted: bool
    #: the run's 1-based place in the queue (0: admitted)
    position: int
    running: int
    queued: int
    #: other queued runs moved into free slots: to be started
    promoted: tuple[str, ...] = ()

    @classmethod
    def parse(cls, reply: list[Any]) -> Admission:
        return cls(
            bool(int(reply[0])),
            int(reply[1]),
            int(reply[2]),
            int(reply[3]),
            tuple(str(r) for r in reply[4:]),
        )


def waiting_reason(name: str, running: int, max_runs: int, position: int | None) -> str:
    """Why a QUEUED run waits, as the run document and ``status`` show it."""
    place = f"; {_ordinal(position)} in the queue" if position else ""
    return f"waiting for a slot: {running} of {max_runs} runs of {name!r} running{place}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def submitted_score(created_at: datetime) -> int:
    """A run's queue score: its submission time in whole microseconds (exact in a
    sorted set's double; equal scores fall back to the run id's order)."""
    return int(created_at.timestamp() * 1_000_000)


class RunSlots:
    """The workflow slots and queues, over one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._admit: Script = client.register_script(lua_source("admit_run"))
        self._release: Script = client.register_script(lua_source("release_run"))

    def admit(self, name: str, run_id: str, score: int, max_runs: int) -> Admission:
        reply = self._admit(keys=workflow_keys(name), args=[run_id, score, max_runs])
        return Admission.parse(list(reply))

    def release(self, name: str, run_id: str, max_runs: int | None = None) -> list[str]:
        reply = self._release(keys=workflow_keys(name), args=[run_id, max_runs or ""])
        return [str(r) for r in reply]

    def usage(self, name: str) -> Usage:
        """The workflow's slots and queue as they are now."""
        slots, queue, limit = workflow_keys(name)
        pipe = self.client.pipeline(transaction=False)
        pipe.smembers(slots)
        pipe.zrange(queue, 0, -1)
        pipe.get(limit)
        holders, waiting, max_runs = pipe.execute()
        return Usage(
            name,
            int(max_runs) if max_runs else None,
            tuple(sorted(holders)),
            tuple(waiting),
        )

    def names(self) -> list[str]:
        """Every workflow name whose limit was applied (its slots may all be free)."""
        return sorted({name_of(k) for k in self.client.scan_iter(match=MAX_PATTERN, count=500)})


@dataclass(frozen=True)
class Usage:
    """One workflow's slots: the runs holding them, the runs queued (oldest first)."""

    name: str
    max_runs: int | None
    running: tuple[str, ...]
    queued: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.name,
            "max_runs": self.max_runs,
            "running": len(self.running),
            "queued": len(self.queued),
            "running_runs": list(self.running),
            "queued_runs": list(self.queued),
        }


def slots(rt: Runtime) -> RunSlots:
    """The runtime's :class:`RunSlots` (made once per runtime)."""
    made = rt.__dict__.get("_run_slots")
    if made is None:
        made = rt.__dict__["_run_slots"] = RunSlots(rt.redis)
    return made


def admit(rt: Runtime, run_id: str, workflow_id: str, inputs: Any, ir: IR) -> bool:
    """Whether the run may start now (it holds a slot of its workflow's limit); else it
    stays QUEUED, in the queue, until a slot is freed for it. A run that has ended (a
    start delivered again) is never admitted."""
    assert ir.max_runs is not None
    run = rt.store.create_run(workflow_id, inputs, len(ir.entry_nodes), run_id=run_id)
    if run.status in TERMINAL_RUN_STATES:
        return False
    name = rt.workflow_name(workflow_id)
    got = slots(rt).admit(name, run_id, submitted_score(run.created_at), ir.max_runs)
    start_promoted(rt, got.promoted)
    if not got.admitted:
        log.info(
            "run %s QUEUED: %s",
            run_id,
            waiting_reason(name, got.running, ir.max_runs, got.position),
        )
    return got.admitted


def release(rt: Runtime, run_id: str, workflow_id: str) -> None:
    """Free the slot of a run that ended (or its place in the queue) and start the runs
    that take the freed slots. Nothing for a workflow without a limit. A failure is
    logged: the reconciler frees the slot of an ended run (:func:`repair`)."""
    ir = rt.ir(workflow_id)
    if ir.max_runs is None:
        return
    try:
        promoted = slots(rt).release(rt.workflow_name(workflow_id), run_id, ir.max_runs)
        start_promoted(rt, promoted)
    except Exception as exc:  # the run's end is recorded: never undo it
        log.warning("run %s: slot not released yet (%s): the reconciler frees it", run_id, exc)


def reclaim(rt: Runtime, run_id: str, workflow_id: str) -> None:
    """A run rebuilt from PostgreSQL (Redis lost its state, or a dead letter resumed it)
    holds a slot of its workflow's limit again, full or not: it is running."""
    ir = rt.ir(workflow_id)
    if ir.max_runs is None:
        return
    slots_key, _, max_key = workflow_keys(rt.workflow_name(workflow_id))
    pipe = rt.redis.pipeline(transaction=True)
    pipe.sadd(slots_key, run_id)
    pipe.set(max_key, ir.max_runs)
    pipe.execute()


def start_promoted(rt: Runtime, run_ids: tuple[str, ...] | list[str]) -> None:
    """Send ``start_run`` for runs moved into a slot; its admission finds the slot. A
    lost message leaves the run QUEUED while it holds a slot: the reconciler starts it."""
    if not run_ids:
        return
    from wfrunner.tasks.runs import start_run

    for run_id in run_ids:
        run = rt.store.get_run(run_id)
        if run.status is not RunStatus.QUEUED:
            continue  # ended meanwhile (cancelled): the reconciler frees its slot
        log.info("run %s takes a freed slot: starting it", run_id)
        start_run.apply_async(args=[run.workflow_id], kwargs={"inputs": run.inputs}, task_id=run_id)


def waits(rt: Runtime, run_id: str) -> bool:
    """Whether a QUEUED run waits for a slot of its workflow's limit (the idle-run
    detector leaves it alone: waiting in the queue is not being stuck)."""
    run = rt.store.get_run(run_id)
    return run.status is RunStatus.QUEUED and rt.ir(run.workflow_id).max_runs is not None


def place(rt: Runtime, run_id: str, workflow_id: str, max_runs: int) -> dict[str, Any]:
    """The run document's fields of a QUEUED run of a limited workflow: its place in the
    queue and why it waits."""
    name = rt.workflow_name(workflow_id)
    usage = slots(rt).usage(name)
    position = usage.queued.index(run_id) + 1 if run_id in usage.queued else None
    if run_id in usage.running:
        reason = "a slot is free for it: starting"
    else:
        reason = waiting_reason(name, len(usage.running), max_runs, position)
    return {"queued_position": position, "waiting_for": reason}


def repair(rt: Runtime) -> int:
    """Free the slots of runs that ended without freeing them (their worker died between
    recording the end and the release), drop ended runs from the queues, start the runs
    that take the freed slots; returns how many slots or places were freed."""
    store = slots(rt)
    freed = 0
    for name in store.names():
        usage = store.usage(name)
        statuses = rt.store.statuses_of([*usage.running, *usage.queued])
        for run_id in [*usage.running, *usage.queued]:
            status = statuses.get(run_id)
            if status is None or status in TERMINAL_RUN_STATES:
                log.warning("run %s of %r ended (%s): freeing its slot", run_id, name, status)
                start_promoted(rt, store.release(name, run_id))
                freed += 1
    return freed
