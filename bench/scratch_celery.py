"""Scratch measurements for issue 9 (Celery side); may be deleted.

    python bench/scratch_celery.py [--prefetch N] [--events] [--backlog 300] [--latency 30]
        [--fanout 200]

Starts ``celery -A wfrunner worker -c 2`` (prefork) in a subprocess on Redis db 6 and a fresh
PostgreSQL database, then measures: diamonds/s over a backlog (all submitted first, the
clock runs from the first submit to the last run seen ended), one-diamond latency
(submit -> wait_for_run returns, p50/p90, one at a time), and a fan-out run's duration.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psutil
import redis
import sqlalchemy as sa

ROOT = Path(os.environ.get("BENCH_ROOT") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(ROOT))

from tests.databases import fresh_database  # noqa: E402
from wfrunner import client  # noqa: E402

print("wfrunner from", client.__file__, flush=True)

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def fanout(width: int) -> dict:
    fn = {"type": "function", "config": {"function_name": "examples.increment"}}
    nodes = [{"id": "start", **fn}] + [{"id": f"n{i}", **fn} for i in range(width)]
    nodes.append({"id": "join", "type": "aggregate", "config": {"operation": "sum", "field": "x"}})
    edges = [{"from": "start", "to": f"n{i}"} for i in range(width)]
    edges += [{"from": f"n{i}", "to": "join"} for i in range(width)]
    return {"metadata": {"name": f"fanout{width}"}, "nodes": nodes, "edges": edges}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefetch", type=int, default=None)
    ap.add_argument("--events", action="store_true")
    ap.add_argument("--backlog", type=int, default=300)
    ap.add_argument("--latency", type=int, default=30)
    ap.add_argument("--fanout", type=int, default=200)
    args = ap.parse_args()
    redis.Redis.from_url(REDIS).flushdb()
    with fresh_database(PG, "wfr_bench_celery", migrated=True) as db:
        env = {
            **os.environ,
            "WFRUNNER_REDIS_URL": REDIS,
            "WFRUNNER_DATABASE_URL": db,
            "WFRUNNER_HANDLERS": "examples.handlers",
            "PYTHONPATH": str(ROOT),
        }
        if args.events:
            env["WFRUNNER_TASK_EVENTS"] = "1"
        os.environ.update({k: env[k] for k in ("WFRUNNER_REDIS_URL", "WFRUNNER_DATABASE_URL")})
        os.environ["WFRUNNER_HANDLERS"] = "examples.handlers"
        cwd = tempfile.mkdtemp(prefix="wfr-bench-")
        lines = []
        if args.prefetch is not None:
            lines.append(f"worker_prefetch_multiplier = {args.prefetch}")
        if args.events:
            lines.append("worker_send_task_events = True\ntask_send_sent_event = True")
        Path(cwd, "celeryconfig.py").write_text("\n".join(lines) + "\n")
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
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=cwd,
            env=env,
        )
        try:
            run(args, db, worker.pid)
        finally:
            worker.terminate()
            worker.wait(30)
            redis.Redis.from_url(REDIS).flushdb()  # the CLI-worker tests want it empty


def run(args: argparse.Namespace, db: str, pid: int) -> None:
    from wfrunner import client
    from wfrunner.tasks.app import app

    while not app.control.ping(timeout=1.0):
        time.sleep(0.5)
    print(f"worker pid {pid}; prefetch {app.conf.worker_prefetch_multiplier}", flush=True)
    diamond = client.register_workflow(ROOT / "examples" / "parallel.json")
    client.wait_for_run(client.submit_run(diamond, {"x": 1}), timeout=60)  # warm up
    results: dict[str, object] = {}
    if args.latency:
        results.update(latency(diamond, args.latency))
    if args.backlog:
        results.update(backlog(diamond, args.backlog, db, pid))
    if args.fanout:
        wide = client.register_workflow(fanout(args.fanout))
        durations = []
        for _ in range(3):
            t0 = time.perf_counter()
            doc = client.wait_for_run(client.submit_run(wide, {"x": 1}), timeout=300)
            durations.append(time.perf_counter() - t0)
            assert doc["status"] == "COMPLETED", doc["status"]
        results[f"fanout{args.fanout}_s_median"] = round(statistics.median(durations), 2)
    print(json.dumps(results), flush=True)


def latency(diamond: str, n: int) -> dict[str, float]:
    from wfrunner import client

    lat, parts = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        w0 = time.time()
        doc = client.wait_for_run(client.submit_run(diamond, {"x": 1}), timeout=60)
        lat.append((time.perf_counter() - t0) * 1000)
        w1 = time.time()
        assert doc["status"] == "COMPLETED", doc["status"]
        started = datetime.fromisoformat(doc["started_at"]).timestamp()
        done = datetime.fromisoformat(doc["completed_at"]).timestamp()
        parts.append(((started - w0) * 1000, (done - started) * 1000, (w1 - done) * 1000))
    results = {}
    for i, name in enumerate(("to_started", "started_to_completed", "completed_to_seen")):
        results[f"{name}_ms_p50"] = round(statistics.median(p[i] for p in parts), 1)
    lat.sort()
    results["latency_ms_p50"] = round(statistics.median(lat), 1)
    results["latency_ms_p90"] = round(lat[int(len(lat) * 0.9)], 1)
    return results


def profiler(pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy on the worker during the backlog (BENCH_PYSPY=<file>: collapsed stacks)."""
    if not os.environ.get("BENCH_PYSPY"):
        return None
    spy = str(Path(sys.executable).parent / "py-spy")
    out = os.environ["BENCH_PYSPY"]
    cmd = f"{spy} record --pid {pid} --subprocesses --format raw -r 200 -d 12 --nonblocking"
    proc = subprocess.Popen([*cmd.split(), "-o", out])
    time.sleep(1)
    return proc


def backlog(diamond: str, n: int, db: str, pid: int) -> dict[str, float]:
    from wfrunner import client

    engine = sa.create_engine(db)
    done_sql = sa.text("select count(*) from runs where status in ('COMPLETED','FAILED')")

    def ended() -> int:
        with engine.connect() as c:
            return int(c.execute(done_sql).scalar_one())

    worker = psutil.Process(pid)

    def cpu() -> float:
        procs = [worker, *worker.children(recursive=True)]
        return sum(p.cpu_times().user + p.cpu_times().system for p in procs)

    base = ended()
    spy = profiler(pid)
    cpu0 = cpu()
    t0 = time.perf_counter()
    for i in range(n):
        client.submit_run(diamond, {"x": i})
    submitted = time.perf_counter() - t0
    while ended() - base < n:
        time.sleep(0.05)
    took = time.perf_counter() - t0
    used = cpu() - cpu0
    if spy is not None:
        spy.wait()
    return {
        "backlog_s": round(took, 2),
        "submit_s": round(submitted, 2),
        "diamonds_per_s": round(n / took, 1),
        "worker_cpu_ms_per_diamond": round(used * 1000 / n, 1),
    }


if __name__ == "__main__":
    main()
