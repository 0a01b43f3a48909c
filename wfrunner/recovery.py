"""Keeping runs alive when parts fail: copying history to PostgreSQL while a run runs,
rebuilding a run's hot state from it, and the reconciler that finds what was lost.

Redis is a cache of hot state; PostgreSQL is the truth. A run is recorded with its entry
tokens when it starts; while it runs, its events (which carry every emitted and consumed
token) and outputs are copied to PostgreSQL about every ``WFRUNNER_FLUSH_INTERVAL``
seconds, many runs per transaction (``wfrunner.flush_runs``). If Redis loses the run,
:func:`rebuild` recreates its counter, outbox, joins, context and events from that copy,
and the tokens that were emitted but never consumed are published again. Work done after
the last copy is done again: execution is at-least-once, its effect on the run
exactly-once.

Redis can also come back with older data than it had (a snapshot, a lagging replica).
The generation fence (:mod:`wfrunner.fencing`) keeps such state out of PostgreSQL, and
the reconciler notices the restart itself (the Redis server's ``run_id`` differs from the
one it stored) and rebuilds every active run from PostgreSQL under a new epoch.

This module holds the repairs; :mod:`wfrunner.reconciler` decides which runs a pass looks
at (those due, from a per-slot index, and every active run only after a Redis restart).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Collection, Mapping
from typing import Any

from wfrunner import fencing, lifecycle, runlimits, telemetry
from wfrunner.compiler.ir import IR
from wfrunner.doctor import describe
from wfrunner.engine import keys, maprebuild, rewind
from wfrunner.engine.events import event
from wfrunner.engine.leases import Lease
from wfrunner.engine.runstate import DEAD, LIVE, PAUSED, RUNNING
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConflictError, NotFoundError, WfrunnerError
from wfrunner.runtime import Runtime
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus

log = logging.getLogger(__name__)

#: the ``by`` recorded for tokens whose commits were rebuilt from PostgreSQL
REBUILT = "rebuilt"


def flush(rt: Runtime, run_id: str) -> int:
    """Copy a running run's events (and the outputs they name) not yet in PostgreSQL."""
    return fencing.flush(rt, run_id)


class _History:
    """What the stored events say about tokens, joins and outputs."""

    def __init__(
        self,
        events: list[dict[str, Any]],
        join_nodes: dict[str, list[str]],
        ruled: Collection[str] = (),
    ) -> None:
        self.emitted: dict[str, Token] = {}
        self.emits_by: dict[str, dict[str, Token]] = defaultdict(dict)
        self.consumed: dict[str, Token] = {}
        self.joins: dict[str, str] = {}
        self.context: dict[str, str] = {}
        self._expected = {node: len(deps) for node, deps in join_nodes.items()}
        #: join instance -> distinct predecessors arrived (join_arrive.lua's "#n")
        self.arrived: dict[str, int] = defaultdict(int)
        #: the joins with a rule: their finisher is named by the events, not the count
        self._ruled = set(ruled)
        for evt in events:
            self._read(evt, join_nodes)

    def _read(self, evt: dict[str, Any], join_nodes: dict[str, list[str]]) -> None:
        kind, token = evt["type"], evt.get("token")
        if kind == "token_emitted" and token:
            t = Token.from_dict(token)
            self.emitted[t.key] = t
            self.emits_by[str(evt.get("by"))][t.key] = t
            if t.payload_ref is None and t.from_node in join_nodes.get(t.to_node, ()):
                # only the arrival that completed a join sends it a payload-less fire token:
                # it names the finisher whatever order the commits were stored in
                self._fired(f"{t.to_node}|{t.scope}", str(t.from_node))
        elif kind == "join_arrived":
            instance = f"{evt['node']}|{evt.get('scope', '')}"
            value = Token.from_dict(token).payload_ref if token and evt.get("live") else None
            self._arrive(instance, str(evt["from"]), value or DEAD)
            if token:
                self.consumed[Token.from_dict(token).key] = Token.from_dict(token)
        elif kind == "join_fired":  # a join with a rule fired: its token was sent
            instance = f"{evt['node']}|{evt.get('scope', '')}"
            self._arrive(instance, str(evt["from"]), str(evt["ref"]))
            self._fired(instance, str(evt["from"]))
        elif kind == "node_skipped" and token and evt.get("cut"):  # join_rest "cancel"
            self.consumed[Token.from_dict(token).key] = Token.from_dict(token)
        elif token and (kind == "node_completed" or evt.get("caught")):
            # a caught node_failed is committed as a completion is (engine/catching.py)
            t = Token.from_dict(token)
            self.consumed[t.key] = t
            self.context[str(evt["node"])] = str(evt.get("output_ref") or evt.get("error_ref"))
            if t.to_node in join_nodes and t.from_node in join_nodes[t.to_node]:
                self._arrive(f"{t.to_node}|{t.scope}", str(t.from_node), t.payload_ref or DEAD)

    def _arrive(self, instance: str, from_node: str, value: str) -> None:
        """Replay one join arrival as join_arrive.lua recorded it: the first value of each
        predecessor is kept, and the arrival that completes the join is its finisher (a dead
        arrival included: its node then sent the token that fires the join)."""
        field = f"{instance}|{from_node}"
        if field in self.joins:
            return
        self.joins[field] = value
        self.arrived[instance] += 1
        node = instance.split("|", 1)[0]
        if node in self._ruled:  # counted as commit_node.lua counts them (see "Join rules")
            if value != DEAD:
                live = int(self.joins.get(f"{instance}#live", "0")) + 1
                self.joins[f"{instance}#live"] = str(live)
                order = self.joins.get(f"{instance}#order")
                self.joins[f"{instance}#order"] = f"{order},{from_node}" if order else from_node
        elif self.arrived[instance] >= self._expected.get(node, 0):
            self.joins.setdefault(f"{instance}#fin", from_node)

    def _fired(self, instance: str, from_node: str) -> None:
        """The join fired on ``from_node``'s arrival (a join with a rule fires once: its
        first firing counts, with the live arrivals in then)."""
        if instance.split("|", 1)[0] not in self._ruled:
            self.joins[f"{instance}#fin"] = from_node
        elif f"{instance}#fin" not in self.joins:
            self.joins[f"{instance}#fin"] = from_node
            self.joins[f"{instance}#at"] = self.joins.get(f"{instance}#order", "")

    def pending(self) -> dict[str, Token]:
        return {k: t for k, t in self.emitted.items() if k not in self.consumed}

    def join_fields(self) -> dict[str, str]:
        counts = {f"{instance}#n": str(n) for instance, n in self.arrived.items()}
        return {**self.joins, **counts}


def _mark_cut(ir: IR, known: _History) -> None:
    """A join_rest "cancel" join that fired marked the joins among its feeders
    (lua/cut_join_rest.lua): they wait for nothing more."""
    joins = known.joins
    for node in ir.nodes.values():
        if node.join is None or not node.join.cut:
            continue
        prefix = f"{node.id}|"
        for field in [f for f in joins if f.startswith(prefix) and f.endswith("#fin")]:
            scope = field[len(prefix) : -len("#fin")]
            for feeder in node.join.cut:
                if known.arrived.get(f"{feeder}|{scope}"):
                    joins.setdefault(f"{feeder}|{scope}#cut", node.id)


def rebuild(
    rt: Runtime,
    run_id: str,
    reason: dict[str, Any] | None = None,
    why: str | None = None,
    by: str = "reconciler",
    note: bool = True,
) -> list[Token]:
    """Recreate a run's hot state from PostgreSQL; returns the tokens to publish again
    (none for a PAUSED run: they wait for its resume). ``why``: what was found, kept in
    the ``run_recovered`` event (with ``by``); ``note``: append that event (or ``reason``)
    to the run's events (a rerun recorded its own)."""
    run = rt.store.get_run(run_id)
    if run.status in TERMINAL_RUN_STATES:
        return []  # it ended (and left Redis) after the caller looked: nothing to rebuild
    ir = rt.ir(run.workflow_id)
    events = [e.as_event() for e in rt.store.list_events(run_id)]
    joins = {n.id: list(n.dependencies) for n in ir.nodes.values() if n.wait_for_all}
    # what a rerun --from discarded is no part of the state (wfrunner/engine/rewind.py)
    kept = rewind.effective(ir, events)
    ruled = [n.id for n in ir.nodes.values() if n.join is not None]
    known = _History(kept, joins, ruled)
    _mark_cut(ir, known)
    payloads = rt.store.load_payloads(run_id)
    maps = maprebuild.rebuild(kept, payloads, known.consumed)  # map nodes' items
    left = {k: t for k, t in known.pending().items() if k not in maps.consumed}
    pending = {**left, **maps.pending}
    recovered = reason or event(
        "run_recovered",
        pending=len(pending),
        by=by,
        **({"why": why} if why else {}),
        tokens=sorted(describe.token_name(t) for t in pending.values()),
    )
    client = rt.redis
    pipe = client.pipeline(transaction=True)
    pipe.delete(*keys.run_keys(run_id))
    pipe.set(keys.counter_key(run_id), len(pending))
    applied = [keys.op_key(run_id, "init", None, None, 1)]
    consumed = {**known.consumed, **maps.consumed}
    applied += [t.op_key("advance") for t in consumed.values()]
    pipe.sadd(keys.applied_key(run_id), *applied)
    texts = {**{r: _dump(v) for r, v in payloads.items()}, **maps.payloads}
    if texts:
        _hset(pipe, keys.payloads_key(run_id), texts)
    if maps.fields:
        _hset(pipe, keys.maps_key(run_id), maps.fields)
    if known.context:
        _hset(pipe, keys.context_key(run_id), known.context)
    emits = {
        key: _dump(
            {
                "by": REBUILT,
                "tokens": {k: _dump(t.to_dict()) for k, t in known.emits_by[key].items()},
            }
        )
        for key in consumed
    }
    if emits:
        _hset(pipe, keys.emits_key(run_id), emits)
    if pending:
        _hset(pipe, keys.pending_key(run_id), {k: _dump(t.to_dict()) for k, t in pending.items()})
    if known.joins:
        _hset(pipe, keys.joins_key(run_id), known.join_fields())
    # the stored events stay in PostgreSQL only: the list starts after them ("trimmed")
    if note:
        pipe.rpush(keys.events_key(run_id), _dump(recovered))
    _hset(
        pipe,
        keys.meta_key(run_id),
        {
            "workflow_id": run.workflow_id,
            "state": PAUSED if run.status is RunStatus.PAUSED else RUNNING,
            "inputs": _dump(run.inputs),
            "activity": time.time(),
            "flushed": len(events),
            "trimmed": len(events),
            # PostgreSQL accepts the next flush from the generation it last accepted
            "gen": run.hot_gen,
            # deliveries begun before the loss must not commit into the rebuilt state
            "epoch": uuid.uuid4().hex,
        },
    )
    # the reconciler looks again once it could be idle (wfrunner/reconciler.py)
    pipe.zadd(rt.state.due_key(run_id), {run_id: time.time() + rt.state.stall_after})
    pipe.execute()
    runlimits.reclaim(rt, run_id, run.workflow_id)
    if run.status is RunStatus.PAUSED:
        log.warning("run %s rebuilt from PostgreSQL, paused: %d tokens wait", run_id, len(pending))
        return []
    log.warning("run %s rebuilt from PostgreSQL: %d tokens to publish again", run_id, len(pending))
    return list(pending.values())


def _hset(pipe: Any, key: str, mapping: Mapping[str, Any]) -> None:
    pipe.hset(key, mapping=dict(mapping))


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def stall_seconds(rt: Runtime) -> float:
    """Seconds a run is idle before the reconciler publishes its unheld tokens again."""
    return 3.0 * rt.settings.reconcile_interval


def stalled_tokens(rt: Runtime, run_id: str, stall_after: float) -> list[Token]:
    """Pending tokens to publish again, marked as republished (lua/claim_stalled.lua).

    A token whose delivery's lease expired (its worker is gone) is published again at
    once, even while other branches of the run progress. One that no delivery holds (its
    message is queued, or was lost) is published again only when the run has been idle
    for ``stall_after`` s, and then at most every ``WFRUNNER_VISIBILITY_TIMEOUT`` seconds:
    a token merely waiting in a long queue is not published on every pass.
    """
    return [t for t, _ in _claim(rt, run_id, stall_after, force=False)]


def _claim(
    rt: Runtime, run_id: str, stall_after: float, force: bool
) -> list[tuple[Token, Lease | None]]:
    hold = float(rt.settings.visibility_timeout)
    return rt.state.claim_stalled(run_id, time.time(), stall_after, hold, force=force)


def republish(
    rt: Runtime, run_id: str, stall_after: float, by: str = "reconciler", force: bool = False
) -> list[Token]:
    """:func:`stalled_tokens`, recording on the run what was found and done (a
    ``reconciler_repaired`` event: each token's node and why it stalled), so ``wfrunner
    trace`` and ``wfrunner doctor`` can tell. ``force``: tokens published again recently
    are published again too (an operator's requeue)."""
    idle_for = time.time() - float(rt.state.meta(run_id).get("activity") or 0)
    stalled = _claim(rt, run_id, stall_after, force)
    if stalled:
        found = describe.republished_event(stalled, time.time(), idle_for, by)
        count, summary = len(stalled), found["summary"]
        log.warning("run %s: publishing %d stalled tokens again (%s)", run_id, count, summary)
        rt.state.record(run_id, [found])
    return [t for t, _ in stalled]


def reconcile(rt: Runtime, shards: Collection[int] | None = None) -> dict[str, list[Token]]:
    """One reconciler pass, every shard in this process (``shards``: those only); see
    :func:`wfrunner.reconciler.reconcile`. Returns run id -> tokens to publish."""
    from wfrunner import reconciler  # it decides which runs the repairs below look at

    return reconciler.reconcile(rt, shards)


def repair(
    rt: Runtime, run_id: str, stall_after: float, meta: Mapping[str, str]
) -> tuple[list[Token], float | None]:
    """Finish an active run whose end was not recorded, check one whose counter is 0, or
    claim its stalled tokens: (the tokens to publish again, seconds until the reconciler
    should look at the run again; None when claiming them set it, see claim_stalled.lua)."""
    if meta.get("state") not in LIVE:
        if lifecycle.finish(rt, run_id) is not None:
            telemetry.repaired("finished")
        return [], float(rt.settings.reconcile_interval)  # (another writer held it)
    if rt.state.counter(run_id) == 0:  # a paused run's last node may have committed
        lifecycle.check_completion(rt, run_id)
        telemetry.repaired("completion_checked")
        return [], stall_after
    if meta.get("state") == RUNNING:  # a paused run's tokens wait for its resume
        stalled = republish(rt, run_id, stall_after)
        if stalled:
            telemetry.repaired("republished")
        return stalled, None
    return [], stall_after


def hot_runs(rt: Runtime) -> set[str]:
    """Every run with hot metadata in Redis: a SCAN of the whole keyspace."""
    return {keys.run_of_meta(k) for k in rt.redis.scan_iter(match=keys.META_PATTERN, count=500)}


def drop_if_ended(rt: Runtime, run_id: str) -> bool:
    """Hot state of a run PostgreSQL does not list as active: stale once the run ended
    (a run started since the listing is RUNNING there, and left alone)."""
    try:
        status = rt.store.get_run(run_id).status
    except NotFoundError:
        status = RunStatus.CANCELLED  # purged: nothing may write for it any more
    if status in TERMINAL_RUN_STATES:
        log.warning("run %s ended (%s): dropping the hot state left in Redis", run_id, status)
        rt.state.delete(run_id, lock=True)
        return True
    return False


def validate(rt: Runtime, run_id: str, listed_gen: int, restored: bool) -> list[Token] | None:
    """Rebuild the run from PostgreSQL when Redis lost it, holds an older generation than
    PostgreSQL accepted, or came back from a snapshot; the tokens to publish, None when it
    is left as is."""
    with fencing.writer(rt, run_id, steal=restored) as held:
        if not held:
            return None  # a writer is at work: the next pass looks again
        meta = rt.state.meta(run_id)
        if not meta:
            return rebuild(rt, run_id, why="Redis held no hot state for the run")
        gen = fencing.generation(meta)
        if gen != listed_gen and gen != rt.store.get_run(run_id).hot_gen:
            log.warning("run %s: Redis holds generation %d, older than PostgreSQL's", run_id, gen)
            return rebuild(rt, run_id, why=f"Redis held generation {gen}, older than PostgreSQL's")
        if restored and meta.get("state") in LIVE:
            # the restored state is a consistent prefix of what was lost: keep its events,
            # then start over from PostgreSQL, so deliveries begun on it cannot commit and
            # the outbox is published again at once
            fencing.flush_held(rt, run_id)
            return rebuild(rt, run_id, why="Redis came back from a snapshot")
        return None


def _start_lost(rt: Runtime, queued_for: float) -> dict[str, list[Token]]:
    """Start the runs QUEUED for ``queued_for`` s with no hot state: their start_run
    message is lost (or still waiting: a second start changes nothing)."""
    started: dict[str, list[Token]] = {}
    for run_id in rt.store.list_queued_runs(queued_for):
        if rt.state.meta(run_id):
            continue  # a start is under way
        run = rt.store.get_run(run_id)
        tokens = lifecycle.start(rt, run_id, run.workflow_id, run.inputs)
        if tokens:  # (a run waiting for a slot of its workflow's limit stays QUEUED)
            log.warning("run %s was still QUEUED: its start message was lost; started", run_id)
            started[run_id] = tokens
    return started


def retry_dead_letter(rt: Runtime, letter_id: int) -> tuple[str, list[Token]]:
    """Resume the FAILED run of a dead letter: its token, and every token the failure cut
    short, run again with fresh attempts. Returns the run id and the tokens to publish."""
    letter = rt.store.get_dead_letter(letter_id)
    if letter.run_id is None:  # a poison message: nothing trustworthy to resume
        raise WfrunnerError(
            f"dead letter {letter_id} is a poison message from {letter.queue} "
            f"({letter.error}): it names no run to resume; fix or stop its sender"
        )
    run = rt.store.get_run(letter.run_id)
    if run.status != RunStatus.FAILED:
        raise ConflictError(
            f"run {run.id} is {run.status.value}: only dead letters of FAILED runs can be retried"
        )
    if not rt.store.mark_dead_letter_retried(letter_id):
        raise ConflictError(f"dead letter {letter_id} was already retried")
    rt.store.reopen_run(run.id)
    tokens = rebuild(rt, run.id, event("run_resumed", dead_letter=letter_id, node=letter.node_id))
    return run.id, tokens
