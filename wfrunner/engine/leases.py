"""Leases on tokens, and the per-process heartbeat that keeps them.

A delivery that begins a token takes a lease on it (``lua/begin_node.lua``) for
``WFRUNNER_LEASE_SECONDS``; while its node runs, the process's :class:`LeaseKeeper`
renews every lease the process holds every third of that, in one pipeline
(``lua/renew_leases.lua``, one script per run). A lease that is not renewed expires: its
worker is gone (killed, out of memory, its machine lost), and the reconciler publishes the
token again (``lua/claim_stalled.lua``) without waiting for the broker's visibility
timeout. While a lease is live, another delivery of the token (a message the broker gave
out again, a copy) does not run the node: it looks again once the lease would have
expired.

Lease times are Redis's clock (``TIME`` in the scripts), so workers' clocks need not
agree. The ``running`` hash (``wfr:{run}:running``) holds one entry per token,
``"<until>|<holder>"``, where the holder is a delivery's id (a fresh uuid per delivery:
Celery task ids repeat when a message comes back), or one of

- ``retry``: the token's next delivery is due at ``until`` (a retry after its backoff);
- ``republished``: the reconciler published it again and leaves it alone until ``until``;
- ``approval``: a human node waits for its decision until ``until`` (its deadline): no
  delivery holds it, the reconciler publishes it once the deadline passes, and the run is
  not idle meanwhile (lua/request_approval.lua);
- ``child``: a subworkflow node waits for its child run to end (lua/await_child.lua), as
  an approval waits, without a deadline.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

RETRY = "retry"
REPUBLISHED = "republished"
APPROVAL = "approval"
CHILD = "child"


def delivery_holder(task_id: str) -> str:
    """A delivery's lease holder id: new for every delivery (two deliveries of one message
    must not share a lease), naming the Celery task that runs it, so a cancel can revoke
    that task (:func:`task_of`), and the host and process it runs in, so ``wfrunner
    doctor`` can say where a lease that expired was held (:func:`place_of`)."""
    return f"{uuid.uuid4().hex}~{_place()}@{task_id}"


def _place() -> str:
    """``<host>:<pid>`` of this process (the pid changes in a forked pool child)."""
    return f"{_host()}:{os.getpid()}"


@functools.cache
def _host() -> str:
    """The host name, without '@', '~' or '|' (the holder's separators)."""
    return socket.gethostname().translate(_UNSAFE) or "?"


_UNSAFE = str.maketrans({"@": "_", "~": "_", "|": "_"})


def task_of(holder: str) -> str | None:
    """The Celery task id a :func:`delivery_holder` names (None for any other entry)."""
    _, at, task_id = holder.partition("@")
    return task_id if at and task_id else None


def place_of(holder: str) -> tuple[str, int] | None:
    """(host, pid) of the process a :func:`delivery_holder` names; None for any other
    entry (and for holders made before they named it)."""
    head, at, _ = holder.partition("@")
    _, tilde, place = head.partition("~")
    host, colon, pid = place.rpartition(":")
    if not (at and tilde and colon and host and pid.isdigit()):
        return None
    return host, int(pid)


@dataclass(frozen=True)
class Lease:
    until: float
    holder: str

    @property
    def held(self) -> bool:
        """True for a delivery's lease (not a retry's due time or a republish mark)."""
        return self.holder not in (RETRY, REPUBLISHED, APPROVAL, CHILD, "")

    @classmethod
    def parse(cls, entry: str) -> Lease | None:
        until, sep, holder = entry.partition("|")
        try:
            return cls(float(until), holder) if sep else None
        except ValueError:
            return None


def busy(leases: Mapping[str, Lease], now: float) -> bool:
    """True while a delivery holds a live lease or a retry is not yet due: the run is
    active even though nothing was committed for a while (the idle-run detector's test)."""
    return any(lease.until > now and lease.holder != REPUBLISHED for lease in leases.values())


class Renewer(Protocol):
    def renew(self, held: Mapping[str, Mapping[str, str]], seconds: float) -> list[str]: ...


class LeaseKeeper:
    """The leases one process holds, and the one thread that renews them all.

    The thread starts with the first lease (after a fork, in the pool child that holds
    it) and sleeps while the process holds none.
    """

    def __init__(self, renewer: Renewer, lease_seconds: float) -> None:
        self.renewer = renewer
        self.lease_seconds = lease_seconds
        self.period = lease_seconds / 3.0
        #: run id -> token key -> holder
        self._held: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        #: called with the lease length at every beat that renews leases: what lives as
        #: long as a delivery's lease (its handler slot, engine/handler_slots.py)
        self._beats: list[Callable[[float], None]] = []

    def add_beat(self, renew: Callable[[float], None]) -> None:
        self._beats.append(renew)

    @contextmanager
    def hold(self, run_id: str, token_key: str, holder: str) -> Iterator[None]:
        """Keep the lease ``holder`` took on the token renewed while the block runs.

        A block that raises releases the lease, so a retry of the task does not wait for
        it to expire; otherwise the commit (or the retry's due time) has replaced it.
        """
        with self._lock:
            idle = not self._held
            self._held.setdefault(run_id, {})[token_key] = holder
            self._start()
            if idle:
                self._wake.notify()
        try:
            yield
        except BaseException:
            self._release(run_id, token_key, holder)
            raise
        finally:
            with self._lock:
                self._forget(run_id, token_key, holder)

    def _forget(self, run_id: str, token_key: str, holder: str) -> None:
        """Stop renewing one lease (the caller holds the lock)."""
        tokens = self._held.get(run_id, {})
        if tokens.get(token_key) == holder:
            del tokens[token_key]
        if not tokens:
            self._held.pop(run_id, None)

    def _release(self, run_id: str, token_key: str, holder: str) -> None:
        try:
            self.renewer.renew({run_id: {token_key: holder}}, 0)
        except Exception as exc:  # Redis may be what failed: the lease then expires
            log.warning("run %s: lease on %s not released (%s): it expires", run_id, token_key, exc)

    def renew_one(self, run_id: str, token_key: str, holder: str) -> bool:
        """Renew one lease at once (a handler's ``context.heartbeat()``); False when the
        holder lost it, which also stops the thread renewing it. A Redis failure is
        logged and reads as still held: the thread's next beat tries again."""
        try:
            lost = self.renewer.renew({run_id: {token_key: holder}}, self.lease_seconds)
        except Exception as exc:
            log.warning("run %s: heartbeat of %s not sent (%s)", run_id, token_key, exc)
            return True
        if lost:
            with self._lock:
                self._forget(run_id, token_key, holder)
            log.warning(
                "lease on %s lost while its node runs (run ended, or renewed late)", token_key
            )
        return not lost

    def renew_now(self) -> list[str]:
        """Renew every lease held now; returns the token keys whose lease was lost."""
        with self._lock:
            held = {run: dict(tokens) for run, tokens in self._held.items()}
        if not held:
            return []
        lost = self.renewer.renew(held, self.lease_seconds)
        for beat in self._beats:
            try:
                beat(self.lease_seconds)
            except Exception as exc:  # the next beat tries again before anything expires
                log.warning("handler slots not renewed: %s", exc)
        with self._lock:  # a lost lease cannot be renewed again: stop trying
            for run_id, tokens in held.items():
                for key in set(lost) & set(tokens):
                    self._forget(run_id, key, tokens[key])
        for key in lost:
            log.warning("lease on %s lost while its node runs (run ended, or renewed late)", key)
        return lost

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._beat, name="wfrunner-leases", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while True:
            with self._lock:
                while not self._held and not self._closed:
                    self._wake.wait()
                beat_at = time.monotonic() + self.period  # a new lease is fresh: no hurry
                while not self._closed and (left := beat_at - time.monotonic()) > 0:
                    self._wake.wait(left)
                if self._closed:
                    return
            try:
                self.renew_now()
            except Exception as exc:  # keep beating: the next renewal may get through
                log.warning("lease heartbeat failed: %s", exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(5)
