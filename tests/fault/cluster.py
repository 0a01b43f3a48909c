"""A wfrunner deployment made of real processes: a dedicated ``redis-server``, a
PostgreSQL database, ``celery worker`` subprocesses and, when asked, ``celery beat``; the
broker is that Redis, or a RabbitMQ virtual host (``broker_url``).

The test process talks to it through its own :class:`~wfrunner.runtime.Runtime` and a
private Celery app bound to the dedicated Redis (``set_as_current=False``): the global
``wfrunner.app``, which the e2e tests configure for the machine's Redis, is never touched,
so fault and e2e tests may share a pytest session in any order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from tests.fault.procs import ROOT, CeleryProcess, RedisServer, beat, tail, worker
from wfrunner import client, redisclient
from wfrunner.engine.tokens import Token
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings
from wfrunner.states import TERMINAL_RUN_STATES
from wfrunner.tasks.config import TASK_QUEUE, celery_settings

#: the knobs every fault deployment uses unless a test overrides them
KNOBS = {
    "WFRUNNER_VISIBILITY_TIMEOUT": "5",  # a killed worker's unacked tasks return after 5 s
    "WFRUNNER_RECONCILE_INTERVAL": "1",  # stalled outbox tokens are republished after 3 s
    "WFRUNNER_FLUSH_INTERVAL": "1",  # PostgreSQL is at most 1 s behind Redis
    "WFRUNNER_MAX_DELIVERIES": "3",
    "WFRUNNER_LEASE_SECONDS": "3",  # a dead delivery's token runs again 3 s after its death
    "WFRUNNER_RUN_TIMEOUT": "600",  # the detector must not end runs the test is waiting for
    "WFRUNNER_TIMEOUT_CHECK_INTERVAL": "600",
}


class Cluster:
    def __init__(
        self,
        folder: Path,
        redis_server: RedisServer,
        database_url: str,
        worker_redis_url: str | None = None,
        broker_url: str | None = None,
        state_url: str | None = None,
        **knobs: str,
    ) -> None:
        """``broker_url``: Celery's broker apart (a RabbitMQ); ``state_url``: the hot state
        on another Redis (a Redis Cluster), the dedicated one being then the broker unless
        ``broker_url`` names one."""
        if state_url and broker_url is None:
            broker_url = redis_server.url
        self.folder = folder
        self.redis_server = redis_server
        self.database_url = database_url
        self.knobs = {**KNOBS, **knobs}
        markers = folder / "markers"
        markers.mkdir(exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("WFRUNNER_")}
        self.env = {
            **base,
            **self.knobs,
            "WFRUNNER_REDIS_URL": state_url or worker_redis_url or redis_server.url,
            "WFRUNNER_DATABASE_URL": database_url,
            "WFRUNNER_HANDLERS": "tests.fault.handlers",
            "WFRUNNER_HOME": str(folder / "home"),
            "WFRUNNER_FAULT_MARKERS": str(markers),
            "PYTHONPATH": str(ROOT),
            **({"WFRUNNER_BROKER_URL": broker_url} if broker_url else {}),
        }
        self.broker_url = broker_url
        self.state_url = state_url or redis_server.url
        settings = Settings.from_env({**self.env, "WFRUNNER_REDIS_URL": self.state_url})
        self.rt = Runtime(settings)
        #: the hot state's Redis (the dedicated one, or the cluster)
        self.redis = redisclient.connect(self.state_url, decode_responses=True)
        #: Celery's broker: the dedicated Redis (the same client when it holds the state)
        self.broker = (
            self.redis
            if state_url is None
            else redis.Redis.from_url(redis_server.url, decode_responses=True)
        )
        self.sender = Celery("wfrunner-fault-sender", set_as_current=False)
        self.sender.conf.update(celery_settings(settings, self.state_url))
        self.workers: list[CeleryProcess] = []
        self.beats: list[CeleryProcess] = []

    # -- processes -------------------------------------------------------------------

    def start_workers(self, count: int, concurrency: int = 2) -> None:
        for _ in range(count):
            name = f"fault{len(self.workers) + 1}"
            self.workers.append(worker(name, self.env, self.folder, concurrency))
        self._start(self.workers[-count:], " ready.")

    def start_hosts(self, hosts: Iterable[tuple[str, str, int]], queues: str | None = None) -> None:
        """One worker per (host, pool, concurrency), named ``w<n>@<host>``: workers of
        different machines, as far as Celery and wfrunner's worker registry can tell;
        ``queues``: the queues they consume (default: both)."""
        chosen = {"queues": queues} if queues else {}
        started = []
        for host, pool, concurrency in hosts:
            name = f"w{len(self.workers) + len(started) + 1}"
            started.append(worker(name, self.env, self.folder, concurrency, host, pool, **chosen))
        self.workers += started
        self._start(started, " ready.")

    def start_beat(self, count: int = 1) -> None:
        """``count`` beats (more than one: each with its own schedule and pid file)."""
        for _ in range(count):
            name = "beat" if not self.beats else f"beat{len(self.beats) + 1}"
            self.beats.append(beat(self.env, self.folder, name))
        self._start(self.beats[-count:], "beat: Starting")

    @staticmethod
    def _start(processes: list[CeleryProcess], ready: str) -> None:
        for p in processes:
            p.start(wait_ready=False)
        for p in processes:
            p.wait_for(ready)

    def processes(self) -> list[CeleryProcess]:
        return [*self.workers, *self.beats]

    def logs(self) -> list[str]:
        return [p.text() for p in self.processes()]

    def count_in_logs(self, text: str) -> int:
        return sum(log.count(text) for log in self.logs())

    def tails(self) -> str:
        return "\n".join(tail(p.log) for p in self.processes())

    def close(self) -> None:
        for p in self.processes():
            p.kill()
        self.sender.close()
        self.redis.close()
        self.broker.close()
        self.rt.close()

    # -- runs ------------------------------------------------------------------------

    def register(self, definition: dict[str, Any]) -> str:
        return client.register_workflow(definition, self.rt)

    def submit(self, workflow_id: str, inputs: Any = None) -> str:
        """What ``client.submit_run`` does, through this deployment's broker."""
        ir = self.rt.ir(workflow_id)
        run = self.rt.store.create_run(workflow_id, inputs, len(ir.entry_nodes))
        self.sender.send_task(
            "wfrunner.start_run",
            args=[workflow_id],
            kwargs={"inputs": inputs},
            task_id=run.id,
            queue=TASK_QUEUE,
        )
        return run.id

    def send_token(self, workflow_id: str, token: Token, countdown: float | None = None) -> None:
        """One more ``wfrunner.execute_node`` message for ``token`` (a duplicate delivery)."""
        self.sender.send_task(
            "wfrunner.execute_node",
            args=[token.run_id, workflow_id, token.to_dict()],
            queue=TASK_QUEUE,
            countdown=countdown,
        )

    def status(self, run_id: str) -> str:
        return self.rt.store.get_run(run_id).status.value

    def wait(self, run_ids: Iterable[str], timeout: float) -> list[str]:
        """Wait until every run ended; returns those still active after ``timeout`` s."""
        waiting = list(run_ids)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            waiting = [r for r in waiting if self.rt.store.get_run(r).status
                       not in TERMINAL_RUN_STATES]  # fmt: skip
            if waiting:
                time.sleep(0.25)
        return waiting
