"""Replaying one run: read its events and its stored state, fold, compare, report.

A live run (hot state in Redis) is held against Redis, read in one transaction with the
events Redis still holds (the earlier ones, already flushed, are read back from
PostgreSQL). An ended run, or an active one Redis has lost, is held against PostgreSQL.
Both are held against the run document ``get_run`` makes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wfrunner import client, fencing
from wfrunner.compiler import IR
from wfrunner.replay import compare
from wfrunner.replay.compare import Difference
from wfrunner.replay.fold import ReplayedState, replay
from wfrunner.runtime import Runtime, runtime
from wfrunner.states import TERMINAL_RUN_STATES
from wfrunner.store import RunRecord

#: where the stored state came from
REDIS, POSTGRESQL = "redis", "postgresql"

#: said of every report: what no event records
_NOT_REPLAYED = "stats.completion_checks is not replayed: checks are counted in Redis, not events"


@dataclass(frozen=True)
class ReplayReport:
    run_id: str
    #: where the stored state was read: "redis" (a live run) or "postgresql"
    source: str
    state: ReplayedState
    differences: list[Difference]
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences

    def lines(self) -> list[str]:
        """The report as ``wfrunner replay`` prints it."""
        head = (
            f"run {self.run_id}: {self.state.status.value}, {self.state.events} events "
            f"replayed against {self.source}: "
        )
        head += "identical" if self.identical else f"{len(self.differences)} differences"
        return [head, *map(str, self.differences), *(f"note: {n}" for n in self.notes)]

    def to_dict(self) -> dict[str, Any]:
        state = self.state
        return {
            "run_id": self.run_id,
            "source": self.source,
            "identical": self.identical,
            "differences": [d.to_dict() for d in self.differences],
            "notes": self.notes,
            "replayed": {
                "status": state.status.value,
                "error": state.error,
                "events": state.events,
                "counter": state.counter,
                "pending": sorted(state.pending),
                "applied": sorted(state.applied),
                "joins": state.joins,
                "ctx": state.context,
                "nodes": {
                    node_id: {
                        "status": status.value,
                        "attempts": state.nodes[node_id].started,
                        "iterations": state.nodes[node_id].completed,
                        "output_refs": state.nodes[node_id].output_refs,
                        "error": state.nodes[node_id].error,
                    }
                    for node_id, status in state.node_statuses().items()
                },
                "path": state.path,
                "loops": state.loops,
                "stats": state.statistics(),
            },
        }


def replay_run(run_id: str, rt: Runtime | None = None) -> ReplayReport:
    """Rebuild the run's state from its event log alone and compare it with the stored
    state. NotFoundError for an unknown run id."""
    rt = rt or runtime()
    run = rt.store.get_run(run_id)
    ir = rt.ir(run.workflow_id)
    if run.status not in TERMINAL_RUN_STATES:
        live = _live(rt, run, ir)
        if live is not None:
            return live
        run = rt.store.get_run(run_id)  # it may have ended since it was read
    return _stored(rt, run, ir)


def _fold(run_id: str, ir: IR, events: list[dict[str, Any]]) -> ReplayedState:
    joins = {n.id: n.dependencies for n in ir.nodes.values() if n.wait_for_all}
    ruled = [n.id for n in ir.nodes.values() if n.join is not None]
    return replay(run_id, events, list(ir.nodes), joins, ruled)


def _live(rt: Runtime, run: RunRecord, ir: IR) -> ReplayReport | None:
    view = rt.state.hot_view(run.id)
    if not view.meta:
        return None
    _, trimmed = fencing.position(view.meta)
    head = [e.as_event() for e in rt.store.list_events(run.id) if e.seq <= trimmed]
    state = _fold(run.id, ir, head + view.tail)
    found = compare.hot(state, view)
    found += compare.document(state, client.get_run(run.id, rt))
    return ReplayReport(run.id, REDIS, state, found, [*state.notes, _NOT_REPLAYED])


def _stored(rt: Runtime, run: RunRecord, ir: IR) -> ReplayReport:
    events = [e.as_event() for e in rt.store.list_events(run.id)]
    state = _fold(run.id, ir, events)
    notes = list(state.notes)
    ended = run.status in TERMINAL_RUN_STATES
    found = compare.run_row(state, run, ended=True)
    found += compare.document(state, client.get_run(run.id, rt))
    if ended:
        found += compare.statistics(state, rt.store.read_run(run.id).stats)
        found += compare.executions(state, rt.store.list_node_executions(run.id))
        found += compare.loops(state, rt.store.list_loop_states(run.id))
    else:
        notes.append("the run has no hot state in Redis: compared with PostgreSQL only")
    applied = rt.store.list_applied_keys(run.id)
    if applied:
        found += compare.applied_keys(state, applied)
    snapshot = rt.store.latest_counter_snapshot(run.id)
    if snapshot is not None:
        found += compare.counter_snapshot(state, snapshot)
    return ReplayReport(run.id, POSTGRESQL, state, found, [*notes, _NOT_REPLAYED])
