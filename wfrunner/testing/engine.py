"""Pointing this process's engine at test servers, and running workflows on it.

A test session runs the engine in its own process: an in-process Celery worker
(:func:`wfrunner.tasks.local.local_worker`, the one ``wfrunner run --wait`` uses) takes
the tasks, so the handlers a test module registers are the ones that run, and a test may
share state with them. The process's runtime (:func:`wfrunner.runtime.runtime`) is built
from the environment, so pointing it elsewhere means setting ``WFRUNNER_*`` and
rebuilding it; an end a worker thread is still recording is waited for first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from wfrunner.documents import RunDocument
from wfrunner.errors import RunTimeout
from wfrunner.states import TERMINAL_RUN_STATES

#: a workflow: a definition dict, or the path of a JSON/YAML file holding one
Definition = dict[str, Any] | str | Path


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block (and rebuild the runtime on both
    sides of it), then put back what was there."""
    from wfrunner import runtime

    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    settle()
    try:
        yield
    finally:
        settle()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        runtime.reset()


def settle() -> None:
    """Wait for a run end this process's finisher thread is recording, then forget the
    runtime: the next task builds one from the environment as it is now."""
    from wfrunner import runtime
    from wfrunner.tasks.finisher import FINISHER

    FINISHER.drain()
    runtime.reset()


def configure_app(redis_url: str) -> Any:
    """The Celery app, with the settings a worker on ``redis_url`` gets."""
    import wfrunner
    from wfrunner.settings import Settings
    from wfrunner.tasks.config import celery_settings

    app = wfrunner.app
    app.conf.update(celery_settings(Settings.from_env(), redis_url))
    return app


class RegisterWorkflow(Protocol):
    """The ``register_workflow`` fixture: validate, compile and store; the workflow id."""

    def __call__(self, definition: Definition, *, name: str | None = None) -> str: ...


class RunWorkflow(Protocol):
    """The ``run_workflow`` fixture: start a run and wait for its end; its document."""

    def __call__(
        self, workflow: Definition, inputs: Any = None, *, timeout: float = 60.0
    ) -> RunDocument: ...


def register(definition: Definition, *, name: str | None = None) -> str:
    """Store a workflow (a dict, or a file; ``name`` picks one of a collection)."""
    from wfrunner import client

    return client.register_workflow(definition, name=name)


def run(workflow: Definition, inputs: Any = None, *, timeout: float = 60.0) -> RunDocument:
    """Run a workflow (a definition or file, registered first, or a workflow id: a string
    that names no file) with ``inputs``; its document once it ended. A run still going
    after ``timeout`` seconds raises :class:`RunTimeout`."""
    from wfrunner import client

    is_id = isinstance(workflow, str) and not Path(workflow).is_file()
    workflow_id = str(workflow) if is_id else register(workflow)
    run_id = client.submit_run(workflow_id, {} if inputs is None else inputs)
    doc = client.wait_for_run(run_id, timeout=timeout)
    if doc.status not in TERMINAL_RUN_STATES:
        raise RunTimeout(
            f"run {run_id} of workflow {workflow_id} is still {doc.status} after "
            f"{timeout:g} s (nodes: {_states(doc)}); is a handler blocked?"
        )
    return doc


def _states(doc: RunDocument) -> str:
    return ", ".join(f"{node_id} {node.status}" for node_id, node in doc.nodes.items())


__all__ = [
    "Definition",
    "RegisterWorkflow",
    "RunTimeout",
    "RunWorkflow",
    "configure_app",
    "environment",
    "register",
    "run",
    "settle",
]
