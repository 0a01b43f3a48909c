"""Run-level tasks: start_run, check_completion (on its own queue), detect_timeouts (beat).

Only ``start_run`` stores a Celery result, the run id (``start_run.delay(...).get()`` is
the public way to wait for a run to exist, and surfaces an unknown workflow); every other
engine task ignores its result, so a run leaves one ``celery-task-meta-*`` key, not one
per token.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery import Task, states
from celery.backends.base import BaseKeyValueStoreBackend
from celery.worker.request import Request
from celery.worker.state import task_ready

from wfrunner import (
    failure_handler,
    fencing,
    lifecycle,
    poison,
    reconciler,
    recovery,
    subflows,
    telemetry,
)
from wfrunner.engine import keys
from wfrunner.engine.tokens import Token
from wfrunner.errors import NodeFailed, NotFoundError, StoreError, WfrunnerError
from wfrunner.runtime import Runtime, runtime
from wfrunner.tasks.app import app
from wfrunner.tasks.config import COMPLETION_QUEUE
from wfrunner.tasks.execution import (
    FLUSH_QUEUED_TTL,
    RETRY_ON,
    carry_budget_ms,
    carry_entries,
    dispatch,
    publishing,
)

log = logging.getLogger(__name__)

#: the tasks that write to PostgreSQL retry while it (or Redis) is away
_RETRIED: dict[str, Any] = {
    "autoretry_for": (*RETRY_ON, StoreError),
    "dont_autoretry_for": (NotFoundError,),
    "retry_backoff": True,
    "max_retries": 30,
}

#: most runs one flush_runs task copies (one transaction); more queue another task
FLUSH_BATCH = 200


class StartRequest(Request):  # type: ignore[misc]
    """start_run's request in the worker's main process. start_run stores its result, the
    run id, before it runs any node; Celery acks, instead of sending again, the message of
    a task whose pool child died after it stored SUCCESS (it takes the task for done).
    start_run's children die in nodes, so its message is put back as any other task's
    would be (``task_reject_on_worker_lost``): the start is idempotent and its redelivery
    goes on from what the dead one left."""

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        task = self.task
        if isinstance(exc, WorkerLostError) and task.acks_late and task.reject_on_worker_lost:
            task_ready(self)  # what Request.on_failure does for a task that stored nothing
            self.reject(requeue=True)
            return
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)


@app.task(
    name="wfrunner.start_run",
    bind=True,
    Request=StartRequest,
    **_RETRIED,
)
def start_run(self: Task, workflow: str, inputs: Any = None, version: int | None = None) -> str:
    """Start a run of a registered workflow; the result (and the task id) is the run id.

    ``workflow``: its id, its name (the latest version), or ``name@N``; or a name with
    ``version`` (:mod:`wfrunner.versions`). A name is resolved once: the run keeps that
    version's id, whatever is registered later.

    The task then runs the entry nodes itself, and what they emit, as ``execute_node``
    does (``carry_entries``): a message and a task less per run. The run id is stored as
    the result first, so a caller of ``.get()`` has it before any node runs. A node
    failing the run here shows the task as FAILURE in Flower and the worker log, while
    ``.get()`` still answers with the run id: Celery's result backends never overwrite a
    stored SUCCESS. Should the pool child die in a node, :class:`StartRequest` puts the
    message back (Celery would ack it, seeing SUCCESS stored): the start is idempotent,
    and the redelivery follows what this task left pending (``RunState.left_behind``)."""
    run_id = str(self.request.id)
    rt = runtime()
    workflow_id = _pinned(rt, run_id, workflow, version)
    tokens = lifecycle.start(rt, run_id, workflow_id, inputs)
    _store_run_id(self, run_id)
    failed = carry_entries(rt, workflow_id, tokens, run_id, carry_budget_ms(self))
    if failed:
        raise NodeFailed(failed)
    return run_id


def _pinned(rt: Runtime, run_id: str, workflow: str, version: int | None) -> str:
    """The id of the workflow to run. A start named by id costs nothing more (the id is
    cached); one named by name keeps the version its run was recorded with, should the
    message come again after a newer version was registered."""
    workflow_id = rt.resolve_workflow(workflow, version)
    if workflow_id == workflow:
        return workflow_id
    try:
        return rt.store.get_run(run_id).workflow_id
    except NotFoundError:
        return workflow_id


def _store_run_id(task: Task, run_id: str) -> None:
    """Store the run id as the task's result, before any node runs, in one round trip.

    Celery's own store reads the key first (it never overwrites a SUCCESS) and, once the
    task returns, stores the result again after a second read: three round trips on every
    run for one value that a redelivered start would store unchanged. The key and its
    document are Celery's (``AsyncResult.get`` reads them); the request is then marked as
    ignoring its result, so Celery stores nothing more on success."""
    backend = task.backend
    request = task.request
    if isinstance(backend, BaseKeyValueStoreBackend):
        meta = backend._get_result_meta(
            result=run_id, state=states.SUCCESS, traceback=None, request=request
        )
        meta["task_id"] = run_id
        backend.set(backend.get_key_for_task(run_id), backend.encode(meta))
    else:  # another backend a celeryconfig chose: its own way
        backend.store_result(run_id, run_id, states.SUCCESS, request=request)
    request.ignore_result = True


@app.task(
    name="wfrunner.check_completion",
    ignore_result=True,
    **_RETRIED,
)
def check_completion(run_id: str) -> str:
    """Double-check a run whose counter may have reached 0, or that has failed."""
    return lifecycle.check_completion(runtime(), run_id)


@app.task(
    name="wfrunner.flush_run",
    ignore_result=True,
    **_RETRIED,
)
def flush_run(run_id: str) -> int:
    """Copy one running run's new events and outputs to PostgreSQL (its recovery point).
    Kept for messages queued before flush_runs; workers now queue flush_runs."""
    return recovery.flush(runtime(), run_id)


@app.task(
    name="wfrunner.flush_runs",
    ignore_result=True,
    **_RETRIED,
)
def flush_runs(shard: int = 0) -> int:
    """Copy the new events and outputs of every run of background shard ``shard`` marked
    due (request_flush) to PostgreSQL in one transaction: a backlog of commits makes
    bigger batches, not more transactions. Each shard has its own set of runs marked
    (``wfr:{flush:<shard>}:dirty``, on the Redis Cluster node of its own hash tag), so no
    single key takes every commit's mark. Returns how many events were copied."""
    rt = runtime()
    copied, full = _flush_dirty(rt, shard)
    if full and rt.state.claim_flusher(shard, FLUSH_QUEUED_TTL):
        # more are due than one batch takes
        flush_runs.apply_async(args=[shard], queue=COMPLETION_QUEUE)
    return copied


def queue_flush_runs(rt: Runtime, shard: int) -> None:
    """Queue the flush_runs task that copies the runs of ``shard`` marked until it runs."""
    flush_runs.apply_async(
        args=[shard], queue=COMPLETION_QUEUE, countdown=float(rt.settings.flush_interval)
    )


def _flush_dirty(rt: Runtime, shard: int) -> tuple[int, bool]:
    """(events copied, whether the batch was full); runs taken are put back on failure."""
    run_ids = rt.state.take_dirty(shard, FLUSH_BATCH)
    try:
        copied = fencing.flush_many(rt, run_ids)
    except BaseException:
        rt.state.return_dirty(shard, run_ids)
        raise
    return copied, len(run_ids) == FLUSH_BATCH


@app.task(name="wfrunner.reconcile", ignore_result=True)
def reconcile() -> dict[str, int]:
    """Beat's reconciler pass: move parked poison messages to the dead letters, the
    pass's global part (a full pass after a Redis restart, queued runs whose start was
    lost: :func:`wfrunner.reconciler.global_pass`), child ends and on_run_failed messages
    that were lost; then one ``reconcile_shard`` task per background shard looks at the
    runs due in its slots."""
    rt = runtime()
    try:
        telemetry.poison_letters(poison.drain(rt))
    except WfrunnerError as exc:  # PostgreSQL away: the records wait in Redis
        log.warning("poison letters not moved to PostgreSQL yet: %s", exc)
    published, full = reconciler.global_pass(rt)
    try:  # a child run's end its parent was not told of (its recorder died)
        subflows.reconcile_children(rt)
        failure_handler.reconcile(rt)  # an on_run_failed message that was lost
    except WfrunnerError as exc:
        log.warning("the ends of runs wait for the next pass to be followed up: %s", exc)
    _publish(rt, published)
    if not full:  # (a full pass looked at every run)
        interval = float(rt.settings.reconcile_interval)
        for shard in range(rt.settings.background_shards):  # (the next pass queues anew)
            reconcile_shard.apply_async(args=[shard], queue=COMPLETION_QUEUE, expires=interval)
    return {run_id: len(tokens) for run_id, tokens in published.items()}


@app.task(name="wfrunner.reconcile_shard", ignore_result=True)
def reconcile_shard(shard: int) -> dict[str, int]:
    """One background shard's part of a reconciler pass: copy its runs left due to be
    flushed (a flush_runs message lost with its worker), then look at its runs due
    (:func:`wfrunner.reconciler.due_pass`). Skipped while another pass of the shard
    runs (a slow pass overlapping the next one)."""
    rt = runtime()
    interval = rt.settings.reconcile_interval
    if not rt.redis.set(keys.shard_pass_key(shard), 1, nx=True, ex=interval):
        return {}
    try:
        try:
            _flush_dirty(rt, shard)
        except WfrunnerError as exc:
            log.warning("runs due to be flushed wait for the next pass: %s", exc)
        published = reconciler.due_pass(rt, shard)
        _publish(rt, published)
    finally:
        rt.redis.delete(keys.shard_pass_key(shard))
    return {run_id: len(tokens) for run_id, tokens in published.items()}


def _publish(rt: Runtime, published: dict[str, list[Token]]) -> None:
    for run_id, tokens in published.items():
        workflow_id = rt.store.get_run(run_id).workflow_id
        with publishing() as producer:
            dispatch(tokens, workflow_id, rt.ir(workflow_id), producer=producer)


@app.task(name="wfrunner.detect_timeouts", ignore_result=True)
def detect_timeouts() -> list[str]:
    """Fail runs idle for longer than WFRUNNER_RUN_TIMEOUT (scheduled by Celery beat)."""
    failed = lifecycle.expire_idle_runs(runtime())
    if failed:
        log.warning("timed out runs: %s", ", ".join(failed))
    return failed
