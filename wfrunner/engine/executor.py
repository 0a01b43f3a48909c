"""Processing one token: the body of ``wfrunner.execute_node``, without Celery.

The order of steps is what makes at-least-once delivery safe:

0. A node whose handler has a fleet-wide limit (``max_concurrency``) first takes one of
   its slots (engine/handler_slots.py); a delivery that finds none free has begun
   nothing (no attempt, no lease) and is put off like a busy one. Other nodes skip this.
1. ``begin``: is the run still running, and was this token already committed? A committed
   token is never run again (a duplicate or late delivery is ignored). The delivery takes
   the token's lease, which the process renews while the node runs (engine/leases.py); a
   delivery that finds another's lease live does not run the node and looks again when
   it would have expired (the broker gave the message out again while it still runs). A
   token begun more often than its node allows (its worker keeps dying) fails the node.
2. A join arrival is recorded by the commit that emits it (step 4), and only the arrival
   that completed the join is sent as a message: ``begin`` hands that delivery the join's
   input. (A delivery whose arrival is not recorded yet, in a run rebuilt from
   PostgreSQL, records it itself; only the arrival that completed the join fires it.)
3. The node runs (handler or built-in). Its routing is decided, and the paths not taken
   are propagated as dead: skipped nodes, dead join arrivals, and a fire token for a join
   that the dead arrival completed. A handler error is retried with backoff while the
   node's ``retry`` policy allows, then fails the node and the run.
4. ``commit``: output, emitted tokens, join arrivals, counter delta (emitted - 1, less
   the arrivals consumed at once) and events, atomically and at most once per token. Only
   the delivery that committed dispatches the emitted tokens; if it dies before
   dispatching, the tokens wait in the run's outbox (pending) until the reconciler
   publishes them. Only the commit that takes the counter to 0 asks for the completion
   check (the reconciler checks a run whose counter is 0 should that request be lost).
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from wfrunner import builtins, context, handlers
from wfrunner.compiler.ir import IR, IRNode
from wfrunner.context import NodeContext
from wfrunner.engine import catching, handler_slots, human, joinrules, mapnode, mapping, subflow
from wfrunner.engine import scope as scopes
from wfrunner.engine.catching import Catch
from wfrunner.engine.events import event
from wfrunner.engine.joinview import JoinView
from wfrunner.engine.leases import LeaseKeeper, delivery_holder, task_of
from wfrunner.engine.payloads import encode_payload
from wfrunner.engine.routing import Decision, Route, dead_successors, decide, decide_failure
from wfrunner.engine.runstate import (
    CONFLICT,
    DEAD,
    LIVE,
    NOT_PENDING,
    PAUSED,
    RUNNING,
    Begin,
    Commit,
    DeadArrival,
    JoinArrival,
    RunState,
)
from wfrunner.engine.tokens import Token
from wfrunner.errors import ConditionError, CounterError, LoopLimitError, NodeError, WfrunnerError


@dataclass
class Outcome:
    #: tokens to send as execute_node messages
    dispatch: list[Token] = field(default_factory=list)
    #: whether to send check_completion for the run
    check_completion: bool = False
    #: with check_completion, the arrivals at each join instance the commit that took the
    #: counter to 0 read (None: the check reads them itself)
    joins_at_zero: dict[str, int] | None = None
    #: why the token was dropped (the run ended, the token was already committed)
    ignored: str | None = None
    #: the error that failed the run
    failed: str | None = None
    #: seconds after which the same token is to be delivered again (a retry, or a look
    #: at a token another delivery holds the lease on)
    retry_in: float | None = None
    #: whether the run's history is due to be copied to PostgreSQL
    flush: bool = False
    #: a handler error that is retried: "node 'x' attempt n failed (...): retrying in s"
    retrying: str | None = None
    #: the handler's traceback, when a handler error retried or failed the node
    traceback: str | None = None
    #: a human node's approval is waiting: the run's undecided approvals
    waiting: int | None = None
    #: how the node's run ended when this delivery ran it: "completed", "failed" or
    #: "retried" (None: nothing ran, e.g. a duplicate, or a join arrival recorded); what
    #: metrics and spans count
    ran: str | None = None
    #: the delivery's attempt number at the token (begin's count; 0: not begun)
    attempt: int = 0
    #: the error of a node failure its on_error node caught (the run goes on)
    caught: str | None = None
    #: Celery task ids of deliveries a join (join_rest "cancel") cut short: to revoke
    revoke: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    max_payload_bytes: int = 1024 * 1024
    payload_warn_bytes: int | None = None
    #: deliveries of a token that may die with their worker (node without a retry policy)
    max_deliveries: int = 3
    http_timeout_s: float = 30.0
    #: loop-backs one token lineage may take (WFRUNNER_MAX_LOOP_PASSES)
    max_loop_passes: int = 10_000
    #: handler -> fleet-wide limit, over the registered max_concurrency
    #: (WFRUNNER_HANDLER_CONCURRENCY)
    handler_concurrency: Mapping[str, int] = field(default_factory=dict)
    #: elements a map node's list may have (WFRUNNER_MAX_MAP_ITEMS)
    max_map_items: int = mapping.DEFAULT_MAX_ITEMS


#: commits refused because a join moved on (see lua/commit_node.lua) before giving up
_JOIN_CONFLICTS = 20


def describe(exc: BaseException, node: IRNode) -> str:
    if type(exc).__name__ == "SoftTimeLimitExceeded":
        return f"timed out after {node.timeout_ms} ms (timeout_ms)"
    if isinstance(exc, WfrunnerError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: seconds past another delivery's lease expiry before a busy delivery looks again
_LOOK_AGAIN_SLACK = 0.5


def _delivery_cap(node: IRNode, limits: Limits) -> int:
    return node.retry.max_attempts if node.retry else limits.max_deliveries


def _retry_delay(node: IRNode, attempt: int) -> float | None:
    """Seconds before the next attempt, or None when the node has no attempt left."""
    policy = node.retry
    if policy is None or attempt >= policy.max_attempts:
        return None
    return policy.backoff_ms * policy.backoff_multiplier ** (attempt - 1) / 1000.0


class Executor:
    def __init__(
        self,
        state: RunState,
        limits: Limits | None = None,
        leases: LeaseKeeper | None = None,
        launch: subflow.Launch | None = None,
    ) -> None:
        self.state = state
        self.limits = limits or Limits()
        self.leases = leases or LeaseKeeper(state, state.lease_seconds)
        #: starts a subworkflow node's child run (wfrunner/subflows.py)
        self.launch = launch
        self.slots = handler_slots.HandlerSlots(state.client, self.leases)

    def process(self, ir: IR, token: Token, nonce: str | None = None) -> Outcome:
        """Process one delivery of ``token``. ``nonce`` identifies the delivery (the Celery
        task id: the same when a message comes back after a crash or a task retries, new
        for a copy); a random one is used when none is given. The lease holder id is new
        for every call: two deliveries of one message must not share a lease."""
        nonce = nonce or uuid.uuid4().hex
        node = ir.nodes.get(token.to_node)
        if node is None:
            return Outcome(ignored=f"workflow has no node {token.to_node!r}")
        holder = delivery_holder(nonce)
        limit = handler_slots.cap(node, self.limits.handler_concurrency)
        if limit is None:
            return self._deliver(ir, node, token, nonce, holder)
        # a handler with a fleet-wide limit: a slot first, so a delivery put off for want
        # of one has not begun (no attempt counted, no lease taken)
        with self.slots.hold(str(node.function_name), limit, token, holder) as wait:
            if wait is not None:
                return Outcome(ignored=wait.reason, retry_in=wait.retry_in)
            return self._deliver(ir, node, token, nonce, holder)

    def _deliver(self, ir: IR, node: IRNode, token: Token, nonce: str, holder: str) -> Outcome:
        """Begin the token, run its node and commit (the delivery ``holder``)."""
        joining = _joins(node, token)
        started = event("node_started", node.id, scope=token.scope)
        begin = self.state.begin(
            token,
            time.time(),
            # a human node starts once, when its approval is requested, whatever the
            # deliveries (the request, the decision, the deadline)
            # nor does a map node's item or finish token (see engine/mapping.py)
            None if joining or _waits(node) or mapping.quiet(node, token) else started,
            holder,
            inputs=_reads(node, "inputs")
            or (token.payload_ref is None and not joining)
            or mapping.head_reads(node, token, "inputs"),
            context=_reads(node, "ctx") or mapping.head_reads(node, token, "ctx"),
            join=(f"{node.id}|{token.scope}", node.dependencies) if joining else None,
        )
        if begin.state != RUNNING:
            return Outcome(ignored=_dropped(begin.state))
        if begin.committed:
            if begin.committed_by != nonce:
                return Outcome(ignored="token already committed (duplicate or late delivery)")
            # this very delivery committed, then died or lost the reply before dispatching
            # (or while running successors itself): what it left unpublished goes out again
            resend = self.state.left_behind(token.run_id, begin.emitted, nonce)
            # the commit may have taken the counter to 0 and died before asking for the check
            zero = not resend and self.state.counter(token.run_id) == 0
            return Outcome(dispatch=resend, check_completion=zero)
        if begin.busy_for:
            return Outcome(
                ignored=f"another delivery is running it (lease live for {begin.busy_for:.1f} s "
                "more): looking again then",
                retry_in=begin.busy_for + _LOOK_AGAIN_SLACK,
            )
        with self.leases.hold(token.run_id, token.key, holder):
            outcome = self._begun(ir, node, token, begin, joining, started, nonce)
        outcome.attempt = begin.attempt
        return outcome

    def _begun(
        self,
        ir: IR,
        node: IRNode,
        token: Token,
        begin: Begin,
        joining: bool,
        started: dict[str, Any],
        nonce: str,
    ) -> Outcome:
        """The rest of a delivery that holds the token's lease."""
        waits = _waits(node)  # a human node: no handler runs, so no delivery cap either
        if begin.attempt > _delivery_cap(node, self.limits) and not waits:
            reason = (
                f"delivered {begin.attempt} times and its worker died each time "
                "(out of memory? raise retry.max_attempts or WFRUNNER_MAX_DELIVERIES)"
            )
            given = begin.input if token.payload_ref or joining else begin.inputs
            return self._fail(
                node, token, reason, begin.attempt, catch=Catch(ir, begin, given, nonce)
            )
        if joining:
            # begin gave the join's input when the emitter's commit found this arrival to
            # complete the join; else (a rebuilt run) the arrival is recorded here
            fired = (
                begin.input
                if begin.input is not None
                else self._arrive(ir, node, token, nonce, begin)
            )
            if isinstance(fired, Outcome):
                return fired
            node_input = fired
        else:
            node_input = begin.input if token.payload_ref else begin.inputs
        revoke: list[str] = []
        if joining and node.join is not None and node.join.cut:
            cut = self._cut_rest(node, token, begin)
            if isinstance(cut, Outcome):
                return cut
            revoke = cut
        if waits:
            wait = subflow.deliver if node.type == "subworkflow" else Executor._approval
            outcome = wait(self, ir, node, token, node_input, begin, started, nonce)
        else:
            # a join's node_started is appended by its commit (begin appended none for it)
            events = [{**started, "attempt": begin.attempt}] if joining else []
            if mapping.is_map(node):
                outcome = mapnode.deliver(self, ir, node, token, node_input, begin, events, nonce)
            else:
                outcome = self._execute(ir, node, token, node_input, begin, events, nonce)
        outcome.revoke = revoke
        return outcome

    def _cut_rest(self, node: IRNode, token: Token, begin: Begin) -> Outcome | list[str]:
        """The join fired (join_rest "cancel"): cut short the branches that only feed it
        (lua/cut_join_rest.lua); the Celery tasks running them, to revoke."""
        assert node.join is not None
        reason = f"cut short: join {node.id!r} fired (join_rest cancel)"
        state, _, holders = self.state.cut_join_rest(
            token, node.join.cut, begin.epoch, time.time(), reason
        )
        if state not in LIVE:
            return Outcome(ignored=_dropped(state))
        return [task for task in map(task_of, holders) if task]

    def _approval(
        self,
        ir: IR,
        node: IRNode,
        token: Token,
        node_input: Any,
        begin: Begin,
        started: dict[str, Any],
        nonce: str,
    ) -> Outcome:
        """A human node's delivery (see :mod:`wfrunner.engine.human`): ask for the decision
        and let the token wait, or act on the decision made (or on the deadline passed)."""
        now = time.time()
        req = human.request(node, token.scope, now)
        asked = event(
            "approval_requested",
            node.id,
            scope=token.scope,
            token=token.to_dict(),
            deadline=req["deadline"],
            prompt=req["prompt"],
        )
        got = self.state.request_approval(
            token, req, human.until(req), begin.epoch, [{**started, "attempt": 1}, asked]
        )
        if got.state != RUNNING or got.request is None:
            return Outcome(ignored=_dropped(got.state))
        verdict = human.verdict(got.request, got.decision, now)
        if verdict.timed_out is not None:  # recorded as a decision: a late one is refused
            decided = self.state.decide_approval(
                token.run_id,
                token.key,
                verdict.timed_out,
                event("approval_decided", node.id, scope=token.scope, **verdict.timed_out),
                now,
            )
            if decided.state not in LIVE:
                return Outcome(ignored=_dropped(decided.state))
            if decided.earlier is not None:  # a person decided just before the deadline
                verdict = human.verdict(got.request, decided.earlier, now)
        if verdict.action == "wait":
            return Outcome(
                ignored=f"waiting for approval (wfrunner approve {token.run_id} {node.id})",
                waiting=got.waiting,
            )
        if verdict.action == "reject":
            catch = Catch(ir, begin, node_input, nonce)
            return self._fail(node, token, verdict.reason, begin.attempt, catch=catch)
        return self._execute(ir, node, token, node_input, begin, [], nonce, verdict.output)

    def _arrive(
        self, ir: IR, node: IRNode, token: Token, nonce: str, begin: Begin
    ) -> Outcome | dict[str, Any]:
        """Record a join arrival; the merged input when this arrival fires the join."""
        assert token.from_node is not None
        instance = f"{node.id}|{token.scope}"
        value = token.payload_ref or DEAD
        for _ in range(_JOIN_CONFLICTS):
            try:
                rule = _rule_arrival(self.state, node, token, instance, value)
            except ConditionError as exc:
                return self._fail(node, token, str(exc), begin.attempt)
            arrival = self.state.arrive(
                token.run_id,
                instance,
                token.from_node,
                value,
                len(node.dependencies),
                begin.epoch,
                token.key,
                rule,
            )
            if arrival.state != CONFLICT:
                break
        else:
            raise CounterError(f"run {token.run_id!r}: join {node.id!r} kept moving on")
        if arrival.state not in LIVE:
            return Outcome(ignored=_dropped(arrival.state))
        if arrival.complete and arrival.finisher == token.from_node:
            fired = [p for p in node.dependencies if not arrival.at or p in arrival.at]
            return self.state.join_inputs(token.run_id, instance, fired)
        if arrival.closer == token.from_node:
            return self._close(ir, node, token, nonce, begin)
        arrived = event(
            "join_arrived",
            node.id,
            scope=token.scope,
            live=value != DEAD,
            token=token.to_dict(),
            **{"from": token.from_node},
        )
        commit = self.state.commit(
            token,
            [],
            time.time(),
            [arrived],
            nonce=nonce,
            holder=begin.holder,
            epoch=begin.epoch,
            delta=-1,
        )
        return Outcome(
            check_completion=commit.mine and _ends(commit),
            joins_at_zero=commit.joins,
            flush=commit.flush_due,
        )

    def _close(self, ir: IR, node: IRNode, token: Token, nonce: str, begin: Begin) -> Outcome:
        """This delivery's arrival completed the join ``node`` without its rule ever
        holding (a run rebuilt from PostgreSQL: join_arrive.lua named it the closer):
        skip the join and the paths beyond it."""
        arrived = event(
            "join_arrived",
            node.id,
            scope=token.scope,
            live=token.payload_ref is not None,
            token=token.to_dict(),
            **{"from": token.from_node},
        )
        for _ in range(_JOIN_CONFLICTS):
            try:
                fires, skipped, arrivals = self._propagate_dead(ir, token, node.id, (), closed=node)
            except ConditionError as exc:  # a join's condition beyond it
                return self._fail(node, token, str(exc), begin.attempt)
            commit = self.state.commit(
                token,
                fires,
                time.time(),
                [arrived, *skipped, *_emitted_events(token, fires)],
                nonce=nonce,
                holder=begin.holder,
                epoch=begin.epoch,
                arrivals=arrivals,
            )
            if commit.state != CONFLICT:
                break
        else:
            raise CounterError(f"run {token.run_id!r}: the joins after {node.id!r} kept moving on")
        if commit.state != RUNNING:
            return Outcome(ignored=_dropped(commit.state))
        return Outcome(
            dispatch=commit.emitted if commit.mine else [],
            check_completion=commit.mine and _ends(commit),
            joins_at_zero=commit.joins,
            flush=commit.flush_due,
        )

    def _execute(
        self,
        ir: IR,
        node: IRNode,
        token: Token,
        node_input: Any,
        begin: Begin,
        events: list[dict[str, Any]],
        nonce: str,
        given: Any = None,
    ) -> Outcome:
        """Run the node (or take ``given``, a human node's decided output), route and
        commit."""
        variables: dict[str, Any] = {
            "input": node_input,
            "inputs": begin.inputs,
            "iteration": scopes.pass_of(token.scope, node.id)
            if node.loop
            else scopes.innermost(token.scope),
            "ctx": begin.context or {},
        }
        try:
            output = (
                self._run(node, node_input, variables, token, begin) if given is None else given
            )
            variables["output"] = output
            ref, text = encode_payload(
                output, self.limits.max_payload_bytes, warn_bytes=self.limits.payload_warn_bytes
            )
            decision = decide(
                node,
                token.scope,
                variables,
                passes=token.passes,
                max_passes=self.limits.max_loop_passes,
            )
            emitted = [
                token.child(r.target, ref, iteration=r.iteration, scope=r.scope, passes=r.passes)
                for r in decision.live
            ]
        except LoopLimitError as exc:  # deterministic: no retry would decide otherwise
            catch = Catch(ir, begin, node_input, nonce, events)
            return self._fail(node, token, str(exc), begin.attempt, catch=catch)
        except Exception as exc:  # any handler error fails the node, never the worker
            trace = _handler_traceback(node, exc)
            catch = Catch(ir, begin, node_input, nonce, events)
            return self._handler_failed(node, token, describe(exc, node), begin, trace, catch)
        completed = event(
            "node_completed", node.id, scope=token.scope, output_ref=ref, token=token.to_dict()
        )
        told = [*events, completed, *_loop_events(node, decision)]
        return self._commit_routes(
            ir, node, token, begin, nonce, (emitted, decision.dead), told, (ref, text)
        )

    def _commit_routes(
        self,
        ir: IR,
        node: IRNode,
        token: Token,
        begin: Begin,
        nonce: str,
        routes: tuple[list[Token], tuple[Route, ...]],
        told: list[dict[str, Any]],
        output: tuple[str, str],
        ran: str = "completed",
    ) -> Outcome:
        """Commit the token with the events ``told``: ``routes`` (the tokens emitted, the
        routes not taken, whose paths are propagated as dead) and ``output`` stored."""
        emitted, not_taken = routes
        live = [a for a in (_arrival(ir.nodes[t.to_node], t, token) for t in emitted) if a]
        careful = False  # after a conflict, the joins with a rule are decided here
        for _ in range(_JOIN_CONFLICTS):
            try:
                fires, skipped, arrivals = self._propagate_dead(
                    ir, token, node.id, not_taken, live, careful, output
                )
            except ConditionError as exc:  # a join's condition: deterministic, no retry
                return self._fail(node, token, str(exc), begin.attempt)
            sent = emitted + fires
            commit = self.state.commit(
                token,
                sent,
                time.time(),
                [*told, *skipped, *_emitted_events(token, sent)],
                nonce=nonce,
                holder=begin.holder,
                epoch=begin.epoch,
                output=output,
                arrivals=arrivals,
            )
            if commit.state != CONFLICT:
                break
            careful = True
        else:
            raise CounterError(
                f"run {token.run_id!r}: the joins {node.id!r} records dead arrivals at kept "
                f"changing over {_JOIN_CONFLICTS} commits; the task is retried"
            )
        if commit.state not in LIVE:
            return Outcome(ignored=_dropped(commit.state))
        if not commit.mine:
            return Outcome(ignored="another delivery of this token committed first")
        return Outcome(
            # a paused run's emitted tokens wait in its outbox: its resume publishes them
            dispatch=[] if commit.state == PAUSED else commit.emitted,
            check_completion=_ends(commit),
            joins_at_zero=commit.joins,
            flush=commit.flush_due,
            ran=ran,
        )

    def _run(
        self, node: IRNode, node_input: Any, variables: dict[str, Any], token: Token, begin: Begin
    ) -> Any:
        if node.function_name:
            entry = handlers.lookup(node.function_name)
            ctx = self._context(node, token, begin, variables) if entry.takes_context else None
            try:
                if ctx is None:
                    return entry.fn(node_input, node.config)
                return entry.fn(node_input, node.config, ctx)
            except Exception:
                raise
            except BaseException as exc:  # SystemExit, KeyboardInterrupt: user code may
                # fail its node, never end the pool process (which reads as a dead worker)
                if _process_terminating():
                    raise  # the worker's own shutdown: the message goes back to the queue
                raise NodeError(
                    f"handler {node.function_name!r} raised {describe(exc, node)}: "
                    "a handler must return or raise an Exception, not stop the worker"
                ) from exc
        timeout = node.timeout_ms / 1000 if node.timeout_ms else self.limits.http_timeout_s
        return builtins.run_builtin(
            node.id,
            node.type,
            node.config,
            node_input,
            variables,
            timeout_s=timeout,
            max_bytes=self.limits.max_payload_bytes,
            join=node.wait_for_all,
        )

    def _context(
        self, node: IRNode, token: Token, begin: Begin, variables: dict[str, Any]
    ) -> NodeContext:
        """The third argument of a handler that declares one (wfrunner/context.py)."""
        return context.for_delivery(
            self.leases,
            run_id=token.run_id,
            workflow_id=self.state.meta(token.run_id).get("workflow_id", ""),
            node_id=node.id,
            handler=str(node.function_name),
            token_key=token.key,
            holder=begin.holder,
            attempt=begin.attempt,
            iteration=int(variables["iteration"]),
            item_index=mapping.role(node.id, token).index if mapping.is_map(node) else None,
        )

    def _propagate_dead(
        self,
        ir: IR,
        token: Token,
        source: str,
        routes: tuple[Route, ...],
        live: Sequence[JoinArrival] = (),
        careful: bool = False,
        known: tuple[str, str] | None = None,
        closed: IRNode | None = None,
    ) -> tuple[list[Token], list[dict[str, Any]], list[DeadArrival | JoinArrival]]:
        """Skip what only dead paths reach, deciding at each join from its arrivals as read
        now: the arrivals for the commit to record (the dead ones, then ``live``; it
        refuses those decided here should a join move on meanwhile), fire tokens for joins
        they complete, and the events. At a join with a rule, the live arrivals are
        decided here too when Lua cannot (a condition; ``careful``: after a conflict,
        which an arrival that completes such a join without firing it also is), and a
        join whose rule never held is skipped like the rest (``closed``: the join that
        ``token``'s own arrival completed so)."""
        work = [(source, r) for r in routes]
        fires: list[Token] = []
        events: list[dict[str, Any]] = []
        arrivals: list[DeadArrival | JoinArrival] = []
        joins: dict[str, dict[str, str]] = {}
        seen: set[tuple[str, str]] = set()
        view = JoinView(self.state, token.run_id, known)
        if closed is not None:
            work += self._skip_join(closed, token.scope, view, events, seen)
        self._drain(ir, token, work, view, fires, events, arrivals, joins, seen)
        for arrival in live:
            decided = self._judge_live(ir, arrival, careful, view)
            arrivals.append(decided)
            target = ir.nodes[arrival.token.to_node]
            if (
                decided.observed is not None
                and arrival.instance not in view.fired
                and len(view.read(target, arrival.instance)) >= len(target.dependencies)
            ):
                work += self._skip_join(target, arrival.token.scope, view, events, seen)
        if work:  # a join closed: the dead paths beyond it may meet this commit's arrivals
            if not careful and any(ir.nodes[a.token.to_node].join for a in live):
                # every rule arrival decided here, so those meetings are decided right
                return self._propagate_dead(ir, token, source, routes, live, True, known, closed)
            self._count_live(ir, token, live, joins)
        self._drain(ir, token, work, view, fires, events, arrivals, joins, seen)
        return fires, events, arrivals

    def _count_live(
        self, ir: IR, token: Token, live: Sequence[JoinArrival], joins: dict[str, dict[str, str]]
    ) -> None:
        """Count this commit's arrivals at joins without a rule where dead paths may meet
        them, as the commit will count them (it lists those dead arrivals after them)."""
        for arrival in live:
            target = ir.nodes[arrival.token.to_node]
            if target.join is not None:
                continue
            if arrival.instance not in joins:
                read = self.state.join_fields(token.run_id, arrival.instance, target.dependencies)
                joins[arrival.instance] = dict(read.arrived)
            value = arrival.token.payload_ref or DEAD
            joins[arrival.instance].setdefault(str(arrival.token.from_node), value)

    def _judge_live(
        self, ir: IR, arrival: JoinArrival, careful: bool, view: JoinView
    ) -> JoinArrival:
        """``arrival`` as the commit is to record it: decided here (``observed``, ``fire``,
        its event marked late) at a join with a rule Lua cannot decide alone."""
        target = ir.nodes[arrival.token.to_node]
        rule = target.join
        src = str(arrival.token.from_node)
        if rule is None or (rule.kind != "condition" and not careful):
            return arrival
        if src in view.read(target, arrival.instance):
            return arrival  # recorded already: the commit consumes it
        verdict, observed = view.judge(
            target, arrival.instance, src, arrival.token.payload_ref or DEAD
        )
        late = {"late": True} if verdict == joinrules.LATE else {}
        return replace(
            arrival,
            observed=observed,
            fire=verdict == joinrules.FIRE,
            event={**late, **arrival.event},
        )

    def _skip_join(
        self,
        join: IRNode,
        scope: str,
        view: JoinView,
        events: list[dict[str, Any]],
        seen: set[tuple[str, str]],
    ) -> list[tuple[str, Route]]:
        """Skip a join whose every input arrived without its rule holding; where the dead
        path goes on from it."""
        assert join.join is not None
        instance = f"{join.id}|{scope}"
        view.read(join, instance)
        reason = joinrules.never_held(join.join, view.live_count(instance), len(join.dependencies))
        seen.add((join.id, scope))
        events.append(event("node_skipped", join.id, scope=scope, reason=reason))
        return [(join.id, r) for r in dead_successors(join, scope)]

    def _drain(
        self,
        ir: IR,
        token: Token,
        work: list[tuple[str, Route]],
        view: JoinView,
        fires: list[Token],
        events: list[dict[str, Any]],
        arrivals: list[DeadArrival | JoinArrival],
        joins: dict[str, dict[str, str]],
        seen: set[tuple[str, str]],
    ) -> None:
        """Follow the dead paths in ``work`` to their end (it is emptied)."""
        while work:
            src, route = work.pop(0)
            target = ir.nodes[route.target]
            reason: str | None = None
            if target.wait_for_all and src in target.dependencies and target.join is not None:
                told = (fires, events, arrivals)
                reason = _dead_at_rule_join(token, src, target, route, view, *told)
                if reason is None:
                    continue
            elif target.wait_for_all and src in target.dependencies:
                instance = f"{target.id}|{route.scope}"
                if instance not in joins:
                    fields = self.state.join_fields(token.run_id, instance, target.dependencies)
                    joins[instance] = dict(fields.arrived)
                arrived = joins[instance]
                if src in arrived:
                    continue  # recorded already: its commit decided what it caused
                arrivals.append(DeadArrival(instance, src, len(target.dependencies), len(arrived)))
                arrived[src] = DEAD
                events.append(
                    event("join_arrived", target.id, scope=route.scope, live=False, **{"from": src})
                )
                if len(arrived) < len(target.dependencies):
                    continue
                if any(value != DEAD for value in arrived.values()):
                    fires.append(_fire_token(token, src, target.id, route))
                    continue
            if (target.id, route.scope) in seen:
                continue
            seen.add((target.id, route.scope))
            why = {"reason": reason} if reason else {}
            events.append(event("node_skipped", target.id, scope=route.scope, **why))
            work += [(target.id, r) for r in dead_successors(target, route.scope)]

    def _handler_failed(
        self,
        node: IRNode,
        token: Token,
        reason: str,
        begin: Begin,
        trace: str | None = None,
        catch: Catch | None = None,
    ) -> Outcome:
        delay = _retry_delay(node, begin.attempt)
        if delay is None:
            return self._fail(node, token, reason, begin.attempt, trace, catch=catch)
        attempt = begin.attempt
        retrying = event(
            "node_retrying",
            node.id,
            scope=token.scope,
            attempt=attempt,
            error=reason,
            delay=delay,
            **({"traceback": trace} if trace else {}),
        )
        if not self.state.record(
            token.run_id, [retrying], token, time.time() + delay, epoch=begin.epoch
        ):
            return Outcome(ignored="run is no longer running")
        note = f"node {node.id!r} attempt {attempt} failed ({reason}): retrying in {delay:g} s"
        return Outcome(retry_in=delay, retrying=note, traceback=trace, ran="retried")

    def _fail(
        self,
        node: IRNode,
        token: Token,
        reason: str,
        attempt: int,
        trace: str | None = None,
        *,
        catch: Catch | None = None,
    ) -> Outcome:
        error = f"node {node.id!r} failed: {reason.removeprefix(f'node {node.id!r}: ')}"
        if node.on_error and catch is not None:
            return self._caught(node, token, error, attempt, trace, catch)
        self.state.end(
            token.run_id,
            "failed",
            error,
            [
                _node_failed(node, token, error, attempt, trace),
                event("run_failed", None, error=error),
            ],
        )
        return Outcome(failed=error, check_completion=True, traceback=trace, ran="failed")

    def _caught(
        self, node: IRNode, token: Token, error: str, attempt: int, trace: str | None, catch: Catch
    ) -> Outcome:
        """Commit the node's failure and send its token to its on_error node
        (:mod:`wfrunner.engine.catching`); the run goes on."""
        decision = decide_failure(node, token.scope, token.passes)
        ref, text = catching.encoded_error_input(
            error, node.id, catch.node_input, self.limits.max_payload_bytes
        )
        emitted = [
            token.child(r.target, ref, iteration=r.iteration, scope=r.scope, passes=r.passes)
            for r in decision.live
        ]
        failed = _node_failed(
            node, token, error, attempt, trace, caught=True, on_error=node.on_error, error_ref=ref
        )
        routes = (emitted, decision.dead)
        told = [*catch.events, failed]
        outcome = self._commit_routes(
            catch.ir, node, token, catch.begin, catch.nonce, routes, told, (ref, text), "failed"
        )
        if outcome.ignored is None:
            outcome.caught, outcome.traceback = error, trace
        return outcome


def _node_failed(
    node: IRNode, token: Token, error: str, attempt: int, trace: str | None, **extra: Any
) -> dict[str, Any]:
    return event(
        "node_failed",
        node.id,
        scope=token.scope,
        error=error,
        attempt=attempt,
        token=token.to_dict(),
        **extra,
        **({"traceback": trace} if trace else {}),
    )


#: characters of a handler's traceback kept in the event log (its innermost frames)
TRACEBACK_CHARS = 8000


def _handler_traceback(node: IRNode, exc: BaseException) -> str | None:
    """The handler's traceback, for the event log, the worker log and ``status``: where
    a handler raised is what its author needs. None for wfrunner's own errors (a CEL
    expression, a payload too large), whose message says it all."""
    if not node.function_name or isinstance(exc, WfrunnerError):
        return None
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= TRACEBACK_CHARS else "...\n" + text[-TRACEBACK_CHARS:]


def _process_terminating() -> bool:
    """Whether a SystemExit comes from the pool process's own terminate handler (billiard
    sets a flag before raising it) rather than from the handler's code."""
    try:
        from billiard.common import terminate_handler_fired
    except ImportError:  # no Celery pool in this process (or an older billiard)
        return False
    return bool(terminate_handler_fired())


def _dropped(state: str) -> str:
    """Why a delivery was dropped, from the state a script answered."""
    if state == NOT_PENDING:
        return (
            "token is not pending: cut short by a join (join_rest cancel), or never "
            "emitted here (Redis restored from an older snapshot, or a forged message)"
        )
    if state == PAUSED:
        return "run is paused: the token waits in its outbox until `wfrunner resume`"
    return f"run is {state}"


def _emitted_events(consumed: Token, emitted: list[Token]) -> list[dict[str, Any]]:
    return [
        event(
            "token_emitted",
            t.from_node,
            to=t.to_node,
            scope=t.scope,
            token=t.to_dict(),
            by=consumed.key,
            **{"from": t.from_node},
        )
        for t in emitted
    ]


def _loop_events(node: IRNode, decision: Decision) -> list[dict[str, Any]]:
    if decision.loop is None:
        return []
    outcome, number = decision.loop
    return [event("loop_decided", node.id, outcome=outcome, **{"pass": number})]


def _reads(node: IRNode, variable: str) -> bool:
    """Whether one of the node's CEL expressions may read ``variable`` (a handler gets only
    ``input``): the run's inputs and the context are fetched only for nodes that do."""
    texts = [str(node.config.get(k, "")) for k in ("expression", "filter_expression")]
    if node.branch:
        texts += [r.condition for r in node.branch.rules]
    if node.loop:
        texts.append(node.loop.condition)
    return any(variable in text for text in texts)


def _ends(commit: Commit) -> bool:
    """Whether the commit took the run's counter to 0 (the one commit of a run that asks
    for the completion check). A retry of this very commit (its reply was lost) is
    answered unchanged, with the counter it left: 0 still asks."""
    return commit.hit_zero or (not commit.changed and commit.value == 0)


def _waits(node: IRNode) -> bool:
    """Whether the node waits for a decision made outside the worker: a person's (an
    approval step), or a child run's end (a subworkflow node)."""
    return (node.type == "human" and not node.function_name) or node.type == "subworkflow"


def _joins(node: IRNode, token: Token) -> bool:
    """Whether ``token`` is an arrival at the join ``node`` (not a loop-back into it)."""
    return node.wait_for_all and token.from_node in node.dependencies


def _dead_at_rule_join(
    token: Token,
    src: str,
    join: IRNode,
    route: Route,
    view: JoinView,
    fires: list[Token],
    events: list[dict[str, Any]],
    arrivals: list[DeadArrival | JoinArrival],
) -> str | None:
    """Record ``src``'s dead arrival at a join with a rule (and the token that fires it,
    should a condition hold now); why the join is skipped, or None when the dead path
    ends there (it fired, or still waits)."""
    assert join.join is not None
    instance = f"{join.id}|{route.scope}"
    if src in view.read(join, instance):
        return None  # recorded already: its commit decided what it caused
    verdict, observed = view.judge(join, instance, src, DEAD)
    fire = verdict == joinrules.FIRE
    expected = len(join.dependencies)
    arrivals.append(DeadArrival(instance, src, expected, observed, join.join.need, fire))
    late = {"late": True} if verdict == joinrules.LATE else {}
    events.append(
        event("join_arrived", join.id, scope=route.scope, live=False, **late, **{"from": src})
    )
    if fire:
        fires.append(_fire_token(token, src, join.id, route))
    if verdict != joinrules.DEAD:
        return None
    return joinrules.never_held(join.join, view.live_count(instance), expected)


def _fire_token(token: Token, src: str, join: str, route: Route) -> Token:
    """The token that fires ``join`` after ``src``'s dead arrival completed it."""
    return Token(
        token.run_id,
        src,
        join,
        None,
        token.hop + 1,
        route.iteration,
        route.scope,
        token.passes,
    )


def _rule_arrival(
    state: RunState, node: IRNode, token: Token, instance: str, value: str
) -> tuple[int, str, int] | None:
    """join_arrive's rule arguments for ``token``'s arrival at ``node`` (None: no rule):
    a condition is decided here from the arrivals read."""
    if node.join is None:
        return None
    if node.join.kind != "condition":
        return (node.join.need, "", 0)
    view = JoinView(state, token.run_id)
    if str(token.from_node) in view.read(node, instance):
        return (0, "", 0)  # recorded already: join_arrive answers as before
    verdict, observed = view.judge(node, instance, str(token.from_node), value)
    return (0, "fire" if verdict == joinrules.FIRE else "hold", observed)


def _arrival(target: IRNode, emitted: Token, consumed: Token) -> JoinArrival | None:
    """The join arrival ``emitted`` is, recorded by the commit that consumes ``consumed``
    and emits it; its event names that token (``by``, as token_emitted does): an arrival
    consumed there is never sent as a message."""
    if not _joins(target, emitted):
        return None
    arrived = event(
        "join_arrived",
        target.id,
        scope=emitted.scope,
        live=True,
        token=emitted.to_dict(),
        by=consumed.key,
        **{"from": emitted.from_node},
    )
    need = target.join.need if target.join else None
    return JoinArrival(
        emitted, f"{target.id}|{emitted.scope}", len(target.dependencies), arrived, need
    )
