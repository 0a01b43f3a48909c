"""Spans off (the default) cost nothing and emit nothing; without opentelemetry installed,
turning them on is no error either. The ids derived from a run id are stable and valid."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from wfrunner import tracing


def rt(otel: bool) -> Any:
    return SimpleNamespace(settings=SimpleNamespace(otel=otel))


def test_ids_derived_from_the_run_id() -> None:
    assert tracing.trace_id("r1") == tracing.trace_id("r1") != tracing.trace_id("r2")
    assert 0 < tracing.trace_id("r1") < 2**128
    assert 0 < tracing.run_span_id("r1") < 2**64
    assert tracing.run_span_id("r1") != tracing.run_span_id("r2")


def test_off_emits_nothing() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk.TracerProvider):
        provider = sdk.TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.node_span(rt(False), "r1", "wf", "A", 1, "completed", 0.01)
    tracing.run_span(rt(False), "r1", "wf", "COMPLETED", {})
    assert exporter.get_finished_spans() == ()
    tracing.node_span(rt(True), "r1", "wf", "A", 1, "completed", 0.01)
    assert [s.name for s in exporter.get_finished_spans()] == ["wfrunner.node A"]


_NO_OTEL = """
import sys
sys.modules["opentelemetry"] = None  # an import of it now raises ImportError
from types import SimpleNamespace
import wfrunner.lifecycle, wfrunner.tasks.execution
from wfrunner import tracing
on = SimpleNamespace(settings=SimpleNamespace(otel=True))
tracing.node_span(on, "r1", "wf", "A", 1, "failed", 0.5)
tracing.run_span(on, "r1", "wf", "FAILED", {}, "boom")
print("ok")
"""

_OFF_IMPORTS = """
import sys
from types import SimpleNamespace
import wfrunner.lifecycle, wfrunner.tasks.execution
from wfrunner import tracing
before = set(sys.modules)  # (redis-py imports parts of opentelemetry itself when present)
off = SimpleNamespace(settings=SimpleNamespace(otel=False))
tracing.node_span(off, "r1", "wf", "A", 1, "completed", 0.5)
tracing.run_span(off, "r1", "wf", "COMPLETED", {})
print(sorted(set(sys.modules) - before), tracing._state)
"""


def test_no_error_without_opentelemetry() -> None:
    done = subprocess.run([sys.executable, "-c", _NO_OTEL], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_off_imports_nothing_of_opentelemetry() -> None:
    done = subprocess.run([sys.executable, "-c", _OFF_IMPORTS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[] {}\n"
