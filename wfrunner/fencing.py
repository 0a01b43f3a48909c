"""The generation fence between a run's hot state in Redis and its record in PostgreSQL.

Redis can come back holding older data than it had: restarted from an RDB or AOF
snapshot a few seconds old (what it does by default after a crash), or a failover to a
lagging replica. Its epoch, counters and outbox then describe a past the workers have
already moved beyond, and trusting them corrupts runs. So nothing Redis holds reaches
PostgreSQL unchecked:

- Each run's meta holds ``gen``; ``runs.hot_gen`` holds the generation PostgreSQL last
  accepted. A flush or a finish reads ``gen`` = g and PostgreSQL accepts it only if the
  run is active and ``hot_gen`` = g, moving ``hot_gen`` to g + 1 in the same transaction
  that writes the events (:func:`wfrunner.store.history.claim_generation`); then
  ``mark_flushed.lua`` moves Redis to g + 1 (and trims the flushed events).
- A run starts at generation 1: the transaction that records it RUNNING with its entry
  tokens is the write generation 0 would have made (``HistoryQueries.persist_start``).
- One writer per run at a time (:func:`writer`, a lock with a TTL), so on a healthy Redis
  the two generations are equal between writes. Redis restored from a snapshot taken
  before the last accepted write holds a smaller ``gen``, which never advances (Redis
  moves only after PostgreSQL accepted): each of its flushes and finishes is refused, and
  the reconciler rebuilds the run from PostgreSQL under a new epoch. A snapshot newer
  than the last write has the same ``gen``: its state is a consistent prefix of what was
  lost, and ``commit_node.lua`` refuses tokens emitted after it (they are not pending).
- A run PostgreSQL records as ended is never written again: its hot keys are stale and
  are deleted, not flushed or finished a second time.

A writer that dies between PostgreSQL's commit and ``mark_flushed`` leaves Redis one
generation behind: the run is rebuilt from PostgreSQL, redoing a flush interval of work.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from wfrunner.engine.events import split
from wfrunner.engine.runstate import LIVE
from wfrunner.runtime import Runtime
from wfrunner.store import Fence, Progress

log = logging.getLogger(__name__)

#: how long a writer may hold a run's lock before another may take it (a dead holder)
LOCK_TTL_MS = 30_000
#: the fields of an event that name a payload a flush copies
_REFS = ("output_ref", "input_ref")


class Hold:
    """A run's writer lock as :func:`writer` hands it out: true while held. A holder that
    released it itself (with the run's keys, :meth:`RunState.drop`) says so, and the lock
    is not released a second time."""

    def __init__(self, holder: str, held: bool) -> None:
        self.holder = holder
        self.held = held
        self.released = False

    def __bool__(self) -> bool:
        return self.held


@contextmanager
def writer(
    rt: Runtime,
    run_id: str,
    wait: float = 0.0,
    steal: bool = False,
    first: Callable[[str], bool] | None = None,
) -> Iterator[Hold]:
    """Hold the run's writer lock; yields a false Hold when another writer kept it for
    ``wait`` s. ``first(holder)``, when given, makes the first attempt instead of
    :meth:`RunState.lock` (one that reads what the holder needs in the same round trip).

    ``steal`` takes it whoever holds it: after Redis came back from a snapshot, a lock it
    restored may belong to a writer of the past. A live writer it is taken from cannot
    corrupt the run: its PostgreSQL write is fenced by the generation, and
    ``mark_flushed.lua`` ignores it once the run was rebuilt (new epoch)."""
    hold = Hold(uuid.uuid4().hex, False)
    deadline = time.monotonic() + wait
    if first is not None:
        hold.held = first(hold.holder)
    else:
        hold.held = rt.state.lock(run_id, hold.holder, LOCK_TTL_MS, steal)
    while not hold and time.monotonic() < deadline:
        time.sleep(0.05)
        hold.held = rt.state.lock(run_id, hold.holder, LOCK_TTL_MS)
    try:
        yield hold
    finally:
        if hold and not hold.released:
            rt.state.unlock(run_id, hold.holder)


def generation(meta: dict[str, str]) -> int:
    return int(meta.get("gen", 0) or 0)


def position(meta: dict[str, str]) -> tuple[int, int]:
    """(flushed, trimmed): events PostgreSQL holds, events dropped from the Redis list."""
    return int(meta.get("flushed", 0) or 0), int(meta.get("trimmed", 0) or 0)


def flush(rt: Runtime, run_id: str, wait: float = 0.0) -> int:
    """Copy a running run's events not yet in PostgreSQL (and the outputs they name);
    returns how many. Nothing when another writer holds the run (it is copying them)."""
    with writer(rt, run_id, wait) as held:
        return flush_held(rt, run_id) if held else 0


def flush_held(rt: Runtime, run_id: str) -> int:
    """:func:`flush` for a caller that holds the run's writer lock."""
    return _flush_held(rt, [run_id])


def flush_many(rt: Runtime, run_ids: Iterable[str]) -> int:
    """:func:`flush` for many runs in one PostgreSQL transaction; runs another writer
    holds are left out (it copies them). Returns how many events were copied."""
    with ExitStack() as stack:
        held = [r for r in sorted(set(run_ids)) if stack.enter_context(writer(rt, r))]
        return _flush_held(rt, held)


def _flush_held(rt: Runtime, run_ids: list[str]) -> int:
    """Each run's generation is read with its events; PostgreSQL fences each on its own,
    and Redis moves to the next generation only for the runs PostgreSQL accepted."""
    batch: list[tuple[Progress, str]] = []
    for run_id in run_ids:
        meta = rt.state.meta(run_id)
        if meta.get("state") not in LIVE:
            continue
        flushed, trimmed = position(meta)
        events = rt.state.events(run_id, flushed - trimmed)
        if not events:
            continue
        # a map node's input_ref too: its finish token's input (engine/mapping.py)
        refs = sorted({str(e[k]) for e in events for k in _REFS if e.get(k)})
        payloads = rt.state.payloads(run_id, refs)
        progress = Progress(
            run_id, generation(meta), flushed + 1, [split(e) for e in events], payloads
        )
        batch.append((progress, meta.get("epoch", "")))
    if not batch:
        return 0
    verdicts = rt.store.persist_progress_many([p for p, _ in batch])
    copied = 0
    for progress, epoch in batch:
        verdict = verdicts[progress.run_id]
        if verdict is not Fence.ACCEPTED:
            refused(rt, progress.run_id, verdict, progress.gen)
            continue
        count = progress.first_seq - 1 + len(progress.events)
        rt.state.mark_flushed(progress.run_id, count, progress.gen, epoch)
        copied += len(progress.events)
    return copied


def refused(rt: Runtime, run_id: str, verdict: Fence, gen: int) -> None:
    """PostgreSQL refused a write from Redis: drop an ended run's stale keys; a stale
    running one is left to the reconciler, which rebuilds it from PostgreSQL."""
    if verdict in (Fence.ENDED, Fence.GONE):
        log.warning("run %s: PostgreSQL records it as ended: its stale hot keys dropped", run_id)
        rt.state.delete(run_id)
        return
    log.warning(
        "run %s: stale hot state refused (PostgreSQL accepted Redis generation %d already): "
        "Redis came back with older data; the reconciler rebuilds the run from PostgreSQL",
        run_id,
        gen,
    )


def whole_history(rt: Runtime, run_id: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The run's hot meta and all its events: those trimmed from Redis read back from
    PostgreSQL, then the Redis list. Empty meta when the run has no hot state."""
    meta, tail = rt.state.tail(run_id)
    if not meta:
        return {}, []
    _, trimmed = position(meta)
    if not trimmed:
        return meta, tail  # a short run: Redis holds all of it, PostgreSQL is not asked
    head = [e.as_event() for e in rt.store.list_events(run_id) if e.seq <= trimmed]
    return meta, head + tail
