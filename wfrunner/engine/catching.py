"""A node's failure caught by its ``on_error`` node (docs/failures.md): what the commit
that records the failure sends on.

Instead of failing the run, the delivery that fails a node for good (its retries spent, a
handler error, a timeout, its delivery cap, a CEL error in its routing, a rejected
approval, a failed child run) commits the failure as one ``commit_node`` call: the node's
``node_failed`` event (``caught: true``), its other successors dead, and one token to the
on_error node carrying :func:`error_input`. One commit per token, so a redelivery finds it
committed and nothing is sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wfrunner.engine.payloads import encode_payload
from wfrunner.errors import PayloadError

if TYPE_CHECKING:
    from wfrunner.compiler.ir import IR
    from wfrunner.engine.runstate import Begin


@dataclass(frozen=True)
class Catch:
    """What a delivery knows when its node fails, for the commit of a caught failure."""

    ir: IR
    begin: Begin
    node_input: Any
    nonce: str
    #: events the delivery has yet to record (a join's node_started)
    events: list[dict[str, Any]] = field(default_factory=list)


def error_input(error: str, node_id: str, node_input: Any) -> dict[str, Any]:
    """The on_error node's input: the error, the node that failed and what it was given."""
    return {"error": error, "node": node_id, "input": node_input}


def encoded_error_input(
    error: str, node_id: str, node_input: Any, max_bytes: int
) -> tuple[str, str]:
    """(ref, JSON) of :func:`error_input`; its ``input`` is null when the failed node's
    input with the error would exceed the payload limit."""
    try:
        return encode_payload(error_input(error, node_id, node_input), max_bytes)
    except PayloadError:
        return encode_payload(error_input(error, node_id, None), max_bytes)
