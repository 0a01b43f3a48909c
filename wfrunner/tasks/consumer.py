"""The worker's consumer (Celery's documented ``worker_consumer`` setting): every message
is checked before Celery makes a request of it, and what fails is set aside as poison.

Celery's own callbacks are not enough: ``on_unknown_message``, ``on_unknown_task`` and
``on_invalid_task`` *reject* the message (it is gone, only a log line remembers it), and a
message that gets past them with a bad header (``timelimit: "zz"``) or a ``null`` body
raises in the worker's main process, which stops the worker; with late acks the message is
restored at shutdown and stops the next worker too. Here a message must be a protocol-2
task message of a registered task, with JSON ``[args, kwargs, embed]`` that bind to the
task's signature and pass its argument checks (``execute_node``: a token dict); anything
else is parked (:mod:`wfrunner.poison`) and acknowledged. Bytes kombu could not make a
message of are screened one step earlier, by :mod:`wfrunner.tasks.transport`.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.serialization import loads
from vine import promise

from wfrunner.engine.tokens import Token
from wfrunner.poison import Poison, describe, park_in_state

log = logging.getLogger(__name__)

_NUMBER = (int, float)
#: the tasks whose arguments are checked here (a user's own tasks in the app are not)
ENGINE_PREFIX = "wfrunner."


def _seconds(value: Any) -> bool:
    return value is None or (isinstance(value, _NUMBER) and not isinstance(value, bool))


def header_problem(headers: Any, tasks: Any) -> str | None:
    if not isinstance(headers, dict):
        return "no headers: not a Celery task message"
    name = headers.get("task")
    if not isinstance(name, str):
        return f"headers.task is {name!r}: not a Celery task message (protocol 2)"
    if name not in tasks:
        return f"unknown task {name!r}: no such task is registered"
    if not isinstance(headers.get("id"), str) or not headers["id"]:
        return f"headers.id is {headers.get('id')!r}: a task message needs an id"
    limits = headers.get("timelimit")
    if limits is not None and not (
        isinstance(limits, (list, tuple)) and len(limits) == 2 and all(map(_seconds, limits))
    ):
        return f"headers.timelimit is {limits!r}: expected [hard, soft] seconds or null"
    retries = headers.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        return f"headers.retries is {retries!r}: expected a count"
    for key in ("eta", "expires"):
        if headers.get(key) is not None and not isinstance(headers[key], str):
            return f"headers.{key} is {headers[key]!r}: expected an ISO 8601 time or null"
    return None


def _token_problem(arguments: inspect.BoundArguments) -> str | None:
    token = arguments.arguments.get("token")
    if not isinstance(token, dict):
        return f"token is {type(token).__name__}, not a token dict"
    try:
        parsed = Token.from_dict(token)
    except (KeyError, TypeError, ValueError) as exc:
        return f"token is not a token dict ({describe(exc)})"
    if parsed.run_id != arguments.arguments.get("run_id"):
        return f"token belongs to run {parsed.run_id!r}, the message to another"
    return None


#: task name -> extra check of its bound arguments
ARGUMENT_CHECKS: dict[str, Callable[[inspect.BoundArguments], str | None]] = {
    "wfrunner.execute_node": _token_problem,
}


def _annotation_problem(task: Any, arguments: inspect.BoundArguments) -> str | None:
    """Engine tasks take ids (str) and JSON containers: check the plain annotations."""
    parameters = inspect.signature(task.run).parameters
    for name, value in arguments.arguments.items():
        expected = str(parameters[name].annotation)
        if expected == "str" and not isinstance(value, str):
            return f"argument {name} is {value!r}, not a string"
        if expected.startswith("dict") and not isinstance(value, dict):
            return f"argument {name} is {type(value).__name__}, not an object"
    return None


def body_problem(message: Any, task: Any) -> str | None:
    if message.body is None or message.body == b"":
        return "body is null: a task message carries [args, kwargs, embed]"
    try:
        body = loads(  # type: ignore[no-untyped-call]
            message.body,
            message.content_type,
            message.content_encoding,
            accept={"application/json"},
        )
    except Exception as exc:  # any codec failure: the body is unreadable
        return f"body is not JSON task arguments ({describe(exc)})"
    if not (isinstance(body, (list, tuple)) and len(body) == 3):
        return "body is not [args, kwargs, embed]"
    args, kwargs, embed = body
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return "body is not [args, kwargs, embed]: args must be a list, kwargs an object"
    if embed is not None and not isinstance(embed, dict):
        return "body embed (callbacks, chain, chord) is not an object"
    if not str(task.name).startswith(ENGINE_PREFIX):
        return None  # another task of the app: Celery's own checks (typing) apply
    try:
        bound = inspect.signature(task.run).bind(*args, **kwargs)
    except TypeError as exc:
        return f"arguments do not fit {task.name}: {exc}"
    problem = _annotation_problem(task, bound)
    check = ARGUMENT_CHECKS.get(task.name)
    return problem or (check(bound) if check else None)


def message_problem(message: Any, tasks: Any) -> str | None:
    """Why no task can be made of ``message``, or None when it is a sound task message."""
    problem = header_problem(message.headers, tasks)
    if problem is None:
        problem = body_problem(message, tasks[message.headers["task"]])
    return problem


def _raw(message: Any) -> str:
    raw = getattr(message, "_raw", None)  # the Redis envelope, as it sat on the queue
    if raw is None:  # an AMQP message: its headers, properties and body
        raw = {
            "headers": message.headers,
            "properties": getattr(message, "properties", None),
            "content_type": message.content_type,
            "body": repr(message.body),
        }
    return json.dumps(raw, default=repr)


class Consumer(CeleryConsumer):  # type: ignore[misc]
    def create_task_handler(self, promise: Any = promise) -> Callable[[Any], None]:
        handle = super().create_task_handler(promise)
        tasks = self.app.tasks

        def on_task_received(message: Any) -> None:
            reason = message_problem(message, tasks)
            if reason is None:
                try:
                    return handle(message)  # type: ignore[no-any-return]
                except Exception as exc:  # whatever Celery chokes on must not stop us
                    reason = f"the worker could not accept it ({describe(exc)})"
            self.set_aside(message, reason)
            return None

        return on_task_received

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self.set_aside(message, "not a Celery task message")

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.set_aside(message, f"unknown task ({describe(exc)})")

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.set_aside(message, f"invalid task message ({describe(exc)})")

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self.set_aside(message, f"body cannot be decoded ({describe(exc)})")

    def set_aside(self, message: Any, reason: str) -> None:
        """Park the message and acknowledge it. If Redis cannot take it, it stays unacked
        and comes back (visibility timeout, a RabbitMQ channel closing, or the next worker
        start) to be tried again."""
        if message.acknowledged:
            return
        info = message.delivery_info or {}
        queue = str(info.get("routing_key") or info.get("exchange") or "?")
        poison = Poison.of(_raw(message), queue, reason, key=str(message.delivery_tag))
        try:
            park_in_state(poison)
        except Exception as exc:  # Redis trouble: leave it unacked for a later try
            log.error("poison message kept on the queue (%s): %s", describe(exc), reason)
            return
        message.ack()
