"""``wfrunner.execute_node``: one token through one node (see engine/executor.py)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from celery import Task
from kombu.exceptions import BatchPublishError
from kombu.messaging import Producer

from wfrunner import lifecycle, telemetry
from wfrunner.compiler.ir import IR
from wfrunner.engine.executor import Outcome
from wfrunner.engine.runstate import CompletionView, seen_at_zero
from wfrunner.engine.tokens import Token
from wfrunner.errors import CounterError, NodeFailed, WfrunnerError
from wfrunner.redisclient import UNAVAILABLE
from wfrunner.runtime import Runtime, runtime
from wfrunner.settings import HARD_LIMIT_GRACE
from wfrunner.states import RunStatus
from wfrunner.tasks import broker, inline
from wfrunner.tasks.app import app
from wfrunner.tasks.config import COMPLETION_QUEUE, TASK_QUEUE
from wfrunner.tasks.finisher import FINISHER

log = logging.getLogger(__name__)


#: Redis trouble is retried (every counter operation is idempotent; on a Redis Cluster, a
#: slot whose master is being failed over too), and so is a batch of publishes whose
#: delivery is uncertain (the retry, with the same task id, dispatches again what is still
#: pending); handler errors are not
RETRY_ON = (CounterError, *UNAVAILABLE, BatchPublishError)
#: what makes a completion check wait for its queued copy
CHECK_TROUBLE: tuple[type[Exception], ...] = (WfrunnerError, redis.RedisError, *UNAVAILABLE)


@contextmanager
def publishing() -> Iterator[Producer]:
    """One producer for all of a delivery's publishes, sent to Redis in one pipelined round
    trip when the block ends (kombu's publish batch) instead of one per message: a node
    fanning out to 200 others pays for one. An exception inside the block discards what it
    had queued; the tokens wait in the run's outbox, as after a crash before dispatching."""
    with app.producer_or_acquire() as producer, producer.batch():
        yield producer


#: in the log line of a token a task runs itself after its predecessor (not a message)
FOLLOWS = "no message"

#: seconds a queued flush blocks the next one: a lost flush message stops no later flush
FLUSH_QUEUED_TTL = 60.0


def dispatch(
    tokens: Iterable[Token],
    workflow_id: str,
    ir: IR | None = None,
    countdown: float | None = None,
    producer: Producer | None = None,
) -> None:
    """Publish one execute_node message per token; a node's timeout_ms becomes its limits."""
    for token in tokens:
        options: dict[str, Any] = {
            "queue": TASK_QUEUE,
            "producer": producer,
            "shadow": node_task_name(ir, workflow_id, token.to_node),
            "argsrepr": describe_token(token),
        }
        node = ir.nodes.get(token.to_node) if ir else None
        if node is not None and node.timeout_ms:
            options["soft_time_limit"] = node.timeout_ms / 1000
            options["time_limit"] = node.timeout_ms / 1000 + HARD_LIMIT_GRACE
        if countdown:
            options["countdown"] = broker.countdown(execute_node.app.conf, countdown)
        execute_node.apply_async(args=[token.run_id, workflow_id, token.to_dict()], **options)


#: the name Flower and the worker log show for a node's task (the task itself stays
#: ``wfrunner.execute_node``): ``wfrunner.node:<workflow name>.<node id>``
NODE_TASK_PREFIX = "wfrunner.node:"


def node_task_name(ir: IR | None, workflow_id: str, node_id: str) -> str:
    name = ir.metadata.get("name") if ir else None
    return f"{NODE_TASK_PREFIX}{name if isinstance(name, str) and name else workflow_id}.{node_id}"


def describe_token(token: Token) -> str:
    """The task's arguments as Flower shows them: the run, the node and how it got there."""
    parts = [f"run={token.run_id}", f"node={token.to_node}", f"from={token.from_node or '-'}"]
    if token.scope:
        parts.append(f"scope={token.scope}")
    return " ".join(parts)


def request_completion_check(run_id: str, producer: Producer | None = None) -> None:
    from wfrunner.tasks.runs import check_completion

    check_completion.apply_async(args=[run_id], queue=COMPLETION_QUEUE, producer=producer)


def request_flush(run_id: str) -> None:
    """Mark the run due to be flushed; unless a flush_runs task of its shard is queued
    already, queue one to run WFRUNNER_FLUSH_INTERVAL s later: it takes every run of the
    shard marked until then, in one transaction (one flush transaction per shard and
    interval, however many runs progress)."""
    from wfrunner.tasks.runs import queue_flush_runs

    rt = runtime()
    shard = rt.state.mark_dirty(run_id, FLUSH_QUEUED_TTL)
    if shard is not None:
        queue_flush_runs(rt, shard)


@app.task(
    name="wfrunner.execute_node",
    bind=True,
    ignore_result=True,
    autoretry_for=RETRY_ON,
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=20,
)
def execute_node(self: Task, run_id: str, workflow_id: str, token: dict[str, Any]) -> None:
    rt = runtime()
    first = Token.from_dict(token)
    failed = carry(rt, workflow_id, [first], str(self.request.id), carry_budget_ms(self))
    if failed:
        raise NodeFailed(failed)  # the task shows as FAILURE, with the handler's traceback


def carry_budget_ms(task: Task) -> int:
    """How long ``task`` may go on with tokens its nodes emit: a task with time limits (its
    node's timeout_ms, or limits set for every task) runs only its own node, since the
    limits would cut a successor short."""
    return runtime().settings.inline_ms if not any(task.request.timelimit or ()) else 0


#: how long each node took in this process: which siblings a task keeps (tasks/inline.py)
DURATIONS = inline.Durations()


def carry_entries(
    rt: Runtime, workflow_id: str, entries: Sequence[Token], nonce: str, inline_ms: int
) -> str | None:
    """A run's entry tokens, from the task that started it: those it would keep of a
    node's emits (:func:`wfrunner.tasks.inline.plan`) it runs itself (:func:`carry`), the
    others are published first, so they run in parallel elsewhere. A diamond of quick
    nodes is then one task in all, its start included."""
    ir = rt.ir(workflow_id)
    keep: list[Token] = []
    rest = list(entries)
    if inline_ms:
        keep, rest = inline.plan(ir, workflow_id, entries, [], DURATIONS)
    if rest:
        with publishing() as producer:
            dispatch(rest, workflow_id, ir, producer=producer)
    return carry(rt, workflow_id, [follows(t) for t in keep], nonce, inline_ms) if keep else None


def carry(
    rt: Runtime, workflow_id: str, tokens: Sequence[Token], nonce: str, inline_ms: int
) -> str | None:
    """Process ``tokens``, then, for up to ``inline_ms`` ms, tokens the nodes emitted, in
    this same task: always one when it has nothing else to run, and siblings whose nodes
    are quick (:func:`wfrunner.tasks.inline.plan`); the others are published at once, so
    they run in parallel elsewhere. A chain costs one message per ``inline_ms`` instead of
    one per node, a diamond of quick nodes none beyond its start.

    Every token is still emitted into the run's outbox and committed at most once, under
    the same delivery ``nonce`` (the message's task id): should the worker die on the way,
    the message comes back (late ack) and its redelivery publishes whatever the task left
    pending (``RunState.left_behind``). When the time is up, the tokens kept are published.

    Returns why the run failed (with the handler's traceback) when a node failed it here.
    """
    failed: str | None = None
    ir = rt.ir(workflow_id)
    until = time.monotonic() + inline_ms / 1000
    queued: deque[Token] = deque(tokens)
    while queued:
        current = queued.popleft()
        began = time.monotonic()
        outcome = rt.executor.process(ir, current, nonce=nonce)
        ran = time.monotonic()
        telemetry.node_done(rt, workflow_id, current, outcome, ran - began)
        if not outcome.ignored:
            DURATIONS.record(workflow_id, inline.timed(current), ran - began)
        failed = _note(rt, current, outcome) or failed
        if ran < until:
            keep, rest = inline.plan(ir, workflow_id, outcome.dispatch, queued, DURATIONS)
        else:  # time is up: what was kept goes out too
            keep, rest = [], [*outcome.dispatch, *queued]
            queued.clear()
        queue_check = _check_elsewhere(rt, workflow_id, current, outcome, inline_ms)
        if rest or outcome.retry_in is not None or queue_check:
            with publishing() as producer:
                if outcome.retry_in is not None:
                    dispatch(
                        [current], workflow_id, ir, countdown=outcome.retry_in, producer=producer
                    )
                dispatch(rest, workflow_id, ir, producer=producer)
                if queue_check:
                    request_completion_check(current.run_id, producer)
        if outcome.flush:
            request_flush(current.run_id)
        queued.extend(follows(t) for t in keep)
    return failed


def _note(rt: Runtime, token: Token, outcome: Outcome) -> str | None:
    """Log what became of a token; why the run failed, when the token's node failed it."""
    if outcome.ignored:
        log.info("run %s: token to %s ignored: %s", token.run_id, token.to_node, outcome.ignored)
    if outcome.retrying:
        log.warning("run %s: %s%s", token.run_id, outcome.retrying, _trace(outcome))
    if outcome.caught:
        log.warning(
            "run %s: %s; on_error took over%s", token.run_id, outcome.caught, _trace(outcome)
        )
    if outcome.waiting:  # PostgreSQL's status follows (runs --status WAITING)
        rt.store.transition_run(token.run_id, RunStatus.WAITING, from_states=[RunStatus.RUNNING])
    if outcome.revoke:  # a join_rest "cancel" join cut these short: their commits are refused
        try:
            app.control.revoke(outcome.revoke, terminate=True, signal="SIGTERM")
        except Exception as exc:
            log.warning("run %s: cut short tasks not revoked (%s)", token.run_id, exc)
    if outcome.failed:
        return f"run {token.run_id} failed: {outcome.failed}{_trace(outcome)}"
    return None


def follows(token: Token) -> Token:
    """Log that ``token`` runs in the task at hand, with no message of its own."""
    log.info("run %s: %s runs next in this task (%s)", token.run_id, token.to_node, FOLLOWS)
    return token


def _trace(outcome: Outcome) -> str:
    return f"\n{outcome.traceback.rstrip()}" if outcome.traceback else ""


def _check_elsewhere(
    rt: Runtime, workflow_id: str, token: Token, outcome: Outcome, inline_ms: int
) -> bool:
    """Whether the run's completion check goes to the completion queue. With time to
    spare the run's end is recorded in this process (by its finisher thread, while the
    task goes on), not by a task on that queue (a message and a task less per run); the
    queue stays the fallback should PostgreSQL or Redis be away."""
    if not outcome.check_completion:
        return False
    if not inline_ms:
        return True
    finish_here(rt, token.run_id, seen_at_zero(workflow_id, outcome.joins_at_zero))
    return False


def finish_here(rt: Runtime, run_id: str, seen: CompletionView | None) -> None:
    """Hand the run's completion check to this process's finisher thread
    (:mod:`wfrunner.tasks.finisher`); should it fail there, the check is queued."""

    def work() -> None:
        try:
            lifecycle.check_completion(rt, run_id, seen)
            return
        except CHECK_TROUBLE as exc:
            log.warning("run %s: completion check queued (%s)", run_id, exc)
        except Exception:
            log.exception("run %s: completion check queued after an error", run_id)
        try:
            with publishing() as producer:
                request_completion_check(run_id, producer)
        except Exception:  # the reconciler checks every run whose counter is 0
            log.exception("run %s: completion check not queued: the reconciler makes it", run_id)

    FINISHER.submit(work)
