"""Where the engine reports what it did, for metrics (:mod:`wfrunner.metrics`) and spans
(:mod:`wfrunner.tracing`): one call per event, from the code that already has everything
it needs in hand (the workflow's name comes with its cached IR), so reporting adds no
Redis or PostgreSQL round trip."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wfrunner import metrics, tracing

if TYPE_CHECKING:
    from wfrunner.engine.executor import Outcome
    from wfrunner.engine.tokens import Token
    from wfrunner.runtime import Runtime
    from wfrunner.states import RunStatus
    from wfrunner.store import RunRecord


log = logging.getLogger(__name__)


def _span(emit: Callable[..., None], *args: Any) -> None:
    """Emit a span; a tracer or exporter that raises costs a log line, never the run's
    end or a node's commit (which it follows)."""
    try:
        emit(*args)
    except Exception:
        log.exception("OpenTelemetry span not emitted")


def run_started(rt: Runtime, workflow_id: str) -> None:
    metrics.RUNS_STARTED.labels(rt.workflow_name(workflow_id)).inc()


def run_ended(rt: Runtime, run: RunRecord, status: RunStatus, dead_letters: int = 0) -> None:
    """A run's end was recorded in PostgreSQL (once per run)."""
    workflow = rt.workflow_name(run.workflow_id)
    metrics.RUNS_ENDED.labels(workflow, status.value.lower()).inc()
    if dead_letters:
        metrics.DEAD_LETTERS.labels("node").inc(dead_letters)
    times = {
        "created_at": run.created_at,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
    }
    _span(tracing.run_span, rt, run.id, workflow, status.value, times, run.error)


def node_done(
    rt: Runtime, workflow_id: str, token: Token, outcome: Outcome, seconds: float
) -> None:
    """A delivery of ``token`` was processed in ``seconds`` (whether its node ran or not)."""
    if outcome.attempt < 2 and outcome.ran is None:
        return  # a duplicate, or a join arrival recorded: nothing to count
    workflow = rt.workflow_name(workflow_id)
    node = token.to_node
    if outcome.attempt > 1:
        metrics.REDELIVERIES.labels(workflow, node).inc()
    if outcome.ran is None:
        return
    metrics.NODE_SECONDS.labels(workflow, node).observe(seconds)
    metrics.NODE_EXECUTIONS.labels(workflow, node, outcome.ran).inc()
    _span(
        tracing.node_span, rt, token.run_id, workflow, node, outcome.attempt, outcome.ran, seconds
    )


def repaired(kind: str, count: int = 1) -> None:
    """A reconciler pass repaired ``count`` runs this way (see metrics.RECONCILER_REPAIRS)."""
    if count:
        metrics.RECONCILER_REPAIRS.labels(kind).inc(count)


def poison_letters(count: int) -> None:
    if count:
        metrics.DEAD_LETTERS.labels("poison").inc(count)
