"""One embedded Redis/PostgreSQL pair per WFRUNNER_HOME, whatever process starts first.

Real processes on a fresh home with no server URL configured: a worker and a beat started
together, then ``wfrunner run --wait`` served by that worker; several processes racing
for the first server; ``wfrunner servers status`` / ``stop``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wfrunner import embedded

ROOT = Path(__file__).resolve().parents[2]
CELERY = [sys.executable, "-m", "celery", "-A", "wfrunner"]


def _env(home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WFRUNNER_")}
    return {
        **base,
        "WFRUNNER_HOME": str(home),
        "WFRUNNER_HANDLERS": "examples.handlers",
        "PYTHONPATH": str(ROOT),
    }


def _processes(home: Path) -> dict[str, list[int]]:
    """Embedded servers of ``home`` that run: Redis works in ``home/redis``, PostgreSQL's
    postmaster names ``home/pgdata`` on its command line."""
    found: dict[str, list[int]] = {embedded.REDIS: [], embedded.POSTGRES: []}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if b"redis-server" in command and cwd == str(home / "redis"):
            found[embedded.REDIS].append(int(proc.name))
        elif b"postgres" in command and str(home / "pgdata").encode() in command:
            found[embedded.POSTGRES].append(int(proc.name))
    return found


@pytest.fixture()
def home(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "home"
    yield folder
    embedded.stop(folder)
    for pids in _processes(folder).values():  # a second server the record does not know
        for pid in pids:
            os.kill(pid, 15)


def _wfrunner(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wfrunner.cli", *args],
        cwd=ROOT,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _wait_for_ping(home: Path, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, proc.communicate()
        ping = subprocess.run(
            [*CELERY, "inspect", "ping", "-t", "1"],
            cwd=ROOT,
            env=_env(home),
            capture_output=True,
            text=True,
        )
        if "pong" in ping.stdout:
            return
        time.sleep(0.5)
    pytest.fail("the worker did not answer a ping within 90 s")


def test_worker_and_beat_started_together_share_one_redis(home: Path, tmp_path: Path) -> None:
    options = {"cwd": ROOT, "env": _env(home), "text": True, "stdout": subprocess.DEVNULL}
    worker = subprocess.Popen(
        [*CELERY, "worker", "-Q", "wfrunner.tasks,wfrunner.completion", "-c", "1"],
        stderr=subprocess.DEVNULL,
        **options,  # type: ignore[call-overload]
    )
    beat = subprocess.Popen(
        [*CELERY, "beat", "--schedule", str(tmp_path / "beat-schedule")],
        stderr=subprocess.PIPE,
        **options,  # type: ignore[call-overload]
    )
    try:
        _wait_for_ping(home, [worker, beat])
        running = _processes(home)
        assert len(running[embedded.REDIS]) == 1, running
        assert len(running[embedded.POSTGRES]) == 1, running
        assert embedded.recorded(home)[embedded.REDIS].pid == running[embedded.REDIS][0]

        ran = _wfrunner(home, "run", "examples/sequential.json", "--input", '{"x": 1}', "--wait")
        assert ran.returncode == 0, ran.stderr
        assert "no worker answered" not in ran.stderr  # the worker of the same home ran it
        assert len(_processes(home)[embedded.REDIS]) == 1
    finally:
        for proc in (worker, beat):
            proc.terminate()
        for proc in (worker, beat):
            proc.wait(60)


def test_processes_racing_for_the_first_server_share_it(home: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from wfrunner import embedded; "
        "print(embedded.ensure_redis(Path(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        for _ in range(4)
    ]
    urls = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert len(urls) == 1, urls
    assert len(_processes(home)[embedded.REDIS]) == 1


def test_servers_status_and_stop(home: Path) -> None:
    before = _wfrunner(home, "servers", "status")
    assert before.returncode == 0, before.stderr
    assert before.stdout.split("\n")[:2] == ["redis     not started", "postgres  not started"]

    listed = _wfrunner(home, "dlq", "list")  # needs both servers: starts them
    assert listed.returncode == 0, listed.stderr
    running = _processes(home)
    status = _wfrunner(home, "servers", "status")
    lines = dict(line.split(maxsplit=1) for line in status.stdout.splitlines())
    for name in (embedded.REDIS, embedded.POSTGRES):
        assert lines[name].startswith(f"running  pid {running[name][0]} "), status.stdout

    stopped = _wfrunner(home, "servers", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped redis (pid {running[embedded.REDIS][0]})" in stopped.stdout
    assert f"stopped postgres (pid {running[embedded.POSTGRES][0]})" in stopped.stdout
    assert _processes(home) == {embedded.REDIS: [], embedded.POSTGRES: []}
    after = _wfrunner(home, "servers", "status")
    assert "redis     not started" in after.stdout


def test_servers_help_says_they_are_for_one_machine() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "wfrunner.cli", "servers", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "They are for one machine" in " ".join(shown.stdout.split())
