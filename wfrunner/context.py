"""What a handler may know about the node it runs: ``fn(input, config, context)``.

A handler that declares a third parameter gets a :class:`NodeContext` (the two-parameter
form is called exactly as before; see :func:`wfrunner.handlers.takes_context`). Handlers
run at least once per token, so the context's main use is :attr:`NodeContext.idempotency_key`:
the same for every delivery of one token (a retry, a redelivery after a worker died), a
different one for the next pass of a loop, so a side effect keyed by it happens once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from wfrunner.engine.leases import LeaseKeeper

#: the logger handlers' context loggers are children of (``wfrunner.handler.<name>``)
LOGGER_PREFIX = "wfrunner.handler"

#: heartbeats closer together than this fraction of the lease renew nothing: a handler
#: may call ``heartbeat()`` once per item of a tight loop and pay a clock read for it
HEARTBEAT_MIN_FRACTION = 1 / 15


class NodeLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that says which run, node and attempt wrote each line: in the message
    (plain formatters show it) and as record attributes (``run_id``, ``node_id``,
    ``attempt``) for structured handlers."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        prefix = f"run {extra['run_id']} node {extra['node_id']} attempt {extra['attempt']}"
        return f"{prefix}: {msg}", kwargs


def idempotency_key(run_id: str, token_key: str) -> str:
    """A stable key of one token of one run: deterministic, so every delivery of the token
    computes the same one, and short enough for a database column or an HTTP header."""
    return hashlib.sha256(f"{run_id}\0{token_key}".encode()).hexdigest()[:32]


def _no_heartbeat() -> bool:
    return True


@dataclass(frozen=True)
class NodeContext:
    """The node a handler is running, for one delivery of one token."""

    run_id: str
    workflow_id: str
    node_id: str
    #: this delivery's number, 1 for the first (a retry or a redelivery counts up)
    attempt: int
    #: the loop pass the node runs in, 1 outside loops (the CEL ``iteration`` variable)
    iteration: int
    #: the same for every attempt of this token, different for each loop pass
    idempotency_key: str
    logger: logging.LoggerAdapter[logging.Logger] = field(repr=False, compare=False)
    _beat: Callable[[], bool] = field(default=_no_heartbeat, repr=False, compare=False)
    #: in a map node (``config.map_over``): the index of the element this call handles
    #: (its input); None elsewhere
    item_index: int | None = None

    def heartbeat(self) -> bool:
        """Extend the node's lease now, for work that may hold the GIL longer than the
        lease (``WFRUNNER_LEASE_SECONDS``) lets the worker's own heartbeat thread run.
        Calls closer together than a fifteenth of the lease are free no-ops that answer
        what the last renewal did. Returns
        False once the lease is lost (the run was cancelled or ended, or the lease
        expired and another delivery took the token): the handler may stop early, its
        result will not be committed."""
        return self._beat()

    @classmethod
    def standalone(
        cls,
        node_id: str = "node",
        *,
        run_id: str = "run",
        workflow_id: str = "workflow",
        attempt: int = 1,
        iteration: int = 1,
    ) -> NodeContext:
        """A context outside any worker, for calling a handler in a plain unit test;
        its heartbeat does nothing and returns True."""
        return cls(
            run_id,
            workflow_id,
            node_id,
            attempt,
            iteration,
            idempotency_key(run_id, f"{node_id}@{iteration}"),
            node_logger(node_id, run_id, node_id, attempt),
        )


def node_logger(name: str, run_id: str, node_id: str, attempt: int) -> NodeLogger:
    """The context logger of handler ``name`` running ``node_id``."""
    extra = {"run_id": run_id, "node_id": node_id, "attempt": attempt}
    return NodeLogger(logging.getLogger(f"{LOGGER_PREFIX}.{name}"), extra)


class Heartbeat:
    """Renews one delivery's lease when the handler asks, at most once per interval."""

    def __init__(self, leases: LeaseKeeper, run_id: str, token_key: str, holder: str) -> None:
        self.leases = leases
        self.run_id = run_id
        self.token_key = token_key
        self.holder = holder
        self.min_interval = leases.lease_seconds * HEARTBEAT_MIN_FRACTION
        self._last = float("-inf")
        self._held = True

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._held or now - self._last < self.min_interval:
            return self._held
        self._last = now
        self._held = self.leases.renew_one(self.run_id, self.token_key, self.holder)
        return self._held


def for_delivery(
    leases: LeaseKeeper,
    *,
    run_id: str,
    workflow_id: str,
    node_id: str,
    handler: str,
    token_key: str,
    holder: str,
    attempt: int,
    iteration: int,
    item_index: int | None = None,
) -> NodeContext:
    """The context of handler ``handler`` run by the delivery ``holder`` of one token,
    whose lease ``leases`` keeps."""
    return NodeContext(
        run_id,
        workflow_id,
        node_id,
        attempt,
        iteration,
        idempotency_key(run_id, token_key),
        node_logger(handler, run_id, node_id, attempt),
        Heartbeat(leases, run_id, token_key, holder),
        item_index,
    )


__all__ = ["Heartbeat", "NodeContext", "NodeLogger", "for_delivery", "idempotency_key"]
