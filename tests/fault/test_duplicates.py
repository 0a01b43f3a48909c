"""3. Duplicate delivery and 4. stale completions, with real workers.

The test process plays a broker that delivers twice: it reads each run's event list
(``wfr:{run}:events``) and sends a second ``wfrunner.execute_node`` message for every
token the runs emit, at once for half of them and 1.5 s later for the other half. A stale
completion is produced by a slow first attempt overtaken by a second delivery, and by
messages for every token of a run that has already ended."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.fault.checks import assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.workflows import chain, diamond, node
from wfrunner.engine import keys
from wfrunner.engine.tokens import Token
from wfrunner.tasks.execution import FOLLOWS

#: logged by a delivery that found another's live lease on its token
LOOK_AGAIN = "another delivery is running it"


class Duplicator:
    """Sends one extra copy of every token a run emits, read from the run's event list
    in Redis (``token_emitted`` is written in the same atomic commit as the token, before
    it is published), at once or 1.5 s later, alternately."""

    def __init__(self, cluster: Cluster, workflow_id: str, run_ids: list[str]) -> None:
        self.cluster, self.workflow_id, self.run_ids = cluster, workflow_id, run_ids
        self.copied: set[str] = set()
        #: run id -> events read so far (absolute: trimmed events included)
        self.read = dict.fromkeys(run_ids, 0)
        #: events trimmed from Redis that this reader could not find in PostgreSQL either
        self.missed = 0
        self.now = 0
        self.late = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Duplicator:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        redis = self.cluster.redis
        while not self._stop.wait(0.005):
            for run_id in self.run_ids:
                trimmed = int(redis.hget(keys.meta_key(run_id), "trimmed") or 0)
                fresh: list[dict[str, Any]] = []
                if self.read[run_id] < trimmed:  # flushed before we looked: PostgreSQL has it
                    stored = self.cluster.rt.store.list_events(run_id, self.read[run_id])
                    fresh += [e.as_event() for e in stored if e.seq <= trimmed]
                    self.missed += trimmed - self.read[run_id] - len(fresh)
                    self.read[run_id] = trimmed
                tail = redis.lrange(keys.events_key(run_id), self.read[run_id] - trimmed, -1)
                self.read[run_id] += len(tail)
                fresh += [json.loads(raw) for raw in tail]
                for evt in fresh:
                    if evt["type"] == "token_emitted" and evt.get("token"):
                        self._copy(Token.from_dict(evt["token"]))

    def _copy(self, token: Token) -> None:
        self.copied.add(token.key)
        if len(self.copied) % 2:
            self.cluster.send_token(self.workflow_id, token)
            self.now += 1
        else:
            self.cluster.send_token(self.workflow_id, token, countdown=1.5)
            self.late += 1


def test_every_message_delivered_twice(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    workflow_id = cluster.register(diamond(ms=(60, 120)))
    cluster.start_workers(2)
    run_ids = [cluster.submit(workflow_id, {"tag": uuid.uuid4().hex}) for _ in range(10)]
    with Duplicator(cluster, workflow_id, run_ids) as dup:
        stuck = cluster.wait(run_ids, 60)
        time.sleep(3)  # let the late copies arrive and be ignored
    received = sum(
        line.endswith("received")
        for log in cluster.logs()
        for line in log.splitlines()
        # the engine's messages go by the name Flower shows, our copies by the task's own
        if "Task wfrunner.node:" in line or "Task wfrunner.execute_node[" in line
    )
    emitted_keys = [
        Token.from_dict(e.data["token"]).key
        for run_id in run_ids
        for e in cluster.rt.store.list_events(run_id)
        if e.type == "token_emitted"
    ]
    emitted = len(emitted_keys)
    # a join arrival that did not complete its join was consumed by the commit that
    # emitted it (its join_arrived event names that commit, "by"): never a message
    unsent = sum(
        1
        for run_id in run_ids
        for e in cluster.rt.store.list_events(run_id)
        if e.type == "join_arrived" and e.data.get("by")
    )
    report = check_runs(
        cluster.rt,
        cluster.redis,
        run_ids,
        cluster.logs(),
        copies_now=dup.now,
        copies_late=dup.late,
        tokens=emitted,
        deliveries=received,
        ignored=cluster.count_in_logs("ignored:"),
        looked_again=cluster.count_in_logs(LOOK_AGAIN),
    )
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    assert report.statuses == {"COMPLETED": 10}
    # every token the runs emitted was delivered twice (none slipped past the copier)
    assert dup.missed == 0, report
    assert dup.copied == set(emitted_keys), report
    assert dup.now + dup.late == emitted, report
    # one dispatch per token sent: every delivery is the engine's one, our copy, or a copy
    # that found the token's lease live and was sent again to look once it would have
    # expired; a token its emitter's task ran itself is no message
    looked_again = report.extra["looked_again"]
    followed = cluster.count_in_logs(FOLLOWS)
    assert unsent == 2 * len(run_ids), report  # of the join's three arrivals, two
    assert followed > 0, report
    assert received + followed == emitted - unsent + dup.now + dup.late + looked_again, report


def test_stale_completions_change_nothing(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    slow = node("slow", "fault.slow_first", slow_s=3)
    workflow_id = cluster.register(chain(slow, "fault_stale", after=node("last", ms=[4000, 4000])))
    cluster.start_workers(1)  # two pool processes: the slow attempt and its overtaker
    run_id = cluster.submit(workflow_id, {"tag": uuid.uuid4().hex})
    slow_token = _wait_running(cluster, run_id, "slow")
    # attempt 1 loses its lease (as when its heartbeat is starved, or renewed too late),
    # so attempt 2 runs and commits while 1 sleeps
    cluster.redis.hdel(keys.running_key(run_id), slow_token.key)
    cluster.send_token(workflow_id, slow_token)
    assert cluster.wait([run_id], 60) == [], cluster.tails()
    overtaken = "token to slow ignored: another delivery of this token committed first"
    assert cluster.count_in_logs(overtaken) == 1, cluster.tails()
    events = cluster.rt.store.list_events(run_id)
    (completed,) = [e for e in events if e.type == "node_completed" and e.node_id == "slow"]
    output = cluster.rt.store.load_payload(run_id, completed.data["output_ref"])
    assert output["slow"] is False  # the overtaking attempt's output, not the stale one

    # after the end: a message for every token of the run changes nothing
    ignored_before = cluster.count_in_logs("ignored: run is gone")
    tokens = [Token.from_dict(e.data["token"]) for e in events if e.type == "token_emitted"]
    for token in tokens:
        cluster.send_token(workflow_id, token)
    deadline = time.monotonic() + 20
    while cluster.count_in_logs("ignored: run is gone") < ignored_before + len(tokens):
        assert time.monotonic() < deadline, cluster.tails()
        time.sleep(0.2)
    assert len(cluster.rt.store.list_events(run_id)) == len(events)
    report = check_runs(cluster.rt, cluster.redis, [run_id], cluster.logs(),
                        late_after_end=len(tokens))  # fmt: skip
    assert_clean(report, cluster.tails())
    assert report.statuses == {"COMPLETED": 1}


def _wait_running(cluster: Cluster, run_id: str, node_id: str) -> Token:
    """The token of ``node_id`` once a delivery has begun it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        running = cluster.redis.hkeys(keys.running_key(run_id))
        for key, raw in cluster.redis.hgetall(keys.pending_key(run_id)).items():
            token = Token.from_dict(json.loads(raw))
            if token.to_node == node_id and key in running:
                return token
        time.sleep(0.02)
    raise AssertionError(f"{node_id} never began\n{cluster.tails()}")
