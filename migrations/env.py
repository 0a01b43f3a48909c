"""Alembic environment for wfrunner.

The database comes from, in order: a connection handed over by
:func:`wfrunner.store.migrate.upgrade` (``config.attributes["connection"]``), the
``sqlalchemy.url`` main option, or ``WFRUNNER_DATABASE_URL`` (``postgresql://`` given the
installed driver, as everywhere in wfrunner). Offline mode (``--sql``)
renders the DDL for review without touching a server.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from wfrunner.store.database import normalize_url
from wfrunner.store.models import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("WFRUNNER_DATABASE_URL")
    if not url:
        raise SystemExit(
            "no database configured: set WFRUNNER_DATABASE_URL or sqlalchemy.url in alembic.ini"
        )
    return normalize_url(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        _run_on(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
