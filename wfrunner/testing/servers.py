"""The Redis and PostgreSQL a test session runs on, and fresh databases on them.

The servers named by ``WFRUNNER_TEST_REDIS_URL`` / ``WFRUNNER_TEST_DATABASE_URL``, else
``WFRUNNER_REDIS_URL`` / ``WFRUNNER_DATABASE_URL``, else (or when the one named does not
answer) embedded ones started under the session's own home and stopped with it. The
Redis database is flushed, so a session refuses one holding keys it did not write: a
developer's real broker must never be emptied by a test run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from wfrunner import embedded, servers
from wfrunner.errors import ConfigurationError

#: set in a Redis database a test session owns: later sessions may flush it
OWNER_KEY = "wfrunner:test-session-owner"

REDIS_VARIABLES = ("WFRUNNER_TEST_REDIS_URL", "WFRUNNER_REDIS_URL")
DATABASE_VARIABLES = ("WFRUNNER_TEST_DATABASE_URL", "WFRUNNER_DATABASE_URL")


@dataclass(frozen=True)
class TestServers:
    """The servers of a test session: a Redis database it owns and a PostgreSQL server
    on which it creates (and drops) databases; ``state_url``: where the hot state goes
    when not in that Redis database (a Redis Cluster the session started), which is then
    only Celery's broker."""

    __test__ = False  # not a test class, whatever pytest's naming rules say

    redis_url: str
    postgres_admin_url: str
    state_url: str | None = None

    @property
    def state(self) -> str:
        """The URL of the hot state's Redis."""
        return self.state_url or self.redis_url


def configured(*names: str) -> str | None:
    """The first of the environment variables ``names`` that is set."""
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


def find_servers(
    home: Path, default_redis: str | None = None, default_postgres: str | None = None
) -> TestServers:
    """The configured servers (or the defaults), embedded ones under ``home`` for those
    that are not set or do not answer; the Redis database is claimed (:func:`claim_redis`)."""
    redis_url = configured(*REDIS_VARIABLES) or default_redis
    if redis_url is None or not servers.redis_reachable(redis_url):
        redis_url = embedded.ensure_redis(home)
    postgres_url = configured(*DATABASE_VARIABLES) or default_postgres
    if postgres_url is None or not servers.postgres_reachable(postgres_url):
        postgres_url = embedded.ensure_postgres(home, keep_running=False)
    claim_redis(redis_url)
    return TestServers(redis_url, postgres_url)


def stop_embedded(home: Path) -> None:
    """Stop what :func:`find_servers` started under ``home`` (the embedded PostgreSQL
    stops with the process by itself)."""
    embedded.stop(home, (embedded.REDIS,))


def claim_redis(url: str) -> None:
    """Flush the Redis database at ``url`` for a test session and mark it as a test
    session's, or refuse it when it holds keys no test session wrote."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = client.dbsize()
        if keys and not client.exists(OWNER_KEY):
            raise ConfigurationError(
                f"Redis {servers.redact(url)} already holds {keys} keys and the tests flush "
                "it: point WFRUNNER_TEST_REDIS_URL at an empty database"
            )
        client.flushdb()
        client.set(OWNER_KEY, "1")
    finally:
        client.close()


@contextmanager
def fresh_database(
    admin_url: str, prefix: str = "wfr_test", migrated: bool = False
) -> Iterator[str]:
    """Create a database on the server of ``admin_url``; yields its URL; drops it after."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from wfrunner.store import migrate
    from wfrunner.store.database import normalize_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin_url = normalize_url(admin_url)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        if migrated:
            migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


__all__ = [
    "OWNER_KEY",
    "TestServers",
    "claim_redis",
    "configured",
    "find_servers",
    "fresh_database",
    "stop_embedded",
]
