"""Deliver a run's tokens by hand, without Celery: for tests that must control every
delivery (duplicates, crashes before the ack, lost publishes, a wiped Redis).

The harness plays the broker: ``queue`` holds the messages; ``deliver`` runs one through
the same executor a worker uses and enqueues what it dispatches. Everything else is real:
Redis, PostgreSQL, the Lua scripts, the Store.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wfrunner import client, lifecycle, recovery, redisnodes
from wfrunner.engine import keys
from wfrunner.engine.executor import Outcome
from wfrunner.engine.runstate import seen_at_zero
from wfrunner.engine.tokens import Token
from wfrunner.runtime import Runtime


@dataclass
class Harness:
    rt: Runtime
    queue: deque[Token] = field(default_factory=deque)
    #: tokens dispatched, in order (for "one dispatch per token" checks)
    dispatched: list[str] = field(default_factory=list)
    completion_checks: int = 0
    run_id: str = ""
    workflow_id: str = ""

    def start(self, definition: dict[str, Any], inputs: Any = None) -> str:
        self.workflow_id = client.register_workflow(definition, self.rt)
        run = self.rt.store.create_run(self.workflow_id, inputs, 1)
        self.run_id = run.id
        self._publish(lifecycle.start(self.rt, run.id, self.workflow_id, inputs))
        return run.id

    def _publish(self, tokens: list[Token]) -> None:
        for token in tokens:
            self.dispatched.append(token.key)
            self.queue.append(token)

    def process(self, token: Token) -> Outcome:
        """One delivery of ``token``; returns the outcome without acting on it."""
        return self.rt.executor.process(self.rt.ir(self.workflow_id), token)

    def act(self, token: Token, outcome: Outcome, publish: bool = True) -> None:
        """Do what the execute_node task does after processing."""
        if outcome.retry_in is not None:
            self.queue.append(token)
        if publish:
            self._publish(outcome.dispatch)
        if outcome.flush:
            recovery.flush(self.rt, token.run_id)
        if outcome.check_completion:
            self.completion_checks += 1
            seen = seen_at_zero(self.workflow_id, outcome.joins_at_zero)
            lifecycle.check_completion(self.rt, token.run_id, seen)

    def deliver(self, pick: Callable[[deque[Token]], Token] | None = None) -> Outcome:
        token = pick(self.queue) if pick else self.queue.popleft()
        outcome = self.process(token)
        self.act(token, outcome)
        return outcome

    def drain(self, limit: int = 10_000) -> dict[str, Any]:
        for _ in range(limit):
            if not self.queue:
                break
            self.deliver()
        return client.get_run(self.run_id, self.rt)

    def lose_hot_state(self) -> None:
        """Copy the run's history to PostgreSQL, then lose it from Redis and the broker
        (every queued message), as a Redis restarted empty would (the reconciler's next
        pass sees a new server), and let the reconciler rebuild it."""
        recovery.flush(self.rt, self.run_id)
        self.rt.redis.delete(*keys.run_keys(self.run_id))
        redis_seen_as(self.rt, None)
        self.queue.clear()
        self.reconcile()

    def reconcile(self) -> None:
        for run_id, tokens in recovery.reconcile(self.rt).items():
            if run_id == self.run_id:
                self._publish(tokens)


def redis_seen_as(rt: Runtime, process: str | None) -> None:
    """Make every master's identity key name ``process`` (None: delete it, as after an
    empty restart): the next reconciler pass takes Redis for restored (or new)."""
    for key in redisnodes.identity_keys(rt.redis).values():
        if process is None:
            rt.redis.delete(key)
        else:
            rt.redis.set(key, process)


def hot_keys(rt: Runtime, run_id: str) -> list[str]:
    """The run's keys in Redis, on every master of a cluster."""
    return sorted(rt.redis.scan_iter(match=f"wfr:{{{run_id}}}:*"))
