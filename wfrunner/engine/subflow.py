"""Sub-workflow nodes: what a delivery of a ``subworkflow`` node's token does
(docs/subworkflows.md).

The node's first delivery starts the child run (its id derived from the parent run and
the token, and passed as the ``start_run`` task id, so no redelivery ever starts a second
child), then lets go of the token (``lua/await_child.lua``): the token stays pending, so
the parent cannot complete, and no worker holds anything while the child runs. The
child's end, recorded where every run's end is (:mod:`wfrunner.lifecycle`), records its
outcome for the token (``lua/decide_child.lua``) and publishes the token again; that
delivery completes the node with the child's output, or fails it with the child's error
(which the node's ``on_error`` catches like any failure).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wfrunner.compiler.ir import IR, IRNode
from wfrunner.engine.catching import Catch
from wfrunner.engine.events import event
from wfrunner.engine.human import NO_DEADLINE
from wfrunner.engine.runstate import RUNNING, Begin
from wfrunner.engine.tokens import Token
from wfrunner.errors import NodeError, WfrunnerError

if TYPE_CHECKING:
    from wfrunner.engine.executor import Executor, Outcome

#: starts the child run of a subworkflow node's token (token, node, input, child run id):
#: idempotent; NodeError when the child cannot run (its workflow is unknown, too deep)
Launch = Callable[[Token, IRNode, Any, str], None]

_NAMESPACE = uuid.UUID("5b0c7a4e-5d8e-4a59-9a57-2f1c3f0e7a11")


def child_run_id(token: Token) -> str:
    """The child run's id: the same for every delivery of the token."""
    return uuid.uuid5(_NAMESPACE, f"{token.run_id}/{token.key}").hex


def failure(outcome: dict[str, Any]) -> str:
    """Why the node fails when its child did not complete."""
    status = str(outcome.get("status", "FAILED")).lower()
    why = outcome.get("error") or "no error recorded"
    return f"child run {outcome.get('child_run_id')} {status}: {why}"


def deliver(
    executor: Executor,
    ir: IR,
    node: IRNode,
    token: Token,
    node_input: Any,
    begin: Begin,
    started: dict[str, Any],
    nonce: str,
) -> Outcome:
    """Start the child and wait for it, or act on how it ended."""
    from wfrunner.engine.executor import Outcome, _dropped

    state = executor.state
    catch = Catch(ir, begin, node_input, nonce)
    outcome = state.child_outcome(token.run_id, token.key)
    if outcome is None:
        child = child_run_id(token)
        if executor.launch is None:
            raise WfrunnerError("this executor cannot start child runs (no launcher)")
        try:
            executor.launch(token, node, node_input, child)
        except NodeError as exc:
            return executor._fail(node, token, str(exc), begin.attempt, catch=catch)
        asked = event(
            "child_started",
            node.id,
            scope=token.scope,
            child_run_id=child,
            workflow=node.config.get("workflow"),
        )
        began = {**started, "attempt": 1}
        waited, outcome = state.await_child(token, child, NO_DEADLINE, begin.epoch, [began, asked])
        if waited != RUNNING:
            return Outcome(ignored=_dropped(waited))
        if outcome is None:
            return Outcome(ignored=f"waiting for its child run {child}")
    if outcome.get("status") == "COMPLETED":
        given = outcome.get("output") or {}
        return executor._execute(ir, node, token, node_input, begin, [], nonce, given)
    return executor._fail(node, token, failure(outcome), begin.attempt, catch=catch)
