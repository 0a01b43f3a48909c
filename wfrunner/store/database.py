"""Engines and sessions, and turning "cannot connect" into an error a user can act on.

A driver's connection error mentions sockets and errno values; a
:class:`~wfrunner.errors.StoreError` names the server and database (never the password)
and says what to do about it.
"""

from __future__ import annotations

import re
import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.orm import Session, sessionmaker

from wfrunner.errors import StoreError

#: PostgreSQL SQLSTATE for "relation does not exist": the schema was never migrated
UNDEFINED_TABLE = "42P01"


#: a PostgreSQL scheme, with or without its driver
_SCHEME = re.compile(r"(postgres|postgresql)(\+\w+)?://", re.IGNORECASE)

#: the driver the project installs (psycopg2-binary)
DRIVER = "psycopg2"


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://``, the forms hosts and guides hand out, as
    ``postgresql+psycopg2://``: SQLAlchemy 2.1 maps the first to psycopg 3, which is not
    installed, and knows the second no more. A URL that names its driver keeps it; the
    rest of the URL is kept to the byte (passwords, %-escapes, query)."""
    match = _SCHEME.match(url)
    if match is None:
        return url
    return f"postgresql{match.group(2) or '+' + DRIVER}://{url[match.end() :]}"


def describe(url: str | sa.URL) -> str:
    """``host:port/database`` of a URL, for messages; the password never appears."""
    parsed = sa.make_url(url)
    host = parsed.host or str(parsed.query.get("host") or "localhost")
    port = f":{parsed.port}" if parsed.port else ""
    return f"{host}{port}/{parsed.database or ''}"


def unreachable(url: str | sa.URL, error: BaseException) -> StoreError:
    reason = str(getattr(error, "orig", error) or error).strip().splitlines()[0:1]
    detail = f" ({reason[0]})" if reason else ""
    return StoreError(
        f"cannot connect to PostgreSQL at {describe(url)}{detail}: start the server or point "
        "WFRUNNER_DATABASE_URL at a reachable database"
    )


def unmigrated(url: str | sa.URL) -> StoreError:
    return StoreError(
        f"database {describe(url)} has no wfrunner tables: run `wfrunner db upgrade` first"
    )


def create_engine(url: str) -> sa.Engine:
    """An engine whose pool drops connections the server closed, instead of failing a task.

    Not with ``pool_pre_ping``: that is a round trip per transaction, a third of the
    statements of a short one. A server that stops or restarts tells its clients (a FATAL
    message, then the end of the stream), so a connection it closed has bytes waiting on an
    idle socket: :func:`_drop_if_closed` looks at that without a round trip each time a
    connection leaves the pool, and the pool opens a fresh one instead. A connection lost
    while in use, or silently (no word from the server), still fails its transaction with
    a StoreError (:func:`translated_errors`), which the tasks retry; SQLAlchemy then
    invalidates the pool's older connections too. The URL is normalised first
    (:func:`normalize_url`)."""
    try:
        engine = sa.create_engine(normalize_url(url), pool_pre_ping=False)
    except (exc.ArgumentError, exc.NoSuchModuleError) as error:
        raise StoreError(
            f"WFRUNNER_DATABASE_URL is not a usable SQLAlchemy URL ({error}): expected e.g. "
            "postgresql://user@host:5432/wfrunner"
        ) from None
    except ImportError as error:  # a driver named in the URL that is not installed
        raise StoreError(
            f"WFRUNNER_DATABASE_URL names a driver that is not installed ({error}): use "
            f"postgresql://... or postgresql+{DRIVER}://..., the driver wfrunner installs"
        ) from None
    sa.event.listen(engine, "checkout", _drop_if_closed)
    return engine


def _drop_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Refuse a pooled connection the server has spoken on while it sat idle (it closed
    it); the pool then connects afresh. Costs one local poll, no round trip."""
    if getattr(dbapi_connection, "closed", 0):
        raise exc.DisconnectionError("the connection was closed")
    fileno = getattr(dbapi_connection, "fileno", None)
    if fileno is None:
        return
    poller = select.poll()
    poller.register(fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise exc.DisconnectionError("the server closed the connection while it was idle")


def create_sessionmaker(engine: sa.Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: records are copied out before commit, but a caller holding an
    # ORM object after the block should not trigger a surprise reload.
    return sessionmaker(engine, expire_on_commit=False)


def connect(engine: sa.Engine) -> sa.Connection:
    """A connection, or a :class:`StoreError` saying why there is none."""
    try:
        return engine.connect()
    except exc.DBAPIError as error:
        raise unreachable(engine.url, error) from error


@contextmanager
def translated_errors(url: str | sa.URL) -> Iterator[None]:
    """Turn a lost server or an unmigrated database into a :class:`StoreError`."""
    try:
        yield
    except exc.ProgrammingError as error:
        if getattr(error.orig, "pgcode", None) == UNDEFINED_TABLE:
            raise unmigrated(url) from error
        raise
    except exc.OperationalError as error:
        if error.connection_invalidated or _is_connect_failure(error):
            raise unreachable(url, error) from error
        raise


def _is_connect_failure(error: exc.OperationalError) -> bool:
    # psycopg2 gives connection failures no SQLSTATE; statement-level errors have one.
    return getattr(error.orig, "pgcode", None) is None
