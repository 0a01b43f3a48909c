"""Worker subprocesses started through the installed ``celery`` script (which, unlike
``python -m celery``, does not put the current folder on ``sys.path``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CELERY = str(Path(sys.executable).parent / "celery")


def celery(
    env: dict[str, str], folder: Path, *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``celery -A wfrunner ARGS``; a command that was to exit at once is stopped after
    ``timeout`` seconds (the test then fails)."""
    return subprocess.run(
        [CELERY, "-A", "wfrunner", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def node_name(prefix: str) -> str:
    return f"{prefix}@{socket.gethostname()}"


@contextmanager
def running_worker(env: dict[str, str], folder: Path, name: str) -> Iterator[str]:
    """A ``celery -A wfrunner worker`` named ``name`` run from ``folder``, once it answers
    a ping; stopped afterwards."""
    worker = subprocess.Popen(
        [CELERY, "-A", "wfrunner", "worker", "-c", "1", "-n", name, "--loglevel=WARNING"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "pong" not in celery(env, folder, "inspect", "ping", "-d", name, "-t", "1").stdout:
            assert worker.poll() is None, worker.communicate()[1]
            if time.monotonic() > deadline:
                pytest.fail(f"worker {name} did not answer a ping within 60 s")
            time.sleep(0.5)
        yield name
    finally:
        worker.terminate()
        worker.wait(30)
