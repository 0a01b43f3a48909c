"""Worker lifecycle: the worker registry in PostgreSQL, and a fresh runtime per child."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any

from celery.signals import heartbeat_sent, worker_process_init, worker_ready, worker_shutdown

from wfrunner import runtime as runtime_module
from wfrunner.errors import WfrunnerError

log = logging.getLogger(__name__)

HEARTBEAT_WRITE_INTERVAL = 30.0


def _worker_id(sender: Any) -> str:
    return str(getattr(sender, "hostname", None) or f"worker-{os.getpid()}")


@worker_process_init.connect
def _fresh_runtime(**_: Any) -> None:
    runtime_module.reset()


@worker_ready.connect
def _register(sender: Any = None, **_: Any) -> None:
    try:
        queues = [q.name for q in sender.app.amqp.queues.consume_from.values()]
        runtime_module.runtime().store.upsert_worker(
            _worker_id(sender), hostname=_worker_id(sender), pid=os.getpid(), queues=queues
        )
    except (WfrunnerError, AttributeError) as exc:
        log.warning("worker registry not updated: %s", exc)


_last_beat: dict[str, float] = {}


@heartbeat_sent.connect
def _heartbeat(sender: Any = None, **_: Any) -> None:
    """Celery beats every 2 s; the registry needs far less, so write every 30 s."""
    worker_id = _worker_id(getattr(sender, "eventer", None))
    now = time.monotonic()
    if now - _last_beat.get(worker_id, 0.0) < HEARTBEAT_WRITE_INTERVAL:
        return
    _last_beat[worker_id] = now
    try:
        runtime_module.runtime().store.heartbeat_worker(worker_id)
    except WfrunnerError as exc:
        log.warning("worker heartbeat not recorded: %s", exc)


@worker_shutdown.connect
def _unregister(sender: Any = None, **_: Any) -> None:
    with contextlib.suppress(WfrunnerError):
        runtime_module.runtime().store.upsert_worker(
            _worker_id(sender),
            hostname=_worker_id(sender),
            pid=os.getpid(),
            queues=[],
            status="offline",
        )
