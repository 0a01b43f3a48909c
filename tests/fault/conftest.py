"""Fixtures of the fault tests: a dedicated ``redis-server`` per module (never the
machine's 6379), a fresh PostgreSQL database per test, and a :class:`Cluster` of real
``celery worker`` subprocesses that the test kills and restarts."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.brokers import broker_choice
from tests.databases import fresh_database
from tests.fault import handlers as _handlers  # noqa: F401  (registers the handlers here too)
from tests.fault.cluster import Cluster
from tests.fault.procs import RedisServer
from tests.fault.proxy import RedisProxy
from tests.redis_cluster import RedisClusterProcesses, state_on_cluster


@pytest.fixture(scope="module")
def fault_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


def create_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    """A fresh migrated database on the server of ``admin_url``, and its dropper."""
    database = fresh_database(admin_url, "wfr_fault", migrated=True)
    url = database.__enter__()
    return url, lambda: database.__exit__(None, None, None)


@pytest.fixture()
def fault_db(postgres_admin_url: str) -> Iterator[str]:
    url, drop = create_database(postgres_admin_url)
    yield url
    drop()


@pytest.fixture()
def proxy_factory(fault_redis: RedisServer) -> Iterator[Callable[..., RedisProxy]]:
    """``proxy_factory(**faults)``: a :class:`RedisProxy` in front of the module's Redis."""
    started: list[RedisProxy] = []

    def make(**kwargs: object) -> RedisProxy:
        proxy = RedisProxy(fault_redis.port, **kwargs)  # type: ignore[arg-type]
        proxy.start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture()
def make_cluster(
    tmp_path: Path, fault_redis: RedisServer, fault_db: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(**knobs)``: a deployment on the module's Redis (flushed first) and
    this test's database; its processes are killed afterwards, their log tails printed
    when the test failed. With WFRUNNER_TEST_STATE=cluster (or ``state_url``), the hot
    state is on the session's Redis Cluster (flushed too), the module's Redis the broker."""
    made: list[Cluster] = []
    vhosts: list[str] = []

    def make(database_url: str | None = None, **kwargs: Any) -> Cluster:
        if fault_redis.proc is None or fault_redis.proc.poll() is not None:
            fault_redis.start()
        flusher = redis.Redis.from_url(fault_redis.url)
        flusher.flushall()
        flusher.close()
        if broker_choice() == "amqp" and "broker_url" not in kwargs:
            vhosts.append(f"fault-{uuid.uuid4().hex[:8]}")  # no test sees another's messages
            kwargs["broker_url"] = request.getfixturevalue("rabbitmq").vhost(vhosts[-1])
        if state_on_cluster() or kwargs.get("state_url"):
            redis_cluster: RedisClusterProcesses = request.getfixturevalue("redis_cluster")
            redis_cluster.flush()
            kwargs.setdefault("state_url", redis_cluster.url)
        cluster = Cluster(tmp_path, fault_redis, database_url or fault_db, **kwargs)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(cluster.tails())
        cluster.close()
    for vhost in vhosts:
        request.getfixturevalue("rabbitmq").drop_vhost(vhost)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
