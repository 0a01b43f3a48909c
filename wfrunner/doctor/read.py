"""Reading what a diagnosis needs, without changing anything: the run's record and
workflow from PostgreSQL, its hot state from Redis (one transaction), the worker
registry, the beat tasks' last passes and, when asked, the broker's messages."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

from wfrunner import fencing, poison
from wfrunner.compiler.ir import IR
from wfrunner.doctor import broker as broker_module
from wfrunner.doctor.reasons import Limits, Snapshot, Worker
from wfrunner.engine import keys
from wfrunner.engine.leases import Lease
from wfrunner.engine.tokens import Token
from wfrunner.errors import WfrunnerError
from wfrunner.recovery import stall_seconds
from wfrunner.runtime import Runtime
from wfrunner.store import RunRecord

#: events of the Redis tail read for when outbox tokens were emitted
TAIL_EVENTS = 2000


def limits(rt: Runtime) -> Limits:
    settings = rt.settings
    return Limits(
        stall_after=stall_seconds(rt),
        run_timeout=float(settings.run_timeout),
        timeout_check_interval=float(settings.timeout_check_interval),
        reconcile_interval=float(settings.reconcile_interval),
        republish_hold=float(settings.visibility_timeout),
    )


class Reader:
    """Reads snapshots of runs; what all runs share (the registry, the broker, the
    passes) is read once per reader."""

    def __init__(self, rt: Runtime, broker: bool = True) -> None:
        self.rt = rt
        self.limits = limits(rt)
        self.workers = tuple(
            Worker(w.worker_id, w.status, w.last_heartbeat.timestamp(), tuple(w.queues))
            for w in rt.store.list_workers()
        )
        passes = cast(dict[str, str], rt.redis.hgetall(keys.PASSES_KEY))
        self.passes = {k: float(v) for k, v in passes.items()}
        self.broker = broker_module.read_broker(rt) if broker else None
        self.broker_unread = "the broker was not read" if not broker else broker_module.AMQP_UNREAD
        self.poison = _poison(rt)

    def snapshot(self, run: RunRecord) -> Snapshot:
        rt = self.rt
        ir = rt.ir(run.workflow_id)
        hot = _hot(rt, run.id)
        meta = hot["meta"]
        messages = None
        if self.broker is not None:
            messages = {k: v for k, v in self.broker.messages.items() if k in hot["pending"]}
        pending = hot["pending"]
        counter = hot["counter"]
        replayed = None
        if meta and (counter is None or counter != len(pending)):
            replayed = _replayed(rt, run, ir)
        return Snapshot(
            run_id=run.id,
            workflow_id=run.workflow_id,
            workflow=rt.workflow_name(run.workflow_id),
            status=run.status.value,
            created_at=run.created_at.timestamp(),
            last_activity=run.last_activity_at.timestamp(),
            now=hot["now"],
            clock=hot["clock"],
            limits=self.limits,
            ended_at=run.completed_at.timestamp() if run.completed_at else None,
            error=run.error,
            hot=bool(meta),
            state=meta.get("state"),
            activity=float(meta["activity"]) if meta.get("activity") else None,
            counter=counter,
            pending=pending,
            running=hot["running"],
            attempts=hot["attempts"],
            joins=hot["joins"],
            approvals=hot["approvals"],
            emitted_at=hot["emitted_at"],
            predecessors=_predecessors(ir),
            join_inputs={n.id: n.dependencies for n in ir.nodes.values() if n.wait_for_all},
            messages=messages,
            messages_complete=self.broker.complete if self.broker else True,
            broker_unread=self.broker_unread,
            workers=self.workers,
            passes=self.passes,
            replayed=replayed,
            poison=tuple(text for raw, text in self.poison if run.id in raw),
            children=hot["children"],
            child_status=_statuses(rt, hot["children"].values()),
        )


#: parked poison records read (the reconciler moves them to PostgreSQL every pass)
PARKED_READ = 1000


def _poison(rt: Runtime) -> list[tuple[str, str]]:
    """(raw text, description) of the poison messages parked in Redis and of the open
    poison dead letters."""
    found = []
    for item in rt.redis.lrange(poison.POISON_KEY, 0, PARKED_READ - 1):
        parked = poison.Poison.from_json(str(item))
        found.append((parked.raw, f"parked from {parked.queue}: {parked.reason}"))
    for letter in rt.store.list_dead_letters():
        if letter.kind == "poison" and letter.raw:
            found.append(
                (letter.raw, f"dead letter {letter.id} from {letter.queue}: {letter.error}")
            )
    return found


def _hot(rt: Runtime, run_id: str) -> dict[str, Any]:
    """The run's hot state in one transaction, then both clocks (a Redis Cluster takes no
    TIME in a transaction: it names no key, hence no slot)."""
    import time

    pipe = rt.redis.pipeline(transaction=True)
    pipe.hgetall(keys.meta_key(run_id))
    pipe.get(keys.counter_key(run_id))
    pipe.hgetall(keys.pending_key(run_id))
    pipe.hgetall(keys.running_key(run_id))
    pipe.hgetall(keys.attempts_key(run_id))
    pipe.hgetall(keys.joins_key(run_id))
    pipe.hgetall(keys.approvals_key(run_id))
    pipe.lrange(keys.events_key(run_id), -TAIL_EVENTS, -1)
    pipe.hgetall(keys.children_key(run_id))
    meta, counter, pending, running, attempts, joins, approvals, tail, children = pipe.execute()
    leases = {k: Lease.parse(v) for k, v in running.items()}
    return {
        "meta": meta,
        "counter": None if counter is None else int(counter),
        "pending": {k: Token.from_dict(json.loads(v)) for k, v in pending.items()},
        "running": {k: v for k, v in leases.items() if v is not None},
        "attempts": {k: int(v) for k, v in attempts.items()},
        "joins": joins,
        "approvals": _approvals(approvals),
        "emitted_at": _emitted_at([json.loads(e) for e in tail]),
        "children": {k: v for k, v in children.items() if not k.endswith("#d")},
        "clock": rt.state.clock(),
        "now": time.time(),
    }


def _statuses(rt: Runtime, run_ids: Iterable[str]) -> dict[str, str]:
    """Child run id -> its status in PostgreSQL (absent: not recorded yet)."""
    found = {}
    for run_id in run_ids:
        try:
            found[run_id] = rt.store.get_run(run_id).status.value
        except WfrunnerError:
            continue
    return found


def _approvals(raw: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    return {
        key: {**json.loads(text), "decision": _loaded(raw.get(f"{key}#d"))}
        for key, text in raw.items()
        if not key.endswith("#d")
    }


def _loaded(text: str | None) -> Any:
    return json.loads(text) if text else None


def _emitted_at(events: list[dict[str, Any]]) -> dict[str, float]:
    found = {}
    for evt in events:
        if evt.get("type") == "token_emitted" and isinstance(evt.get("token"), dict):
            found[Token.from_dict(evt["token"]).key] = float(evt["t"])
    return found


def _predecessors(ir: IR) -> dict[str, tuple[str, ...]]:
    before: dict[str, list[str]] = {n: [] for n in ir.nodes}
    for node in ir.nodes.values():
        for after in node.successors:
            before.setdefault(after, []).append(node.id)
    return {n: tuple(p) for n, p in before.items()}


def _replayed(rt: Runtime, run: RunRecord, ir: IR) -> tuple[int, frozenset[str]] | None:
    """(counter, outbox) a replay of the run's whole event log gives."""
    from wfrunner.replay.fold import replay

    meta, events = fencing.whole_history(rt, run.id)
    if not meta:
        return None
    joins = {n.id: n.dependencies for n in ir.nodes.values() if n.wait_for_all}
    state = replay(run.id, events, list(ir.nodes), joins)
    return state.counter, frozenset(state.pending)
