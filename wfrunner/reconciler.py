"""The reconciler's passes: each costs the runs that are due, not every active run.

Every active run has an entry in a **due index**: a sorted set, run id -> when the
reconciler should look at the run next (seconds since the epoch). On a Redis Cluster there
is one index per slot, ``wfr:{<slot tag>}:due``, named with a hash tag that hashes to that
slot (:mod:`wfrunner.engine.slots`): a run's own scripts update its entry in the same
call as its state, which a Lua script may only do within one slot. On one Redis server
the runs of a block of 1,024 slots share one index (``keys.index_slot``): a pass reads
16 keys, not 16,384. The entry is

- added by ``start_run.lua`` (the run is first looked at once it could be idle: after the
  stall time, 3 x ``WFRUNNER_RECONCILE_INTERVAL``) and by a rebuild;
- moved on by ``commit_node.lua``, at most once a flush interval per run (in its
  ``flush_due`` branch): to when the run would be idle, or sooner, when an entry of its
  running hash falls due (a lease no worker renews any more, a retry, an approval's
  deadline). A commit makes a run due later, never sooner, so the commits in between
  need not touch the index: a progressing run is never looked at;
- moved on by the pass that looks at the run (``claim_stalled.lua``): to the first time
  one of its pending tokens could be published again, so a run that waits on purpose
  (an approval, a child run, a long node whose lease is renewed, a retry's backoff) is
  looked at when that wait could end, not on every pass;
- brought nearer (``ZADD LT``) by what makes a token due from outside: an approval
  requested (to its deadline) or decided, a child's end told, a run failed or cancelled
  from outside its nodes (whose recorder may die before it records the end);
- removed with the run's hot keys (``drop_run.lua``, :meth:`RunState.delete`).

What "due" covers: a run idle for the stall time (a lost message, a run whose counter
reached 0 unrecorded), a lease expired (a dead worker; found at its expiry when a commit
of the run saw the lease, else once the run is idle), an end not recorded. Redis losing a
run's hot state is found when the reconciler sees a new Redis server (a restart or a
failover): that pass, the **full pass**, validates every active run PostgreSQL lists,
as every pass did before, and indexes them all. The first pass on a Redis without the
index (an upgrade) is a full pass too, so no run started before it is left out.

**Shards.** ``WFRUNNER_BACKGROUND_SHARDS`` splits the 16384 slots into contiguous ranges;
beat's ``wfrunner.reconcile`` does the work that is not per run (the restart check,
queued runs, poison messages, child ends) and queues one ``wfrunner.reconcile_shard``
task per shard, which reads its slots' indexes with one pipelined ``ZRANGEBYSCORE`` each
(at most :data:`PER_SLOT` runs per slot and pass) and looks at the runs due: O(slots of
the shard + runs due). Two shards never share a slot, so never a run; a shard's pass
takes a lock for one reconcile interval, so two passes of one shard do not overlap
either (and what they would both do is safe anyway: the writer lock, idempotent claims).

**Hot state of ended runs** (a finisher killed between its PostgreSQL commit and its
drop of the keys) normally stays in the due index and is found there. For hot state with
no index entry (brought back by a Redis restored from a snapshot: the full pass), an
incremental SCAN goes on from where the last pass left it, :data:`SWEEP_COUNT` keys per
pass, rather than a SCAN of the whole keyspace on every pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from wfrunner import fencing, recovery, redisnodes, runlimits, telemetry
from wfrunner.engine import keys, slots
from wfrunner.engine.tokens import Token
from wfrunner.runtime import Runtime
from wfrunner.states import TERMINAL_RUN_STATES, RunStatus

log = logging.getLogger(__name__)

#: runs one pass looks at per slot at most (the rest stay due: the next pass takes them)
PER_SLOT = 100
#: keys the incremental sweep for hot state of ended runs has SCAN examine per pass
SWEEP_COUNT = 1000
#: statuses of runs that have hot state (the due index's runs)
_HOT = frozenset({RunStatus.RUNNING, RunStatus.WAITING, RunStatus.PAUSED})


def reconcile(rt: Runtime, shards: Collection[int] | None = None) -> dict[str, list[Token]]:
    """One whole pass in this process: :func:`global_pass`, then the due pass of every
    shard (``shards``: of those only). Returns run id -> tokens to publish."""
    published, full = global_pass(rt)
    if not full:
        for shard in range(rt.settings.background_shards) if shards is None else shards:
            published.update(due_pass(rt, shard))
    return published


def global_pass(rt: Runtime) -> tuple[dict[str, list[Token]], bool]:
    """What a pass does that is not per shard: note the pass (``wfrunner doctor`` reads
    it), the full pass when Redis is new to the reconciler or the index was never built,
    else one step of the sweep; free run-limit slots; start lost QUEUED runs. Returns
    (run id -> tokens to publish, whether it was a full pass)."""
    stall_after = recovery.stall_seconds(rt)
    rt.redis.hset(keys.PASSES_KEY, "reconcile", time.time())
    seen = redisnodes.look(rt.redis)  # Redis restarted, came back from a snapshot, failed over
    full = seen.changed or not rt.redis.exists(keys.INDEXED_KEY)
    if full:
        published = full_pass(rt, seen)
    else:
        published = {}
        telemetry.repaired("dropped", sweep_step(rt))
    telemetry.repaired("slots_freed", runlimits.repair(rt))
    # after the active runs: a rebuilt run takes back its slot of a run limit first
    started = recovery._start_lost(rt, 0.0 if seen.changed else stall_after)
    telemetry.repaired("started", len(started))
    return {**started, **published}, full


def full_pass(rt: Runtime, seen: redisnodes.Seen) -> dict[str, list[Token]]:
    """Validate and repair every active run PostgreSQL lists, drop hot state of runs it
    does not, and put every active run in the due index (at a time within the
    stall time, by slot, so their first looks spread over several passes)."""
    stall_after = recovery.stall_seconds(rt)
    generations = rt.store.active_generations()
    # hot state of a run PostgreSQL does not list as active: brought back by a restarted
    # Redis, or left by a finisher killed between its PostgreSQL commit and its drop of the
    # keys (no delivery looks at an ended run again): dropped once PostgreSQL says it ended
    for run_id in recovery.hot_runs(rt) - set(generations):
        if recovery.drop_if_ended(rt, run_id):
            telemetry.repaired("dropped")
    to_publish: dict[str, list[Token]] = {}
    for run_id, gen in generations.items():
        rebuilt = recovery.validate(rt, run_id, gen, seen.restored_run(run_id))
        if rebuilt is not None:
            to_publish[run_id] = rebuilt
            telemetry.repaired("rebuilt")
            continue
        meta = rt.state.meta(run_id)
        if meta:  # (else it ended since the listing, or a writer is at work)
            stalled, _ = recovery.repair(rt, run_id, stall_after, meta)
            if stalled:
                to_publish[run_id] = stalled
    now = time.time()
    spread = stall_after / slots.SLOTS
    indexed = rt.state.index({r: now + spread * keys.slot_of_run(r) for r in generations})
    if indexed:
        log.warning("the due index took %d active runs it did not hold", indexed)
    rt.redis.set(keys.INDEXED_KEY, 1)
    return to_publish


def due_pass(rt: Runtime, shard: int) -> dict[str, list[Token]]:
    """Look at the runs of ``shard`` whose next look has come (see the module's doc);
    PostgreSQL is asked once for all of them (their status and generation)."""
    now = time.time()
    scope = slots.shard_slots(shard, rt.settings.background_shards)
    due = rt.state.due_runs(scope, now, PER_SLOT)
    listed = rt.store.generations_of(due) if due else {}
    to_publish: dict[str, list[Token]] = {}
    for run_id in due:
        tokens = look_at(rt, run_id, listed.get(run_id), now)
        if tokens:
            to_publish[run_id] = tokens
    return to_publish


def look_at(
    rt: Runtime, run_id: str, listed: tuple[RunStatus, int] | None, now: float
) -> list[Token]:
    """Repair one due run and set its next look; the tokens to publish again.
    ``listed``: its status and generation in PostgreSQL (None: purged)."""
    meta = rt.state.meta(run_id)
    if listed is None or listed[0] not in _HOT:  # it ended: its hot state is stale
        if not meta:
            rt.state.forget(run_id)
        else:
            recovery.drop_if_ended(rt, run_id)  # (and its index entry)
        return []
    if not meta or fencing.generation(meta) != listed[1]:
        # Redis lost the run, or holds an older generation than PostgreSQL accepted (a
        # snapshot whose restart went unnoticed): rebuilt under the writer lock
        rebuilt = recovery.validate(rt, run_id, listed[1], restored=False)
        if rebuilt is not None:
            telemetry.repaired("rebuilt")
            return rebuilt
        meta = rt.state.meta(run_id)  # (a flush moved it on meanwhile: nothing stale)
        if not meta:  # a writer is at work: the next pass looks again
            rt.state.look_again(run_id, now + rt.settings.reconcile_interval)
            return []
    tokens, wait = recovery.repair(rt, run_id, recovery.stall_seconds(rt), meta)
    if wait is not None:  # (claim_stalled.lua set it otherwise)
        rt.state.look_again(run_id, now + wait)
    return tokens


def sweep_step(rt: Runtime, count: int = SWEEP_COUNT) -> int:
    """One step of the incremental SCAN for hot state of runs PostgreSQL records as
    ended (or purged): drop it. The cursor is kept in Redis between passes. Returns how
    many runs' hot state was dropped."""
    found = redisnodes.scan_step(rt.redis, keys.SWEEP_KEY, keys.META_PATTERN, count)
    run_ids = [keys.run_of_meta(k) for k in found]
    if not run_ids:
        return 0
    statuses = rt.store.statuses_of(run_ids)
    ended = [r for r in run_ids if statuses.get(r) in TERMINAL_RUN_STATES or r not in statuses]
    return sum(recovery.drop_if_ended(rt, r) for r in ended)
