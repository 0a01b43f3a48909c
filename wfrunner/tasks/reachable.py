"""A worker or beat refuses to start when PostgreSQL, or a broker apart from the state
Redis, does not accept connections.

The state Redis is checked earlier, when the app reads its configuration (see
:mod:`wfrunner.tasks.app`); PostgreSQL is not part of Celery's configuration, so a worker
used to start, consume, and fail every task it took. A broker of its own
(``WFRUNNER_BROKER_URL``) is tried once: Celery would retry it for ever, saying little.
On ``worker_init`` / ``beat_init`` the database is resolved as every task would (the
configured URL must answer, else the embedded server is started); a failure exits with
its one-line message, as :mod:`wfrunner.tasks.safety` does for unsafe settings.
"""

from __future__ import annotations

from typing import Any

from celery.signals import beat_init, worker_init

from wfrunner.errors import ConfigurationError
from wfrunner.servers import redact, resolve_database_url
from wfrunner.settings import Settings
from wfrunner.tasks.broker import broker_answers
from wfrunner.tasks.safety import APP_NAME


@worker_init.connect
@beat_init.connect
def _refuse_unreachable_database(sender: Any = None, **_: Any) -> None:
    if getattr(getattr(sender, "app", None), "main", None) != APP_NAME:
        return  # another Celery app in this process: not ours to judge
    settings = Settings.from_env()
    try:
        resolve_database_url(settings.database_url, settings.home)
    except ConfigurationError as exc:
        raise SystemExit(f"Error: {exc}") from None
    if settings.broker_url and not broker_answers(settings.broker_url):
        raise SystemExit(
            f"Error: WFRUNNER_BROKER_URL={redact(settings.broker_url)} does not accept "
            "connections: start the broker there, or unset the variable to use the state Redis"
        )
