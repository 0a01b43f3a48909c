"""Scratch measure for issue 9: diamonds (or other shapes) per second through one worker,
and Redis commands per run.

Run from the worktree root: ``python bench/scratch_engine.py [runs] [redis db] [shape]``
(defaults: 300 runs, db 8, shape ``diamond``; ``fan40`` is A -> 40 leaves instead; the db
must be one nobody else uses: it is flushed). It
makes a fresh PostgreSQL database, queues a backlog of diamonds A -> (B, C) -> D of
``transform`` nodes (no handler module needed), then starts ``celery -A wfrunner worker
-c 2`` and times the backlog from the worker's start to the last run's end. Then it runs
COUNTED more runs one at a time under MONITOR and counts the commands on its own db
(INFO commandstats is server-wide: other sessions' commands would be counted too),
Celery's included, split into round trips and commands run inside Lua scripts. Not a
test: timings vary with the machine's load.
"""

from __future__ import annotations

import collections
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import redis
import sqlalchemy as sa

import wfrunner
from wfrunner.resources import lua_dir, lua_source

DIAMOND: dict[str, Any] = {
    "nodes": [{"id": n, "type": "transform", "config": {"expression": "input"}} for n in "ABCD"],
    "edges": [
        {"from": "A", "to": "B"},
        {"from": "A", "to": "C"},
        {"from": "B", "to": "D"},
        {"from": "C", "to": "D"},
    ],
}
COUNTED = 20
FAN40: dict[str, Any] = {
    "nodes": [
        {"id": n, "type": "transform", "config": {"expression": "input"}}
        for n in ["A", *(f"L{i}" for i in range(40))]
    ],
    "edges": [{"from": "A", "to": f"L{i}"} for i in range(40)],
}
SHAPES = {"diamond": DIAMOND, "fan40": FAN40}
ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def main(runs: int = 300, db: int = 8, shape: str = "diamond") -> None:
    from tests.databases import fresh_database

    redis_url = f"redis://127.0.0.1:6379/{db}"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    with fresh_database(ADMIN, "wfr_bench_engine", migrated=True) as database_url:
        env = {
            **os.environ,
            "WFRUNNER_REDIS_URL": redis_url,
            "WFRUNNER_DATABASE_URL": database_url,
            "WFRUNNER_RUN_TIMEOUT": "600",
        }
        os.environ.update(env)
        from wfrunner import client as wclient
        from wfrunner.settings import Settings
        from wfrunner.tasks.config import celery_settings

        wfrunner.app.conf.update(celery_settings(Settings.from_env(), redis_url))
        workflow_id = wclient.register_workflow(SHAPES[shape])
        results = [wfrunner.start_run.delay(workflow_id, {"i": i}) for i in range(runs)]
        log_fd, log_name = tempfile.mkstemp(suffix=".log")
        started = time.monotonic()
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "wfrunner", "worker", "-c", "2",
             "-Q", "wfrunner.tasks,wfrunner.completion", "--loglevel", "WARNING"],
            env=env, stdout=log_fd, stderr=subprocess.STDOUT,
        )  # fmt: skip
        engine = sa.create_engine(database_url)
        try:
            for r in results:
                r.get(timeout=300)
            done = _wait_completed(engine, runs, started)
            elapsed = time.monotonic() - started
            print(
                f"{done}/{runs} {shape} runs completed in {elapsed:.1f} s: {done / elapsed:.1f}/s"
            )
            calls, lua = _count_commands(client, db, lambda: _more(wfrunner, workflow_id, engine))
        finally:
            worker.terminate()
            worker.wait(30)
            os.close(log_fd)
            engine.dispose()
        print(
            f"Redis per {shape} run ({COUNTED} more, one at a time under MONITOR, db {db} only): "
            f"{sum(calls.values()) / COUNTED:.1f} round trips (EVALSHA counts one), "
            f"{sum(lua.values()) / COUNTED:.1f} commands inside scripts"
        )
        for name, n in sorted(calls.items(), key=lambda kv: -kv[1])[:20]:
            print(f"  {name:<14} {n / COUNTED:7.2f}")
        print(f"worker log: {log_name}")
    client.flushdb()


def _wait_completed(engine: sa.Engine, n: int, since: float) -> int:
    while True:
        with engine.connect() as conn:
            done = int(
                conn.execute(
                    sa.text("SELECT count(*) FROM runs WHERE status = 'COMPLETED'")
                ).scalar_one()
            )
        if done >= n or time.monotonic() - since > 600:
            return done
        time.sleep(0.02)


def _more(wfrunner: Any, workflow_id: str, engine: sa.Engine) -> None:
    """COUNTED more runs, one after the other (the worker idles between them)."""
    with engine.connect() as conn:
        base = int(conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one())
    for i in range(COUNTED):
        wfrunner.start_run.delay(workflow_id, {"i": i}).get(timeout=60)
        _wait_completed(engine, base + i + 1, time.monotonic())


def _count_commands(
    client: redis.Redis, db: int, work: Any
) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Commands on ``db`` while ``work`` runs: (sent by clients, run inside scripts)."""
    calls: collections.Counter[str] = collections.Counter()
    lua: collections.Counter[str] = collections.Counter()
    stop = threading.Event()
    scripts = {
        hashlib.sha1(lua_source(path.stem).encode(), usedforsecurity=False).hexdigest(): (
            f"lua:{path.stem}"
        )
        for path in lua_dir().glob("*.lua")
    }
    monitor_client = redis.Redis(host="127.0.0.1", port=6379, db=db, decode_responses=True)

    def watch() -> None:
        with monitor_client.monitor() as m:  # type: ignore[no-untyped-call]
            for cmd in m.listen():
                if stop.is_set():
                    return
                if cmd.get("db") != db:
                    continue
                words = str(cmd["command"]).split(" ", 2)
                name = words[0].lower()
                if name == "evalsha" and len(words) > 1:
                    name = scripts.get(words[1], name)
                (lua if cmd.get("client_type") == "lua" else calls)[name] += 1

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.5)
    work()
    time.sleep(0.5)
    stop.set()
    client.ping()  # wakes the monitor up to see the stop
    thread.join(5)
    return calls, lua


if __name__ == "__main__":
    argv = sys.argv[1:]
    main(
        int(argv[0]) if argv else 300,
        int(argv[1]) if len(argv) > 1 else 8,
        argv[2] if len(argv) > 2 else "diamond",
    )
