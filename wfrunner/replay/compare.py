"""Holding a replayed state against what is stored: pure comparisons, one per store part.

Each function takes the replay and one stored part (already read) and returns the
differences, each ``field: replayed X, stored Y``. Outputs are compared by content
address: a stored output's ref is the sha256 of its canonical JSON, as the engine made it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wfrunner.engine.payloads import canonical_json, payload_ref
from wfrunner.engine.runstate import HotView
from wfrunner.replay.fold import ReplayedExecution, ReplayedState
from wfrunner.states import RunStatus
from wfrunner.store import CounterSnapshot, NodeExecutionRecord, RunRecord

#: how a set member is shown when one side lacks it
PRESENT, ABSENT = "present", "absent"


@dataclass(frozen=True)
class Difference:
    field: str
    replayed: Any
    stored: Any

    def __str__(self) -> str:
        return f"{self.field}: replayed {_show(self.replayed)}, stored {_show(self.stored)}"

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "replayed": self.replayed, "stored": self.stored}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _differ(name: str, replayed: Any, stored: Any) -> list[Difference]:
    return [] if replayed == stored else [Difference(name, replayed, stored)]


def _members(name: str, replayed: Iterable[str], stored: Iterable[str]) -> list[Difference]:
    """One difference per member only one side holds."""
    ours, theirs = set(replayed), set(stored)
    return [
        Difference(
            f"{name}[{m}]", PRESENT if m in ours else ABSENT, PRESENT if m in theirs else ABSENT
        )
        for m in sorted(ours ^ theirs)
    ]


def _entries(name: str, replayed: Mapping[str, Any], stored: Mapping[str, Any]) -> list[Difference]:
    """One difference per key whose value differs (a missing key shows as null)."""
    found: list[Difference] = []
    for key in sorted(set(replayed) | set(stored)):
        found += _differ(f"{name}[{key}]", replayed.get(key), stored.get(key))
    return found


def ref_of(output: Any) -> str:
    """The content address the engine gave ``output``."""
    return payload_ref(canonical_json(output))


def _same_output(ref: str | None, output: Any) -> bool:
    """A stored output (null when there is none) against a replayed ref."""
    if output is None:
        return ref is None or ref == ref_of(None)
    return ref == ref_of(output)


def run_row(state: ReplayedState, run: RunRecord, ended: bool) -> list[Difference]:
    """PostgreSQL's ``runs`` row: status, error, the starting counter and, once the run
    ended (every event is stored then), the number of events; a COMPLETED run ended with
    no token in flight (no column holds that counter: completion requires it)."""
    found = _differ("runs.status", state.status.value, run.status.value)
    found += _differ("runs.error", state.error, run.error)
    if state.events:
        found += _differ("runs.counter_value", state.entry_tokens, run.counter_value)
    if ended:
        found += _differ("runs.event_seq", state.events, run.event_seq)
    if run.status is RunStatus.COMPLETED:  # the completion check saw the counter at 0
        found += _differ("runs.counter_at_end", state.counter, 0)
    return found


def statistics(state: ReplayedState, stored: Mapping[str, int]) -> list[Difference]:
    """``run_statistics`` of an ended run (completion checks are not in the events)."""
    found: list[Difference] = []
    for name, value in state.statistics().items():
        found += _differ(f"run_statistics.{name}", value, stored.get(name))
    return found


def executions(state: ReplayedState, rows: Iterable[NodeExecutionRecord]) -> list[Difference]:
    """``node_executions``, row by (node, iteration, attempt)."""
    ours = {(e.node_id, e.iteration, e.attempt): e for e in state.executions}
    theirs = {(r.node_id, r.iteration, r.attempt): r for r in rows}
    found: list[Difference] = []
    for key in sorted(set(ours) | set(theirs)):
        name = f"node_executions[{key[0]} iteration {key[1]} attempt {key[2]}]"
        mine, stored = ours.get(key), theirs.get(key)
        if mine is None or stored is None:
            found.append(Difference(name, _row(mine), _row(stored)))
            continue
        found += _differ(f"{name}.status", mine.status.value, stored.status.value)
        found += _differ(f"{name}.error", mine.error, stored.error)
        if not _same_output(mine.output_ref, stored.output):
            found.append(Difference(f"{name}.output", mine.output_ref, _ref_shown(stored.output)))
    return found


def _row(row: ReplayedExecution | NodeExecutionRecord | None) -> str:
    """A row only one side holds, shown by its status."""
    return ABSENT if row is None else row.status.value


def _ref_shown(output: Any) -> str:
    return f"ref {ref_of(output)[:12]}... ({canonical_json(output)[:60]})"


def document(state: ReplayedState, doc: Mapping[str, Any]) -> list[Difference]:
    """The run document ``get_run`` returns: status, error, path, statistics and each
    node's status, attempts, passes, output and error."""
    found = _differ("document.status", state.status.value, doc.get("status"))
    found += _differ("document.error", state.error, doc.get("error"))
    found += _differ("document.path", state.path, doc.get("path"))
    statuses = state.node_statuses()
    stored_nodes: Mapping[str, Any] = doc.get("nodes") or {}
    found += _members("document.nodes", statuses, stored_nodes)
    for node_id, node in state.nodes.items():
        info = stored_nodes.get(node_id)
        if info is None:
            continue
        name = f"document.nodes.{node_id}"
        found += _differ(f"{name}.status", statuses[node_id].value, info.get("status"))
        found += _differ(f"{name}.attempts", node.started, info.get("attempts"))
        found += _differ(f"{name}.iterations", node.completed, info.get("iterations"))
        found += _differ(f"{name}.error", node.error if node.failed else None, info.get("error"))
        latest = node.output_refs[-1] if node.output_refs else None
        if not _same_output(latest, info.get("output")):
            found.append(Difference(f"{name}.output", latest, _ref_shown(info.get("output"))))
    if state.ended:
        stats: Mapping[str, Any] = doc.get("stats") or {}
        for key, value in state.statistics().items():
            found += _differ(f"document.stats.{key}", value, stats.get(key))
    return found


def loops(state: ReplayedState, stored: Mapping[str, int]) -> list[Difference]:
    """``loop_state``: each loop's last pass."""
    return _entries("loop_state", state.loops, stored)


def applied_keys(state: ReplayedState, stored: set[str]) -> list[Difference]:
    """PostgreSQL's ``applied_keys`` (only when the run has rows there)."""
    return _members("applied_keys", state.applied, stored)


def counter_snapshot(state: ReplayedState, snapshot: CounterSnapshot) -> list[Difference]:
    """The latest ``run_counter_snapshots`` row, when it was taken after as many
    operations as the replay applied."""
    if snapshot.applied_ops != len(state.applied):
        return []
    return _differ("run_counter_snapshots.counter_value", state.counter, snapshot.counter_value)


#: the ``state`` of a run's meta for each run status
_META_STATE = {
    RunStatus.RUNNING: "running",
    RunStatus.WAITING: "running",
    RunStatus.PAUSED: "paused",
    RunStatus.COMPLETED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
}


def hot(state: ReplayedState, stored: HotView) -> list[Difference]:
    """Redis's hot state: run state, counter, outbox, applied op keys, joins, context."""
    found = _differ(
        "redis.meta.state",
        _META_STATE.get(state.status, state.status.value),
        stored.meta.get("state"),
    )
    found += _differ("redis.meta.error", state.error or "", stored.meta.get("error") or "")
    found += _differ("redis.counter", state.counter, stored.counter)
    found += _members("redis.pending", state.pending, stored.pending)
    found += _members("redis.applied", state.applied, stored.applied)
    found += _entries("redis.joins", state.joins, stored.joins)
    found += _entries("redis.ctx", state.context, stored.context)
    return found
