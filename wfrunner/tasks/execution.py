"""``wfrunner.execute_node``: one token through one node (see engine/executor.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis

from wfrunner.engine.tokens import Token
from wfrunner.errors import CounterError
from wfrunner.runtime import runtime
from wfrunner.tasks.app import app
from wfrunner.tasks.config import COMPLETION_QUEUE, TASK_QUEUE

log = logging.getLogger(__name__)

#: Redis trouble is retried (every counter operation is idempotent); handler errors are not
RETRY_ON = (CounterError, redis.ConnectionError, redis.TimeoutError)


def dispatch(tokens: Iterable[Token], workflow_id: str) -> None:
    for token in tokens:
        execute_node.apply_async(
            args=[token.run_id, workflow_id, token.to_dict()], queue=TASK_QUEUE
        )


def request_completion_check(run_id: str) -> None:
    from wfrunner.tasks.runs import check_completion

    check_completion.apply_async(args=[run_id], queue=COMPLETION_QUEUE)


@app.task(
    name="wfrunner.execute_node",
    autoretry_for=RETRY_ON,
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=20,
)
def execute_node(run_id: str, workflow_id: str, token: dict[str, Any]) -> None:
    rt = runtime()
    outcome = rt.executor.process(rt.ir(workflow_id), Token.from_dict(token))
    if outcome.ignored:
        log.info("run %s: token to %s ignored: %s", run_id, token.get("to_node"), outcome.ignored)
    if outcome.failed:
        log.warning("run %s failed: %s", run_id, outcome.failed)
    dispatch(outcome.dispatch, workflow_id)
    if outcome.check_completion:
        request_completion_check(run_id)
