"""Scratch measure for issue 9: diamonds per second through one worker, and Redis commands
per diamond.

Run from the worktree root: ``python bench/scratch_engine.py [runs] [redis db]``
(defaults: 300 diamonds, db 8; the db must be one nobody else uses: it is flushed). It
makes a fresh PostgreSQL database, queues a backlog of diamonds A -> (B, C) -> D of
``transform`` nodes (no handler module needed), then starts ``celery -A wfrunner worker
-c 2`` and times the backlog from the worker's start to the last run's end. Redis INFO
commandstats is reset before the worker starts, so the command counts cover the backlog
only (worker start-up and Celery's own commands included). Not a test: timings vary.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import redis
import sqlalchemy as sa

DIAMOND: dict[str, Any] = {
    "nodes": [
        {"id": n, "type": "transform", "config": {"expression": "input"}} for n in "ABCD"
    ],
    "edges": [
        {"from": "A", "to": "B"},
        {"from": "A", "to": "C"},
        {"from": "B", "to": "D"},
        {"from": "C", "to": "D"},
    ],
}
ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def main(runs: int, db: int) -> None:
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
        import wfrunner
        from wfrunner import client as wclient
        from wfrunner.settings import Settings
        from wfrunner.tasks.config import celery_settings

        wfrunner.app.conf.update(celery_settings(Settings.from_env(), redis_url))
        workflow_id = wclient.register_workflow(DIAMOND)
        results = [wfrunner.start_run.delay(workflow_id, {"i": i}) for i in range(runs)]
        client.config_resetstat()
        log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
        started = time.monotonic()
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "wfrunner", "worker", "-c", "2",
             "-Q", "wfrunner.tasks,wfrunner.completion", "--loglevel", "WARNING"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            run_ids = [r.get(timeout=300) for r in results]
            engine = sa.create_engine(database_url)
            while True:
                with engine.connect() as conn:
                    done = conn.execute(
                        sa.text("SELECT count(*) FROM runs WHERE status = 'COMPLETED'")
                    ).scalar_one()
                if done >= len(run_ids) or time.monotonic() - started > 600:
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            engine.dispose()
            stats = client.info("commandstats")
        finally:
            worker.terminate()
            worker.wait(30)
        calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
        total = sum(calls.values())
        print(f"{done}/{runs} diamonds completed in {elapsed:.1f} s: {done / elapsed:.1f}/s")
        print(f"Redis commands per diamond: {total / runs:.1f} (all), by command:")
        for name, n in sorted(calls.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {name:<14} {n / runs:7.2f}")
        print(f"worker log: {log.name}")
    client.flushdb()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300, int(sys.argv[2]) if len(sys.argv) > 2 else 8)
