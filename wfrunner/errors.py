"""The one exception tree of wfrunner.

Every error a user can cause is a :class:`WfrunnerError`, so the CLI and the REST API can
render it as a message (exit 2 / HTTP 4xx) instead of a traceback. Messages say what to
change, naming the node, edge or setting at fault::

    WfrunnerError
    ├── ConfigurationError        a WFRUNNER_* setting or Celery setting is unusable
    ├── WorkflowError             a definition cannot be accepted
    │   └── CompileError          ...with one problem per node/edge (``problems``)
    ├── ConditionError            a CEL expression does not parse or fails to evaluate
    ├── CounterError              the Redis token counter refused or lost an operation
    ├── StoreError                PostgreSQL is unreachable or holds no such record
    │   └── NotFoundError         no workflow / run with that id
    ├── ConflictError             the run is not in a state that allows the request
                                  (cancel an ended run, decide an approval twice)
    ├── QueryError                a list's filter, limit or cursor is malformed
    ├── PayloadError              a payload is missing, not JSON, or over the size limit
    ├── HandlerError              no handler registered under a node's function_name
    ├── NodeError                 a node's handler or built-in failed; names the node
    ├── GraphvizError             an SVG or PNG picture needs Graphviz's ``dot``, which is
                                  missing, failed or took too long
    └── RunTimeout                a test's run did not end in time (wfrunner.testing)
"""

from __future__ import annotations

from collections.abc import Iterable


class WfrunnerError(Exception):
    """Base of every error wfrunner raises on purpose."""

    #: process exit code the CLI uses for this error
    exit_code: int = 2


class ConfigurationError(WfrunnerError):
    """A setting is missing, malformed or unsafe."""


class WorkflowError(WfrunnerError):
    """A workflow definition cannot be read or accepted."""


class CompileError(WorkflowError):
    """A definition has problems; ``problems`` lists every one, one line each."""

    def __init__(self, problems: Iterable[str], source: str | None = None) -> None:
        self.problems: list[str] = list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{prefix}workflow has {count} {noun}:\n{lines}")


class ConditionError(WfrunnerError):
    """A CEL expression failed to compile or to evaluate; names the expression."""

    def __init__(self, expression: str, reason: str, *, where: str | None = None) -> None:
        self.expression = expression
        self.reason = reason
        self.where = where
        location = f"{where}: " if where else ""
        super().__init__(f"{location}CEL expression {expression!r}: {reason}")


class CounterError(WfrunnerError):
    """The token counter could not apply an operation."""


class StoreError(WfrunnerError):
    """PostgreSQL is unreachable or refused an operation."""


class NotFoundError(StoreError):
    """No record with the requested id."""


class ConflictError(WfrunnerError):
    """A request conflicts with the run's state (HTTP 409): cancelling a run that has
    ended, deciding an approval that is not pending or was decided already."""


class QueryError(WfrunnerError):
    """A list request's filter, limit or page cursor cannot be used; ``field`` names it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadError(WfrunnerError):
    """A payload is missing, is not JSON, or is larger than the configured limit."""


class HandlerError(WfrunnerError):
    """No handler is registered under the name a node asks for."""


class NodeError(WfrunnerError):
    """A node's handler or built-in failed; the message names the node."""


class NodeFailed(WfrunnerError):
    """A node failed its run. Raised by the task that ran it, once the run's end is
    recorded, so that Celery (and Flower) show that task as FAILURE with the reason and
    the handler's traceback; it is never retried."""


class LoopLimitError(WfrunnerError):
    """A loop went round more often than a run may (``WFRUNNER_MAX_LOOP_PASSES``). It fails
    the run at once: another attempt would decide the same."""


class GraphvizError(WfrunnerError):
    """A picture in SVG or PNG could not be drawn: Graphviz's ``dot`` is not installed,
    failed, or took too long. DOT and Mermaid text need no Graphviz."""


class RunTimeout(WfrunnerError, AssertionError):
    """A run a test started (``wfrunner.testing``'s ``run_workflow``) did not end in the
    time it was given; an AssertionError too, so pytest reports a failed test."""
