"""A run's history in PostgreSQL: flushed while it runs, completed when it ends.

During a run the event log, outputs and per-node progress live in Redis (the hot path
writes no SQL); :meth:`HistoryQueries.persist_progress_many` copies new events every flush and
:meth:`HistoryQueries.persist_end` the rest, with the node executions, when it ends.

Both are fenced by the run's hot-state generation (``runs.hot_gen``, see
:mod:`wfrunner.fencing`): PostgreSQL accepts a write only from the generation it last
accepted, and only while the run is active. So Redis restored from an older snapshot cannot
write, and a run PostgreSQL records as ended never changes again: one terminal event, no
overwritten outputs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from wfrunner.errors import NotFoundError
from wfrunner.resources import sql_source
from wfrunner.states import ACTIVE_RUN_STATES, TERMINAL_RUN_STATES, RunStatus
from wfrunner.store.base import Repository, Tx
from wfrunner.store.deadletters import NewDeadLetter, insert_dead_letters
from wfrunner.store.events import NewEvent
from wfrunner.store.models import EventLog, Payload, Run
from wfrunner.store.prepared import Statement
from wfrunner.store.records import EventRecord, RunRecord, RunView
from wfrunner.store.runs import STAT_COLUMNS
from wfrunner.store.workflows import canonical_json

log = logging.getLogger(__name__)


class Fence(StrEnum):
    """PostgreSQL's answer to a fenced write."""

    #: written; the run's generation moved on by one
    ACCEPTED = "accepted"
    #: the run has ended: nothing written (its hot keys, if any, are stale)
    ENDED = "ended"
    #: the writer's generation is not PostgreSQL's: nothing written (Redis holds older
    #: data than PostgreSQL, or another writer got there first)
    STALE = "stale"
    #: the run is not in PostgreSQL (purged): nothing written, its hot keys are stale
    GONE = "gone"


@dataclass(frozen=True)
class ExecutionRow:
    node_id: str
    iteration: int
    attempt: int
    status: str
    output: Any = None
    error: str | None = None


#: Core statements run with a list of rows (executemany, sent in batches by SQLAlchemy's
#: insertmanyvalues): compiled once and cached, where a statement built with ``.values(rows)``
#: through the ORM is compiled anew for every flush (most of a flush's CPU under a backlog)
_EVENTS: sa.Table = EventLog.__table__  # type: ignore[assignment]
_INSERT_EVENTS = (
    pg_insert(_EVENTS)
    .on_conflict_do_nothing(index_elements=[_EVENTS.c.run_id, _EVENTS.c.seq])
    .returning(_EVENTS.c.seq)
)
_PAYLOADS: sa.Table = Payload.__table__  # type: ignore[assignment]
_INSERT_PAYLOADS = pg_insert(_PAYLOADS).on_conflict_do_nothing()


def _statement(name: str) -> Statement:
    """``sql/<name>.sql`` as a statement, its comments left out (they name the
    parameters, which would otherwise be read as parameters)."""
    lines = sql_source(name).splitlines()
    return Statement.of(name, "\n".join(ln for ln in lines if not ln.lstrip().startswith("--")))


#: one statement, one round trip each: the fixed cost of every run (see sql/*.sql)
_START_RUN = _statement("start_run")
_END_RUN = _statement("end_run")
_ACTIVE = [s.value for s in ACTIVE_RUN_STATES]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def insert_events(
    session: Tx,
    run_id: str,
    first_seq: int,
    events: Sequence[NewEvent],
    counted: bool = False,
) -> int:
    """Insert events with given sequence numbers, keeping numbers already stored.

    An event already stored under its number is kept; when the incoming one differs it is
    a divergence (two histories of one run), logged, never written. Returns how many
    diverged. ``counted``: the caller's own update of the run row already moved
    ``runs.event_seq`` past these events (one statement less).
    """
    if not events:
        return 0
    last = first_seq + len(events) - 1
    if not counted:
        found = session.execute(
            sa.update(Run)
            .where(Run.id == run_id)
            .values(event_seq=_seq_through(last))
            .returning(Run.id)
        ).first()
        if found is None:
            raise NotFoundError(f"no run with id '{run_id}'")
    rows = [
        {"run_id": run_id, "seq": first_seq + i, "type": kind, "node_id": node, "data": data}
        for i, (kind, node, data) in enumerate(events)
    ]
    inserted = set(session.execute(_INSERT_EVENTS, rows).scalars())
    return _diverged(session, run_id, first_seq, events, inserted)


def _diverged(
    session: Tx,
    run_id: str,
    first_seq: int,
    events: Sequence[NewEvent],
    inserted: set[int],
) -> int:
    """How many of ``events`` (numbered from ``first_seq``) PostgreSQL already held under
    their numbers with other content: a divergence (two histories of one run), logged,
    never written. ``inserted``: the numbers the insert wrote."""
    kept = {first_seq + i: event for i, event in enumerate(events) if first_seq + i not in inserted}
    if not kept:
        return 0
    stored = session.execute(
        sa.select(EventLog.seq, EventLog.type, EventLog.node_id, EventLog.data).where(
            EventLog.run_id == run_id, EventLog.seq.in_(list(kept))
        )
    ).all()
    diverged = 0
    for seq, kind, node, data in stored:
        new = kept[seq]
        if (kind, node, data) != tuple(new):
            diverged += 1
            log.warning(
                "run %s: divergence at event %d: PostgreSQL holds %s %s, a writer sent %s %s "
                "(PostgreSQL's copy kept)",
                run_id,
                seq,
                kind,
                node,
                new[0],
                new[1],
            )
    return diverged


def _seq_through(last: int) -> Any:
    """``runs.event_seq`` once events up to number ``last`` are stored."""
    return sa.func.greatest(Run.event_seq, last)


def claim_generation(
    session: Tx, run_id: str, gen: int, values: Mapping[str, Any] | None = None
) -> Fence:
    """Move ``runs.hot_gen`` from ``gen`` to ``gen + 1`` (with ``values``) if PostgreSQL
    still holds ``gen`` and the run is active; the row lock orders concurrent writers."""
    active = [s.value for s in ACTIVE_RUN_STATES]
    hit = session.execute(
        sa.update(Run)
        .where(Run.id == run_id, Run.status.in_(active), Run.hot_gen == gen)
        .values(hot_gen=gen + 1, last_activity_at=sa.func.now(), **dict(values or {}))
        .returning(Run.id)
    ).first()
    if hit is not None:
        return Fence.ACCEPTED
    return _refused(session, run_id)


def _refused(session: Tx, run_id: str) -> Fence:
    """Why a fenced write of the run found no row to claim."""
    row = session.execute(sa.select(Run.status).where(Run.id == run_id)).first()
    if row is None:
        raise NotFoundError(f"no run with id '{run_id}'")
    return Fence.ENDED if RunStatus(row.status) in TERMINAL_RUN_STATES else Fence.STALE


def insert_payloads(session: Tx, run_id: str, payloads: Mapping[str, Any]) -> None:
    if not payloads:
        return
    session.execute(
        _INSERT_PAYLOADS,
        [
            {
                "run_id": run_id,
                "ref": ref,
                "data": data,
                "size_bytes": len(canonical_json(data).encode()),
            }
            for ref, data in payloads.items()
        ],
    )


@dataclass(frozen=True)
class Progress:
    """What one flush of a running run writes: its events from ``first_seq`` on and the
    outputs they name, fenced by the hot-state generation ``gen`` it read them at."""

    run_id: str
    gen: int
    first_seq: int
    events: Sequence[NewEvent]
    payloads: Mapping[str, Any]


@dataclass(frozen=True)
class EndedHistory:
    """What finishing a run writes: the events PostgreSQL lacks and the projections of the
    whole history (computed from PostgreSQL's events plus that tail)."""

    first_seq: int
    events: Sequence[NewEvent]
    payloads: Mapping[str, Any]
    executions: Sequence[ExecutionRow]
    loops: Mapping[str, int]
    stats: Mapping[str, int]
    dead_letters: Sequence[NewDeadLetter] = ()
    #: completion double-checks counted in Redis while the run ran (added to the stored ones)
    completion_checks: int = 0


class HistoryQueries(Repository):
    def persist_start(
        self,
        run_id: str,
        workflow_id: str,
        inputs: Any,
        counter_value: int,
        events: Sequence[NewEvent],
    ) -> tuple[RunRecord, bool]:
        """Record the run RUNNING with its first events (its recovery point: the entry
        tokens), in one transaction; (the run, True) when this call started it.

        A run the client recorded QUEUED is started if it still is; a run already started
        (a start message delivered again) is returned as is. The hot state made after this
        commit is generation 1: this write is the one generation 0 would have flushed.
        """
        started = {
            "status": RunStatus.RUNNING.value,
            "hot_gen": 1,
            "event_seq": len(events),
            "started_at": sa.func.now(),
            "last_activity_at": sa.func.now(),
        }
        entries = [{"type": t, "node_id": n, "data": d} for t, n, d in events]
        with self._hot_tx() as connection:
            row = _START_RUN.first(
                connection,
                {
                    "run_id": run_id,
                    "workflow_id": workflow_id,
                    "status": RunStatus.RUNNING.value,
                    "counter_value": counter_value,
                    "inputs": _json(inputs),
                    "events": _json(entries),
                },
                self._prepare,
            )
            if row is not None:
                return RunRecord.from_row(row), True
            # a QUEUED run the client recorded, or a start delivered again
            queued = connection.execute(
                sa.update(Run)
                .where(
                    Run.id == run_id,
                    Run.status == RunStatus.QUEUED.value,
                    Run.hot_gen == 0,
                )
                .values(started)
                .returning(*Run.__table__.c)
            ).first()
            if queued is not None:
                insert_events(connection, run_id, 1, events, counted=True)
                return RunRecord.from_row(queued._mapping), True
            found = connection.execute(sa.select(Run.__table__).where(Run.id == run_id)).one()
            return RunRecord.from_row(found._mapping), False

    def persist_progress_many(self, batch: Sequence[Progress]) -> dict[str, Fence]:
        """Copy running runs' new events and the outputs they name, in one transaction (one
        commit, not one per run). Each run is fenced on its own, by the generation of its
        hot state it was read at: a refused run writes nothing, the others do. Runs are
        written in id order, so two batches never wait on each other's rows in a cycle."""
        verdicts: dict[str, Fence] = {}
        with self._tx() as session:
            for progress in sorted(batch, key=lambda p: p.run_id):
                run_id = progress.run_id
                last = progress.first_seq + len(progress.events) - 1
                try:
                    verdicts[run_id] = claim_generation(
                        session, run_id, progress.gen, {"event_seq": _seq_through(last)}
                    )
                except NotFoundError:
                    verdicts[run_id] = Fence.GONE
                    continue
                if verdicts[run_id] is Fence.ACCEPTED:
                    insert_events(
                        session, run_id, progress.first_seq, progress.events, counted=True
                    )
                    insert_payloads(session, run_id, progress.payloads)
        return verdicts

    def load_payloads(self, run_id: str, refs: Sequence[str] | None = None) -> dict[str, Any]:
        """The stored outputs of a run by ref: every one (to rebuild its hot state), or
        those named (a run document's, in one query rather than one per node)."""
        query = sa.select(Payload.ref, Payload.data).where(Payload.run_id == run_id)
        if refs is not None:
            if not refs:
                return {}
            query = query.where(Payload.ref.in_(list(refs)))
        with self._tx() as session:
            rows = session.execute(query).all()
        return {ref: data for ref, data in rows}

    def persist_end(
        self,
        run_id: str,
        gen: int,
        status: RunStatus,
        error: str | None,
        history: Callable[[list[dict[str, Any]]], EndedHistory],
        stored_through: int = 0,
    ) -> tuple[Fence, RunView | None]:
        """End the run (``status``) and write its history, in one transaction, if it is
        active and PostgreSQL last accepted generation ``gen``: of any number of racing
        finishes exactly one writes, and an ended run is never written again.

        ``history`` builds what to write from the run's stored events numbered up to
        ``stored_through`` (those Redis trimmed), read in this transaction: a run's end
        is one transaction whether or not it was flushed. With the verdict comes, when it
        is ACCEPTED, the ended run and its statistics as PostgreSQL now holds them."""
        with self._hot_tx() as connection:
            # stored events never change under their numbers: read before the claim, they
            # tell the claim how far event_seq goes (no statement of its own for that)
            head = _stored_events(connection, run_id, stored_through) if stored_through else []
            ended = history(head)
            row = _END_RUN.first(
                connection,
                {
                    "run_id": run_id,
                    "gen": gen,
                    "status": status.value,
                    "error": error,
                    "active": _ACTIVE,
                    "first_seq": ended.first_seq,
                    "last_seq": ended.first_seq + len(ended.events) - 1,
                    "checks": ended.completion_checks,
                    **_end_rows(ended),
                },
                self._prepare,
            )
            if row is None or not row["claimed"]:  # (its SELECT returns one row)
                return _refused(connection, run_id), None
            _diverged(connection, run_id, ended.first_seq, ended.events, set(row["inserted"]))
            insert_dead_letters(connection, run_id, ended.dead_letters)
            stats = {name: int(row[name] or 0) for name in STAT_COLUMNS}
            return Fence.ACCEPTED, RunView(RunRecord.from_row(row), stats, None)


def _end_rows(ended: EndedHistory) -> dict[str, str]:
    """The JSON parameters of sql/end_run.sql."""
    return {
        "events": _json([{"type": t, "node_id": n, "data": d} for t, n, d in ended.events]),
        "payloads": _json(
            [
                {"ref": ref, "data": data, "size": len(canonical_json(data).encode())}
                for ref, data in ended.payloads.items()
            ]
        ),
        "executions": _json(
            [
                {
                    "node_id": e.node_id,
                    "iteration": e.iteration,
                    "attempt": e.attempt,
                    "status": e.status,
                    "output": e.output,
                    "error": e.error,
                }
                for e in ended.executions
            ]
        ),
        "loops": _json(dict(ended.loops)),
        "stats": _json(dict(ended.stats)),
    }


def _stored_events(session: Tx, run_id: str, through: int) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(EventLog.__table__)
        .where(EventLog.run_id == run_id, EventLog.seq <= through)
        .order_by(EventLog.seq)
    ).all()
    return [EventRecord.from_row(row._mapping).as_event() for row in rows]
