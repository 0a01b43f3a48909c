"""The SDK a node task uses: counter operations, emissions and the run's shared context.

Counting rule: the counter holds the tokens in flight. A run starts with one token per
entry node (:meth:`Sdk.initialise_counter`); a node that finishes consumes its incoming
token and emits one token per downstream node. When the counter reaches 0 the run is
complete and ``lua/apply_delta.lua`` PUBLISHes the run id on
:data:`~wfrunner.engine.keys.COMPLETION_CHANNEL`.

Use :meth:`Sdk.advance` to finish a node: it applies ``len(emitted) - 1`` as one idempotent
operation keyed by the consumed token, so the counter can never reach 0 while a node sits
between its consume and its emit (a crash there would otherwise complete the run early).
:meth:`Sdk.consume` and :meth:`Sdk.emit` are the design's two primitives, kept for callers
that must split the steps (a join consuming a token that does not fire it). Use either
``advance`` or ``consume`` + ``emit`` for a given token, never both: they are different ops.

Every operation is idempotent per token, so a redelivered Celery message is harmless, but
the tokens a node emits for a consumed token must then be the same on redelivery: record
the routing decision (e.g. with the node's output) before advancing, and reuse it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import redis

from wfrunner.engine import keys, payloads
from wfrunner.engine.counter import ApplyDeltaResult, TokenCounter
from wfrunner.engine.tokens import Token
from wfrunner.errors import PayloadError

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024


class Sdk:
    """Counter, payload and context operations of runs, over one ``redis.Redis`` client."""

    def __init__(
        self,
        client: redis.Redis,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        ttl_seconds: int | None = None,
    ) -> None:
        self.client = client
        self.max_payload_bytes = max_payload_bytes
        #: when set, every write (re)applies this expiry to the run's keys
        self.ttl_seconds = ttl_seconds
        self.counter = TokenCounter(client, ttl_seconds)

    # -- counter --------------------------------------------------------------------------

    def initialise_counter(self, run_id: str, entry_tokens: Sequence[Token]) -> ApplyDeltaResult:
        """Start the run's counter at one per entry token; a redelivered start is a no-op."""
        _check_distinct(entry_tokens, f"entry tokens of run {run_id!r}")
        for token in entry_tokens:
            if token.run_id != run_id or token.from_node is not None:
                raise ValueError(f"{token} is not an entry token of run {run_id!r}")
        op = keys.op_key(run_id, "init", None, None, 1)
        return self.counter.initialise(run_id, len(entry_tokens), op)

    def get_counter(self, run_id: str) -> int | None:
        """Tokens in flight; None when the run has no counter (not started or cleaned up)."""
        return self.counter.get(run_id)

    def apply_delta(self, run_id: str, op_key: str, delta: int) -> ApplyDeltaResult:
        """Add ``delta`` once per ``op_key`` (see :meth:`TokenCounter.apply_delta`)."""
        return self.counter.apply_delta(run_id, op_key, delta)

    def consume(self, token: Token) -> ApplyDeltaResult:
        """Primitive: remove ``token`` from the counter (-1), once per token."""
        return self.counter.apply_delta(token.run_id, token.op_key("consume"), -1)

    def emit(
        self,
        source: Token | str,
        run_id: str,
        targets: Sequence[str],
        payload_ref: str | None = None,
        iteration: int | None = None,
        hop: int | None = None,
    ) -> list[Token]:
        """Primitive: add one token per target (+N) in one op; returns the tokens to dispatch.

        ``source`` is the token the emitting node consumed (the op is keyed by it; hop and
        iteration follow it unless given) or, when there is none, the emitting node's id
        (the op is keyed by node and iteration; ``hop`` is then required).
        """
        tokens, op = self._emission(source, run_id, targets, payload_ref, iteration, hop)
        if tokens:
            self.counter.apply_delta(run_id, op, len(tokens))
        return tokens

    def advance(self, consumed: Token, emitted: Sequence[Token]) -> ApplyDeltaResult:
        """Consume ``consumed`` and emit ``emitted`` as one op: net ``len(emitted) - 1``.

        Build ``emitted`` with :meth:`Token.child`; ``hit_zero`` is True for the advance that
        completes the run (a terminal node emitting nothing as the last token in flight).
        """
        for token in emitted:
            if token.run_id != consumed.run_id or token.from_node != consumed.to_node:
                raise ValueError(f"{token} was not emitted by node {consumed.to_node!r}")
        _check_distinct(emitted, f"tokens emitted by {consumed.to_node!r}")
        op = consumed.op_key("advance")
        return self.counter.apply_delta(consumed.run_id, op, len(emitted) - 1)

    def delete_run(self, run_id: str) -> int:
        """Remove every hot key of the run; returns how many existed."""
        return self.counter.delete_run(run_id)

    # -- payloads and context -------------------------------------------------------------

    def store_payload(self, run_id: str, value: Any) -> str:
        """Store a JSON value once (content-addressed); returns its ref."""
        ref, text = payloads.encode_payload(value, self.max_payload_bytes)
        self._write(run_id, lambda pipe: pipe.hsetnx(keys.payloads_key(run_id), ref, text))
        return ref

    def load_payload(self, run_id: str, ref: str) -> Any:
        """The value stored under ``ref``; PayloadError when missing."""
        return payloads.load_payload(self.client, run_id, ref)

    def store_output(self, run_id: str, node_id: str, value: Any) -> str:
        """Store a node's output and make it the node's entry in the run's context."""
        ref, text = payloads.encode_payload(value, self.max_payload_bytes)

        def write(pipe: redis.client.Pipeline) -> None:
            pipe.hsetnx(keys.payloads_key(run_id), ref, text)
            pipe.hset(keys.context_key(run_id), node_id, ref)

        self._write(run_id, write)
        return ref

    def store_context(self, run_id: str, node_id: str, ref: str) -> None:
        """Point the context entry of ``node_id`` at an already stored payload."""
        self._write(run_id, lambda pipe: pipe.hset(keys.context_key(run_id), node_id, ref))

    def load_context(self, run_id: str) -> dict[str, Any]:
        """node_id -> latest output of every node that stored one (CEL's ``ctx``)."""
        refs = {
            _text(k): _text(v) for k, v in self.client.hgetall(keys.context_key(run_id)).items()
        }
        if not refs:
            return {}
        texts = self.client.hmget(keys.payloads_key(run_id), list(refs.values()))
        context: dict[str, Any] = {}
        for (node_id, ref), text in zip(refs.items(), texts, strict=True):
            if text is None:
                raise PayloadError(
                    f"run {run_id!r}: context of node {node_id!r} names missing payload {ref!r}"
                )
            context[node_id] = json.loads(text)
        return context

    def _write(self, run_id: str, commands: Callable[[redis.client.Pipeline], object]) -> None:
        """Run ``commands`` on a MULTI/EXEC pipeline, then refresh the TTL when one is set."""
        with self.client.pipeline(transaction=True) as pipe:
            commands(pipe)
            if self.ttl_seconds:
                pipe.expire(keys.payloads_key(run_id), self.ttl_seconds)
                pipe.expire(keys.context_key(run_id), self.ttl_seconds)
            pipe.execute()

    def _emission(
        self,
        source: Token | str,
        run_id: str,
        targets: Sequence[str],
        payload_ref: str | None,
        iteration: int | None,
        hop: int | None,
    ) -> tuple[list[Token], str]:
        if isinstance(source, Token):
            if source.run_id != run_id:
                raise ValueError(f"{source} does not belong to run {run_id!r}")
            from_node, op = source.to_node, source.op_key("emit")
            hop = source.hop + 1 if hop is None else hop
            iteration = source.iteration if iteration is None else iteration
        else:
            if hop is None:
                raise ValueError(f"emit from node {source!r} needs the hop of its tokens")
            iteration = 1 if iteration is None else iteration
            from_node, op = source, keys.op_key(run_id, "emit", source, None, iteration)
        tokens = [Token(run_id, from_node, t, payload_ref, hop, iteration) for t in targets]
        _check_distinct(tokens, f"targets of {from_node!r}")
        return tokens, op


def _check_distinct(tokens: Sequence[Token], what: str) -> None:
    """Two tokens with one identity would share op keys: one of them would never count."""
    seen = {(t.from_node, t.to_node, t.iteration) for t in tokens}
    if len(seen) != len(tokens):
        raise ValueError(f"{what} repeat a token: {[t.to_node for t in tokens]}")


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
