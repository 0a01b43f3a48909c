"""RunState: the Python face of a run's hot state in Redis (``lua/*.lua``).

One method per script, each one round trip. Every script first checks the run's
``state``: once a run has failed, been cancelled or been cleaned up, no late task of it can
write anything, which is how "nothing else of the run keeps running" is enforced without a
coordinator.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script

from wfrunner.engine import keys, slots
from wfrunner.engine.leases import Lease
from wfrunner.engine.tokens import Token
from wfrunner.errors import CounterError
from wfrunner.resources import lua_source

RUNNING = "running"
#: an operator paused the run: no delivery begins, those begun finish (wfrunner/pausing.py)
PAUSED = "paused"
#: the states in which a delivery that already began may still write (commit, arrive...)
LIVE = frozenset({RUNNING, PAUSED})
GONE = "gone"
#: commit_node / join_arrive: the delivery's token is not in the outbox (see commit_node.lua)
NOT_PENDING = "not_pending"
DEAD = "-"  # the join_arrive value of a dead (not taken) path
#: seconds a run's completion-check count outlives its last check (the run's end reads it)
CHECKS_TTL = 7 * 24 * 3600
#: commit_node: a join the commit records a dead arrival at moved on since it was read
CONFLICT = "conflict"


@dataclass(frozen=True)
class Begin:
    state: str
    #: True when an earlier delivery already committed this token (it is not run again)
    committed: bool
    input: Any
    inputs: Any
    #: this delivery's number, 1 for the first
    attempt: int
    #: for a committed token: the nonce of the delivery that committed it, and what it emitted
    committed_by: str | None = None
    emitted: tuple[Token, ...] = ()
    #: the run's hot-state generation this delivery began in (see lua/begin_node.lua)
    epoch: str = ""
    #: seconds another delivery's live lease on the token still lasts (0: this delivery
    #: holds the lease); a busy delivery must not run the node
    busy_for: float = 0.0
    #: this delivery's lease holder id; its commit names it, so a second delivery of the
    #: same message (same nonce) that began after this one's lease expired is not "mine"
    holder: str = ""
    #: node id -> latest output (the CEL ``ctx``), when asked for
    context: dict[str, Any] | None = None


@dataclass(frozen=True)
class JoinArrival:
    """An emitted token that arrives at a join, recorded by the commit that emits it
    (see lua/commit_node.lua): only the one that completes the join is sent."""

    token: Token
    instance: str
    expected: int
    event: dict[str, Any]
    #: a join with a rule: the live arrivals that fire it (0: the caller decides)
    need: int | None = None
    #: the caller decided (a rule join): the arrivals it read there, and whether it fires
    observed: int | None = None
    fire: bool = False

    def to_json(self) -> dict[str, Any]:
        data = {
            "token": self.token.key,
            "op": self.token.op_key("advance"),
            "instance": self.instance,
            "from": self.token.from_node,
            "value": self.token.payload_ref or DEAD,
            "expected": self.expected,
            "event": _dump(self.event),
        }
        return {**data, **_rule_json(self.need, self.observed, self.fire)}


@dataclass(frozen=True)
class DeadArrival:
    """A path not taken that reaches a join, recorded by the commit of the node that did
    not take it, provided the join still holds the ``observed`` arrivals the caller
    decided on (see lua/commit_node.lua)."""

    instance: str
    from_node: str
    expected: int
    observed: int
    #: a join with a rule (see JoinArrival); ``fire``: this arrival fires it
    need: int | None = None
    fire: bool = False

    def to_json(self) -> dict[str, Any]:
        data = {
            "instance": self.instance,
            "from": self.from_node,
            "value": DEAD,
            "expected": self.expected,
            "observed": self.observed,
        }
        return {**data, **_rule_json(self.need, None, self.fire)}


def _rule_json(need: int | None, observed: int | None, fire: bool) -> dict[str, Any]:
    """The fields of an arrival at a join with a rule (lua/commit_node.lua)."""
    if need is None:
        return {}
    extra: dict[str, Any] = {"need": need}
    if observed is not None:
        extra["observed"] = observed
    if fire:
        extra["fire"] = True
    return extra


@dataclass(frozen=True)
class JoinFields:
    """A join instance's arrivals as read: predecessor -> payload ref or DEAD, and the
    predecessor whose arrival fired it (None: not fired, or not known yet)."""

    arrived: dict[str, str]
    finisher: str | None = None


@dataclass(frozen=True)
class Arrival:
    state: str
    complete: bool
    finisher: str | None
    #: a join with a rule: the arrival that completed it without firing it (it is
    #: skipped), and the live arrivals when it fired, in order
    closer: str | None = None
    at: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalState:
    """A human node's approval as request_approval.lua left it."""

    state: str
    request: dict[str, Any] | None
    decision: dict[str, Any] | None
    #: the run's undecided approvals
    waiting: int


@dataclass(frozen=True)
class Decided:
    """What decide_approval.lua did: ``outcome`` decided (``token`` is now due), already
    (``earlier`` is the decision made before) or none (no request for the token)."""

    state: str
    outcome: str
    token: Token | None
    earlier: dict[str, Any] | None
    waiting: int


@dataclass(frozen=True)
class Commit:
    state: str
    value: int
    changed: bool
    hit_zero: bool
    #: the tokens the committed delivery emitted
    emitted: list[Token]
    #: True when this call's delivery is the one that committed (a retried call included):
    #: only that delivery dispatches, so each emitted token is published once
    mine: bool
    #: True when the run's history should now be copied to PostgreSQL
    flush_due: bool
    #: when this commit took the counter to 0: the arrivals at each join instance, read
    #: in the commit (the completion check needs no read of its own); None otherwise
    joins: dict[str, int] | None = None


def _loaded(text: str | None) -> Any:
    return json.loads(text) if text else None


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _token_map(tokens: Sequence[Token]) -> dict[str, str]:
    return {t.key: _dump(t.to_dict()) for t in tokens}


def _emitted(recorded: str) -> list[Token]:
    return _tokens(json.loads(recorded or "{}"))


def _tokens(record: Mapping[str, Any]) -> list[Token]:
    """The tokens of a parsed commit record (``{"by", "holder", "tokens"}``)."""
    return [Token.from_dict(json.loads(text)) for text in (record.get("tokens") or {}).values()]


@dataclass(frozen=True)
class EndedState:
    """An ended run's hot state, as finishing it reads it (:meth:`RunState.ended_state`)."""

    meta: dict[str, str]
    #: the events Redis holds (those not yet trimmed by a flush)
    tail: list[dict[str, Any]]
    payloads: dict[str, Any]
    checks: int
    #: clients subscribed to the run's end channel (``wait_for_run``, ``run --wait``)
    waiters: int
    #: whether the read took the run's writer lock (asked for with the read)
    locked: bool = False


@dataclass(frozen=True)
class HotView:
    """A run's whole hot state as one transaction reads it (:meth:`RunState.hot_view`):
    what ``wfrunner replay`` holds a replay of the run's events against."""

    #: empty when the run has no hot state
    meta: dict[str, str]
    #: the events Redis holds (those after the ``trimmed`` ones PostgreSQL keeps)
    tail: list[dict[str, Any]]
    counter: int | None
    applied: set[str]
    pending: dict[str, Token]
    joins: dict[str, str]
    context: dict[str, str]


#: how a run ends: (state, error or None, the events that record it), see lua/end_run.lua
RunEnd = tuple[str, str | None, Sequence[dict[str, Any]]]


@dataclass(frozen=True)
class CompletionView:
    """A run's hot state as the completion double-check reads it."""

    #: empty when the run has no hot state
    meta: dict[str, str]
    #: tokens in flight; None when the counter is gone
    counter: int | None
    #: join instance -> arrivals so far
    joins: dict[str, int]


#: the arrivals counted at a join instance that waits for nothing more
WAITS_FOR_NOTHING = 1 << 62


def seen_at_zero(workflow_id: str, joins: dict[str, int] | None) -> CompletionView | None:
    """The completion view a commit that took the counter to 0 read (``Commit.joins``),
    or None when the commit read none."""
    if joins is None:
        return None
    return CompletionView(
        meta={"state": RUNNING, "workflow_id": workflow_id}, counter=0, joins=joins
    )


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    """A dict of a flat field/value list (HGETALL's reply inside a Lua script)."""
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}


def _arrival_counts(joins: Sequence[Any]) -> dict[str, int]:
    """join instance -> arrivals so far, from the joins hash as a flat field/value list
    (the ``<instance>#n`` counters; the other fields name the arrivals themselves)."""
    fields = _pairs(joins)
    counts = {k[: -len("#n")]: int(v) for k, v in fields.items() if k.endswith("#n")}
    # a join with a rule that fired, or one that join_rest "cancel" cut short, waits for
    # nothing more (see lua/cut_join_rest.lua)
    for k in fields:
        if k.endswith(("#fin", "#cut")):
            counts[k.rsplit("#", 1)[0]] = WAITS_FOR_NOTHING
    return counts


def commit_reply(reply: Sequence[Any]) -> Commit:
    """The :class:`Commit` of commit_node.lua's reply (map_commit.lua's has its shape)."""
    value, changed, hit_zero, recorded, state, mine, flush_due, joins = reply
    return Commit(
        state=state,
        value=int(value),
        changed=bool(changed),
        hit_zero=bool(hit_zero),
        emitted=_emitted(recorded),
        mine=bool(mine),
        flush_due=bool(flush_due),
        joins=_arrival_counts(joins) if hit_zero else None,
    )


class RunState:
    """Hot state of runs over one ``redis.Redis`` client (``decode_responses=True``)."""

    def __init__(
        self,
        client: redis.Redis,
        flush_every: float = 1.0,
        lease_seconds: float = 15.0,
        reconcile_every: float = 10.0,
        shards: int = 1,
    ) -> None:
        self.client = client
        #: on a Redis Cluster each slot has its own due index (see keys.index_slot)
        self.clustered = isinstance(client, RedisCluster)
        self.flush_every = flush_every
        self.lease_seconds = lease_seconds
        #: a reconciler pass's period; a run idle 3 times that long is looked at
        self.reconcile_every = reconcile_every
        self.stall_after = 3.0 * reconcile_every
        #: background shards: the flushes are batched per shard (wfrunner/reconciler.py)
        self.shards = shards
        self._scripts: dict[str, Script] = {
            name: client.register_script(lua_source(name))
            for name in (
                "start_run",
                "begin_node",
                "join_arrive",
                "cut_join_rest",
                "commit_node",
                "end_run",
                "record_events",
                "mark_flushed",
                "unlock",
                "drop_run",
                "completion_view",
                "renew_leases",
                "claim_stalled",
                "request_approval",
                "decide_approval",
                "cancel_run",
                "await_child",
                "decide_child",
            )
        }

    def _run(self, name: str, run_id: str, keys_: list[str], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        return _guarded(name, run_id, lambda: script(keys=keys_, args=list(args)))

    def start(
        self,
        run_id: str,
        workflow_id: str,
        inputs_json: str,
        entries: Sequence[Token],
        now: float,
        events: Sequence[dict[str, Any]],
        gen: int,
    ) -> tuple[bool, str]:
        """Make the run live at hot-state generation ``gen`` with ``events``, which
        PostgreSQL already holds; (False, state) when an earlier delivery already did.
        Its first flush is due ``flush_every`` s later: a short run ends before it."""
        reply = self._run(
            "start_run",
            run_id,
            [
                keys.meta_key(run_id),
                keys.counter_key(run_id),
                keys.applied_key(run_id),
                keys.events_key(run_id),
                keys.pending_key(run_id),
                self.due_key(run_id),
            ],
            [
                keys.op_key(run_id, "init", None, None, 1),
                workflow_id,
                inputs_json,
                len(entries),
                now,
                _dump(_token_map(entries)),
                gen,
                now + self.flush_every,
                run_id,
                now + self.stall_after,
                *map(_dump, events),
            ],
        )
        return bool(reply[0]), str(reply[1])

    def begin(
        self,
        token: Token,
        now: float,
        event: dict[str, Any] | None,
        holder: str = "",
        lease: float | None = None,
        *,
        inputs: bool = True,
        context: bool = False,
        join: tuple[str, Sequence[str]] | None = None,
    ) -> Begin:
        """Begin a delivery of ``token``, taking its lease for ``holder`` (a delivery id)
        for ``lease`` seconds (default: ``lease_seconds``) unless another holds it.
        ``inputs``, ``context``: return the run's inputs, the CEL ``ctx`` too. ``join``:
        (instance, predecessors) of the join the token arrives at; ``input`` is then the
        join's input when the token fires it, None when its arrival is still to be
        recorded (see begin_node.lua)."""
        run_id = token.run_id
        lease = self.lease_seconds if lease is None else lease
        holder = holder or uuid.uuid4().hex
        state, committed, raw_input, raw_inputs, attempt, epoch, busy, ctx = self._run(
            "begin_node",
            run_id,
            [
                keys.meta_key(run_id),
                keys.emits_key(run_id),
                keys.payloads_key(run_id),
                keys.events_key(run_id),
                keys.attempts_key(run_id),
                keys.running_key(run_id),
                keys.pending_key(run_id),
                keys.joins_key(run_id),
                keys.context_key(run_id),
            ],
            [
                token.key,
                "" if join else token.payload_ref or "",
                _dump(event) if event else "",
                now,
                holder,
                lease,
                "1" if inputs else "",
                "1" if context else "",
                join[0] if join else "",
                token.from_node or "",
                *(join[1] if join else ()),
            ],
        )
        return Begin(
            state=state,
            committed=bool(committed),
            input=json.loads(raw_input) if raw_input else None,
            inputs=json.loads(raw_inputs) if raw_inputs else None,
            attempt=int(attempt),
            committed_by=json.loads(committed).get("by") if committed else None,
            emitted=tuple(_emitted(committed)) if committed else (),
            epoch=str(epoch),
            busy_for=float(busy or 0),
            holder=holder,
            context=json.loads(ctx) if ctx else None,
        )

    def arrive(
        self,
        run_id: str,
        instance: str,
        from_node: str,
        value: str,
        expected: int,
        epoch: str,
        token_key: str = "",
        rule: tuple[int, str, int] | None = None,
    ) -> Arrival:
        """Record a join arrival (``value`` a payload ref, or :data:`DEAD`) by a delivery
        of the token ``token_key`` (refused when that token is not pending). ``rule``: a
        join with a rule, (need, "fire"/"hold"/"" as the caller decided, the arrivals
        it read) (see lua/join_arrive.lua)."""
        extra = [] if rule is None else [rule[0], rule[1], rule[2]]
        reply = self._run(
            "join_arrive",
            run_id,
            [keys.meta_key(run_id), keys.joins_key(run_id), keys.pending_key(run_id)],
            [instance, from_node, value, expected, epoch, token_key, *extra],
        )
        state, complete, finisher = reply[:3]
        if rule is None:
            return Arrival(state, bool(complete), finisher or None)
        closer, at = reply[3], reply[4]
        names = tuple(at.split(",")) if at else ()
        return Arrival(state, bool(complete), finisher or None, closer or None, names)

    def join_fields(self, run_id: str, instance: str, predecessors: Sequence[str]) -> JoinFields:
        """The arrivals recorded so far at a join instance (one read)."""
        names = [f"{instance}|{p}" for p in predecessors]
        refs = self._fields(keys.joins_key(run_id), [*names, f"{instance}#fin"])
        arrived = {p: r for p, r in zip(predecessors, refs, strict=False) if r}
        return JoinFields(arrived, refs[-1] or None)

    def live_arrivals(
        self, run_id: str, instance: str, predecessors: Sequence[str]
    ) -> list[tuple[str, str]]:
        """(predecessor, payload ref) of a join's live arrivals, in predecessor order."""
        arrived = self.join_fields(run_id, instance, predecessors).arrived
        return [(p, r) for p, r in arrived.items() if r != DEAD]

    def join_inputs(
        self, run_id: str, instance: str, predecessors: Sequence[str]
    ) -> dict[str, Any]:
        """``{predecessor: output}`` of the live arrivals of a complete join, in order."""
        live = self.live_arrivals(run_id, instance, predecessors)
        values = self.payloads(run_id, [r for _, r in live])
        return {p: values.get(r) for p, r in live}

    def commit(
        self,
        token: Token,
        emitted: Sequence[Token],
        now: float,
        events: Sequence[dict[str, Any]],
        *,
        nonce: str,
        epoch: str,
        holder: str = "",
        output: tuple[str, str] | None = None,
        delta: int | None = None,
        arrivals: Sequence[JoinArrival | DeadArrival] = (),
    ) -> Commit:
        """Finish ``token``: store the output, apply ``len(emitted) - 1``, append events.
        ``arrivals`` are recorded at their joins: dead ones first (state :data:`CONFLICT`
        and nothing written when such a join moved on since it was read), then those among
        ``emitted``; those that do not complete their join are consumed here and left out
        of :attr:`Commit.emitted`."""
        run_id = token.run_id
        ref, text = output if output else ("", "")
        reply = self._run(
            "commit_node",
            run_id,
            [
                keys.meta_key(run_id),
                keys.counter_key(run_id),
                keys.applied_key(run_id),
                keys.payloads_key(run_id),
                keys.context_key(run_id),
                keys.emits_key(run_id),
                keys.events_key(run_id),
                keys.pending_key(run_id),
                keys.running_key(run_id),
                keys.joins_key(run_id),
                keys.checks_key(run_id),
                self.due_key(run_id),
            ],
            [
                token.op_key("advance"),
                len(emitted) - 1 if delta is None else delta,
                token.key,
                _dump({"by": nonce, "holder": holder, "tokens": _token_map(emitted)}),
                run_id,
                keys.COMPLETION_CHANNEL,
                token.to_node,
                ref,
                text,
                now,
                self.flush_every,
                epoch,
                _dump([a.to_json() for a in arrivals]),
                CHECKS_TTL,
                self.stall_after,
                *map(_dump, events),
            ],
        )
        return commit_reply(reply)

    def end(
        self, run_id: str, state: str, error: str | None, events: Sequence[dict[str, Any]]
    ) -> bool:
        """Stop the run (failed / cancelled / completed); True when this call stopped it."""
        keys_and_args = self._end_args(run_id, (state, error, events), look=True)
        changed, _ = self._run("end_run", run_id, keys_and_args[:3], keys_and_args[3:])
        return bool(changed)

    def _end_args(self, run_id: str, end: RunEnd, look: bool) -> list[Any]:
        """end_run.lua's keys, then its arguments. ``look``: the run's next look comes
        within a reconciler pass (an end from outside its nodes, whose recorder may die);
        a completion's finisher records the end in the same call."""
        state, error, events = end
        return [
            keys.meta_key(run_id),
            keys.events_key(run_id),
            self.due_key(run_id),
            state,
            error or "",
            run_id if look else "",
            time.time() + self.reconcile_every,
            *map(_dump, events),
        ]

    def cancel(self, run_id: str, error: str, evt: dict[str, Any]) -> tuple[bool, str, list[str]]:
        """End the run as cancelled with what it cut short (see cancel_run.lua): (changed,
        state, lease holders of the deliveries that were running)."""
        changed, state, *holders = self._run(
            "cancel_run",
            run_id,
            [
                keys.meta_key(run_id),
                keys.events_key(run_id),
                keys.pending_key(run_id),
                keys.running_key(run_id),
                self.due_key(run_id),
            ],
            [error, evt["t"], _dump(evt), run_id, time.time() + self.reconcile_every],
        )
        return bool(changed), str(state), [str(h) for h in holders]

    def cut_join_rest(
        self,
        token: Token,
        cut: Sequence[str],
        epoch: str,
        now: float,
        reason: str,
    ) -> tuple[str, int, list[str]]:
        """The join ``token`` fired cuts its feeders short (see cut_join_rest.lua): (state,
        tokens cut, lease holders of the deliveries that were running)."""
        run_id = token.run_id
        state, count, *holders = self._run(
            "cut_join_rest",
            run_id,
            [
                keys.meta_key(run_id),
                keys.counter_key(run_id),
                keys.pending_key(run_id),
                keys.running_key(run_id),
                keys.events_key(run_id),
                keys.joins_key(run_id),
            ],
            [epoch, token.to_node, token.scope, now, reason, *cut],
        )
        return str(state), int(count), [str(h) for h in holders]

    def record(
        self,
        run_id: str,
        events: Sequence[dict[str, Any]],
        token: Token | None = None,
        due: float = 0.0,
        epoch: str = "",
    ) -> bool:
        """Append events to a running run; with ``token``, note when it is due again."""
        written = self._run(
            "record_events",
            run_id,
            [keys.meta_key(run_id), keys.events_key(run_id), keys.running_key(run_id)],
            [token.key if token else "", due, epoch, *map(_dump, events)],
        )
        return bool(written)

    def request_approval(
        self,
        token: Token,
        request: Mapping[str, Any],
        until: float,
        epoch: str,
        events: Sequence[dict[str, Any]],
    ) -> ApprovalState:
        """Ask for a human node's decision (once per token) and leave the token waiting
        until ``until``; the request and decision stored (see request_approval.lua)."""
        run_id = token.run_id
        state, stored, decision, waiting = self._run(
            "request_approval",
            run_id,
            [*self._approval_keys(run_id), self.due_key(run_id)],
            [token.key, _dump(request), f"{until:.3f}", epoch, run_id, *map(_dump, events)],
        )
        return ApprovalState(
            state=state,
            request=json.loads(stored) if stored else None,
            decision=json.loads(decision) if decision else None,
            waiting=int(waiting),
        )

    def decide_approval(
        self,
        run_id: str,
        token_key: str,
        decision: Mapping[str, Any],
        evt: dict[str, Any],
        now: float,
    ) -> Decided:
        """Record a decision on a waiting token at most once (see decide_approval.lua)."""
        state, outcome, value, waiting = self._run(
            "decide_approval",
            run_id,
            [*self._approval_keys(run_id), self.due_key(run_id)],
            [token_key, _dump(decision), _dump(evt), f"{now:.3f}", *self._look(run_id, now)],
        )
        token = Token.from_dict(json.loads(value)) if outcome == "decided" and value else None
        earlier = json.loads(value) if outcome == "already" and value else None
        return Decided(state, outcome, token, earlier, int(waiting))

    def approvals(self, run_id: str) -> dict[str, dict[str, Any]]:
        """token key -> its request, with its ``decision`` (None while undecided)."""
        raw = self._hash(keys.approvals_key(run_id))
        return {
            key: {**json.loads(text), "decision": _loaded(raw.get(f"{key}#d"))}
            for key, text in raw.items()
            if not key.endswith("#d")
        }

    def await_child(
        self, token: Token, child_run_id: str, until: float, epoch: str, events: Sequence[Any]
    ) -> tuple[str, dict[str, Any] | None]:
        """Record the child run a subworkflow node started (once per token) and leave the
        token waiting until ``until``: (state, the child's outcome when it has ended
        already), see await_child.lua."""
        run_id = token.run_id
        state, outcome = self._run(
            "await_child",
            run_id,
            self._child_keys(run_id),
            [token.key, child_run_id, f"{until:.3f}", epoch, *map(_dump, events)],
        )
        return str(state), _loaded(outcome)

    def decide_child(
        self,
        run_id: str,
        token_key: str,
        outcome: Mapping[str, Any],
        evt: dict[str, Any],
        now: float,
    ) -> tuple[str, str, Token | None, str]:
        """Record how a child run ended for its parent's waiting token, at most once
        (see decide_child.lua): (state, "decided" or "already", the token now due, the
        parent's workflow id)."""
        state, decided, token, workflow_id = self._run(
            "decide_child",
            run_id,
            [*self._child_keys(run_id), self.due_key(run_id)],
            [token_key, _dump(outcome), _dump(evt), f"{now:.3f}", *self._look(run_id, now)],
        )
        due = Token.from_dict(json.loads(token)) if token else None
        return str(state), str(decided), due, str(workflow_id)

    def _look(self, run_id: str, now: float) -> tuple[str, str]:
        """(look_at, run id): a decision makes a token due: the run is looked at once it
        has been idle the stall time, should the token's message be lost."""
        return f"{now + self.stall_after:.3f}", run_id

    def child_outcome(self, run_id: str, token_key: str) -> dict[str, Any] | None:
        """How the child run of a subworkflow node's token ended (None: not yet)."""
        text = cast(str | None, self.client.hget(keys.children_key(run_id), f"{token_key}#d"))
        return cast(dict[str, Any] | None, _loaded(text))

    @staticmethod
    def _child_keys(run_id: str) -> list[str]:
        """await_child.lua's and decide_child.lua's keys: the approvals' with the children
        hash in place of the approvals hash."""
        found = RunState._approval_keys(run_id)
        found[1] = keys.children_key(run_id)
        return found

    @staticmethod
    def _approval_keys(run_id: str) -> list[str]:
        return [
            keys.meta_key(run_id),
            keys.approvals_key(run_id),
            keys.events_key(run_id),
            keys.running_key(run_id),
            keys.pending_key(run_id),
        ]

    # -- reads (the client decodes responses, so every value is text) -------------------

    def _hash(self, key: str) -> dict[str, str]:
        return cast(dict[str, str], self.client.hgetall(key))

    def _fields(self, key: str, fields: Sequence[str]) -> list[str | None]:
        return cast(list[str | None], self.client.hmget(key, list(fields)))

    def meta(self, run_id: str) -> dict[str, str]:
        return self._hash(keys.meta_key(run_id))

    def counter(self, run_id: str) -> int | None:
        raw = self.client.get(keys.counter_key(run_id))
        return None if raw is None else int(raw)

    def events(self, run_id: str, start: int = 0) -> list[dict[str, Any]]:
        """The events still in the Redis list from list index ``start`` (the list begins
        after the ``trimmed`` events already in PostgreSQL: see :meth:`tail`)."""
        return [json.loads(e) for e in self.client.lrange(keys.events_key(run_id), start, -1)]

    def tail(self, run_id: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """The run's meta and the events still in Redis, read atomically: the list holds
        the events numbered ``trimmed`` + 1 onwards (the earlier ones are in PostgreSQL)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(keys.meta_key(run_id))
        pipe.lrange(keys.events_key(run_id), 0, -1)
        meta, raw = pipe.execute()
        return cast(dict[str, str], meta), [json.loads(e) for e in raw]

    def ended_state(
        self,
        run_id: str,
        lock: tuple[str, int] | None = None,
        end: RunEnd | None = None,
    ) -> EndedState:
        """What finishing a run reads, in one round trip: :meth:`tail`, every output by
        ref, the completion-check count, and how many waiters listen for its end. With
        ``lock`` (holder, ttl ms), the writer lock is taken in the same transaction, as
        :meth:`lock` takes it: a finish's first round trip is its last read too. With
        ``end``, the run is first ended as :meth:`end` ends it (the completion check's
        verdict), in that transaction too."""
        pipe = self.client.pipeline(transaction=True)
        if end is not None:
            # EVALSHA as a plain command: redis-py would ask SCRIPT EXISTS first for a
            # Script in a pipeline, a round trip for a script loaded at the first end
            args = self._end_args(run_id, end, look=False)
            pipe.evalsha(self._scripts["end_run"].sha, 3, *args)
        if lock is not None:
            pipe.set(keys.lock_key(run_id), lock[0], nx=True, px=lock[1])
        pipe.hgetall(keys.meta_key(run_id))
        pipe.lrange(keys.events_key(run_id), 0, -1)
        pipe.hgetall(keys.payloads_key(run_id))
        pipe.get(keys.checks_key(run_id))
        pipe.pubsub_numsub(keys.ended_channel(run_id))
        replies = pipe.execute(raise_on_error=False)
        ended = replies.pop(0) if end is not None else None
        locked = bool(replies.pop(0)) if lock is not None else False
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        if isinstance(ended, redis.exceptions.NoScriptError):  # Redis lost its scripts
            self.end(run_id, *end)  # type: ignore[misc]
            return replace(self.ended_state(run_id), locked=locked)
        if isinstance(ended, Exception):
            raise CounterError(f"run {run_id!r}: Redis refused end_run: {ended}")
        meta, raw, payloads, checks, listening = replies
        return EndedState(
            meta=cast(dict[str, str], meta),
            tail=[json.loads(e) for e in raw],
            payloads={ref: json.loads(text) for ref, text in payloads.items()},
            checks=int(checks or 0),
            waiters=_subscribers(listening),
            locked=locked,
        )

    def hot_view(self, run_id: str) -> HotView:
        """Meta, events, counter, applied op keys, outbox, joins and context of a run, in
        one transaction: a consistent picture even while the run's tasks commit."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(keys.meta_key(run_id))
        pipe.lrange(keys.events_key(run_id), 0, -1)
        pipe.get(keys.counter_key(run_id))
        pipe.smembers(keys.applied_key(run_id))
        pipe.hgetall(keys.pending_key(run_id))
        pipe.hgetall(keys.joins_key(run_id))
        pipe.hgetall(keys.context_key(run_id))
        meta, raw, counter, applied, pending, joins, context = pipe.execute()
        return HotView(
            meta=cast(dict[str, str], meta),
            tail=[json.loads(e) for e in raw],
            counter=None if counter is None else int(counter),
            applied={str(k) for k in applied},
            pending={k: Token.from_dict(json.loads(t)) for k, t in pending.items()},
            joins=cast(dict[str, str], joins),
            context=cast(dict[str, str], context),
        )

    def payloads(self, run_id: str, refs: Sequence[str]) -> dict[str, Any]:
        """The outputs named that Redis holds, by ref (a ref missing from the result is
        not there: the run ended and its hot state was dropped, or it never existed)."""
        if not refs:
            return {}
        texts = self._fields(keys.payloads_key(run_id), refs)
        return {ref: json.loads(text) for ref, text in zip(refs, texts, strict=True) if text}

    def pending(self, run_id: str) -> dict[str, Token]:
        """Tokens emitted and not consumed (the outbox), by token key."""
        raw = self._hash(keys.pending_key(run_id))
        return {key: Token.from_dict(json.loads(text)) for key, text in raw.items()}

    def left_behind(self, run_id: str, tokens: Sequence[Token], nonce: str) -> list[Token]:
        """Those of ``tokens`` not consumed yet and, through every one consumed by a commit
        of the same delivery ``nonce`` (a successor the task ran itself, see
        tasks/execution.py), what that commit emitted and nobody consumed: all a task that
        died after committing may have left unpublished, found from its first token."""
        found: list[Token] = []
        seen: set[str] = set()
        frontier = list(tokens)
        while frontier:
            seen.update(t.key for t in frontier)
            present = self._fields(keys.pending_key(run_id), [t.key for t in frontier])
            found += [t for t, p in zip(frontier, present, strict=True) if p is not None]
            consumed = [t.key for t, p in zip(frontier, present, strict=True) if p is None]
            records = self._fields(keys.emits_key(run_id), consumed) if consumed else []
            frontier = []
            for record in records:
                parsed = json.loads(record) if record else {}
                if parsed.get("by") == nonce:
                    frontier += [t for t in _tokens(parsed) if t.key not in seen]
        return found

    def renew(self, held: Mapping[str, Mapping[str, str]], seconds: float) -> list[str]:
        """Extend (``seconds`` 0: release) the leases ``held`` (run id -> token key ->
        holder) in one pipeline; returns the token keys whose lease the holder lost.

        One script call per run, each on its run's keys: on a Redis Cluster the pipeline
        sends each to the master of its run's slot. A cluster pipeline does not load
        scripts first as a one-server pipeline does: a master that lacks the script (one
        just promoted) answers NOSCRIPT, and the script is loaded and the pipeline sent
        again (renewing a lease twice extends it to the same time)."""
        script = self._scripts["renew_leases"]

        def pipeline() -> Any:
            pipe = self.client.pipeline(transaction=False)
            for run_id, tokens in held.items():
                pairs = [item for pair in tokens.items() for item in pair]
                script(
                    keys=[keys.meta_key(run_id), keys.running_key(run_id)],
                    args=[seconds, *pairs],
                    client=pipe,
                )
            return pipe

        def send() -> list[Any]:
            try:
                return list(pipeline().execute())
            except redis.exceptions.NoScriptError:
                self.client.script_load(script.script)
                return list(pipeline().execute())

        replies = _guarded("renew_leases", ",".join(held), send)
        return [str(key) for lost in replies for key in lost]

    def claim_stalled(
        self, run_id: str, now: float, stall_after: float, hold: float, force: bool = False
    ) -> list[tuple[Token, Lease | None]]:
        """Outbox tokens to publish again (see lua/claim_stalled.lua), marked as such, each
        with the running entry it had (None: none); ``force``: republish marks do not hold
        a token back. The run's next look in the due index is set (at most ``hold`` s on)."""
        flat = self._run(
            "claim_stalled",
            run_id,
            [
                keys.meta_key(run_id),
                keys.pending_key(run_id),
                keys.running_key(run_id),
                self.due_key(run_id),
            ],
            [now, stall_after, hold, "1" if force else "", run_id, now + hold],
        )
        return [
            (Token.from_dict(json.loads(flat[i])), Lease.parse(str(flat[i + 1])))
            for i in range(0, len(flat), 2)
        ]

    def leases(self, run_id: str) -> dict[str, Lease]:
        """token key -> its lease, retry due time or republish mark."""
        parsed = {k: Lease.parse(v) for k, v in self._hash(keys.running_key(run_id)).items()}
        return {k: lease for k, lease in parsed.items() if lease is not None}

    def clock(self) -> float:
        """Redis's time: the clock leases are measured on."""
        seconds, micros = self.client.time()
        return seconds + micros / 1_000_000

    def mark_flushed(self, run_id: str, count: int, gen: int, epoch: str) -> bool:
        """PostgreSQL accepted generation ``gen`` (read with ``epoch``) holding the first
        ``count`` events: move to the next generation and trim those events from Redis."""
        return bool(
            self._run(
                "mark_flushed",
                run_id,
                [keys.meta_key(run_id), keys.events_key(run_id)],
                [count, gen, epoch],
            )
        )

    def lock(self, run_id: str, holder: str, ttl_ms: int, steal: bool = False) -> bool:
        """Take the run's writer lock for ``ttl_ms`` (it expires if its holder dies);
        ``steal`` takes it even when held (a lock Redis restored from a snapshot)."""
        return bool(self.client.set(keys.lock_key(run_id), holder, nx=not steal, px=ttl_ms))

    def unlock(self, run_id: str, holder: str) -> None:
        self._run("unlock", run_id, [keys.lock_key(run_id)], [holder])

    def completion_view(self, run_id: str) -> CompletionView:
        """What the completion double-check reads, in one round trip (lua/completion_view.lua),
        counting the check while the run exists."""
        meta, counter, joins = self._run(
            "completion_view",
            run_id,
            [
                keys.meta_key(run_id),
                keys.counter_key(run_id),
                keys.joins_key(run_id),
                keys.checks_key(run_id),
            ],
            [CHECKS_TTL],
        )
        return CompletionView(
            meta=_pairs(meta),
            counter=None if counter is None else int(counter),
            joins=_arrival_counts(joins),
        )

    def shard_of(self, run_id: str) -> int:
        """The background shard of the run (that of its slot)."""
        return slots.shard_of_slot(keys.slot_of_run(run_id), self.shards)

    def mark_dirty(self, run_id: str, ttl: float) -> int | None:
        """Add the run to those of its shard due to be flushed; the shard when no
        flush_runs task of it is queued (the caller queues one), else None. The flag
        expires after ``ttl`` s: a lost task message does not stop later flushes."""
        shard = self.shard_of(run_id)
        self.client.sadd(keys.flush_dirty_key(shard), run_id)
        return shard if self.claim_flusher(shard, ttl) else None

    def claim_flusher(self, shard: int, ttl: float) -> bool:
        """True when no flush_runs task of ``shard`` is queued: the caller queues one."""
        flag = keys.flush_queued_key(shard)
        return bool(self.client.set(flag, 1, nx=True, px=int(ttl * 1000)))

    def take_dirty(self, shard: int, limit: int) -> list[str]:
        """Up to ``limit`` runs of ``shard`` due to be flushed, removed from its set; the
        flag is cleared first, so a run marked from now on queues the next task."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(keys.flush_queued_key(shard))
        pipe.spop(keys.flush_dirty_key(shard), limit)
        return [str(r) for r in pipe.execute()[1] or []]

    def return_dirty(self, shard: int, run_ids: Sequence[str]) -> None:
        """Put back runs a failed flush took (PostgreSQL away): the retry takes them."""
        if run_ids:
            self.client.sadd(keys.flush_dirty_key(shard), *run_ids)

    def due_key(self, run_id: str) -> str:
        """The due index holding the run (:func:`keys.due_key`)."""
        return keys.due_key(run_id, self.clustered)

    def due_runs(self, slot_range: Sequence[int], now: float, limit: int) -> list[str]:
        """Runs of these slots whose next look is ``now`` or earlier, about ``limit`` per
        slot at most: one pipelined ZRANGEBYSCORE per index key (per slot on a cluster,
        per block of slots on one server, whose runs of other slots are left out)."""
        covered: dict[int, int] = {}
        for slot in slot_range:
            index = keys.index_slot(slot, self.clustered)
            covered[index] = covered.get(index, 0) + 1
        pipe = self.client.pipeline(transaction=False)
        for index, count in covered.items():
            key = keys.due_key_of_slot(index)
            pipe.zrangebyscore(key, "-inf", now, start=0, num=limit * count)
        found = [str(run_id) for runs in pipe.execute() for run_id in runs]
        if self.clustered:
            return found
        wanted = set(slot_range)
        return [run_id for run_id in found if keys.slot_of_run(run_id) in wanted]

    def look_again(self, run_id: str, at: float) -> None:
        """Move the run's next look to ``at``; a run that left the index (it ended) is not
        put back."""
        self.client.zadd(self.due_key(run_id), {run_id: at}, xx=True)

    def index(self, looks: Mapping[str, float]) -> int:
        """Put runs in the due index at these next looks, leaving those it holds already;
        how many were new."""
        pipe = self.client.pipeline(transaction=False)
        for run_id, at in looks.items():
            pipe.zadd(self.due_key(run_id), {run_id: at}, nx=True)
        return sum(int(added) for added in pipe.execute())

    def forget(self, run_id: str) -> None:
        """Take the run out of the due index (it has no hot state left)."""
        self.client.zrem(self.due_key(run_id), run_id)

    def delete(self, run_id: str, lock: bool = False) -> None:
        """Delete the run's hot keys and its due index entry; ``lock``: its writer lock too
        (one Redis brought back from a snapshot belongs to a writer of the past)."""
        stale = [keys.lock_key(run_id)] if lock else []
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(*keys.run_keys(run_id), *stale)
        pipe.zrem(self.due_key(run_id), run_id)
        pipe.execute()

    def drop(self, run_id: str, holder: str, announce: tuple[str, str] | None = None) -> None:
        """Delete an ended run's hot keys, release its writer lock if ``holder`` still
        holds it and, with ``announce`` (channel, message), PUBLISH its end: one round
        trip for what finishing a run does last (lua/drop_run.lua). Atomic: a snapshot
        Redis takes (and may come back from) never holds the lock without the keys."""
        channel, message = announce or ("", "")
        self._run(
            "drop_run",
            run_id,
            [keys.lock_key(run_id), self.due_key(run_id), *keys.run_keys(run_id)],
            [holder, channel, message, run_id],
        )


def _subscribers(reply: Any) -> int:
    """The count of a one-channel PUBSUB NUMSUB: ``[(channel, n)]`` from a one-server
    pipeline, ``[channel, n]`` from a Redis Cluster's (sent to the master of the run's
    slot, the node a waiter's subscription goes to: see :mod:`wfrunner.ended`)."""
    if not reply:
        return 0
    first = reply[0]
    return int(first[1] if isinstance(first, list | tuple) else reply[1])


def _guarded(op: str, run_id: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except redis.RedisError as exc:
        raise CounterError(f"run {run_id!r}: Redis refused {op}: {exc}") from exc
