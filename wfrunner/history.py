"""Projections of a run's events: node states, the token path, statistics, and the rows
persisted to PostgreSQL when the run ends. Pure: events in, views out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from wfrunner.engine.rewind import redrives
from wfrunner.engine.tokens import Token
from wfrunner.states import TERMINAL_RUN_STATES, NodeStatus, RunStatus
from wfrunner.store import NewDeadLetter, RunRecord
from wfrunner.store.history import ExecutionRow

Event = Mapping[str, Any]


@dataclass
class NodeProgress:
    started: int = 0
    completed: int = 0
    #: attempts that ended in an error: retried, or failed
    errors: int = 0
    #: the latest attempt failed the node (cleared when a retried dead letter runs it again)
    failed: bool = False
    skipped: bool = False
    #: why it was skipped, when more than "on a path not taken" (a join whose rule never
    #: held, a branch a join_rest "cancel" join cut short)
    skip_reason: str | None = None
    #: attempts a join_rest "cancel" join cut short while they ran
    cut: int = 0
    error: str | None = None
    #: the handler's traceback of the failure, when a handler raised
    traceback: str | None = None
    output_refs: list[str] = field(default_factory=list)
    #: seconds between each attempt's start and its end, summed (None: never ended one)
    seconds: float | None = None
    #: start time of each attempt not ended yet, by scope (loop pass)
    begun: dict[str, float] = field(default_factory=dict)
    #: a human node waits for its approval
    waiting: bool = False
    #: the failure was caught by the node's on_error node (the run went on)
    caught: bool = False
    #: a subworkflow node: the child run it started (its latest)
    child_run_id: str | None = None
    #: a map node (config.map_over): its latest list's elements and the results recorded
    items: dict[str, int] | None = None
    #: a map node whose items are running (its retried elements count as errors above)
    mapping: bool = False

    @property
    def open(self) -> int:
        """Attempts begun and not ended (running, or cut short by a crash)."""
        return max(0, self.started - self.completed - self.errors - self.cut)

    def status(self, ended: bool) -> NodeStatus:
        return node_status(self, self.open > 0 or self.mapping, ended)


class _NodeFlags(Protocol):
    failed: bool
    waiting: bool
    completed: int
    skipped: bool


def node_status(node: _NodeFlags, running: bool, ended: bool) -> NodeStatus:
    """A node's status in the run document (docs/run-document.md); ``running``: it has an
    attempt begun and not ended. Replay (:mod:`wfrunner.replay.fold`) applies it too."""
    if node.failed:
        return NodeStatus.FAILED
    if node.waiting and not ended:
        return NodeStatus.WAITING
    if running and not ended:
        return NodeStatus.RUNNING
    if node.completed:
        return NodeStatus.COMPLETED
    if node.skipped or ended:
        return NodeStatus.SKIPPED
    return NodeStatus.PENDING


def progress(node_ids: Iterable[str], events: Sequence[Event]) -> dict[str, NodeProgress]:
    nodes = {node_id: NodeProgress() for node_id in node_ids}
    for evt in events:
        node = nodes.get(evt.get("node") or "")
        if node is None:
            continue
        _apply(node, evt)
    return nodes


def _apply(node: NodeProgress, evt: Event) -> None:
    kind = evt["type"]
    _time(node, kind, evt)
    if kind == "node_started":
        node.started += 1
        node.failed = False
    elif kind == "node_completed":
        node.completed += 1
        node.waiting = False
        node.output_refs.append(str(evt.get("output_ref")))
    elif kind == "approval_requested":
        node.waiting = True
    elif kind == "approval_decided":  # running again until its delivery commits
        node.waiting = False
    elif kind == "node_cancelled":  # cut short by the run's cancellation
        node.errors += 1
        node.failed = True
        node.waiting = False
        node.error = evt.get("error")
    elif kind == "node_retrying":
        node.errors += 1
    elif kind == "node_failed":
        node.errors += 1
        node.failed = True
        node.waiting = False
        node.error = evt.get("error")
        node.traceback = evt.get("traceback")
        node.caught = bool(evt.get("caught"))
    elif kind == "node_skipped":
        node.skipped = True
        node.skip_reason = evt.get("reason") or node.skip_reason
        node.cut += evt.get("was") == "running"
    elif kind == "child_started":
        node.child_run_id = evt.get("child_run_id")
    _apply_map(node, kind, evt)


def _apply_map(node: NodeProgress, kind: str, evt: Event) -> None:
    """A map node's items (docs/map.md): one map_started per list, one map_item per
    element done; the node's own node_completed (or node_failed) ends them."""
    if kind == "map_started":
        node.items = {"total": int(evt.get("total") or 0), "done": 0}
        node.mapping = True
    elif kind == "map_item" and node.items is not None:
        node.items["done"] += 1
        # an element done after the node failed: its dead letter was retried
        node.failed = False
        node.mapping = node.items["done"] < node.items["total"]
    elif kind in ("node_completed", "node_failed", "node_cancelled"):
        node.mapping = False


def _time(node: NodeProgress, kind: str, evt: Event) -> None:
    """Pair each attempt's start with its end (completed, retrying or failed) by scope."""
    scope, t = str(evt.get("scope") or ""), evt.get("t")
    if not isinstance(t, int | float):
        return
    if kind == "node_started":
        node.begun[scope] = t
    elif kind in _ENDS and scope in node.begun:
        node.seconds = (node.seconds or 0.0) + max(0.0, t - node.begun.pop(scope))


#: the events that end a node's attempt
_ENDS = ("node_completed", "node_retrying", "node_failed", "node_cancelled")


def node_documents(
    nodes: Mapping[str, NodeProgress], ended: bool, load: Callable[[list[str]], list[Any]]
) -> dict[str, dict[str, Any]]:
    """The run document's ``nodes`` (docs/run-document.md): status, attempts, iterations,
    output (latest pass), and the seconds its attempts ran (summed over passes and
    retries)."""
    latest = {n: p.output_refs[-1] for n, p in nodes.items() if p.output_refs}
    outputs = dict(zip(latest, load(list(latest.values())), strict=True))
    return {
        node_id: {
            "status": p.status(ended).value,
            "attempts": p.started,
            "iterations": p.completed,
            "output": outputs.get(node_id),
            "seconds": None if p.seconds is None else round(p.seconds, 6),
            **({"error": p.error} if p.failed else {}),
            **({"traceback": p.traceback} if p.failed and p.traceback else {}),
            **({"caught": True} if p.failed and p.caught else {}),
            **({"child_run_id": p.child_run_id} if p.child_run_id else {}),
            **({"items": dict(p.items)} if p.items is not None else {}),
            **({"reason": p.skip_reason} if p.skip_reason and not p.completed else {}),
        }
        for node_id, p in nodes.items()
    }


def path(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The tokens in emission order, each ``{"from": node or None, "to": node}``."""
    return [{"from": e.get("from"), "to": e["to"]} for e in events if e["type"] == "token_emitted"]


def statistics(
    events: Sequence[Event], nodes: Mapping[str, NodeProgress], ended: bool
) -> dict[str, int]:
    """The run document's counts: ``nodes_executed`` node passes completed (a loop's node
    once per pass), ``nodes_skipped`` nodes whose status is SKIPPED (once the run ended,
    those that never ran too: they have no event of their own). ``nodes``: the
    :func:`progress` of ``events``."""
    kinds = [e["type"] for e in events]
    states = [p.status(ended) for p in nodes.values()]
    emitted = kinds.count("token_emitted")
    return {
        "nodes_executed": kinds.count("node_completed"),
        "nodes_skipped": states.count(NodeStatus.SKIPPED),
        "tokens_emitted": emitted,
        "tokens_consumed": emitted,
    }


def execution_rows(events: Sequence[Event], outputs: Mapping[str, Any]) -> list[ExecutionRow]:
    """One row per node pass: iteration = the pass number, attempt = deliveries that ran it."""
    rows: list[ExecutionRow] = []
    passes: dict[str, int] = {}
    attempts: dict[tuple[str, str], int] = {}
    for evt in events:
        node, kind, scope = evt.get("node"), evt["type"], str(evt.get("scope", ""))
        if node is None:
            continue
        if kind == "node_started":
            attempts[(node, scope)] = attempts.get((node, scope), 0) + 1
            continue
        status = {
            "node_completed": NodeStatus.COMPLETED,
            "node_failed": NodeStatus.FAILED,
            "node_cancelled": NodeStatus.FAILED,
            "node_skipped": NodeStatus.SKIPPED,
        }.get(kind)
        if status is None:
            continue
        passes[node] = passes.get(node, 0) + 1
        rows.append(
            ExecutionRow(
                node_id=node,
                iteration=passes[node],
                attempt=max(1, attempts.get((node, scope), 1)),
                status=status.value,
                output=outputs.get(str(evt.get("output_ref"))),
                error=evt.get("error"),
            )
        )
    return rows


def loop_passes(events: Sequence[Event]) -> dict[str, int]:
    return {str(e["node"]): int(e["pass"]) for e in events if e["type"] == "loop_decided"}


def dead_letters(events: Sequence[Event]) -> list[NewDeadLetter]:
    """A letter per token whose node failed (its attempts ran out) and that no later
    delivery (after ``wfrunner dlq retry``) completed."""
    letters: dict[str, NewDeadLetter] = {}
    for evt in events:
        if not evt.get("token") or evt["type"] not in ("node_failed", "node_completed"):
            continue
        if evt.get("caught"):  # its on_error node took over: nothing to retry
            continue
        token = Token.from_dict(evt["token"])
        if evt["type"] == "node_completed":
            letters.pop(token.key, None)
            continue
        letters[token.key] = NewDeadLetter(
            node_id=token.to_node,
            token_key=token.key,
            token=token.to_dict(),
            error=str(evt.get("error")),
            attempts=int(evt.get("attempt", 1)),
        )
    return list(letters.values())


def live_status(recorded: RunStatus, nodes: Mapping[str, NodeProgress]) -> RunStatus:
    """A running run is WAITING while any of its approvals is undecided: decided from its
    events, not from PostgreSQL's status (which follows them, by a write of its own)."""
    if recorded not in (RunStatus.RUNNING, RunStatus.WAITING):
        return recorded
    waiting = any(p.waiting for p in nodes.values())
    return RunStatus.WAITING if waiting else RunStatus.RUNNING


def document(
    run: RunRecord,
    node_ids: Iterable[str],
    events: Sequence[Event],
    stored_stats: Mapping[str, int],
    load: Callable[[list[str]], list[Any]],
    workflow: tuple[str, int],
) -> dict[str, Any]:
    """The run document (docs/run-document.md) of ``run`` with these events; ``load``
    gives the outputs of refs, ``workflow`` the name and version of the run's workflow.
    One builder for a reader (``get_run``) and for the worker that records the run's end
    (it hands the document to the run's waiters)."""
    ended = run.status in TERMINAL_RUN_STATES
    nodes = progress(node_ids, events)
    node_docs = node_documents(nodes, ended, load)
    reruns = redrives(events)
    return {
        "run_id": run.id,
        "workflow_id": run.workflow_id,
        "workflow_name": workflow[0],
        "workflow_version": workflow[1],
        "status": live_status(run.status, nodes).value,
        "error": run.error,
        "inputs": run.inputs,
        "nodes": node_docs,
        "path": path(events),
        "stats": {**stored_stats, **statistics(events, nodes, ended)},
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "completed_at": run.completed_at.isoformat() if run.completed_at else None,
        **aftermath_fields(run, events),
        # wfrunner rerun: the attempt running (or last run) and each rerun that made one
        "attempt": 1 + len(reruns),
        "redrives": reruns,
    }


def aftermath_fields(run: RunRecord, events: Sequence[Event]) -> dict[str, Any]:
    """The document's ``parent`` (a sub-workflow's child run: the run and node that
    started it) and ``failure_handler`` (what the workflow's on_failure handler did),
    present only when there is one."""
    fields: dict[str, Any] = {}
    if run.parent_run_id:
        fields["parent"] = {"run_id": run.parent_run_id, "node": run.parent_node}
    for evt in events:
        if evt["type"] in ("failure_handler_ran", "failure_handler_failed"):
            ran = evt["type"] == "failure_handler_ran"
            fields["failure_handler"] = {
                "handler": evt.get("handler"),
                "status": "ran" if ran else "failed",
                **({"output": evt.get("output")} if ran else {"error": evt.get("error")}),
            }
    return fields
