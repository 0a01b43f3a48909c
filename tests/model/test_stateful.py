"""Model-based test of the counter / join / branch / loop logic under delivery faults.

A Hypothesis state machine drives ONE run of a random workflow (``strategies.py``) through
``tests.harness.Harness`` — the real executor, Lua scripts, Redis and PostgreSQL, with the
harness playing the broker — while rules inject the faults the engine must absorb:
duplicates (concurrent and late), crashes before the ack (redelivery), deliveries that die
inside the handler, commits whose dispatch died (redelivered), lost publishes repaired by
the reconciler, and a Redis (and broker) that loses everything, rebuilt from PostgreSQL.
The idle-run detector comes by (``detect_timeouts``) with the run idle or just active.
After every step: the counter equals the outbox (``wfr:{run}:pending``) and is never
negative, and an ended run never comes back.
At the end the run is drained and its document compared with ``model.run_model``.

Size: ``WFRUNNER_MODEL_EXAMPLES`` (default 500) examples of up to
``WFRUNNER_MODEL_STEPS`` (default 40) steps, about a minute; e.g.
``WFRUNNER_MODEL_EXAMPLES=500 pytest tests/model`` for a longer search.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.errors import StopTest
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.databases import fresh_database
from tests.fault.checks import Report, check_history
from tests.harness import Harness, redis_seen_as
from tests.model.model import Expected, run_model
from tests.model.strategies import inputs, workflows
from wfrunner import client, lifecycle, recovery
from wfrunner.compiler import compile_workflow
from wfrunner.engine import keys
from wfrunner.engine.executor import Outcome
from wfrunner.engine.runstate import Commit
from wfrunner.engine.tokens import Token
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings

EXAMPLES = int(os.environ.get("WFRUNNER_MODEL_EXAMPLES", "500"))
STEPS = int(os.environ.get("WFRUNNER_MODEL_STEPS", "40"))
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
#: drain: rounds of (deliver everything, then reconcile), and deliveries per round
DRAIN_ROUNDS = 20
DRAIN_DELIVERIES = 2_000


@pytest.fixture(scope="module")
def model_database_url(postgres_admin_url: str) -> Iterator[str]:
    """One migrated database for the whole module: runs are independent by id."""
    with fresh_database(postgres_admin_url, "wfr_model", migrated=True) as url:
        yield url


@pytest.fixture(scope="module")
def model_rt(redis_url: str, model_database_url: str) -> Iterator[Runtime]:
    runtime = Runtime(
        Settings(
            redis_url=redis_url,
            database_url=model_database_url,
            flush_interval=1,
            reconcile_interval=1,
        )
    )
    yield runtime
    runtime.close()


@functools.cache
def _admin(url: str) -> sa.Engine:
    """One engine per database for the steps that age a run's record."""
    return sa.create_engine(url)


def _logged(fn: Callable[..., None]) -> Callable[..., None]:
    """Record each step, so a failure can be dumped (WFRUNNER_MODEL_DUMP=dir) even when
    Hypothesis cannot replay it."""

    @functools.wraps(fn)
    def step(self: RunMachine, **kwargs: Any) -> None:
        self.steps.append((fn.__name__, kwargs))
        fn(self, **kwargs)

    return step


def _order(token: Token) -> tuple[str, ...]:
    return (token.to_node, token.from_node or "", token.scope, token.payload_ref or "")


@dataclass
class ModelHarness(Harness):
    """The harness made deterministic, so Hypothesis can replay and shrink: what is
    dispatched or republished is queued in a fixed order (Redis hash order depends on
    the run id), and history is copied to PostgreSQL only by the ``flush_history`` rule
    (``Outcome.flush`` depends on the clock).

    Each queued message also carries a delivery id (the Celery task id, the executor's
    ``nonce``): a message the broker redelivers keeps it, a published copy gets a new one.
    Messages are distinct objects, and the id is looked up by identity."""

    nonces: dict[int, str] = field(default_factory=dict)

    def _publish(self, tokens: list[Token]) -> None:
        for token in tokens:
            message = replace(token)
            self.nonces[id(message)] = uuid.uuid4().hex
            self.dispatched.append(message.key)
            self.queue.append(message)

    def process(self, token: Token, nonce: str | None = None) -> Outcome:
        """One delivery of a queued message (its own delivery id unless ``nonce``)."""
        nonce = nonce or self.nonces.get(id(token))
        return self.rt.executor.process(self.rt.ir(self.workflow_id), token, nonce=nonce)

    def act(self, token: Token, outcome: Outcome, publish: bool = True) -> None:
        outcome = replace(outcome, dispatch=sorted(outcome.dispatch, key=_order), flush=False)
        super().act(token, outcome, publish)

    def reconcile(self) -> None:
        for run_id, tokens in recovery.reconcile(self.rt).items():
            if run_id == self.run_id:
                self._publish(sorted(tokens, key=_order))


class RunMachine(RuleBasedStateMachine):
    def __init__(self, rt: Runtime) -> None:
        super().__init__()
        self.rt = rt
        self.h: ModelHarness | None = None
        self.expected: Expected | None = None
        self.died: Counter[str] = Counter()
        self.ended_as: str | None = None
        self.redis_ended_as: str | None = None
        self.steps: list[tuple[str, dict[str, Any]]] = []
        self.case: tuple[dict[str, Any], dict[str, int]] | None = None
        #: a raw (bytes) client for DUMP/RESTORE, and the last snapshot taken
        self.raw = redis.Redis.from_url(str(rt.settings.redis_url))
        self.saved: tuple[dict[str, Any], list[Token]] | None = None
        self.restored = False
        #: the idle-run detector failed the run (the model knows nothing of time)
        self.timed_out = False

    # --- helpers ---------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        assert self.h is not None
        return self.h.run_id

    def _take(self, i: int) -> Token:
        assert self.h is not None
        index = i % len(self.h.queue)
        token = self.h.queue[index]
        del self.h.queue[index]
        return token

    def _peek(self, i: int) -> Token:
        assert self.h is not None
        return self.h.queue[i % len(self.h.queue)]

    def _live(self) -> bool:
        return self.rt.state.meta(self.run_id).get("state") == "running"

    def _stalled(self, idle: bool = True) -> None:
        """Make the run look idle for long enough (the reconciler republishes its pending
        tokens then), or just active (it does not): never left to the clock."""
        if self.rt.state.meta(self.run_id):
            self.rt.redis.hset(keys.meta_key(self.run_id), "activity", 0 if idle else time.time())
            if idle:  # the run's next look in the reconciler's due index has come too
                self.rt.redis.zadd(self.rt.state.due_key(self.run_id), {self.run_id: 0}, xx=True)

    def has_queue(self) -> bool:
        return self.h is not None and bool(self.h.queue)

    # --- the run ---------------------------------------------------------------------

    @initialize(definition=workflows(), run_inputs=inputs)
    def start(self, definition: dict[str, Any], run_inputs: dict[str, int]) -> None:
        self.case = (definition, run_inputs)
        self.expected = run_model(compile_workflow(definition), run_inputs)
        self.h = ModelHarness(self.rt)
        self.h.start(definition, run_inputs)

    @precondition(has_queue)
    @rule(i=st.integers(min_value=0, max_value=1_000))
    @_logged
    def deliver(self, i: int) -> None:
        assert self.h is not None
        token = self._take(i)
        self.h.act(token, self.h.process(token))

    @precondition(has_queue)
    @rule(
        i=st.integers(min_value=0, max_value=1_000),
        first_acts_first=st.booleans(),
        same_id=st.booleans(),
        lease_expired=st.booleans(),
    )
    @_logged
    def duplicate(self, i: int, first_acts_first: bool, same_id: bool, lease_expired: bool) -> None:
        """Two deliveries of the same message, interleaved: the first runs up to its
        commit and stops there; the second begins, runs and commits; then the first
        commits. The broker handing the message out twice (same delivery id) or a
        published copy (a new one). While the first's lease is live the second must defer
        (look again later, no effect); once it expired (its worker looked dead) both pass
        begin and run the node, and exactly one commit counts. The message itself stays
        queued (a late duplicate to come)."""
        assert self.h is not None
        token = self._peek(i)
        other = None if same_id else uuid.uuid4().hex
        first, second, held = self._interleaved(token, other, lease_expired)
        if held and not lease_expired:
            # the first held a live lease while the second came: it deferred, no effect
            assert second.retry_in is not None and not second.dispatch, second
        if held:
            # whichever committed first, one of the two commits counts and dispatches
            assert not (first.dispatch and second.dispatch), (first, second)
        outcomes = [first, second]
        for outcome in outcomes if first_acts_first else outcomes[::-1]:
            self.h.act(token, outcome)

    def _interleaved(
        self, token: Token, other: str | None, lease_expired: bool
    ) -> tuple[Outcome, Outcome, bool]:
        """The first delivery of ``token`` in a thread held at its commit (if it gets
        there), the second run meanwhile on this thread; their outcomes, and whether the
        first was held at its commit (it began the token and ran its node)."""
        assert self.h is not None
        state = self.rt.state
        real_commit = state.commit
        at_commit, resume = threading.Event(), threading.Event()
        holder = threading.current_thread()

        def held_commit(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not holder:
                at_commit.set()
                assert resume.wait(60), "the interleaving never resumed the first delivery"
            return real_commit(*args, **kwargs)

        outcomes: list[Outcome] = []
        failures: list[BaseException] = []

        def run_first() -> None:
            try:
                outcomes.append(self.h.process(token))  # type: ignore[union-attr]
            except BaseException as exc:  # reported on the test's thread
                failures.append(exc)

        state.commit = held_commit  # type: ignore[method-assign]
        try:
            thread = threading.Thread(target=run_first)
            thread.start()
            while not at_commit.wait(0.01) and thread.is_alive():
                pass
            if at_commit.is_set() and lease_expired:
                self.rt.redis.hset(keys.running_key(self.run_id), token.key, "1.000|dead")
            second = self.h.process(token, other)
        finally:
            resume.set()
            state.commit = real_commit  # type: ignore[method-assign]
            thread.join(60)
        if failures:
            raise failures[0]
        return outcomes[0], second, at_commit.is_set()

    @precondition(has_queue)
    @rule(i=st.integers(min_value=0, max_value=1_000))
    @_logged
    def commit_reply_lost(self, i: int) -> None:
        """The reply to a delivery's commit is lost and the Redis client sends the same
        call again (same nonce, same lease holder): the repeat must be answered as the
        commit it repeats (applied once, ``mine``), so the delivery still dispatches
        what it emitted."""
        assert self.h is not None
        token = self._take(i)
        state = self.rt.state
        real_commit = state.commit
        lost: list[Commit] = []

        def commit_twice(*args: Any, **kwargs: Any) -> Commit:
            lost.append(real_commit(*args, **kwargs))  # applied; its reply never arrives
            return real_commit(*args, **kwargs)

        state.commit = commit_twice  # type: ignore[method-assign]
        try:
            outcome = self.h.process(token)
        finally:
            state.commit = real_commit  # type: ignore[method-assign]
        if lost and lost[0].changed:
            sent = sorted(t.key for t in outcome.dispatch)
            assert sent == sorted(t.key for t in lost[0].emitted), (outcome, lost[0])
        self.h.act(token, outcome)

    @precondition(has_queue)
    @rule(i=st.integers(min_value=0, max_value=1_000))
    @_logged
    def crash_before_ack(self, i: int) -> None:
        """The worker did everything but died before the ack: the broker redelivers."""
        assert self.h is not None
        token = self._take(i)
        self.h.act(token, self.h.process(token))
        self.h.queue.append(token)

    @precondition(has_queue)
    @rule(i=st.integers(min_value=0, max_value=1_000))
    @_logged
    def crash_after_commit(self, i: int) -> None:
        """The worker committed, then died before dispatching or acking: the broker
        redelivers the message (same delivery id), which dispatches what is still pending."""
        assert self.h is not None
        token = self._take(i)
        self.h.act(token, self.h.process(token), publish=False)
        self.h.queue.append(token)

    @precondition(has_queue)
    @rule(i=st.integers(min_value=0, max_value=1_000))
    @_logged
    def die_in_handler(self, i: int) -> None:
        """A delivery began the token and its worker died before the commit (once per
        token: a token whose workers keep dying is failed by design after
        WFRUNNER_MAX_DELIVERIES)."""
        assert self.h is not None
        token = self._peek(i)
        if self.died[token.key] >= 1:
            return
        self.died[token.key] += 1
        self.rt.state.begin(token, 0.0, None, lease=0)  # its lease expired with it

    @precondition(has_queue)
    @rule(i=st.integers(min_value=0, max_value=1_000))
    @_logged
    def lose_publish(self, i: int) -> None:
        """Committed, then died before publishing what it emitted (and the message is
        acked): only the reconciler can find those tokens again."""
        assert self.h is not None
        token = self._take(i)
        self.h.act(token, self.h.process(token), publish=False)
        self._stalled()

    @precondition(lambda self: self.h is not None)
    @rule(flush_first=st.booleans())
    @_logged
    def flush_redis(self, flush_first: bool) -> None:
        """Redis loses the run and the broker its messages; the reconciler rebuilds the
        run from PostgreSQL (from the last flush when ``flush_first`` is false)."""
        assert self.h is not None
        if flush_first:
            recovery.flush(self.rt, self.run_id)
        # as a Redis restarted empty: the reconciler's next pass sees a new server
        self.rt.redis.delete(*keys.run_keys(self.run_id))
        redis_seen_as(self.rt, None)
        self.h.queue.clear()
        self.h.reconcile()

    @precondition(lambda self: self.h is not None)
    @rule(idle=st.booleans())
    @_logged
    def reconcile(self, idle: bool) -> None:
        assert self.h is not None
        self._stalled(idle)
        self.h.reconcile()

    @precondition(lambda self: self.h is not None)
    @rule()
    @_logged
    def flush_history(self) -> None:
        """Copy the run's history to PostgreSQL (every WFRUNNER_FLUSH_INTERVAL s in a
        worker); a Redis wipe loses only what came after the last copy."""
        recovery.flush(self.rt, self.run_id)

    # --- restored snapshots, leases, forged messages ---------------------------------

    @precondition(lambda self: self.h is not None)
    @rule()
    @_logged
    def snapshot(self) -> None:
        """Redis writes a snapshot (RDB, or the AOF as of its last fsync): the run's hot
        keys and the broker's queue as they are now."""
        assert self.h is not None
        names = keys.run_keys(self.run_id)
        dumped = {name: self.raw.dump(name) for name in names}
        self.saved = ({k: v for k, v in dumped.items() if v is not None}, list(self.h.queue))

    @precondition(lambda self: self.h is not None and self.saved is not None)
    @rule(detected=st.booleans())
    @_logged
    def restore_snapshot(self, detected: bool) -> None:
        """Redis crashes and comes back from that snapshot: hot state and queue go back in
        time, PostgreSQL keeps what was flushed or ended since. ``detected``: the reconciler
        notices the restart now (the server key names another process); otherwise only the
        generation fence keeps the stale state out of PostgreSQL until a later pass."""
        assert self.h is not None and self.saved is not None
        dumped, queue = self.saved
        pipe = self.raw.pipeline()
        pipe.delete(*keys.run_keys(self.run_id))
        for name, value in dumped.items():
            pipe.restore(name, 0, value, replace=True)
        pipe.execute()
        self.h.queue.clear()
        self.h.queue.extend(queue)
        # Redis's own end state is no longer monotonic: the restored state may end a run
        # (or fail it) and PostgreSQL refuse that end (the generation fence), and the run
        # is then rebuilt and goes on; PostgreSQL's status is what must not go back
        self.restored = True
        if detected:
            redis_seen_as(self.rt, "a-server-before-the-crash")
            self.h.reconcile()

    @precondition(has_queue)
    @rule(i=st.integers(min_value=0, max_value=1_000))
    @_logged
    def busy_elsewhere(self, i: int) -> None:
        """A delivery of a queued token runs on another worker (its lease is live) when
        the broker hands the message out again: the copy must not run the node or change
        the run; it looks again later. Then the other worker dies and its lease expires
        (once per token, like ``die_in_handler``: each costs a delivery)."""
        assert self.h is not None
        token = self._peek(i)
        if self.died[token.key] >= 1:
            return
        other = self.rt.state.begin(token, time.time(), None, holder="elsewhere", lease=600)
        if other.state != "running" or other.committed or other.busy_for:
            return  # nothing to hold: the token ended, or was never emitted here
        self.died[token.key] += 1
        before = self._hot_counts()
        outcome = self.h.process(self._take(i))
        assert outcome.retry_in is not None and not outcome.dispatch, outcome
        assert self._hot_counts() == before, "a delivery ran beside a live lease"
        self.h.act(token, outcome)  # queued again: it looks again later
        self.rt.redis.hset(keys.running_key(self.run_id), token.key, "1.000|elsewhere")

    @precondition(has_queue)
    @rule(i=st.integers(min_value=0, max_value=1_000))
    @_logged
    def stale_heartbeat(self, i: int) -> None:
        """A heartbeat from a delivery that does not hold the token's lease (it expired and
        the token moved on) must not take a lease."""
        token = self._peek(i)
        lost = self.rt.state.renew({self.run_id: {token.key: "ghost"}}, 600)
        assert lost == [token.key]
        holders = {lease.holder for lease in self.rt.state.leases(self.run_id).values()}
        assert "ghost" not in holders

    @precondition(lambda self: self.h is not None)
    @rule(
        kind=st.sampled_from(["unknown_edge", "wrong_scope", "no_such_node", "copy_of_entry"]),
        i=st.integers(min_value=0, max_value=1_000),
    )
    @_logged
    def forged_message(self, kind: str, i: int) -> None:
        """A message that passes the worker's format checks (a token dict of this run) but
        names a token the run never emitted, or a copy of its long-consumed entry token:
        no handler runs for it and nothing of the run changes."""
        assert self.h is not None
        nodes = sorted(self.rt.ir(self.h.workflow_id).nodes)
        target = nodes[i % len(nodes)]
        forged = {
            "unknown_edge": Token(self.run_id, "forger", target, None, 1),
            "wrong_scope": Token(self.run_id, None, target, None, 0, 7, "Z=7"),
            "no_such_node": Token(self.run_id, None, "no-such-node", None, 0),
            "copy_of_entry": Token.entry(self.run_id, nodes[0]),
        }[kind]
        if kind == "copy_of_entry" and self.rt.redis.hexists(
            keys.pending_key(self.run_id), forged.key
        ):
            return  # not consumed yet: a copy of it is a plain duplicate
        before = self._hot_counts()
        outcome = self.h.process(forged, uuid.uuid4().hex)  # a message of its own
        assert not outcome.dispatch and outcome.retry_in is None, outcome
        assert outcome.ignored, outcome
        assert self._hot_counts() == before, f"a forged {kind} token changed the run"

    @precondition(lambda self: self.h is not None and not self.restored)
    @rule(idle=st.booleans())
    @_logged
    def detect_timeouts(self, idle: bool) -> None:
        """The idle-run detector (Celery beat) comes by after WFRUNNER_RUN_TIMEOUT without
        a commit (``idle``) or soon after one: it fails an idle run, the run ends FAILED
        as timed out whatever is still queued, and it leaves an active one alone. A live
        lease or a retry not yet due is activity (a long node, a long backoff)."""
        status = self.rt.store.get_run(self.run_id).status.value
        if status != "RUNNING" or not self._live():
            return  # ended (or ending): not the detector's
        timeout = self.rt.settings.run_timeout
        with _admin(str(self.rt.settings.database_url)).begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE runs SET last_activity_at = now() - make_interval(secs => :s)"
                    " WHERE id = :id"
                ),
                {"s": 2 * timeout, "id": self.run_id},
            )
        now = self.rt.state.clock()
        self.rt.redis.hset(
            keys.meta_key(self.run_id), "activity", now - 2 * timeout if idle else now
        )
        entries = [v.split("|", 1) for v in self.rt.redis.hvals(keys.running_key(self.run_id))]
        busy = any(len(e) == 2 and float(e[0]) > now and e[1] != "republished" for e in entries)
        failed = lifecycle.expire_idle_runs(self.rt)
        after = self.rt.store.get_run(self.run_id)
        if idle and not busy:
            assert self.run_id in failed, f"an idle run was not timed out: {failed}"
            assert after.status.value == "FAILED", after.status
            assert (after.error or "").startswith("run timed out"), after.error
            self.timed_out = True
        else:
            assert self.run_id not in failed, "the detector failed an active run"
            assert after.status.value == "RUNNING", after.status
            assert self.run_id not in self.rt.store.find_idle_runs(timeout), (
                "the detector did not record the activity it found"
            )

    def _hot_counts(self) -> tuple[Any, ...]:
        """What a delivery that is not allowed to act must leave alone."""
        run = self.run_id
        return (
            self.rt.state.counter(run),
            self.rt.redis.hgetall(keys.pending_key(run)),
            self.rt.redis.llen(keys.events_key(run)),
            self.rt.redis.hgetall(keys.context_key(run)),
            self.rt.redis.hgetall(keys.attempts_key(run)),
        )

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def counter_equals_outbox(self) -> None:
        if self.h is None or not self._live():
            return
        counter = self.rt.state.counter(self.run_id)
        pending = self.rt.redis.hlen(keys.pending_key(self.run_id))
        assert counter is not None, "a live run has no counter"
        assert counter >= 0, f"counter {counter} < 0"
        assert counter == pending, f"counter {counter} != {pending} pending tokens"

    @invariant()
    def ended_runs_stay_ended(self) -> None:
        if self.h is None:
            return
        status = self.rt.store.get_run(self.run_id).status.value
        if self.ended_as is not None:
            assert status == self.ended_as, f"run went from {self.ended_as} to {status}"
        elif status in TERMINAL:
            self.ended_as = status
        state = self.rt.state.meta(self.run_id).get("state")
        if self.restored:
            return
        if self.redis_ended_as is not None and state is not None:
            assert state == self.redis_ended_as, f"Redis state {self.redis_ended_as} -> {state}"
        elif state not in (None, "running"):
            self.redis_ended_as = state

    # --- the end ---------------------------------------------------------------------

    def drain(self) -> dict[str, Any]:
        assert self.h is not None
        for _ in range(DRAIN_ROUNDS):
            for _ in range(DRAIN_DELIVERIES):
                if not self.h.queue:
                    break
                self.h.deliver()
                self.counter_equals_outbox()
            if self.rt.store.get_run(self.run_id).status.value in TERMINAL:
                break
            self._stalled()
            self.h.reconcile()
        return client.get_run(self.run_id, self.rt)

    def teardown(self) -> None:
        if self.h is None:
            self.raw.close()
            return
        in_flight = sys.exc_info()[1]
        if in_flight is not None and not isinstance(in_flight, StopTest):
            # a step failed: report that, not the outcome of a drain after it
            self._cancel()
            return
        # Hypothesis stops an example (StopTest) only between steps, when it runs out of
        # data: the run is as consistent as after any step, so it is drained and compared
        try:
            doc = self.drain()
            self.compare(doc)
            self.check_history()
        except Exception as exc:
            self._dump(exc)
            raise
        finally:
            self._cancel()

    def _cancel(self) -> None:
        """Leave no run RUNNING: the reconciler of later examples would keep visiting it."""
        self.raw.close()
        if self.rt.store.get_run(self.run_id).status.value not in TERMINAL:
            lifecycle.fail(self.rt, self.run_id, "model test over", kind="cancelled")

    def _dump(self, exc: BaseException) -> None:
        where = os.environ.get("WFRUNNER_MODEL_DUMP")
        if not where or self.case is None:
            return
        os.makedirs(where, exist_ok=True)
        record = {
            "definition": self.case[0],
            "inputs": self.case[1],
            "steps": self.steps,
            "error": f"{type(exc).__name__}: {exc}",
        }
        with open(os.path.join(where, f"{self.run_id}.json"), "w") as out:
            json.dump(record, out, indent=1)

    def check_history(self) -> None:
        """What PostgreSQL holds of the ended run is one consistent story, whatever faults
        came before: gap-free events with one terminal event, each token emitted and
        consumed once, node_executions matching the events (tests/fault/checks.py)."""
        report = Report()
        ended = check_history(self.rt, self.run_id, report)
        assert ended and not report.problems, report

    def compare(self, doc: dict[str, Any]) -> None:
        exp = self.expected
        assert exp is not None
        if self.timed_out:
            assert doc["status"] == "FAILED", doc["status"]
            assert doc["error"].startswith("run timed out"), doc["error"]
            assert not {"PENDING", "RUNNING"} & {d["status"] for d in doc["nodes"].values()}
            return
        assert doc["status"] == exp.status, (doc["status"], doc["error"], exp.error)
        if exp.status == "FAILED" and exp.failed_node:
            assert doc["nodes"][exp.failed_node]["status"] == "FAILED"
            assert doc["error"].startswith(f"node {exp.failed_node!r} failed"), doc["error"]
            assert "PENDING" not in {d["status"] for d in doc["nodes"].values()}
            # which other nodes ran before the failure stopped the run depends on delivery
            # order; each that did ran no more passes than the model, and gave one of the
            # outputs the model's passes give
            for node, d in doc["nodes"].items():
                if node == exp.failed_node or d["status"] != "COMPLETED":
                    continue
                assert 0 < d["iterations"] <= exp.iterations.get(node, 0), (node, d)
                assert d["output"] in exp.outputs_seen[node], (node, d["output"])
            self._compare_path(doc, exp, complete=False)
            return
        if exp.status == "FAILED":  # a join left waiting
            assert "PENDING" not in {d["status"] for d in doc["nodes"].values()}
            return
        got_status = {n: d["status"] for n, d in doc["nodes"].items()}
        assert got_status == exp.node_status
        got_iterations = {n: d["iterations"] for n, d in doc["nodes"].items()}
        assert got_iterations == exp.iterations
        got_outputs = {n: d["output"] for n, d in doc["nodes"].items() if d["iterations"]}
        assert got_outputs == exp.outputs
        self._compare_path(doc, exp, complete=True)

    @staticmethod
    def _compare_path(doc: dict[str, Any], exp: Expected, complete: bool) -> None:
        """The tokens emitted are the model's (all of them when the run ``complete``d),
        plus at most one fire token per join whose last arrival was dead."""
        path = Counter((e["from"], e["to"]) for e in doc["path"])
        if complete:
            missing = exp.path - path
            assert not missing, f"path lacks {dict(missing)}"
        extra = path - exp.path
        allowed: Counter[tuple[str | None, str]] = Counter()
        for (join, _), sources in exp.fire_edges.items():
            for src in sources:
                allowed[(src, join)] += 1
        assert not (extra - allowed), f"path has extra tokens {dict(extra - allowed)}"
        fires: Counter[str] = Counter(join for (join, _) in exp.fire_edges)
        extra_fires: Counter[str] = Counter(to for (_, to) in extra.elements())
        assert all(extra_fires[j] <= fires[j] for j in extra_fires), (extra_fires, fires)


@pytest.mark.timeout(1800)  # shrinking a failure may take Hypothesis's 5 minutes and more
def test_runs_match_the_model_under_faults(model_rt: Runtime, redis_url: str) -> None:
    run_state_machine_as_test(
        lambda: RunMachine(model_rt),  # type: ignore[arg-type]  # a factory works too
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_model_sanity() -> None:
    """The model itself on a hand-checked diamond with an exclusive branch."""
    definition = {
        "nodes": [
            {"id": "A", "type": "transform", "config": {"expression": "[input.a]"}},
            {"id": "B", "type": "transform", "config": {"expression": "input + [1]"}},
            {"id": "C", "type": "transform", "config": {"expression": "input + [2]"}},
            {"id": "D", "type": "aggregate", "config": {"strategy": "concat"}},
        ],
        "edges": [
            {"from": "A", "to": "B", "condition": "output[0] > 0"},
            {"from": "A", "to": "C", "condition": "!(output[0] > 0)"},
            {"from": "B", "to": "D"},
            {"from": "C", "to": "D"},
        ],
    }
    exp = run_model(compile_workflow(definition), {"a": 5})
    assert exp.status == "COMPLETED"
    assert exp.node_status == {"A": "COMPLETED", "B": "COMPLETED", "C": "SKIPPED", "D": "COMPLETED"}
    assert exp.outputs["D"] == [5, 1]
    assert exp.path == Counter({(None, "A"): 1, ("A", "B"): 1, ("B", "D"): 1})
    assert set(exp.fire_edges) == {("D", ())}
    loop = {
        "nodes": [
            {"id": "S", "type": "transform", "config": {"expression": "[input.a]"}},
            {"id": "X", "type": "transform", "config": {"expression": "input + [0]"}},
            {
                "id": "L",
                "type": "loop",
                "config": {
                    "max_iterations": 3,
                    "loop_back_to": "X",
                    "condition": "output.size() < 10",
                    "break_path": ["Ok"],
                    "timeout_path": ["Late"],
                },
            },
            {"id": "Ok", "type": "transform", "config": {"expression": "input"}},
            {"id": "Late", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [{"from": "S", "to": "X"}, {"from": "X", "to": "L"}],
    }
    exp = run_model(compile_workflow(loop), {"a": 1})
    assert exp.iterations == {"S": 1, "X": 3, "L": 3, "Ok": 0, "Late": 1}
    assert exp.node_status["Ok"] == "SKIPPED"
    assert exp.outputs["Late"] == [1, 0, 0, 0]
