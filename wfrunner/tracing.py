"""OpenTelemetry spans (``WFRUNNER_OTEL=1`` and the ``otel`` extra; docs/observability.md).

A run lives in many processes (the start in one worker, its nodes in others, its end in
whichever recorded it), so no process can hold its span open from start to end. Instead
every id is derived from the run id: the trace id, and the run span's id. Each node
execution is a span of its own, emitted by the process that ran it when it ends, whose
parent is the run span by that derived id; the run span itself is emitted when the run's
end is recorded, with the start time PostgreSQL recorded and the same derived id, so the
node spans emitted earlier by other processes are its children.

The application configures the tracer provider and exporter (the SDK's, with an OTLP
exporter, ...); wfrunner only asks the global provider for its tracer. Off (the default),
or without opentelemetry installed, nothing is imported and every function returns at
once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfrunner.runtime import Runtime

TRACER_NAME = "wfrunner"

_state: dict[str, Any] = {}
_lock = threading.Lock()


def _trace(rt: Runtime) -> ModuleType | None:
    """opentelemetry.trace when spans are on and it is installed (imported once)."""
    if not rt.settings.otel:
        return None
    if "trace" not in _state:
        module: ModuleType | None
        try:
            from opentelemetry import trace as module
        except ImportError:
            module = None
        _state["trace"] = module
    found: ModuleType | None = _state["trace"]
    return found


def trace_id(run_id: str) -> int:
    """The run's trace id: 128 bits of a hash of its id (never 0, which is invalid)."""
    return int.from_bytes(hashlib.sha256(f"wfrunner-trace:{run_id}".encode()).digest()[:16]) or 1


def run_span_id(run_id: str) -> int:
    """The run span's id: 64 bits of another hash of the run id (never 0)."""
    return int.from_bytes(hashlib.sha256(f"wfrunner-run:{run_id}".encode()).digest()[:8]) or 1


class _PinnedIds:
    """The tracer's id generator, except inside :func:`_pinned` on this thread, where it
    hands out the run's derived ids: the SDK has no other way to choose a span's id."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.local = threading.local()

    def generate_trace_id(self) -> int:
        pinned = getattr(self.local, "ids", None)
        return int(pinned[0]) if pinned else int(self.base.generate_trace_id())

    def generate_span_id(self) -> int:
        pinned = getattr(self.local, "ids", None)
        return int(pinned[1]) if pinned else int(self.base.generate_span_id())

    def is_trace_id_random(self) -> bool:
        """A derived trace id is not random (W3C's random flag)."""
        if getattr(self.local, "ids", None):
            return False
        return bool(getattr(self.base, "is_trace_id_random", lambda: False)())


def _tracer(trace: ModuleType) -> Any:
    """wfrunner's tracer from the current global provider (cached per provider)."""
    provider = trace.get_tracer_provider()
    with _lock:
        if _state.get("provider") is not provider:
            tracer = provider.get_tracer(TRACER_NAME)
            base = getattr(tracer, "id_generator", None)
            if base is not None:  # the SDK's tracer: its ids can be pinned
                tracer.id_generator = _PinnedIds(base)
            _state.update(provider=provider, tracer=tracer)
        return _state["tracer"]


@contextmanager
def _pinned(tracer: Any, ids: tuple[int, int]) -> Iterator[None]:
    generator = getattr(tracer, "id_generator", None)
    if not isinstance(generator, _PinnedIds):
        yield
        return
    generator.local.ids = ids
    try:
        yield
    finally:
        generator.local.ids = None


def _ns(moment: datetime | None, default: int) -> int:
    return int(moment.timestamp() * 1e9) if moment is not None else default


def node_span(
    rt: Runtime,
    run_id: str,
    workflow: str,
    node: str,
    attempt: int,
    outcome: str,
    seconds: float,
) -> None:
    """Emit the span of one node execution that just ended after ``seconds``."""
    trace = _trace(rt)
    if trace is None:
        return
    end = time.time_ns()
    parent = trace.SpanContext(
        trace_id(run_id),
        run_span_id(run_id),
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    attributes = {
        "wfrunner.run_id": run_id,
        "wfrunner.workflow": workflow,
        "wfrunner.node": node,
        "wfrunner.attempt": attempt,
        "wfrunner.outcome": outcome,
    }
    span = _tracer(trace).start_span(
        f"wfrunner.node {node}",
        context=context,
        start_time=end - int(seconds * 1e9),
        attributes=attributes,
    )
    if outcome == "failed":
        span.set_status(trace.Status(trace.StatusCode.ERROR))
    span.end(end_time=end)


def run_span(
    rt: Runtime,
    run_id: str,
    workflow: str,
    status: str,
    times: Mapping[str, datetime | None],
    error: str | None = None,
) -> None:
    """Emit the run's span once its end is recorded (``times``: started_at, completed_at)."""
    trace = _trace(rt)
    if trace is None:
        return
    now = time.time_ns()
    end = _ns(times.get("completed_at"), now)
    start = _ns(times.get("started_at") or times.get("created_at"), end)
    tracer = _tracer(trace)
    attributes = {
        "wfrunner.run_id": run_id,
        "wfrunner.workflow": workflow,
        "wfrunner.status": status,
    }
    from opentelemetry.context import Context  # (installed: _trace found the API)

    with _pinned(tracer, (trace_id(run_id), run_span_id(run_id))):
        # an empty context: a root span, whatever span the calling thread has open
        span = tracer.start_span(
            "wfrunner.run", context=Context(), start_time=start, attributes=attributes
        )
    if status != "COMPLETED":
        span.set_status(trace.Status(trace.StatusCode.ERROR, error or status))
    span.end(end_time=end)
