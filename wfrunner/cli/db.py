"""``wfrunner db``: the PostgreSQL schema (Alembic)."""

from __future__ import annotations

from typing import Annotated

import typer

from wfrunner.cli.app import db_cli, echo
from wfrunner.settings import Settings


def _database_url() -> str:
    from wfrunner.servers import resolve_database_url

    settings = Settings.from_env()
    return resolve_database_url(settings.database_url, settings.home)


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Create or migrate the tables (Alembic) in WFRUNNER_DATABASE_URL."""
    from wfrunner.store.migrate import current, upgrade

    url = _database_url()
    upgrade(url, revision)
    echo(f"database at revision {current(url)}")


@db_cli.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()] = "base") -> None:
    """Undo migrations down to REVISION (default: drop every wfrunner table)."""
    from wfrunner.store.migrate import current, downgrade

    url = _database_url()
    downgrade(url, revision)
    echo(f"database at revision {current(url) or 'base'}")
