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
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.fault import handlers as _handlers  # noqa: F401  (registers the handlers here too)
from tests.fault.cluster import Cluster
from tests.fault.procs import RedisServer
from wfrunner.store import migrate


@pytest.fixture(scope="module")
def fault_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


def create_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    """A fresh migrated database on the server of ``admin_url``, and its dropper."""
    name = f"wfr_fault_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture()
def fault_db(postgres_admin_url: str) -> Iterator[str]:
    url, drop = create_database(postgres_admin_url)
    yield url
    drop()


@pytest.fixture()
def make_cluster(
    tmp_path: Path, fault_redis: RedisServer, fault_db: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(**knobs)``: a deployment on the module's Redis (flushed first) and
    this test's database; its processes are killed afterwards, their log tails printed
    when the test failed."""
    made: list[Cluster] = []

    def make(database_url: str | None = None, **kwargs: Any) -> Cluster:
        if fault_redis.proc is None or fault_redis.proc.poll() is not None:
            fault_redis.start()
        flusher = redis.Redis.from_url(fault_redis.url)
        flusher.flushall()
        flusher.close()
        cluster = Cluster(tmp_path, fault_redis, database_url or fault_db, **kwargs)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(cluster.tails())
        cluster.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
