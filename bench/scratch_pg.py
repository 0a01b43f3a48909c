"""PostgreSQL transactions per diamond: a ``celery -A wfrunner worker -c 2`` subprocess runs
N diamonds (start -> a, b, c -> join -> end, built-in nodes) against a fresh database;
the worker side's commits are read from ``pg_stat_database.xact_commit``.

Run from the worktree root: ``python bench/scratch_pg.py [N]`` with WFRUNNER_TEST_REDIS_URL
pointing at a Redis database of your own (it is flushed). Runs are submitted before the
worker starts (the client's QUEUED inserts are not counted); the worker is stopped before
reading the counter (its backends report their statistics when they exit). Not a test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.databases import fresh_database

ADMIN = os.environ.get(
    "WFRUNNER_TEST_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def diamond() -> dict:
    def n(i: str) -> dict:
        return {"id": i, "type": "transform", "config": {"expression": "input"}}

    ids = ["start", "a", "b", "c", "join", "end"]
    edges = [{"from": "start", "to": b} for b in "abc"] + [{"from": b, "to": "join"} for b in "abc"]
    edges.append({"from": "join", "to": "end"})
    return {"metadata": {"name": "bench_diamond"}, "nodes": [n(i) for i in ids], "edges": edges}


def commits(admin: sa.Engine, db: str) -> int:
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        return int(
            conn.execute(
                sa.text("SELECT xact_commit FROM pg_stat_database WHERE datname = :d"), {"d": db}
            ).scalar_one()
        )


def cpu_seconds(pid: int) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main(count: int) -> None:
    redis_url = os.environ["WFRUNNER_TEST_REDIS_URL"]
    redis.Redis.from_url(redis_url).flushdb()
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with fresh_database(ADMIN, prefix="wfr_bench", migrated=True) as url:
        db = sa.make_url(url).database
        env = {**os.environ, "WFRUNNER_REDIS_URL": redis_url, "WFRUNNER_DATABASE_URL": url}
        os.environ.update(env)
        from wfrunner import client
        from wfrunner.runtime import Runtime
        from wfrunner.settings import Settings

        rt = Runtime(Settings.from_env(env))
        wf = client.register_workflow(diamond(), rt)
        run_ids = [client.submit_run(wf, {"x": i}, rt) for i in range(count)]
        log = Path(tempfile.gettempdir()) / f"scratch_pg_worker_{os.getpid()}.log"
        before = commits(admin, db)
        started = time.monotonic()
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "wfrunner",
                    "worker",
                    "-c",
                    "2",
                    "-Q",
                    "wfrunner.tasks,wfrunner.completion",
                    "--loglevel=INFO",
                    "--without-mingle",
                    "--without-gossip",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        polls = 0
        engine = sa.create_engine(url)
        while True:
            time.sleep(0.5)
            polls += 1
            with engine.begin() as conn:
                done = conn.execute(
                    sa.text("SELECT count(*) FROM runs WHERE status IN ('COMPLETED','FAILED')")
                ).scalar_one()
            if done >= count or time.monotonic() - started > 600:
                break
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(worker.pid)
        worker.terminate()
        worker.wait(30)
        engine.dispose()
        rt.close()
        time.sleep(1.5)
        after = commits(admin, db)
        text = log.read_text(errors="replace")
        tasks: dict[str, int] = {}
        for name in re.findall(r"Task (wfrunner\.\w+)\[[^\]]+\] succeeded", text):
            tasks[name] = tasks.get(name, 0) + 1
        worker_tx = after - before - polls
        print(
            f"runs {count} finished {done} in {elapsed:.1f} s; worker CPU {cpu:.1f} s "
            f"({cpu / count * 1000:.0f} ms/run)"
        )
        print(
            f"worker transactions {worker_tx} ({worker_tx / count:.2f} per diamond); tasks {tasks}"
        )
        del run_ids
        redis.Redis.from_url(redis_url).flushdb()  # the tests want it empty


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
