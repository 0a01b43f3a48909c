"""RabbitMQ as the Celery broker (``WFRUNNER_BROKER_URL=amqp://...``), whatever
``WFRUNNER_TEST_BROKER`` says: a node of the tests' own (tests/brokers.py), a fresh
virtual host per test, the run state on the fault tests' ``redis-server``, real
``celery worker`` subprocesses.

Skipped, saying why, only where ``rabbitmq-server`` is not installed.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from prometheus_client.parser import text_string_to_metric_families

from tests.brokers import RabbitMQ
from tests.e2e.waiting import until
from tests.entry_point import invoke
from tests.fault.checks import assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.procs import free_port
from tests.fault.test_poison import dlq
from tests.fault.test_worker_kill import run_chaos
from tests.fault.workflows import chain, node
from wfrunner import lifecycle
from wfrunner.poison import POISON_KEY
from wfrunner.tasks.broker import amqp_depths
from wfrunner.tasks.config import COMPLETION_QUEUE, TASK_QUEUE


@pytest.fixture()
def vhost(rabbitmq: RabbitMQ) -> Iterator[tuple[str, str]]:
    """A fresh virtual host of the tests' RabbitMQ: (name, amqp URL)."""
    name = f"rmq-{uuid.uuid4().hex[:8]}"
    url = rabbitmq.vhost(name)
    yield name, url
    rabbitmq.drop_vhost(name)


@pytest.mark.parametrize("backend", ["state Redis", "rpc://"])
def test_a_workflow_runs_on_rabbitmq_with_quorum_queues(
    make_cluster: Callable[..., Cluster],
    rabbitmq: RabbitMQ,
    vhost: tuple[str, str],
    backend: str,
) -> None:
    """End to end on RabbitMQ: the run completes, start_run's result is the run id
    (from the state Redis, or sent back over RabbitMQ with rpc://), and the engine's
    queues are quorum queues, as the server reports them."""
    knobs = {"WFRUNNER_RESULT_BACKEND": backend} if backend == "rpc://" else {}
    cluster = make_cluster(broker_url=vhost[1], **knobs)
    assert cluster.sender.conf.result_backend.startswith("rpc" if knobs else "redis")
    workflow = cluster.register(chain(node("mid"), "fault_rabbit"))
    cluster.start_workers(1)
    run_id = cluster.submit(workflow, {"tag": uuid.uuid4().hex})
    result = cluster.sender.AsyncResult(run_id)
    assert result.get(timeout=60) == run_id, cluster.tails()
    assert not cluster.wait([run_id], 60), cluster.tails()
    assert cluster.status(run_id) == "COMPLETED"
    types = rabbitmq.queue_types(vhost[0])
    assert types[TASK_QUEUE] == "quorum", types
    assert types[COMPLETION_QUEUE] == "quorum", types
    assert_clean(check_runs(cluster.rt, cluster.redis, [run_id], cluster.logs()))


def test_a_countdown_waits_in_rabbitmq(
    make_cluster: Callable[..., Cluster], vhost: tuple[str, str]
) -> None:
    """A node that fails once is retried after its backoff: the delayed message waits in
    RabbitMQ's delay queues (Celery's native delayed delivery, not a worker holding it
    unacknowledged) and comes back, and the run completes."""
    cluster = make_cluster(broker_url=vhost[1])
    flaky = {**node("mid", "fault.fail_first"), "retry": {"max_attempts": 2, "backoff_ms": 2500}}
    workflow = cluster.register(chain(flaky, "fault_rabbit_retry"))
    cluster.start_workers(1)
    run_id = cluster.submit(workflow, {"tag": uuid.uuid4().hex})
    delays = tuple(f"celery_delayed_{level}" for level in range(3))  # 1, 2 and 4 s
    until(lambda: sum(amqp_depths(vhost[1], delays).values()) > 0, 20)  # waits there
    assert not cluster.wait([run_id], 60), cluster.tails()
    assert cluster.status(run_id) == "COMPLETED", cluster.tails()


def _task_headers(task: Any, **more: Any) -> dict[str, Any]:
    task_id = str(uuid.uuid4())
    return {"lang": "py", "task": task, "id": task_id, "root_id": task_id, **more}


def _body(*args: Any) -> bytes:
    return json.dumps([list(args), {}, {}]).encode()


#: (queue, body, content type, headers, words the dead letter's reason must contain)
POISON: list[tuple[str, bytes, str, dict[str, Any], str]] = [
    (TASK_QUEUE, b"this is not json {", "application/json", _task_headers("wfrunner.reconcile"),
     "not JSON"),
    (TASK_QUEUE, b"\xff\xfe\x00binary", "application/json",
     _task_headers("wfrunner.check_completion"), "not JSON"),
    (TASK_QUEUE, b"{}", "application/json", {}, "task"),
    (TASK_QUEUE, b"\x80\x04K\x01.", "application/x-python-serialize",
     _task_headers("wfrunner.check_completion"), "not JSON"),
    (TASK_QUEUE, _body("x"), "application/json", _task_headers("wfrunner.no_such_task"),
     "unknown task"),
    (TASK_QUEUE, _body("run", "wf", "not a token"), "application/json",
     _task_headers("wfrunner.execute_node"), "token"),
    (COMPLETION_QUEUE, _body("r"), "application/json",
     _task_headers("wfrunner.check_completion", timelimit="zz"), "timelimit"),
]  # fmt: skip


def _publish_poison(url: str) -> None:
    with Connection(url) as connection:  # type: ignore[no-untyped-call]
        producer = connection.Producer()
        for queue, body, content_type, headers, _ in POISON:
            producer.publish(
                body,
                exchange=queue,
                routing_key=queue,
                content_type=content_type,
                content_encoding="binary" if "python" in content_type else "utf-8",
                headers=headers,
                delivery_mode=2,
            )


def _poison_letters(cluster: Cluster) -> list[Any]:
    return [d for d in cluster.rt.store.list_dead_letters(None) if d.kind == "poison"]


def test_poison_messages_on_rabbitmq_are_set_aside(
    make_cluster: Callable[..., Cluster], vhost: tuple[str, str]
) -> None:
    """Malformed AMQP messages (not JSON, no headers, pickle, unknown task, no token, a
    bad time limit) are parked in the state Redis and acknowledged: the worker lives on,
    the runs beside them complete, each becomes one dead letter, none comes back."""
    cluster = make_cluster(broker_url=vhost[1])
    workflow = cluster.register(chain(node("mid"), "fault_poison"))
    cluster.start_workers(1)
    tag = uuid.uuid4().hex
    runs = [cluster.submit(workflow, {"tag": f"{tag}{i}"}) for i in range(2)]
    _publish_poison(vhost[1])
    runs += [cluster.submit(workflow, {"tag": f"{tag}late{i}"}) for i in range(2)]
    assert not cluster.wait(runs, 60), cluster.tails()
    assert {cluster.status(r) for r in runs} == {"COMPLETED"}
    worker = cluster.workers[0]
    assert worker.proc is not None and worker.proc.poll() is None, cluster.tails()

    listed = dlq(cluster, "list")
    assert listed.returncode == 0, listed.stderr
    letters = _poison_letters(cluster)
    assert len(letters) == len(POISON), (listed.stdout, cluster.tails())
    unmatched = list(letters)
    for queue, _, _, _, words in POISON:
        found = [d for d in unmatched if d.queue == queue and words in d.error]
        assert found, (queue, words, [(d.queue, d.error) for d in unmatched])
        unmatched.remove(found[0])
    assert cluster.redis.llen(POISON_KEY) == 0

    worker.stop()  # a restarted worker is handed none of them again
    worker.start()
    again = cluster.submit(workflow, {"tag": f"{tag}again"})
    assert not cluster.wait([again], 60), cluster.tails()
    dlq(cluster, "list")
    assert len(_poison_letters(cluster)) == len(POISON)
    assert amqp_depths(vhost[1], (TASK_QUEUE, COMPLETION_QUEUE)) == {
        TASK_QUEUE: 0,
        COMPLETION_QUEUE: 0,
    }


def test_a_worker_killed_mid_node_on_rabbitmq(
    make_cluster: Callable[..., Cluster], vhost: tuple[str, str]
) -> None:
    """Whole workers SIGKILLed while nodes run: RabbitMQ gives their unacknowledged
    messages back when the connection drops, and every run completes with each node's
    effect exactly once (tests/fault/test_worker_kill.py's checks)."""
    cluster = make_cluster(broker_url=vhost[1])
    run_chaos(cluster, runs=30, kills=2, every=3.0, workers=2, timeout=90, top_up=4)


def test_metrics_and_doctor_on_rabbitmq(
    make_cluster: Callable[..., Cluster], vhost: tuple[str, str]
) -> None:
    """Queue depths are read from RabbitMQ (passive declares: a worker's exporter, and a
    queue nobody consumes); the doctor says it cannot list RabbitMQ's messages instead
    of reading Redis lists that are not the broker's."""
    port = free_port()
    cluster = make_cluster(broker_url=vhost[1], WFRUNNER_METRICS_PORT=str(port))
    slow = cluster.register(chain(node("mid", "fault.long", sleep_s=3), "fault_rabbit_slow"))
    cluster.start_workers(1)  # 2 processes: the other runs' starts wait in the queue
    for n in range(6):
        cluster.submit(slow, {"tag": f"slow{n}"})

    def depths() -> dict[str, float]:
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        return {
            s.labels["queue"]: s.value
            for family in text_string_to_metric_families(scraped.decode())
            if family.name == "wfrunner_queue_depth"
            for s in family.samples
        }

    # the worker's exporter reads RabbitMQ (a scrape that could not connect in time, on a
    # loaded machine, reports no depth at all: asked again)
    until(lambda: (d := depths()).get(TASK_QUEUE, 0) > 0 and COMPLETION_QUEUE in d, 30)
    unread = Queue("wfr.unread", Exchange("wfr.unread", "topic"), "wfr.unread",  # type: ignore[no-untyped-call]
                   queue_arguments={"x-queue-type": "quorum"})  # fmt: skip
    with Connection(vhost[1]) as connection:  # type: ignore[no-untyped-call]
        producer = connection.Producer()
        for n in range(3):
            producer.publish({"n": n}, exchange=unread.exchange, routing_key="wfr.unread",
                             declare=[unread])  # fmt: skip
    assert amqp_depths(vhost[1], ("wfr.unread", "wfr.nowhere")) == {
        "wfr.unread": 3,
        "wfr.nowhere": 0,
    }

    workflow = cluster.register(chain(node("mid"), "fault_rabbit_doctor"))
    run = cluster.rt.store.create_run(workflow, {"tag": "lost"}, 1)
    lifecycle.start(cluster.rt, run.id, workflow, {"tag": "lost"})  # never published
    time.sleep(3.5)  # the reconciler's stall threshold (3 x its 1 s interval)
    shown = invoke("doctor", run.id, env=cluster.env, timeout=60)
    assert shown.returncode == 1, shown.stderr
    assert "lost_message" in shown.stdout
    assert "the broker is RabbitMQ, whose queues cannot be listed" in shown.stdout
    assert "Traceback" not in shown.stderr
