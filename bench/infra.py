"""What the benchmark runs on: its Redis databases, a fresh PostgreSQL database, worker
subprocesses, and the meters read around each phase (Redis commands, PostgreSQL
transactions, task messages, worker RSS). Everything it starts it stops, and everything it
writes it deletes (``BenchEnvironment.close``)."""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
OWNER_KEY = "wfrunner:bench-owner"
LOGS = Path(tempfile.gettempdir()) / "wfrunner-bench-logs"


class BenchError(RuntimeError):
    """The benchmark cannot run as asked (a busy Redis database, a worker that will not start)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of the benchmark's own: its INFO counts only the benchmark's commands
    (on the shared server, other sessions' commands are counted too)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("--private-redis needs redis-server on PATH")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="wfrunner-bench-redis-")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", self.dir]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.close()
                    raise BenchError("the private redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL cluster of the benchmark's own (``initdb`` as the ``postgres`` user when
    run as root): its WAL position and its processes' CPU count only the benchmark's writes
    (the shared server's serve other sessions too). Default settings: fsync and
    synchronous_commit on."""

    def __init__(self) -> None:
        binary = shutil.which("initdb")
        if binary is None:
            raise BenchError("--private-pg needs initdb and pg_ctl on PATH")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="wfrunner-bench-pg-")
        self.data = f"{self.dir}/data"
        self._as_owner(["initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir}"
        self._as_owner(["pg_ctl", "-D", self.data, "-o", options, "-w", "-l",
                        f"{self.dir}/log", "start"])  # fmt: skip
        self.pid = int(Path(self.data, "postmaster.pid").read_text().split()[0])

    def _as_owner(self, command: list[str]) -> None:
        import os

        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.dir, "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise BenchError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def close(self) -> None:
        with contextlib.suppress(BenchError):
            self._as_owner(["pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)


def claim(url: str) -> redis.Redis:
    """A client of a Redis database the benchmark may empty: empty, or the benchmark's."""
    client = redis.Redis.from_url(url, decode_responses=True)
    if client.dbsize() and not client.exists(OWNER_KEY):
        raise BenchError(
            f"{url} holds {client.dbsize()} keys the benchmark did not write; "
            "empty it or pass another --redis-url"
        )
    client.flushdb()
    client.set(OWNER_KEY, "1")
    return client


def url_of(client: redis.Redis) -> str:
    """The URL of the server and database a client talks to."""
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


class Database:
    """A fresh, migrated PostgreSQL database (dropped by :meth:`close`), and the benchmark's
    own connection to it, which counts the statements it sends so they can be taken out of
    the transaction count."""

    def __init__(self, admin_url: str) -> None:
        from wfrunner.store import migrate

        self.name = f"wfr_bench_{uuid.uuid4().hex[:10]}"
        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_url(admin_url).set(database=self.name).render_as_string(False)
        migrate.upgrade(self.url)
        self.engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.conn = self.engine.connect()
        self.statements = 0

    def scalar(self, sql: str, **params: Any) -> Any:
        self.statements += 1
        return self.conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        self.statements += 1
        return list(self.conn.execute(sa.text(sql), params))

    def transactions(self) -> int:
        """Committed transactions in the database so far, made current first.

        PostgreSQL (15+) publishes a backend's counts at most once a second, and an idle
        backend's only after up to 10 s; a backend that exits publishes them at once. So
        the workers' idle connections are closed (their pools reconnect with
        ``pool_pre_ping``) and this connection's counts are flushed with
        ``pg_stat_force_next_flush()``. Called only when the workers are idle.
        """
        self.scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'idle'"
        ):
            time.sleep(0.05)
        self.scalar("SELECT pg_stat_force_next_flush()")
        time.sleep(0.05)
        self.scalar("SELECT 1")  # its end publishes this connection's counts
        return int(
            self.scalar(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
        )

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


@dataclass
class WorkerSpec:
    app: str  # the -A argument
    queues: str
    env: dict[str, str]
    prefix: str  # worker names are <prefix><i>@<host>


class Workers:
    """``count`` worker processes of one app, each a prefork pool of ``concurrency``."""

    def __init__(self, spec: WorkerSpec, count: int, concurrency: int) -> None:
        LOGS.mkdir(exist_ok=True)
        self.names = [f"{spec.prefix}{i}@{socket.gethostname()}" for i in range(count)]
        self.procs = []
        for name in self.names:
            log = open(LOGS / f"{name.split('@')[0]}.log", "ab")  # noqa: SIM115 (kept open)
            command = [sys.executable, "-m", "celery", "-A", spec.app, "worker", "-Q", spec.queues]
            command += ["-c", str(concurrency), "-n", name, "--loglevel=WARNING"]
            self.procs.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=spec.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()

    def wait_ready(self, app: Any, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise BenchError(f"a worker exited with {proc.returncode}: see {LOGS}")
            answered = {name for reply in app.control.ping(timeout=1) for name in reply}
            if set(self.names) <= answered:
                return
        raise BenchError(f"workers {self.names} did not answer a ping in {timeout:.0f} s")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


class RssSampler:
    """Samples the summed RSS of the worker process trees (main process and pool children)
    every ``interval`` seconds in a thread; ``series`` keeps (seconds, bytes)."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.pids: list[int] = []
        self.series: list[tuple[float, int]] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        try:
            import psutil
        except ModuleNotFoundError:
            return 0
        total = 0
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.pids:
                self.series.append((time.monotonic() - self.started, self.rss()))

    def mark(self) -> float:
        return time.monotonic() - self.started

    def peak_mb(self, since: float) -> float:
        values = [b for t, b in self.series if t >= since]
        return max(values) / 2**20 if values and max(values) else float("nan")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


def cpu_seconds(
    worker_pids: Sequence[int], redis_pid: int | None, postgres_pid: int | None = None
) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the worker process trees (main processes
    and pools), the Redis server (only a private one: the shared server serves others too)
    and PostgreSQL: the process tree of ``postgres_pid`` (a private server's postmaster),
    else every PostgreSQL server process of the machine (its backends and background work,
    other clients' included)."""
    import psutil

    def used(proc: psutil.Process) -> float:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = proc.cpu_times()
            return float(times.user + times.system)
        return 0.0

    found = {"workers": 0.0, "redis": math.nan, "postgres": 0.0}
    for pid in worker_pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            found["workers"] += sum(used(p) for p in [root, *root.children(recursive=True)])
    if redis_pid is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            found["redis"] = used(psutil.Process(redis_pid))
    if postgres_pid is not None:  # backends that exited count in the postmaster's children
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(postgres_pid)
            times = root.cpu_times()
            found["postgres"] = times.children_user + times.children_system
            found["postgres"] += sum(used(p) for p in [root, *root.children(recursive=True)])
        return found
    for proc in psutil.process_iter(["name"]):
        if (proc.info.get("name") or "").startswith("postgres"):
            found["postgres"] += used(proc)
    return found


class EventCounter:
    """Counts the ``task-received`` events of the workers (one per task message a worker
    took from the broker) and the ids of ``task-succeeded`` tasks, from a thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.received = 0
        self.names: Counter[str] = Counter()  # task name -> task-received events
        self.succeeded: set[str] = set()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise BenchError("could not subscribe to the task events")

    def _on_received(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.received += 1
            name = event.get("name") or "?"
            # a node's task is shown as wfrunner.node:<workflow>.<node>: one column for all
            self.names["wfrunner.execute_node" if name.startswith("wfrunner.node:") else name] += 1

    def _on_succeeded(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.succeeded.add(event["uuid"])

    def _run(self) -> None:
        while not self.closed:
            try:
                self._capture()
            except Exception as exc:  # the broker went away: the end of the run, or a blip
                if self.closed:
                    return
                print(f"task events: {exc!r}; subscribing again", file=sys.stderr)
                time.sleep(0.5)

    def _capture(self) -> None:
        with self.app.connection_for_read() as conn:
            receiver = self.app.events.Receiver(
                conn,
                handlers={
                    "task-received": self._on_received,
                    "task-succeeded": self._on_succeeded,
                    "*": lambda event: None,
                },
            )
            receiver.on_consume_ready = lambda *args, **kwargs: self._ready.set()
            receiver.capture(limit=None, timeout=None, wakeup=False)

    def close(self) -> None:
        self.closed = True

    def done(self, ids: set[str]) -> int:
        with self._lock:
            return len(ids & self.succeeded)


def command_count(client: redis.Redis) -> int:
    """Commands the Redis server has run so far, all kinds, its INFO calls left out."""
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")
