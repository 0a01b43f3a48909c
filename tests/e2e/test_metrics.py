"""Prometheus metrics of a real ``celery -A wfrunner worker`` (prefork pool of 2: each child
counts in its own process, the worker's main process serves the sum) scraped over HTTP on
WFRUNNER_METRICS_PORT, after runs with a failing node and runs that complete."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer, Queue
from prometheus_client.parser import text_string_to_metric_families

from tests.brokers import redis_broker_only
from tests.e2e.procs import celery, node_name
from tests.entry_point import invoke
from wfrunner import metrics

ROOT = Path(__file__).resolve().parents[2]

OK = {
    "metadata": {"name": "metrics_ok"},
    "nodes": [
        {"id": "A", "type": "transform", "config": {"expression": "{'x': 1}"}},
        {"id": "B", "type": "transform", "config": {"expression": "{'x': input.x + 1}"}},
    ],
    "edges": [{"from": "A", "to": "B"}],
}
FAILING = {
    "metadata": {"name": "metrics_failing"},
    "nodes": [
        {"id": "A", "type": "transform", "config": {"expression": "{'x': 1}"}},
        {
            "id": "F",
            "type": "function",
            "config": {"function_name": "cli.fail_until_file", "path": "/nonexistent/wfrunner"},
        },
    ],
    "edges": [{"from": "A", "to": "F"}],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def exporting_worker(worker_env: dict[str, str]) -> Iterator[tuple[dict[str, str], int]]:
    port = free_port()
    env = {
        **worker_env,
        "WFRUNNER_HANDLERS": "tests.e2e.cli_handlers",
        "WFRUNNER_METRICS_PORT": str(port),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "wfrunner", "worker", "-c", "2",
         "--loglevel=WARNING", "-n", "metrics-test@%h"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while scrape_text(port) is None:
            assert proc.poll() is None, proc.communicate()[1]
            if time.monotonic() > deadline:
                pytest.fail("the worker served no metrics within 60 s")
            time.sleep(0.5)
        # the exporter serves before the worker consumes: `wfrunner run` must find it answering
        # (else it runs a worker of its own, which cannot take the port)
        name = node_name("metrics-test")
        while "pong" not in celery(env, ROOT, "inspect", "ping", "-d", name, "-t", "1").stdout:
            assert proc.poll() is None, proc.communicate()[1]
            if time.monotonic() > deadline:
                pytest.fail("the worker did not answer a ping within 60 s")
            time.sleep(0.5)
        yield env, port
    finally:
        proc.terminate()
        proc.wait(30)


def scrape_text(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())
    except OSError:
        return None


def samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = scrape_text(port)
    assert text is not None
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def run(env: dict[str, str], path: Path) -> str:
    done = invoke("run", str(path), "--wait", "--timeout", "60", env=env, timeout=90)
    assert "no worker answered" not in done.stderr
    return done.stderr


def test_counters_and_histograms_by_workflow_and_node(
    exporting_worker: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, port = exporting_worker
    ok, failing = tmp_path / "ok.json", tmp_path / "failing.json"
    ok.write_text(json.dumps(OK))
    failing.write_text(json.dumps(FAILING))
    for _ in range(3):
        assert ": COMPLETED" in run(env, ok)
    assert ": FAILED" in run(env, failing)

    deadline = time.monotonic() + 30  # a run's end is counted just after it is announced
    while True:
        found = samples(port)
        ended = value(found, "wfrunner_runs_ended_total", workflow="metrics_ok", status="completed")
        failed = value(
            found, "wfrunner_runs_ended_total", workflow="metrics_failing", status="failed"
        )
        if (ended, failed) == (3, 1) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (ended, failed) == (3, 1)
    assert value(found, "wfrunner_runs_started_total", workflow="metrics_ok") == 3
    assert value(found, "wfrunner_runs_started_total", workflow="metrics_failing") == 1
    for node in ("A", "B"):
        labels = {"workflow": "metrics_ok", "node": node}
        assert value(found, "wfrunner_node_executions_total", **labels, outcome="completed") == 3
        assert value(found, "wfrunner_node_duration_seconds_count", **labels) == 3
        assert value(found, "wfrunner_node_duration_seconds_bucket", **labels, le="+Inf") == 3
    failing_node = {"workflow": "metrics_failing", "node": "F"}
    assert value(found, "wfrunner_node_executions_total", **failing_node, outcome="failed") == 1
    assert value(found, "wfrunner_node_executions_total", **failing_node, outcome="completed") == 0
    assert value(found, "wfrunner_node_duration_seconds_count", **failing_node) == 1
    assert (
        value(found, "wfrunner_runs_ended_total", workflow="metrics_failing", status="completed")
        == 0
    )
    for queue in metrics.QUEUES:
        assert ("wfrunner_queue_depth", frozenset({("queue", queue)})) in found


@redis_broker_only("kombu's per-priority Redis lists (tests/fault/test_rabbitmq.py reads depths)")
def test_queue_depth_reads_every_priority_list(engine_env: dict[str, str]) -> None:
    """Messages published by kombu at three priorities to a queue no worker reads: the
    collector finds them in kombu's lists, whatever their names."""
    queue = Queue("wfrunner.depth-test", Exchange("wfrunner.depth-test"), "depth",
                  queue_arguments={"x-max-priority": 9})  # fmt: skip
    with Connection(engine_env["WFRUNNER_REDIS_URL"]) as conn:
        producer = Producer(conn.channel())
        try:
            for priority in (0, 5, 9, 9):
                producer.publish({"n": priority}, exchange=queue.exchange, routing_key="depth",
                                 declare=[queue], priority=priority)  # fmt: skip
            collector = metrics.QueueDepth(queues=(queue.name, "wfrunner.no-such-queue"))
            (family,) = list(collector.collect())
            depths = {s.labels["queue"]: s.value for s in family.samples}
            assert depths == {queue.name: 4, "wfrunner.no-such-queue": 0}
        finally:
            queue(conn.channel()).purge()


def test_render_for_the_api(run_workflow: Any) -> None:
    """What the REST API's /metrics returns: this process's counters (the in-process
    worker's) and the queue depths."""
    doc = run_workflow({**OK, "metadata": {"name": "metrics_render"}})
    assert doc["status"] == "COMPLETED"
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    found = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert value(found, "wfrunner_runs_started_total", workflow="metrics_render") == 1
    labels = {"workflow": "metrics_render", "node": "B"}
    assert value(found, "wfrunner_node_executions_total", **labels, outcome="completed") == 1
    assert ("wfrunner_queue_depth", frozenset({("queue", "wfrunner.tasks")})) in found


def test_a_taken_port_stops_the_worker(engine_env: dict[str, str]) -> None:
    """(The worker stops before it consumes anything: the tests' Redis database will do.)"""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "WFRUNNER_METRICS_PORT": str(port), "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "wfrunner", "worker", "-c", "1",
             "-n", "metrics-port-taken@%h"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"WFRUNNER_METRICS_PORT={port}: cannot serve metrics there" in done.stderr
    assert "Traceback" not in done.stderr
