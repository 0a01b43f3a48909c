"""Handlers of the fault tests, imported by the worker subprocesses
(``WFRUNNER_HANDLERS=tests.fault.handlers``) and by the test process (registration only).

Every handler passes the run's ``tag`` (a unique id the test puts in the run's inputs)
along, so a handler can key a marker file by run and node: handlers see only their input
and config, not the run id. Marker files live in ``WFRUNNER_FAULT_MARKERS``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import wfrunner
from wfrunner.context import NodeContext

MARKERS_ENV = "WFRUNNER_FAULT_MARKERS"


def tag_of(value: Any) -> str:
    """The run's tag, found in the input itself or in any join input (``{pred: output}``)."""
    if isinstance(value, dict):
        if isinstance(value.get("tag"), str):
            return str(value["tag"])
        for item in value.values():
            found = tag_of(item)
            if found:
                return found
    return ""


def _marker(value: Any, config: dict[str, Any], kind: str) -> Path:
    folder = Path(os.environ.get(MARKERS_ENV) or "/tmp/wfrunner-fault-markers")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{tag_of(value)}.{config.get('node', '?')}.{kind}"


def _first_time(value: Any, config: dict[str, Any], kind: str) -> bool:
    """True exactly once per (run tag, node, kind): the marker file is created atomically."""
    try:
        fd = os.open(_marker(value, config, kind), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _sleep(config: dict[str, Any]) -> None:
    low, high = config.get("ms", [10, 50])
    time.sleep(random.uniform(low, high) / 1000.0)


@wfrunner.handler("fault.work")
def work(value: Any, config: dict[str, Any]) -> Any:
    """Sleep 10-50 ms (``config.ms``), then return the tag and the node's name."""
    _sleep(config)
    return {"tag": tag_of(value), "node": config.get("node")}


@wfrunner.handler("fault.die_once")
def die_once(value: Any, config: dict[str, Any]) -> Any:
    """SIGKILL the pool process the first time it runs for this run (the OOM model)."""
    if _first_time(value, config, "died"):
        os.kill(os.getpid(), signal.SIGKILL)
    return {"tag": tag_of(value), "node": config.get("node"), "survived": True}


@wfrunner.handler("fault.die_always")
def die_always(value: Any, config: dict[str, Any]) -> Any:
    """SIGKILL the pool process every time; counts its deliveries in a marker file."""
    with _marker(value, config, "deaths").open("a") as deaths:
        deaths.write("x")
    os.kill(os.getpid(), signal.SIGKILL)
    return None  # pragma: no cover - never reached


@wfrunner.handler("fault.slow_first")
def slow_first(value: Any, config: dict[str, Any]) -> Any:
    """The first delivery sleeps ``config.slow_s`` seconds; later ones return at once."""
    first = _first_time(value, config, "slow")
    if first:
        time.sleep(float(config.get("slow_s", 3)))
    return {"tag": tag_of(value), "node": config.get("node"), "slow": first}


@wfrunner.handler("fault.exit")
def exit_worker(value: Any, config: dict[str, Any]) -> Any:
    """Raise SystemExit, or another BaseException (``config.kind``), from user code."""
    if config.get("kind") == "interrupt":
        raise KeyboardInterrupt
    raise SystemExit(3)


@wfrunner.handler("fault.long")
def long(value: Any, config: dict[str, Any]) -> Any:
    """Sleep ``config.sleep_s`` seconds; counts its runs in a marker file (one x each)."""
    with _marker(value, config, "runs").open("a") as runs:
        runs.write("x")
    time.sleep(float(config.get("sleep_s", 5)))
    return {"tag": tag_of(value), "node": config.get("node")}


@wfrunner.handler("fault.fail_first")
def fail_first(value: Any, config: dict[str, Any]) -> Any:
    """Raise the first time it runs for this run (a transient error), succeed after."""
    if _first_time(value, config, "failed"):
        raise RuntimeError("transient failure (first attempt)")
    return {"tag": tag_of(value), "node": config.get("node")}


#: the side-effect ledger of ``fault.effect``, a folder under the markers
EFFECTS = "effects"
#: the ledger file listing deliveries that found another live process running their token
OVERLAPS = "overlaps"


def effects_folder() -> Path:
    folder = Path(os.environ.get(MARKERS_ENV) or "/tmp/wfrunner-fault-markers") / EFFECTS
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@wfrunner.handler("fault.effect")
def effect(value: Any, config: dict[str, Any], ctx: NodeContext) -> Any:
    """A side effect made exactly once per token the way a handler should: keyed by
    ``ctx.idempotency_key`` in a store that keeps the first write (``<key>.effect``,
    created O_EXCL). Every call is also counted (``<key>.calls``: redone work), and a call
    that finds the token's lock held by another live process (``flock``: a killed
    holder's lock is released with it) writes to ``overlaps``: one token running twice
    at once."""
    folder = effects_folder()
    key = ctx.idempotency_key
    record = {"run": ctx.run_id, "node": ctx.node_id, "iteration": ctx.iteration,
              "item": ctx.item_index, "key": key}  # fmt: skip
    with (folder / f"{key}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with (folder / OVERLAPS).open("a") as overlaps:
                overlaps.write(json.dumps({**record, "pid": os.getpid()}) + "\n")
        with (folder / f"{key}.calls").open("a") as calls:
            calls.write(f"{os.getpid()} {ctx.attempt}\n")
        _sleep(config)
        draft = folder / f"{key}.{os.getpid()}.{threading.get_ident()}.draft"
        draft.write_text(json.dumps(record))
        with contextlib.suppress(FileExistsError):
            os.link(draft, folder / f"{key}.effect")  # whole, and only the first
        draft.unlink()
    return {"tag": tag_of(value), "node": config.get("node"), "item": ctx.item_index}
