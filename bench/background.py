"""The background passes at scale: one reconciler pass, one timeout-detector pass and one
flush pass over many active runs (100,000 by default), made directly (pipelined Redis
writes, multi-row PostgreSQL inserts), not by running workflows.

    python bench/background.py [--runs 100000] [--admin-url postgresql://...]

It starts its own ``redis-server`` on a free port and makes a fresh PostgreSQL database
(dropped after), so the Redis command counts (``INFO commandstats``) are its own. Run it
with ``PYTHONPATH`` at another checkout (``main``) to measure that code the same way: the
state it writes is what both versions read (the due index is written only when the code
has one).

The mix (fractions of the runs):

- progressing (90 %): a node running under a live lease, active just now;
- long nodes (4 %): a lease renewed, no commit for 1,000 s, PostgreSQL's
  ``last_activity_at`` 400 s old (a candidate for the timeout detector, busy);
- approvals (4 %): a human node waiting for a decision for a day, idle as long;
- due (2 %): idle for 100 s with a token no delivery holds (its message was lost): the
  reconciler publishes it again;
- and, among the progressing runs, 2 % with a new event marked due to be flushed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "tests" / "fixtures" / "workflows" / "valid" / "sequential.json"
MIX = {"progressing": 0.90, "long": 0.04, "approval": 0.04, "due": 0.02}
DIRTY = 0.02
BATCH = 2000
#: seconds ahead of the making of the runs that their leases and next looks are set
LIVE = 900


class Meter:
    """Redis commands (INFO commandstats, its own INFO calls left out), PostgreSQL
    statements and rows (a SQLAlchemy cursor hook) and seconds, around one pass."""

    def __init__(self, client: redis.Redis, engine: sa.Engine) -> None:
        self.client = client
        self.statements = 0
        self.rows = 0
        sa.event.listen(engine, "after_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, *args: Any) -> None:
        self.statements += 1
        self.rows += max(cursor.rowcount or 0, 0)

    def calls(self) -> int:
        stats = self.client.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")

    def measure(self, name: str, work: Callable[[], Any]) -> dict[str, Any]:
        before, statements, rows = self.calls(), self.statements, self.rows
        start = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - start
        return {
            "pass": name,
            "redis": self.calls() - before,
            "pg": self.statements - statements,
            "rows": self.rows - rows,
            "seconds": seconds,
            "result": _size(result),
        }


def _size(result: Any) -> Any:
    if isinstance(result, tuple):
        return _size(result[0])
    return len(result) if isinstance(result, dict | list) else result


def _kinds(count: int) -> list[str]:
    kinds: list[str] = []
    for kind, share in MIX.items():
        kinds += [kind] * int(count * share)
    kinds += ["progressing"] * (count - len(kinds))
    return kinds


def populate(rt: Any, workflow_id: str, count: int) -> dict[str, int]:
    """Write ``count`` active runs' hot state and PostgreSQL rows; how many of each kind."""
    from wfrunner.engine import keys
    from wfrunner.engine.tokens import Token

    indexed = hasattr(rt.state, "due_key")
    sharded = hasattr(keys, "flush_dirty_key")
    now = time.time()
    kinds = _kinds(count)
    rows: list[dict[str, Any]] = []
    pipe = rt.redis.pipeline(transaction=False)
    dirty = 0
    for i, kind in enumerate(kinds):
        run_id = uuid.uuid4().hex
        token = Token.entry(run_id, "A")
        # long nodes and approvals: idle longer than the run timeout (300 s), busy
        activity = {"progressing": now, "long": now - 1000, "approval": now - 1000}.get(
            kind, now - 100
        )
        flushed = i % int(1 / DIRTY) == 0 and kind == "progressing"
        pipe.hset(
            keys.meta_key(run_id),
            mapping={
                "workflow_id": workflow_id,
                "state": "running",
                "inputs": "null",
                "activity": activity,
                "epoch": "1",
                "gen": "1",
                "flush_at": now + 1,
                "flushed": 1,
                "trimmed": 1,
            },
        )
        pipe.set(keys.counter_key(run_id), 1)
        pipe.hset(keys.pending_key(run_id), token.key, json.dumps(token.to_dict()))
        # leases and next looks far enough ahead to be still to come when the passes run
        # (making 100,000 runs takes a minute or two): live leases, runs not due
        entry, look = {
            "progressing": (f"{now + LIVE:.3f}|{uuid.uuid4().hex}", now + LIVE),
            "long": (f"{now + LIVE:.3f}|{uuid.uuid4().hex}", now + LIVE),
            "approval": (f"{now + 86400:.3f}|approval", now + 86400),
        }.get(kind, ("", now - 5))
        if entry:
            pipe.hset(keys.running_key(run_id), token.key, entry)
        if indexed:
            pipe.zadd(rt.state.due_key(run_id), {run_id: look})
        if flushed:
            event = {"type": "node_started", "node": "A", "t": now}
            pipe.rpush(keys.events_key(run_id), json.dumps(event))
            if sharded:
                pipe.sadd(keys.flush_dirty_key(rt.state.shard_of(run_id)), run_id)
            else:
                pipe.sadd(keys.FLUSH_DIRTY_KEY, run_id)
            dirty += 1
        old = kind in ("long", "approval")
        rows.append(
            {
                "id": run_id,
                "workflow_id": workflow_id,
                "status": "RUNNING",
                "counter_value": 1,
                "inputs": {},
                "event_seq": 1,
                "hot_gen": 1,
                "started_at": datetime.now(UTC),
                "last_activity_at": datetime.now(UTC) - timedelta(seconds=400 if old else 5),
            }
        )
        if len(rows) == BATCH:
            pipe.execute()
            _insert(rt, rows)
            rows = []
    pipe.execute()
    _insert(rt, rows)
    counts = {kind: kinds.count(kind) for kind in MIX}
    return {**counts, "dirty": dirty}


def _insert(rt: Any, rows: list[dict[str, Any]]) -> None:
    from wfrunner.store.models import Run, RunStatistics

    if rows:
        with rt.store._engine.begin() as conn:
            conn.execute(sa.insert(Run), rows)
            conn.execute(sa.insert(RunStatistics), [{"run_id": r["id"]} for r in rows])


def passes(rt: Any, meter: Meter, upgrade: bool) -> list[dict[str, Any]]:
    """The passes, in the order beat would run them; with a due index, a second
    reconciler pass shows the steady state (what the first one repaired is not due
    again; without one, every pass costs what the first did) and, with ``upgrade``, the
    full pass of the first pass after an upgrade."""
    from wfrunner import lifecycle, recovery
    from wfrunner.engine import keys
    from wfrunner.tasks import runs as tasks

    server = str(rt.redis.info("server")["run_id"])
    rt.redis.set(keys.SERVER_KEY, server)  # a pass ran on this Redis before: no restart
    indexed = hasattr(keys, "INDEXED_KEY")
    if indexed:
        rt.redis.set(keys.INDEXED_KEY, 1)  # ... and built the due index
    found = [meter.measure("reconcile", lambda: recovery.reconcile(rt))]
    if indexed:
        found.append(meter.measure("reconcile again", lambda: recovery.reconcile(rt)))
    found.append(meter.measure("detect_timeouts", lambda: lifecycle.expire_idle_runs(rt)))
    found.append(meter.measure("flush (every dirty run)", lambda: _flush_all(rt, tasks)))
    if indexed and upgrade:
        rt.redis.delete(keys.INDEXED_KEY)  # an upgrade: the first pass indexes every run
        first = meter.measure("reconcile, first after upgrade", lambda: recovery.reconcile(rt))
        found.append(first)
    return found


def _flush_all(rt: Any, tasks: Any) -> int:
    """flush_runs until no run is left marked (batches of FLUSH_BATCH runs, one
    transaction each), over every shard when the flushes are sharded."""
    copied = 0
    shards: list[tuple[Any, ...]] = [()]
    if hasattr(rt.state, "shard_of"):
        shards = [(shard,) for shard in range(rt.settings.background_shards)]
    for shard in shards:
        full = True
        while full:
            done, full = tasks._flush_dirty(rt, *shard)
            copied += done
    return copied


@contextlib.contextmanager
def servers(admin_url: str) -> Iterator[tuple[str, str]]:
    """Its own redis-server and a fresh migrated PostgreSQL database, gone after."""
    sys.path.append(str(ROOT))  # (after PYTHONPATH: the code measured comes first)
    from tests.fault.procs import RedisServer
    from wfrunner.testing.servers import fresh_database

    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            with fresh_database(admin_url, prefix="wfr_bench_bg", migrated=True) as url:
                yield server.url, url
        finally:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--upgrade", action="store_true", help="also time the full pass after an upgrade"
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # a warning per run republished
    with servers(args.admin_url) as (redis_url, database_url):
        os.environ["WFRUNNER_REDIS_URL"] = redis_url
        os.environ["WFRUNNER_DATABASE_URL"] = database_url
        import wfrunner
        from wfrunner.runtime import Runtime
        from wfrunner.settings import Settings

        rt = Runtime(Settings.from_env())
        workflow_id = wfrunner.register_workflow(WORKFLOW, rt)
        start = time.perf_counter()
        made = populate(rt, workflow_id, args.runs)
        print(f"code: {Path(wfrunner.__file__).parents[1]}")
        print(f"{args.runs} active runs made in {time.perf_counter() - start:.1f} s: {made}")
        meter = Meter(rt.redis, rt.store._engine)
        print(f"{'pass':32} {'redis cmds':>11} {'pg stmts':>9} {'pg rows':>9} {'s':>8}  result")
        for row in passes(rt, meter, args.upgrade):
            print(
                f"{row['pass']:32} {row['redis']:>11,} {row['pg']:>9,} {row['rows']:>9,} "
                f"{row['seconds']:>8.2f}  {row['result']}"
            )
        rt.close()


if __name__ == "__main__":
    main()
