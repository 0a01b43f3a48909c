"""OpenTelemetry spans of real runs on the in-process worker, caught by the SDK's in-memory
exporter: one span per node execution (run id, workflow, node, attempt, outcome) whose
parent is the run span, emitted when the run's end is recorded, all in the trace whose id
is derived from the run id."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from wfrunner import runtime, tracing

FLOW = {
    "metadata": {"name": "traced"},
    "nodes": [
        {"id": "A", "type": "transform", "config": {"expression": "{'x': 1}"}},
        {"id": "B", "type": "function", "config": {"function_name": "t.increment"}},
        {"id": "C", "type": "function", "config": {"function_name": "t.boom"}},
    ],
    "edges": [
        {"from": "A", "to": "B"},
        {"from": "B", "to": "C", "condition": "inputs.fail"},
    ],
}

_EXPORTER = InMemorySpanExporter()
_ATTACHED: list[TracerProvider] = []


@pytest.fixture()
def spans(worker: Any) -> Iterator[InMemorySpanExporter]:
    """Spans on (WFRUNNER_OTEL=1) with an SDK provider exporting to memory."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # (the global provider is set only once)
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not _ATTACHED:
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        _ATTACHED.append(provider)
    saved = os.environ.get("WFRUNNER_OTEL")
    os.environ["WFRUNNER_OTEL"] = "1"
    runtime.reset()
    _EXPORTER.clear()
    yield _EXPORTER
    if saved is None:
        os.environ.pop("WFRUNNER_OTEL", None)
    else:
        os.environ["WFRUNNER_OTEL"] = saved
    runtime.reset()


def of_run(exporter: InMemorySpanExporter, run_id: str) -> list[ReadableSpan]:
    """The run's spans, once its run span is there (emitted just after the end is announced)."""
    deadline = time.monotonic() + 30
    while True:
        found = [
            s
            for s in exporter.get_finished_spans()
            if (s.attributes or {}).get("wfrunner.run_id") == run_id
        ]
        if any(s.name == "wfrunner.run" for s in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_run_and_node_spans(spans: InMemorySpanExporter, run_workflow: Any) -> None:
    doc = run_workflow(FLOW, {"x": 1, "fail": False})
    assert doc["status"] == "COMPLETED", doc
    found = of_run(spans, doc["run_id"])
    (run_span,) = [s for s in found if s.name == "wfrunner.run"]
    nodes = {s.attributes["wfrunner.node"]: s for s in found if s.name.startswith("wfrunner.node ")}
    assert set(nodes) == {"A", "B"}  # C was skipped: it never ran
    assert run_span.context.trace_id == tracing.trace_id(doc["run_id"])
    assert run_span.context.span_id == tracing.run_span_id(doc["run_id"])
    assert run_span.parent is None
    assert run_span.attributes["wfrunner.workflow"] == "traced"
    assert run_span.attributes["wfrunner.status"] == "COMPLETED"
    for node, span in nodes.items():
        assert span.name == f"wfrunner.node {node}"
        assert span.context.trace_id == run_span.context.trace_id
        assert span.parent is not None and span.parent.span_id == run_span.context.span_id
        assert dict(span.attributes) == {
            "wfrunner.run_id": doc["run_id"],
            "wfrunner.workflow": "traced",
            "wfrunner.node": node,
            "wfrunner.attempt": 1,
            "wfrunner.outcome": "completed",
        }


def test_failed_node_and_run_are_errors(spans: InMemorySpanExporter, run_workflow: Any) -> None:
    doc = run_workflow(FLOW, {"x": 1, "fail": True})
    assert doc["status"] == "FAILED", doc
    found = of_run(spans, doc["run_id"])
    (run_span,) = [s for s in found if s.name == "wfrunner.run"]
    (failed,) = [s for s in found if s.name == "wfrunner.node C"]
    assert failed.attributes["wfrunner.outcome"] == "failed"
    assert failed.status.status_code is StatusCode.ERROR
    assert run_span.status.status_code is StatusCode.ERROR
    assert "node 'C' failed: ValueError: boom" in (run_span.status.description or "")
