"""9. Poison messages: bytes on the engine's queues that no task can be made of, pushed
straight into Redis (LPUSH onto the kombu queue lists, as the Redis transport stores
messages) next to live runs. The worker survives each one, sets it aside as a dead letter
with its reason (``wfrunner dlq list``), keeps serving the live runs, and a restarted
worker is handed none of them again."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.brokers import redis_broker_only
from tests.entry_point import invoke
from tests.fault.checks import assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.workflows import chain, node
from wfrunner.poison import POISON_KEY
from wfrunner.tasks.config import COMPLETION_QUEUE, TASK_QUEUE


def envelope(
    task: str = "wfrunner.check_completion",
    args: Any = ("no-such-run",),
    body: Any = ...,
    queue: str = TASK_QUEUE,
    **headers: Any,
) -> bytes:
    """A kombu/Redis envelope as ``send_task`` writes it (see ``redis-cli LRANGE``)."""
    task_id = str(uuid.uuid4())
    if body is ...:
        embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
        payload = [list(args), {}, embed]
        body = base64.b64encode(json.dumps(payload).encode()).decode()
    message = {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": "",
            "kwargsrepr": "{}",
            "origin": "poison@test",
            "ignore_result": False,
            "stamped_headers": None,
            "stamps": {},
            **headers,
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": str(uuid.uuid4()),
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message).encode()


#: (queue, raw bytes, words the dead letter's reason must contain)
POISON: list[tuple[str, bytes, str]] = [
    (TASK_QUEUE, b"this is not json {", "not JSON"),
    (TASK_QUEUE, b"\xff\xfe\x00binary", "not JSON"),
    (TASK_QUEUE, b"null", "not an object"),
    (TASK_QUEUE, b"[1, 2, 3]", "not an object"),
    (TASK_QUEUE, b'{"body": "x"}', "properties"),
    (TASK_QUEUE, envelope(body="!!not base64!!"), "base64"),
    (TASK_QUEUE, envelope(body=None), "body"),
    (TASK_QUEUE, envelope(timelimit="zz"), "timelimit"),
    (TASK_QUEUE, envelope(task=None), "task"),
    (TASK_QUEUE, envelope("wfrunner.no_such_task"), "unknown task"),
    (TASK_QUEUE, envelope("wfrunner.execute_node", ["run", "wf", "not a token"]), "token"),
    (TASK_QUEUE, envelope("wfrunner.execute_node", ["run", "wf", {"run_id": "run"}]), "token"),
    (TASK_QUEUE, envelope("wfrunner.execute_node", []), "arguments"),
    (COMPLETION_QUEUE, b"{not json either", "not JSON"),
    (COMPLETION_QUEUE, envelope(queue=COMPLETION_QUEUE, retries="many"), "retries"),
]


def dlq(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return invoke("dlq", *args, env=cluster.env, timeout=60)


def _poison_letters(cluster: Cluster) -> list[Any]:
    return [d for d in cluster.rt.store.list_dead_letters(None) if d.kind == "poison"]


@redis_broker_only(
    "it pushes raw bytes onto kombu's Redis queue lists (tests/fault/test_rabbitmq.py "
    "sets poison aside on RabbitMQ)"
)
def test_poison_messages_are_set_aside(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    workflow = cluster.register(chain(node("mid"), "fault_poison"))
    cluster.start_workers(1)
    tag = uuid.uuid4().hex
    runs = [cluster.submit(workflow, {"tag": f"{tag}{i}"}) for i in range(3)]
    for queue, raw, _ in POISON:
        cluster.broker.lpush(queue, raw)
    runs += [cluster.submit(workflow, {"tag": f"{tag}late{i}"}) for i in range(3)]
    stuck = cluster.wait(runs, 60)
    assert not stuck, cluster.tails()
    assert {cluster.status(r) for r in runs} == {"COMPLETED"}
    worker = cluster.workers[0]
    assert worker.proc is not None and worker.proc.poll() is None, cluster.tails()
    assert "Unrecoverable error" not in worker.text()

    listed = dlq(cluster, "list")
    assert listed.returncode == 0, listed.stderr
    letters = _poison_letters(cluster)
    assert len(letters) == len(POISON), listed.stdout
    unmatched = list(letters)
    for queue, _, words in POISON:  # each poison has its own letter, naming the reason
        found = [d for d in unmatched if d.queue == queue and words in d.error]
        assert found, (queue, words, [(d.queue, d.error) for d in unmatched])
        unmatched.remove(found[0])
    for letter in letters:
        assert f"{letter.id:>6}  open     poison on {letter.queue}" in listed.stdout
        assert letter.error in listed.stdout
    assert cluster.redis.llen(POISON_KEY) == 0  # moved to PostgreSQL (from the state Redis)

    retried = dlq(cluster, "retry", str(letters[0].id))
    assert retried.returncode == 2
    assert "poison" in retried.stderr and "Traceback" not in retried.stderr

    # a restarted worker is handed nothing poison again
    worker.stop()
    worker.start()
    again = cluster.submit(workflow, {"tag": f"{tag}again"})
    assert not cluster.wait([again], 60), cluster.tails()
    time.sleep(2)
    dlq(cluster, "list")
    assert len(_poison_letters(cluster)) == len(POISON)
    for queue in (TASK_QUEUE, COMPLETION_QUEUE):
        assert cluster.broker.llen(queue) == 0
    assert cluster.broker.hlen("unacked") == 0

    report = check_runs(cluster.rt, cluster.redis, [*runs, again], cluster.logs())
    assert_clean(report, cluster.tails())
