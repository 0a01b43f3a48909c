"""Server-side prepared statements for the two statements every run makes.

PostgreSQL parses, analyses and plans a statement sent as text each time it arrives.
``sql/start_run.sql`` and ``sql/end_run.sql`` are large (a CTE for each table they write)
and run once per run each: measured on the development VM, preparing the start statement
once per connection cut its server CPU from about 0.63 to 0.40 ms a run. Each is PREPAREd
the first time a connection runs it, then EXECUTEd.

A prepared statement lives in one server session. Behind a pooler that hands consecutive
transactions to different server sessions (PgBouncer's ``pool_mode = transaction``) it
would not be found: ``WFRUNNER_PG_PREPARE=0`` sends the statements as text instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

#: a ``:name`` parameter of a text statement (not a ``::type`` cast)
_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")

#: the key, in a pooled connection's ``info``, of the statements it has prepared
_PREPARED = "wfrunner_prepared"


@dataclass(frozen=True)
class Statement:
    """One statement of ``sql/``: its text with ``:name`` parameters, and its prepared form."""

    name: str
    text: sa.TextClause
    #: the body of ``PREPARE name AS ...``, with ``$n`` parameters
    body: str
    #: the parameter names, by position
    order: tuple[str, ...]

    @classmethod
    def of(cls, name: str, sql: str) -> Statement:
        order: dict[str, int] = {}

        def positional(match: re.Match[str]) -> str:
            order.setdefault(match[1], len(order) + 1)
            return f"${order[match[1]]}"

        body = _PARAMETER.sub(positional, sql)
        return cls(f"wfrunner_{name}", sa.text(sql), body, tuple(order))

    def first(
        self, connection: sa.Connection, params: Mapping[str, Any], prepared: bool = True
    ) -> dict[str, Any] | None:
        """Run it in the connection's transaction; its first row by column name, None when
        it returns none. ``prepared``: as a prepared statement (PREPAREd on this connection
        first if it was not yet), read from the driver's cursor: SQLAlchemy's result object
        would build the column metadata of a text statement anew for every run."""
        if not prepared:
            row = connection.execute(self.text, dict(params)).mappings().first()
            return dict(row) if row is not None else None
        done = connection.connection.info.setdefault(_PREPARED, set())
        if self.name not in done:
            # not transactional: a rollback of this transaction keeps it prepared
            connection.exec_driver_sql(f"PREPARE {self.name} AS {self.body}")
            done.add(self.name)
        slots = ", ".join(["%s"] * len(self.order))
        sql = f"EXECUTE {self.name} ({slots})"
        values = tuple(params[key] for key in self.order)
        return _first_row(connection, sql, values)


def _first_row(
    connection: sa.Connection, sql: str, values: tuple[Any, ...]
) -> dict[str, Any] | None:
    """``sql`` on the driver's cursor; a driver error is raised as SQLAlchemy raises it
    (an ``sqlalchemy.exc.DBAPIError`` subclass), and a lost server invalidates the
    connection, so the pool opens a fresh one and the store's error translation applies."""
    dialect = connection.dialect
    dbapi_connection = connection.connection
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(sql, values)
        row = cursor.fetchone()
        names = [column[0] for column in cursor.description or ()]
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, dbapi_connection, cursor)
        if lost:
            connection.invalidate(error)
        raise sa.exc.DBAPIError.instance(
            sql,
            values,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from error
    finally:
        cursor.close()
    return dict(zip(names, row, strict=True)) if row is not None else None
