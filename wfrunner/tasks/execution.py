"""``wfrunner.execute_node``: one token through one node (see engine/executor.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from celery import Task
from kombu.exceptions import BatchPublishError
from kombu.messaging import Producer

from wfrunner.compiler.ir import IR
from wfrunner.engine.tokens import Token
from wfrunner.errors import CounterError
from wfrunner.runtime import runtime
from wfrunner.settings import HARD_LIMIT_GRACE
from wfrunner.tasks.app import app
from wfrunner.tasks.config import COMPLETION_QUEUE, TASK_QUEUE

log = logging.getLogger(__name__)


#: Redis trouble is retried (every counter operation is idempotent), and so is a batch of
#: publishes whose delivery is uncertain (the retry, with the same task id, dispatches
#: again what is still pending); handler errors are not
RETRY_ON = (CounterError, redis.ConnectionError, redis.TimeoutError, BatchPublishError)


@contextmanager
def publishing() -> Iterator[Producer]:
    """One producer for all of a delivery's publishes, sent to Redis in one pipelined round
    trip when the block ends (kombu's publish batch) instead of one per message: a node
    fanning out to 200 others pays for one. An exception inside the block discards what it
    had queued; the tokens wait in the run's outbox, as after a crash before dispatching."""
    with app.producer_or_acquire() as producer, producer.batch():
        yield producer


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
        options: dict[str, Any] = {"queue": TASK_QUEUE, "producer": producer}
        node = ir.nodes.get(token.to_node) if ir else None
        if node is not None and node.timeout_ms:
            options["soft_time_limit"] = node.timeout_ms / 1000
            options["time_limit"] = node.timeout_ms / 1000 + HARD_LIMIT_GRACE
        if countdown:
            options["countdown"] = countdown
        execute_node.apply_async(args=[token.run_id, workflow_id, token.to_dict()], **options)


def request_completion_check(run_id: str, producer: Producer | None = None) -> None:
    from wfrunner.tasks.runs import check_completion

    check_completion.apply_async(args=[run_id], queue=COMPLETION_QUEUE, producer=producer)


def request_flush(run_id: str) -> None:
    """Mark the run due to be flushed; unless a flush_runs task is queued already, queue
    one to run WFRUNNER_FLUSH_INTERVAL s later: it takes every run marked until then, in
    one transaction (one flush transaction per interval, however many runs progress)."""
    from wfrunner.tasks.runs import queue_flush_runs

    rt = runtime()
    if rt.state.mark_dirty(run_id, FLUSH_QUEUED_TTL):
        queue_flush_runs(rt)


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
    ir = rt.ir(workflow_id)
    current = Token.from_dict(token)
    outcome = rt.executor.process(ir, current, nonce=self.request.id)
    if outcome.ignored:
        log.info("run %s: token to %s ignored: %s", run_id, current.to_node, outcome.ignored)
    if outcome.failed:
        log.warning("run %s failed: %s", run_id, outcome.failed)
    with publishing() as producer:
        if outcome.retry_in is not None:
            dispatch([current], workflow_id, ir, countdown=outcome.retry_in, producer=producer)
        dispatch(outcome.dispatch, workflow_id, ir, producer=producer)
        if outcome.check_completion:
            request_completion_check(run_id, producer)
    if outcome.flush:
        request_flush(run_id)
