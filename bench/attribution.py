"""Whose are Redis's commands, and what does each Lua script cost: from the slow log.

With ``slowlog-log-slower-than 0`` Redis logs every command it runs with its arguments
(each cut to 128 bytes, plus how many more there were) and its execution time in
microseconds (the command itself: no network I/O, no parsing). A phase run under it tells,
by the key each command names:

- ``broker``: Celery's messages (kombu's Redis transport): the task queues, ``unacked``,
  ``unacked_index``, ``_kombu.binding.*``, event and pidbox channels; an LPUSH onto a
  queue is one task message published, and its argument's length the message's bytes;
- ``state``: wfrunner's hot run state, ``wfr:*`` keys (the Lua scripts);
- ``results``: Celery's result backend (``celery-task-meta-*``: start_run's result, and
  the SUBSCRIBE/PUBLISH on its channel by which a caller learns of it);
- ``other``: anything else (connection set-up, the benchmark's own queue polls: LLEN, HLEN).

A command a Lua script calls is logged too (its client shows as ``?:0``): those are
counted apart, as ``script:<COMMAND>``, and are no round trip. INFO commandstats counts
them as well, so its totals are round trips plus script calls. MULTI and EXEC belong to
the command their client sent inside them. Logging every command
costs Redis CPU, so this pass is run apart from the one whose CPU is counted.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import redis

from bench import infra

_BROKER_KEYS = ("unacked", "unacked_index", "unacked_mutex")
_BROKER_PREFIXES = ("_kombu.binding.", "celeryev", "/0.celeryev", "celery.pidbox", "reply.")
_MORE = re.compile(rb"\.\.\. \((\d+) more bytes\)$")
_LOG_LEN = 2_000_000  # entries kept: a phase must log fewer


@dataclass
class Attribution:
    """One phase's commands by kind and name, messages by queue, scripts' cost."""

    commands: Counter[str] = field(default_factory=Counter)  # "kind:COMMAND" -> calls
    messages: Counter[str] = field(default_factory=Counter)  # queue -> LPUSHes
    message_bytes: int = 0  # the LPUSHed messages' bytes
    script_calls: Counter[str] = field(default_factory=Counter)  # script name -> calls
    script_usec: Counter[str] = field(default_factory=Counter)  # script name -> usec

    def kinds(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for key, calls in self.commands.items():
            found[key.split(":", 1)[0]] += calls
        return found


def script_names() -> dict[str, str]:
    """SHA1 -> script name for every ``lua/*.lua`` (redis-py's EVALSHA sends the SHA1 of
    the script's text)."""
    from wfrunner.resources import lua_dir, lua_source

    names = {}
    for path in lua_dir().glob("*.lua"):
        source = lua_source(path.stem)
        names[hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()] = path.stem
    return names


def start(client: redis.Redis) -> None:
    client.config_set("slowlog-max-len", _LOG_LEN)
    client.config_set("slowlog-log-slower-than", 0)
    client.slowlog_reset()


def stop(client: redis.Redis, queues: list[str]) -> Attribution:
    """Turn the logging off and attribute what it logged (the defaults come back)."""
    client.config_set("slowlog-log-slower-than", 10_000)
    raw = redis.Redis.from_url(infra.url_of(client))  # bytes: messages need not be text
    try:
        entries = raw.execute_command("SLOWLOG", "GET", -1)
    finally:
        raw.close()
    client.slowlog_reset()
    client.config_set("slowlog-max-len", 128)
    return attribute(list(reversed(entries)), queues)


def attribute(entries: list[list[object]], queues: list[str]) -> Attribution:
    """Entries in execution order, each [id, time, usec, args, client address, name]."""
    found = Attribution()
    names = script_names()
    last_kind: dict[bytes, str] = {}
    opened: dict[bytes, int] = defaultdict(int)  # MULTIs waiting for their first command
    for entry in entries:
        usec, args, client = int(entry[2]), list(entry[3]), bytes(entry[4])  # type: ignore[call-overload]
        command = args[0].decode().upper()
        if command == "SLOWLOG":
            continue
        if client.startswith(b"?"):  # called by a script
            found.commands[f"script:{command}"] += 1
            continue
        if command == "MULTI":
            opened[client] += 1
            continue
        kind = last_kind.get(client, "other") if command == "EXEC" else _kind(args, queues)
        if opened.pop(client, 0):
            found.commands[f"{kind}:MULTI"] += 1
        last_kind[client] = kind
        found.commands[f"{kind}:{command}"] += 1
        if command == "LPUSH" and kind == "broker":
            found.messages[_queue(args[1].decode())] += len(args) - 2
            found.message_bytes += sum(_length(a) for a in args[2:])
        if command == "EVALSHA":
            script = names.get(args[1].decode(), args[1].decode()[:8])
            found.script_calls[script] += 1
            found.script_usec[script] += usec
    return found


def _first_key(args: list[bytes]) -> str:
    command = args[0].upper()
    if command in (b"EVALSHA", b"EVAL"):
        return args[3].decode() if len(args) > 3 and args[2] != b"0" else ""
    return args[1].decode(errors="replace") if len(args) > 1 else ""


def _queue(key: str) -> str:
    """kombu's priority queues are ``<queue>\\x06\\x16<priority>``."""
    queue, _, priority = key.partition("\x06\x16")
    return f"{queue} (priority {priority})" if priority else queue


def _kind(args: list[bytes], queues: list[str]) -> str:
    key = _first_key(args)
    command = args[0].upper()
    if command in (b"LLEN", b"HLEN"):
        return "other"
    if key.startswith("celery-task-meta-"):
        return "results"
    if key.startswith("wfr:"):
        return "state"
    queue = key.split("\x06\x16", 1)[0]
    if queue in queues or key in _BROKER_KEYS or key.startswith(_BROKER_PREFIXES):
        return "broker"
    if command in (b"PUBLISH", b"SUBSCRIBE", b"PSUBSCRIBE"):
        return "broker"
    return "other"


def _length(arg: bytes) -> int:
    """An argument's length before the slow log cut it to 128 bytes."""
    more = _MORE.search(arg)
    return len(arg) if more is None else 128 + int(more.group(1))
