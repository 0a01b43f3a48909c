"""The invariants every fault test checks, over PostgreSQL's event log and Redis.

After every test:

- each run has one terminal state (and one terminal event matching it); none is left
  QUEUED or RUNNING ("stuck");
- each node of a COMPLETED run ran at least once and completed exactly once (or was
  skipped and never started); each token was consumed once and emitted once;
- no node started before its live predecessors completed;
- the counter never went negative (no worker logged the Lua scripts' refusal, and the
  sampled counters never were);
- no hot key of a finished run remains in Redis;
- the event log of a run is gap-free (seq 1..n): no half-written transition;
- the run's node_executions are what its event log says (nodes, passes, statuses, outputs).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from wfrunner import history, redisclient
from wfrunner.compiler.ir import IR
from wfrunner.engine.tokens import Token
from wfrunner.runtime import Runtime
from wfrunner.states import TERMINAL_RUN_STATES

_TERMINAL_EVENTS = {"run_completed": "COMPLETED", "run_failed": "FAILED",
                    "run_cancelled": "CANCELLED"}  # fmt: skip
NEGATIVE = "counter would go negative"


@dataclass
class Report:
    runs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    #: node_started events (every attempt that began a node)
    executions: int = 0
    completions: int = 0
    stuck: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        """Executions beyond one per completed node: redone work, never a second effect."""
        return self.executions - self.completions

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "statuses": dict(self.statuses),
            "executions": self.executions,
            "completions": self.completions,
            "duplicates": self.duplicates,
            "stuck": self.stuck,
            "problems": self.problems[:20],
            **self.extra,
        }

    def __str__(self) -> str:
        return "fault report: " + json.dumps(self.as_dict(), sort_keys=True)


def _token_key(data: dict[str, Any]) -> str | None:
    token = data.get("token")
    return Token.from_dict(token).key if token else None


def _check_run(rt: Runtime, client: redis.Redis, run_id: str, report: Report) -> None:
    if check_history(rt, run_id, report):
        leftovers = _hot_keys(client, run_id)
        if leftovers:
            report.problems.append(f"{run_id}: hot keys remain after the end: {sorted(leftovers)}")


def check_history(rt: Runtime, run_id: str, report: Report) -> bool:
    """The invariants of what PostgreSQL holds of an ended run (False: it has not ended)."""
    run = rt.store.get_run(run_id)
    report.statuses[run.status.value] += 1
    if run.status not in TERMINAL_RUN_STATES:
        report.stuck.append(run_id)
        return False
    events = rt.store.list_events(run_id)
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(events) + 1)):
        report.problems.append(f"{run_id}: event seqs have gaps or repeats")
    ends = [_TERMINAL_EVENTS[e.type] for e in events if e.type in _TERMINAL_EVENTS]
    if ends != [run.status.value]:
        report.problems.append(f"{run_id}: status {run.status.value}, terminal events {ends}")
    started = [e for e in events if e.type == "node_started"]
    completed = [e for e in events if e.type == "node_completed"]
    report.executions += len(started)
    report.completions += len(completed)
    _check_tokens(run_id, events, report)
    _check_executions(rt, run_id, events, report)
    ir = rt.ir(run.workflow_id)
    _check_order(run_id, ir, events, report)
    if run.status.value == "COMPLETED":
        _check_nodes(run_id, ir, events, report)
    return True


def _hot_keys(client: redis.Redis, run_id: str, grace: float = 5.0) -> list[str]:
    """The run's keys still in Redis ``grace`` s after it ended: the store records the end
    state a moment before the finishing task deletes the keys."""
    deadline = time.monotonic() + grace
    while True:
        leftovers = sorted(client.scan_iter(match=f"wfr:{{{run_id}}}:*", count=1000))
        if not leftovers or time.monotonic() > deadline:
            return leftovers
        time.sleep(0.1)


def _map_internal(data: dict[str, Any]) -> bool:
    """A map node's item or finish token (from ``M[i]`` or ``M[*]``): its map_commit
    records it in the map's events (map_started, map_item), not in a token_emitted."""
    return str(data["token"].get("from_node") or "").endswith("]")


def _check_tokens(run_id: str, events: Sequence[Any], report: Report) -> None:
    emitted = [_token_key(e.data) for e in events if e.type == "token_emitted"]
    consumed = [
        _token_key(e.data)
        for e in events
        if e.type in ("node_completed", "join_arrived")
        and e.data.get("token")
        and not _map_internal(e.data)
    ]
    for kind, keys_ in (("emitted", emitted), ("consumed", consumed)):
        twice = [k for k, n in Counter(keys_).items() if n > 1]
        if twice:
            report.problems.append(f"{run_id}: tokens {kind} more than once: {twice[:3]}")
    unknown = set(consumed) - set(emitted)
    if unknown:
        report.problems.append(
            f"{run_id}: tokens consumed but never emitted: {sorted(unknown)[:3]}"
        )


def _check_executions(rt: Runtime, run_id: str, events: Sequence[Any], report: Report) -> None:
    """node_executions, written when the run ended, agree with the event log."""
    outputs = rt.store.load_payloads(run_id)
    expected = history.execution_rows([e.as_event() for e in events], outputs)
    want = sorted((r.node_id, r.iteration, r.attempt, r.status, repr(r.output)) for r in expected)
    have = sorted(
        (r.node_id, r.iteration, r.attempt, r.status.value, repr(r.output))
        for r in rt.store.list_node_executions(run_id)
    )
    if want != have:
        extra = sorted(set(have) - set(want))[:3]
        missing = sorted(set(want) - set(have))[:3]
        report.problems.append(
            f"{run_id}: node_executions disagree with the event log: extra {extra}, "
            f"missing {missing}"
        )


def _check_order(run_id: str, ir: IR, events: Sequence[Any], report: Report) -> None:
    """No node_started before the node_completed of each predecessor that completed."""
    first_done: dict[str, int] = {}
    for e in events:
        if e.type == "node_completed" and e.node_id not in first_done:
            first_done[str(e.node_id)] = e.seq
    for e in events:
        if e.type != "node_started":
            continue
        for pred in ir.nodes[str(e.node_id)].dependencies:
            done = first_done.get(pred)
            if done is not None and done > e.seq:
                report.problems.append(
                    f"{run_id}: {e.node_id} started (seq {e.seq}) before {pred} completed"
                )


def _check_nodes(run_id: str, ir: IR, events: Sequence[Any], report: Report) -> None:
    """Each node instance (node, loop scope) that started completed exactly once; each
    node completed at least once or was skipped and never started."""

    def instance(e: Any) -> tuple[str, str]:
        return str(e.node_id), str((e.data or {}).get("scope", ""))

    started = Counter(instance(e) for e in events if e.type == "node_started")
    completed = Counter(instance(e) for e in events if e.type == "node_completed")
    skipped = {e.node_id for e in events if e.type == "node_skipped"}
    for node_id, scope in sorted(set(started) | set(completed)):
        if completed[(node_id, scope)] != 1 or started[(node_id, scope)] < 1:
            report.problems.append(
                f"{run_id}: node {node_id} (scope {scope!r}) started "
                f"{started[(node_id, scope)]}x, completed {completed[(node_id, scope)]}x"
            )
    ran = {node_id for node_id, _ in completed}
    for node_id in ir.nodes:
        if node_id not in ran and node_id not in skipped:
            report.problems.append(f"{run_id}: node {node_id} neither completed nor skipped")


def check_runs(
    rt: Runtime,
    client: redis.Redis,
    run_ids: Iterable[str],
    logs: Iterable[str] = (),
    sampler: CounterSampler | None = None,
    **extra: Any,
) -> Report:
    """Check every invariant; returns the report (``assert_clean`` raises on problems)."""
    report = Report(extra=dict(extra))
    for run_id in run_ids:
        report.runs += 1
        _check_run(rt, client, run_id, report)
    negative = sum(text.count(NEGATIVE) for text in logs)
    if negative:
        report.problems.append(f"workers logged {negative} refused negative counter updates")
    if sampler is not None:
        report.extra["counter_samples"] = sampler.samples
        if sampler.minimum < 0:
            report.problems.append(f"a counter was sampled at {sampler.minimum}")
    print(report)
    return report


def assert_clean(report: Report, context: str = "") -> None:
    assert not report.stuck and not report.problems, f"{report}\n{context}"


class CounterSampler:
    """Reads every run counter in Redis every ``interval`` s, remembering the minimum."""

    def __init__(self, url: str, interval: float = 0.2) -> None:
        self.client = redisclient.connect(url, decode_responses=True, socket_timeout=2)
        self.interval = interval
        self.minimum = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> CounterSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                keys_ = list(self.client.scan_iter(match="wfr:{*}:counter", count=1000))
                with self.client.pipeline(transaction=False) as pipe:  # (one slot per run)
                    for key in keys_:
                        pipe.get(key)
                    values = pipe.execute()
            except redis.RedisError:
                continue  # Redis may be down on purpose
            for value in values:
                if value is not None:
                    self.samples += 1
                    self.minimum = min(self.minimum, int(value))
