"""Real server and worker processes for the fault tests, each killable and restartable.

Every process runs in its own session (``start_new_session=True``), so a SIGKILL of its
process group takes the Celery master and its pool children down together, as a machine
losing the worker would. Logs go to files, so a failing test can show their tails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGKILL) -> None:
    """Signal a process started with ``start_new_session=True`` and all its children."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} unreadable)"
    return f"--- {path.name} (last {lines} lines) ---\n" + "\n".join(text[-lines:])


class RedisServer:
    """``redis-server`` on a free loopback port.

    By default without persistence: a restart is empty. With ``appendonly`` it keeps an
    AOF fsynced every second (``--appendfsync everysec``), and :meth:`snapshot` writes an
    RDB file (BGSAVE) in either mode: :meth:`restart` then brings back what the files hold,
    as Redis does after a crash.
    """

    def __init__(self, folder: Path, appendonly: bool = False) -> None:
        self.folder = folder
        self.appendonly = appendonly
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = folder / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--dir", str(self.folder), "--dbfilename", f"{self.port}.rdb"]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
            args += ["--appendfilename", f"{self.port}.aof"]
        else:
            args += ["--appendonly", "no"]
        args += ["--logfile", str(self.log)]
        self.proc = subprocess.Popen(args, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start\n{tail(self.log)}")

    def kill(self) -> None:
        kill_group(self.proc)
        self.proc = None

    def forget(self) -> None:
        """Delete the persistence files: the next start is empty."""
        (self.folder / f"{self.port}.rdb").unlink(missing_ok=True)
        (self.folder / f"{self.port}.aof").unlink(missing_ok=True)  # Redis 6
        shutil.rmtree(self.folder / "appendonlydir", ignore_errors=True)  # Redis 7

    def restart_empty(self) -> None:
        """Kill (SIGKILL, nothing saved) and start again, empty, on the same port."""
        self.kill()
        self.forget()
        self.start()
        self.restarts += 1

    def snapshot(self) -> None:
        """BGSAVE, and wait until the RDB file is written."""
        client = redis.Redis.from_url(self.url, decode_responses=True)
        before = client.lastsave()
        client.bgsave()
        deadline = time.monotonic() + 30
        while client.lastsave() == before:
            if time.monotonic() > deadline:
                raise RuntimeError(f"BGSAVE did not finish\n{tail(self.log)}")
            time.sleep(0.05)
        client.close()

    def restart(self) -> None:
        """SIGKILL (nothing more saved) and start again from the files: the last snapshot,
        or the AOF as of its last fsync."""
        self.kill()
        self.start()
        self.restarts += 1


class CeleryProcess:
    """``celery -A wfrunner worker`` (or ``beat``) as a subprocess with a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, wait_ready: bool = True) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "wfrunner", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        if wait_ready:
            self.wait_for(" ready.", offset)

    def wait_for(self, text: str, offset: int = 0, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode})\n{tail(self.log)}")
            with contextlib.suppress(OSError), self.log.open("rb") as f:
                f.seek(offset)
                if text.encode() in f.read():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no {text!r} within {timeout} s\n{tail(self.log)}")

    def kill(self) -> None:
        """SIGKILL the whole process group: master and pool children die at once."""
        kill_group(self.proc)
        self.proc = None

    def stop(self) -> None:
        kill_group(self.proc, signal.SIGTERM)
        self.proc = None

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def worker(
    name: str,
    env: dict[str, str],
    folder: Path,
    concurrency: int = 2,
    host: str = "%h",
    pool: str = "prefork",
    queues: str = "wfrunner.tasks,wfrunner.completion",
) -> CeleryProcess:
    """``celery worker -n <name>@<host>``: ``host`` stands for the machine it runs on
    (Celery's ``%h`` is this one), ``pool`` is Celery's pool (prefork, threads, solo)."""
    args = ["worker", "-Q", queues, "-c", str(concurrency)]
    args += ["-n", f"{name}@{host}", "-P", pool]
    args += ["--loglevel=INFO", "--without-mingle", "--without-gossip"]
    return CeleryProcess(name, args, env, folder)


def beat(env: dict[str, str], folder: Path, name: str = "beat") -> CeleryProcess:
    """``celery beat`` with a schedule file and pid file of its own (named ``name``): two
    beats of one deployment must not share them."""
    args = ["beat", "--loglevel=INFO", "--schedule", str(folder / f"{name}-schedule")]
    args += ["--pidfile", str(folder / f"{name}.pid")]
    return CeleryProcess(name, args, env, folder)
