"""The Celery app, ``wfrunner.app``: ``celery -A wfrunner worker|beat|flower``.

Configuration is resolved on first use (``on_configure``), not at import, so importing
wfrunner never starts a server; when no ``WFRUNNER_REDIS_URL`` is set, that first use starts
the embedded Redis.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from wfrunner.servers import resolve_redis_url
from wfrunner.settings import Settings
from wfrunner.tasks.config import celery_settings, user_overrides

app = Celery(
    "wfrunner",
    include=[
        "wfrunner.tasks.execution",
        "wfrunner.tasks.runs",
        "wfrunner.tasks.workers",
        "wfrunner.tasks.safety",
    ],
)


def _configure(sender: Celery, **_: Any) -> None:
    settings = Settings.from_env()
    redis_url = resolve_redis_url(settings.redis_url, settings.home)
    sender.conf.update(celery_settings(settings, redis_url))
    sender.conf.update(user_overrides())


app.on_configure.connect(_configure)
