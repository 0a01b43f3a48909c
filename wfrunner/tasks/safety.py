"""The worker's refusal to start with unsafe Celery settings.

wfrunner's guarantees rest on a few settings (see :mod:`wfrunner.tasks.config`): JSON-only
messages, so a message on the broker can never run code when it is decoded; and late
acks with ``task_reject_on_worker_lost``, so a task whose worker dies is delivered again.
(A task running longer than the Redis visibility timeout, or RabbitMQ's consumer timeout,
is safe: the broker hands its message out again, but the copy finds the token's lease live
and does not run the node; see wfrunner/engine/leases.py.) :func:`unsafe_settings` lists
what violates them; on ``worker_init`` a worker with problems logs them and exits with
status 1 before it consumes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery.signals import worker_init

from wfrunner.errors import ConfigurationError

log = logging.getLogger(__name__)

#: the ``main`` name of the Celery app whose workers are checked (``wfrunner.app``)
APP_NAME = "wfrunner"

#: Celery's defaults for the settings checked, for a plain dict that lacks one
_DEFAULTS: dict[str, Any] = {
    "accept_content": ["json"],
    "result_accept_content": None,
    "task_serializer": "json",
    "result_serializer": "json",
    "event_serializer": "json",
    "task_acks_late": False,
    "task_reject_on_worker_lost": None,
}
_JSON = {"json", "application/json"}


def _get(conf: Mapping[str, Any], key: str) -> Any:
    value = conf.get(key, _DEFAULTS[key])
    return _DEFAULTS[key] if value is None and _DEFAULTS[key] is not None else value


def _content_problems(conf: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in ("accept_content", "result_accept_content"):
        value = _get(conf, key)
        if value is None:  # result_accept_content: None means "as accept_content"
            continue
        names = [value] if isinstance(value, str) else list(value)
        others = [name for name in names if str(name).lower() not in _JSON]
        if others or not names:
            problems.append(
                f"{key}={names!r} accepts {', '.join(map(str, others)) or 'nothing'}: "
                f"set {key} = ['json'] (only JSON messages may be decoded)"
            )
    for key in ("task_serializer", "result_serializer", "event_serializer"):
        value = _get(conf, key)
        if str(value).lower() not in _JSON:
            problems.append(f"{key}={value!r}: set {key} = 'json'")
    return problems


def _ack_problems(conf: Mapping[str, Any]) -> list[str]:
    problems = []
    if not _get(conf, "task_acks_late"):
        problems.append(
            "task_acks_late is off: set task_acks_late = True, so a task whose worker "
            "dies is delivered again instead of lost"
        )
    if not _get(conf, "task_reject_on_worker_lost"):
        problems.append(
            "task_reject_on_worker_lost is off: set task_reject_on_worker_lost = True, "
            "so a task whose worker process is killed goes back to the queue"
        )
    return problems


def unsafe_settings(conf: Mapping[str, Any]) -> list[str]:
    """Every unsafe setting in ``conf`` (a Celery ``app.conf`` or a dict), one line each."""
    return _content_problems(conf) + _ack_problems(conf)


def check(conf: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigurationError` listing the unsafe settings, if any."""
    problems = unsafe_settings(conf)
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigurationError(f"the worker refuses to start with unsafe settings:\n{lines}")


@worker_init.connect
def _refuse_unsafe_worker(sender: Any = None, **_: Any) -> None:
    """Exit the worker before it consumes anything when its settings are unsafe.

    Celery logs and swallows exceptions raised by signal receivers, so the refusal is a
    ``SystemExit`` (status 1) carrying the message, which Python prints to stderr; it is
    logged as well when logging is configured (a plain ``celery worker`` has not yet).
    """
    if getattr(sender.app, "main", None) != APP_NAME:
        return  # another Celery app in this process: not ours to judge
    try:
        check(sender.app.conf)
    except ConfigurationError as exc:
        if log.hasHandlers():
            log.critical("%s", exc)
        raise SystemExit(str(exc)) from exc
