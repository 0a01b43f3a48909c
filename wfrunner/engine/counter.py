"""TokenCounter: the Python face of ``lua/apply_delta.lua`` and ``lua/init_counter.lua``.

One method per script. Scripts are registered once per client (``register_script``:
EVALSHA, falling back to EVAL when the server does not know the script yet). Every
operation carries an op key and is applied at most once, so calling again with the same op
key after a timeout or a lost reply is always safe. Redis errors become
:class:`~wfrunner.errors.CounterError` naming the run and the op.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from wfrunner.engine import keys
from wfrunner.errors import CounterError
from wfrunner.resources import lua_source


@dataclass(frozen=True)
class ApplyDeltaResult:
    #: the counter after the call (unchanged when the op was already applied)
    value: int
    #: False when the op key had already been applied: nothing changed
    changed: bool
    #: True for the one call that brought the counter to 0 (the run's tokens are all done)
    hit_zero: bool


class TokenCounter:
    """The per-run token counter over one ``redis.Redis`` client."""

    def __init__(self, client: redis.Redis, ttl_seconds: int | None = None) -> None:
        self.client = client
        #: when set, (re)applied to the counter keys on every change, so abandoned runs expire
        self.ttl_seconds = ttl_seconds
        self._apply_delta: Script = client.register_script(lua_source("apply_delta"))
        self._init_counter: Script = client.register_script(lua_source("init_counter"))

    def apply_delta(self, run_id: str, op_key: str, delta: int) -> ApplyDeltaResult:
        """Add ``delta`` once per ``op_key``; refuses (CounterError) to go below 0."""
        keys_ = [keys.counter_key(run_id), keys.applied_key(run_id)]
        args: list[str | int] = [op_key, int(delta), run_id, keys.COMPLETION_CHANNEL, self._ttl()]
        reply = self._call(self._apply_delta, keys_, args, run_id, op_key)
        return ApplyDeltaResult(int(reply[0]), bool(reply[1]), bool(reply[2]))

    def initialise(self, run_id: str, value: int, op_key: str) -> ApplyDeltaResult:
        """Create the counter at ``value`` (>= 1) once; a repeated op key changes nothing."""
        keys_ = [keys.counter_key(run_id), keys.applied_key(run_id)]
        args: list[str | int] = [op_key, int(value), self._ttl()]
        reply = self._call(self._init_counter, keys_, args, run_id, op_key)
        return ApplyDeltaResult(int(reply[0]), bool(reply[1]), hit_zero=False)

    def get(self, run_id: str) -> int | None:
        """The tokens in flight, or None when the run has no counter (never started, deleted)."""
        raw = _guarded("get", run_id, lambda: self.client.get(keys.counter_key(run_id)))
        return None if raw is None else int(raw)

    def delete_run(self, run_id: str) -> int:
        """Remove every hot key of the run (:func:`keys.run_keys`); returns how many existed."""
        run_keys = keys.run_keys(run_id)
        return int(_guarded("delete_run", run_id, lambda: self.client.delete(*run_keys)))

    def _ttl(self) -> int:
        return self.ttl_seconds or 0

    def _call(
        self, script: Script, keys_: Sequence[str], args: Sequence[str | int], run_id: str, op: str
    ) -> list[Any]:
        return list(_guarded(op, run_id, lambda: script(keys=list(keys_), args=list(args))))


def _guarded(op: str, run_id: str, call: Callable[[], Any]) -> Any:
    """Run one Redis call, turning its errors into a CounterError naming the run and op."""
    try:
        return call()
    except redis.RedisError as exc:
        raise CounterError(f"token counter of run {run_id!r}, op {op!r}: {exc}") from exc
