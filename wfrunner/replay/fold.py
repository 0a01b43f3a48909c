"""Folding a run's events into the state they imply: pure, events in, state out.

Each event type has one small handler (:data:`HANDLERS`) that changes the state the way
the script that appended the event changed Redis, so a replay can be held against what
Redis or PostgreSQL store. The correspondence (see ``lua/start_run.lua``,
``lua/commit_node.lua`` and :mod:`wfrunner.engine.executor`):

- ``run_started``: the start's op key (``init``) is applied.
- ``token_emitted``: +1 on the counter, the token joins the outbox (``pending``); a token
  a node sends to a join it waits on is that join's arrival, recorded by the same commit.
- ``node_completed`` / ``join_arrived`` carrying a ``token``: the token is consumed, -1
  on the counter, its ``advance`` op key applied, out of the outbox. A ``join_arrived``
  without a token is a dead arrival (a path not taken): no token moves.
- ``node_failed`` does not consume its token: the run ends with it in flight; unless it
  was caught (``caught``: the node's ``on_error`` node took over), when its commit
  consumed the token as a completion's does and ``error_ref`` is its ``ctx`` entry.
- ``run_recovered`` / ``run_resumed``: the run was rebuilt from PostgreSQL
  (:mod:`wfrunner.recovery`), which records only the join arrivals that an event names.

The workflow's shape (node ids, the predecessors of each join) comes from its IR, not the
events: which emitted token is a join arrival depends on it, and an ended run shows the
nodes no event names as SKIPPED.

What the events cannot tell (documented rather than guessed):

- ``token_emitted`` written before tokens were carried in events (no ``token``): counted,
  but the outbox and join arrivals cannot be rebuilt from it (a note says so).
- ``node_started`` of a join node is appended by the commit, not when it begins: a join
  blocked in its handler shows PENDING, as the run document shows it.
- An arrival at a join that a rebuilt run records when its finisher is delivered
  (``lua/join_arrive.lua``) has no event until the join's own ``node_completed``.
- Completion checks (``stats.completion_checks``) are counted in Redis, not in events.
- A run failed or cancelled while it had no hot state (``transition_run`` alone), or
  whose inputs were rejected, has no event recording its end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wfrunner.engine import keys
from wfrunner.engine.runstate import DEAD
from wfrunner.engine.tokens import Token
from wfrunner.history import node_status
from wfrunner.replay import mapfold
from wfrunner.states import TERMINAL_RUN_STATES, NodeStatus, RunStatus

Event = Mapping[str, Any]


@dataclass
class ReplayedNode:
    """One node as its events leave it."""

    #: deliveries that began it (``node_started``): the document's ``attempts``
    started: int = 0
    #: passes completed: the document's ``iterations``
    completed: int = 0
    #: attempts that ended in an error (retried or failed)
    errors: int = 0
    failed: bool = False
    skipped: bool = False
    error: str | None = None
    #: a human node waits for its approval
    waiting: bool = False
    #: output ref of each completed pass, in order
    output_refs: list[str] = field(default_factory=list)

    def status(self, ended: bool) -> NodeStatus:
        """The run document's rule (docs/run-document.md)."""
        return node_status(self, self.started > self.completed + self.errors, ended)


@dataclass(frozen=True)
class ReplayedExecution:
    """One node pass as ``node_executions`` records it."""

    node_id: str
    iteration: int
    attempt: int
    status: NodeStatus
    output_ref: str | None
    error: str | None


@dataclass
class ReplayedState:
    run_id: str
    status: RunStatus = RunStatus.QUEUED
    error: str | None = None
    workflow_id: str | None = None
    #: the counter the run started with (its entry tokens)
    entry_tokens: int = 0
    counter: int = 0
    tokens_emitted: int = 0
    tokens_consumed: int = 0
    #: op keys applied to the counter (``wfr:{run}:applied``)
    applied: set[str] = field(default_factory=set)
    #: the outbox: tokens emitted and not consumed, by token key
    pending: dict[str, Token] = field(default_factory=dict)
    #: node id -> ref of its latest output (``wfr:{run}:ctx``)
    context: dict[str, str] = field(default_factory=dict)
    #: the joins hash as Redis holds it (see lua/join_arrive.lua)
    joins: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, ReplayedNode] = field(default_factory=dict)
    executions: list[ReplayedExecution] = field(default_factory=list)
    path: list[dict[str, str | None]] = field(default_factory=list)
    #: loop node -> its last pass decided
    loops: dict[str, int] = field(default_factory=dict)
    events: int = 0
    #: what could not be rebuilt, one line each
    notes: list[str] = field(default_factory=list)
    #: join node -> its predecessors (from the IR)
    join_inputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: deliveries begun per (node, scope), for the executions' ``attempt``
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    #: passes ended per node, for the executions' ``iteration``
    passes: dict[str, int] = field(default_factory=dict)
    #: join fields known only from a token_emitted (a rebuild does not record them)
    implied_arrivals: set[str] = field(default_factory=set)
    #: map instances "<node>|<scope>" (see :mod:`wfrunner.replay.mapfold`)
    maps: dict[str, mapfold.FoldedMap] = field(default_factory=dict)
    #: the joins with a join rule (docs/dsl.md, "Join rules"): their finisher is named
    #: by the events (join_fired, a fire token), not by the count
    ruled: set[str] = field(default_factory=set)

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_RUN_STATES

    def node(self, node_id: str) -> ReplayedNode:
        return self.nodes.setdefault(node_id, ReplayedNode())

    def node_statuses(self) -> dict[str, NodeStatus]:
        return {n: p.status(self.ended) for n, p in self.nodes.items()}

    def statistics(self) -> dict[str, int]:
        """``run_statistics`` as the run's end records it: tokens still in flight when a
        run ends are counted as consumed by that end (docs/run-document.md)."""
        statuses = self.node_statuses().values()
        in_flight = self.counter if self.ended else 0
        return {
            "nodes_executed": sum(p.completed for p in self.nodes.values()),
            "nodes_skipped": sum(1 for s in statuses if s is NodeStatus.SKIPPED),
            "tokens_emitted": self.tokens_emitted,
            "tokens_consumed": self.tokens_consumed + in_flight,
        }


Handler = Callable[[ReplayedState, Event], None]


def _scope(evt: Event) -> str:
    return str(evt.get("scope") or "")


def _token(evt: Event) -> Token | None:
    raw = evt.get("token")
    return Token.from_dict(raw) if isinstance(raw, Mapping) else None


def _arrive(state: ReplayedState, instance: str, from_node: str, value: str) -> str | None:
    """Record an arrival as the scripts do: the first per predecessor counts, and the one
    that completes the join is its finisher. Returns the field when newly recorded."""
    name = f"{instance}|{from_node}"
    if name in state.joins:
        return None
    state.joins[name] = value
    count = int(state.joins.get(f"{instance}#n", "0")) + 1
    state.joins[f"{instance}#n"] = str(count)
    node_id = instance.split("|", 1)[0]
    if node_id in state.ruled:  # as lua/commit_node.lua counts them ("Join rules")
        if value != DEAD:
            live = int(state.joins.get(f"{instance}#live", "0")) + 1
            state.joins[f"{instance}#live"] = str(live)
            order = state.joins.get(f"{instance}#order")
            state.joins[f"{instance}#order"] = f"{order},{from_node}" if order else from_node
    elif count >= len(state.join_inputs.get(node_id, ())):
        state.joins.setdefault(f"{instance}#fin", from_node)
    return name


def _fired(state: ReplayedState, instance: str, from_node: str) -> None:
    """A join with a rule fired on ``from_node``'s arrival, with the live ones in then."""
    if f"{instance}#fin" not in state.joins:
        state.joins[f"{instance}#fin"] = from_node
        state.joins[f"{instance}#at"] = state.joins.get(f"{instance}#order", "")


def _is_arrival(state: ReplayedState, token: Token) -> bool:
    return token.from_node is not None and token.from_node in state.join_inputs.get(
        token.to_node, ()
    )


def _consume(state: ReplayedState, token: Token) -> None:
    state.counter -= 1
    state.tokens_consumed += 1
    state.applied.add(token.op_key("advance"))
    state.pending.pop(token.key, None)


def _pass(state: ReplayedState, evt: Event, status: NodeStatus) -> None:
    """A node pass ended: one ``node_executions`` row."""
    node_id = str(evt["node"])
    iteration = state.passes[node_id] = state.passes.get(node_id, 0) + 1
    attempt = max(1, state.attempts.get((node_id, _scope(evt)), 1))
    ref = evt.get("output_ref")
    state.executions.append(
        ReplayedExecution(
            node_id,
            iteration,
            attempt,
            status,
            None if ref is None else str(ref),
            evt.get("error"),
        )
    )


def run_started(state: ReplayedState, evt: Event) -> None:
    state.status = RunStatus.RUNNING
    state.workflow_id = evt.get("workflow_id")
    state.applied.add(keys.op_key(state.run_id, "init", None, None, 1))


def token_emitted(state: ReplayedState, evt: Event) -> None:
    state.path.append({"from": evt.get("from"), "to": evt.get("to")})
    state.counter += 1
    state.tokens_emitted += 1
    if evt.get("from") is None:
        state.entry_tokens += 1
    token = _token(evt)
    if token is None:
        state.notes.append(
            f"event {state.events}: token_emitted carries no token: outbox and joins not rebuilt"
        )
        return
    state.pending[token.key] = token
    if _is_arrival(state, token):
        instance = f"{token.to_node}|{token.scope}"
        recorded = _arrive(state, instance, str(token.from_node), token.payload_ref or DEAD)
        if recorded:
            state.implied_arrivals.add(recorded)
        if token.payload_ref is None and token.to_node in state.ruled:  # a fire token
            _fired(state, instance, str(token.from_node))


def node_started(state: ReplayedState, evt: Event) -> None:
    node_id = str(evt["node"])
    node = state.node(node_id)
    node.started += 1
    node.failed = False
    where = (node_id, _scope(evt))
    state.attempts[where] = state.attempts.get(where, 0) + 1


def node_completed(state: ReplayedState, evt: Event) -> None:
    node_id = str(evt["node"])
    node = state.node(node_id)
    node.completed += 1
    ref = str(evt.get("output_ref"))
    node.output_refs.append(ref)
    state.context[node_id] = ref
    _pass(state, evt, NodeStatus.COMPLETED)
    _committed(state, evt)


def _committed(state: ReplayedState, evt: Event) -> None:
    """The event's token was consumed by its node's commit."""
    token = _token(evt)
    if token is None:
        state.notes.append(f"event {state.events}: {evt['type']} carries no token")
        return
    if _is_arrival(state, token):  # the finisher, recorded before if not by a rebuilt run
        _arrive(state, f"{token.to_node}|{token.scope}", str(token.from_node), _value(token))
        state.implied_arrivals.discard(f"{token.to_node}|{token.scope}|{token.from_node}")
    _consume(state, token)


def _value(token: Token) -> str:
    return token.payload_ref or DEAD


def node_retrying(state: ReplayedState, evt: Event) -> None:
    state.node(str(evt["node"])).errors += 1


def node_failed(state: ReplayedState, evt: Event) -> None:
    node = state.node(str(evt["node"]))
    node.errors += 1
    node.failed = True
    node.error = evt.get("error")
    _pass(state, evt, NodeStatus.FAILED)
    if evt.get("caught"):
        state.context[str(evt["node"])] = str(evt.get("error_ref"))
        _committed(state, evt)


def approval_requested(state: ReplayedState, evt: Event) -> None:
    """A human node's request: no token moves (it stays in the outbox, counted)."""
    state.node(str(evt["node"])).waiting = True
    _waiting_status(state)


def approval_decided(state: ReplayedState, evt: Event) -> None:
    state.node(str(evt["node"])).waiting = False
    _waiting_status(state)


def _waiting_status(state: ReplayedState) -> None:
    """A running run is WAITING while any approval is undecided (the document's rule)."""
    if state.status in (RunStatus.RUNNING, RunStatus.WAITING):  # PAUSED stays PAUSED
        waiting = any(n.waiting for n in state.nodes.values())
        state.status = RunStatus.WAITING if waiting else RunStatus.RUNNING


def node_cancelled(state: ReplayedState, evt: Event) -> None:
    """A node the cancel cut short (lua/cancel_run.lua): its token stays in flight."""
    node = state.node(str(evt["node"]))
    node.errors += 1
    node.failed = True
    node.waiting = False
    node.error = evt.get("error")
    _pass(state, evt, NodeStatus.FAILED)


def node_skipped(state: ReplayedState, evt: Event) -> None:
    state.node(str(evt["node"])).skipped = True
    _pass(state, evt, NodeStatus.SKIPPED)
    token = _token(evt)
    if evt.get("cut") and token is not None:  # join_rest "cancel" cut its token short
        state.counter -= 1
        state.tokens_consumed += 1
        state.pending.pop(token.key, None)


def join_fired(state: ReplayedState, evt: Event) -> None:
    """The live arrival that fired a join with a rule: its token stays in the outbox."""
    instance = f"{evt['node']}|{_scope(evt)}"
    from_node = str(evt["from"])
    _arrive(state, instance, from_node, str(evt["ref"]))
    state.implied_arrivals.discard(f"{instance}|{from_node}")
    _fired(state, instance, from_node)


def join_arrived(state: ReplayedState, evt: Event) -> None:
    token = _token(evt)
    live = bool(evt.get("live")) and token is not None
    instance = f"{evt['node']}|{_scope(evt)}"
    from_node = str(evt["from"])
    _arrive(state, instance, from_node, _value(token) if live and token else DEAD)
    state.implied_arrivals.discard(f"{instance}|{from_node}")
    if token is not None:
        _consume(state, token)


def loop_decided(state: ReplayedState, evt: Event) -> None:
    state.loops[str(evt["node"])] = int(evt["pass"])


def _ended(status: RunStatus) -> Handler:
    def handler(state: ReplayedState, evt: Event) -> None:
        state.status = status
        state.error = evt.get("error")

    handler.__name__ = f"run_{status.value.lower()}"
    return handler


def run_rebuilt(state: ReplayedState, evt: Event) -> None:
    """What :func:`wfrunner.recovery.rebuild` makes of the history: the arrivals no event
    names (finishers not yet delivered) are not recorded. (It sets the counter to the
    outbox's size, which the fold's counter already is: every emitted token has its own
    key.)"""
    for name in sorted(state.implied_arrivals):
        instance, _, from_node = name.rpartition("|")
        del state.joins[name]
        count = int(state.joins[f"{instance}#n"]) - 1
        state.joins[f"{instance}#n"] = str(count)
        if state.joins.get(f"{instance}#fin") == from_node:
            del state.joins[f"{instance}#fin"]
        if not count:
            del state.joins[f"{instance}#n"]
    state.implied_arrivals.clear()


def run_resumed(state: ReplayedState, evt: Event) -> None:
    state.status = RunStatus.RUNNING
    if "dead_letter" not in evt:  # a paused run resumed (lua/resume_run.lua): no rebuild
        _waiting_status(state)
        return
    state.error = None
    run_rebuilt(state, evt)


def _told(state: ReplayedState, evt: Event) -> None:
    """An event that moves no token and changes no counter: a subworkflow node's child
    started or ended (its token waits in the outbox, counted), the on_failure handler's
    record on an ended run, what the reconciler found and
    published again (``reconciler_repaired``: the tokens stay in the outbox)."""


def run_paused(state: ReplayedState, evt: Event) -> None:
    state.status = RunStatus.PAUSED


def run_redriven(state: ReplayedState, evt: Event) -> None:
    """A rerun (:mod:`wfrunner.redrive`): rebuilt from PostgreSQL as a dead letter's
    retry is. What ``--from`` discards is not folded back out (a note says so)."""
    state.status = RunStatus.RUNNING
    state.error = None
    run_rebuilt(state, evt)
    if evt.get("from"):
        state.notes.append(
            f"event {state.events}: rerun from {evt['from']!r}: the outputs it discarded "
            "are still in the replayed state"
        )


HANDLERS: dict[str, Handler] = {
    "run_started": run_started,
    "token_emitted": token_emitted,
    "node_started": node_started,
    "node_completed": node_completed,
    "node_retrying": node_retrying,
    "node_failed": node_failed,
    "node_skipped": node_skipped,
    "join_arrived": join_arrived,
    "join_fired": join_fired,
    "loop_decided": loop_decided,
    "approval_requested": approval_requested,
    "approval_decided": approval_decided,
    "node_cancelled": node_cancelled,
    "run_completed": _ended(RunStatus.COMPLETED),
    "run_failed": _ended(RunStatus.FAILED),
    "run_cancelled": _ended(RunStatus.CANCELLED),
    "run_recovered": run_rebuilt,
    "run_resumed": run_resumed,
    "child_started": _told,
    "child_ended": _told,
    "failure_handler_ran": _told,
    "failure_handler_failed": _told,
    "reconciler_repaired": _told,
    "map_started": mapfold.map_started,
    "map_item": mapfold.map_item,
    "run_paused": run_paused,
    "run_redriven": run_redriven,
}


def replay(
    run_id: str,
    events: Iterable[Event],
    node_ids: Sequence[str] = (),
    join_inputs: Mapping[str, Sequence[str]] | None = None,
    ruled: Iterable[str] = (),
) -> ReplayedState:
    """Fold ``events`` (in sequence order) into the state they imply. ``node_ids``: the
    workflow's nodes (each gets an entry, events or not); ``join_inputs``: join node ->
    its predecessors, from the IR."""
    state = ReplayedState(
        run_id=run_id,
        join_inputs={n: tuple(p) for n, p in (join_inputs or {}).items()},
        ruled=set(ruled),
    )
    for node_id in node_ids:
        state.node(node_id)
    for evt in events:
        state.events += 1
        handler = HANDLERS.get(str(evt.get("type")))
        if handler is None:
            state.notes.append(f"event {state.events}: unknown type {evt.get('type')!r} ignored")
            continue
        handler(state, evt)
    return state
