"""Schema migrations, run from code (``wfrunner db upgrade``) rather than the alembic CLI.

The Alembic configuration is built here, so neither ``alembic.ini`` nor the current
directory matters: the scripts are found through :func:`wfrunner.resources.migrations_dir`,
which works in a checkout and in an installed wheel.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from wfrunner.errors import StoreError
from wfrunner.resources import migrations_dir
from wfrunner.store.database import connect, create_engine


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolates '%'; URLs carry %-escapes (e.g. an embedded server's socket).
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    _run(database_url, revision, upgrading=True)


def downgrade(database_url: str, revision: str = "base") -> None:
    _run(database_url, revision, upgrading=False)


def current(database_url: str) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    engine = create_engine(database_url)
    try:
        with connect(engine) as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _run(database_url: str, revision: str, *, upgrading: bool) -> None:
    # Connecting here first turns "server down" into a StoreError before Alembic starts.
    config = alembic_config(database_url)
    engine = create_engine(database_url)
    try:
        with connect(engine) as connection:
            config.attributes["connection"] = connection
            try:
                if upgrading:
                    command.upgrade(config, revision)
                else:
                    command.downgrade(config, revision)
            except CommandError as exc:
                raise StoreError(f"{exc}: {_known_revisions(config)}") from exc
            connection.commit()
    finally:
        engine.dispose()


def _known_revisions(config: Config) -> str:
    """The revisions a user may name, oldest first (Alembic's error does not list them)."""
    names = [s.revision for s in ScriptDirectory.from_config(config).walk_revisions()]
    return f"use head, base or one of {', '.join(reversed(names))}"
