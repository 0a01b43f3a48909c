"""The Celery app, ``wfrunner.app``: ``celery -A wfrunner worker|beat|flower``.

Configuration is resolved on first use, not at import, so importing wfrunner never starts a
server; when no ``WFRUNNER_REDIS_URL`` is set, that first use starts the embedded Redis.

It is resolved in an ``on_configure`` *method*, which Celery still calls when a subclass
defines one, and not in a receiver of the ``on_configure`` signal: Celery logs and swallows
a receiver's exception and goes on with its defaults, so an unreachable Redis or a
malformed ``WFRUNNER_*`` value used to leave ``broker_url`` unset and the app silently
publishing to ``amqp://guest@localhost``. An exception of the method propagates to whoever
first reads the configuration: the CLI prints it as one line (exit 2), and a worker or beat
refuses to start (see :mod:`wfrunner.tasks.safety`).

A ``celeryconfig.py`` in the current folder (else on ``sys.path``) goes over wfrunner's
settings, except the safe ones, and may not move the broker off wfrunner's own
(``WFRUNNER_BROKER_URL``, else the state Redis: :func:`wfrunner.tasks.config.check_broker`).
"""

from __future__ import annotations

import os

import click
from celery import Celery

from wfrunner.errors import ConfigurationError
from wfrunner.servers import resolve_redis_url
from wfrunner.settings import Settings
from wfrunner.tasks import flower  # noqa: F401  (Flower's refusal: before it builds its app)
from wfrunner.tasks.config import celery_settings, check_broker, user_overrides


class AppConfigurationError(ConfigurationError, click.ClickException):
    """The app cannot be configured. A :class:`ConfigurationError` to wfrunner's CLI and
    API; a ``ClickException`` to the ``celery`` command, a click program, which reads its
    configuration while it parses its options: click prints it as one ``Error: ...`` line
    and exits with its ``exit_code`` (2) instead of a traceback."""


class WfrunnerCelery(Celery):  # type: ignore[misc]
    def on_configure(self) -> None:
        try:
            settings = Settings.from_env()
            redis_url = resolve_redis_url(settings.redis_url, settings.home)
            overrides = user_overrides()
            check_broker(overrides, redis_url, os.environ)
        except ConfigurationError as exc:
            raise AppConfigurationError(str(exc)) from None
        self.conf.update(celery_settings(settings, redis_url))
        self.conf.update(overrides)


app = WfrunnerCelery(
    "wfrunner",
    include=[
        "wfrunner.tasks.execution",
        "wfrunner.tasks.runs",
        "wfrunner.tasks.workers",
        "wfrunner.tasks.safety",
        "wfrunner.tasks.reachable",
        "wfrunner.tasks.exporter",
        "wfrunner.tasks.aftermath",
        "wfrunner.tasks.schedules",
    ],
)
