"""``celery -A wfrunner flower`` refuses to serve without authentication unless bound to
this machine; with authentication, or on 127.0.0.1, its HTTP API shows a real worker."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import CELERY, celery, node_name, running_worker

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def worker(worker_env: dict[str, str]) -> Iterator[str]:
    with running_worker(worker_env, ROOT, node_name("flower-test")) as name:
        yield name


def _get(url: str, credentials: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if credentials is not None:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def flower(env: dict[str, str], *args: str) -> Iterator[str]:
    """A Flower serving on a free port; yields its URL once it answers."""
    port = _free_port()
    proc = subprocess.Popen(
        [CELERY, "-A", "wfrunner", "flower", f"--port={port}", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if _get(f"{url}/healthcheck")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Flower did not answer within 60 s"
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _workers(url: str, name: str, credentials: str | None = None) -> dict[str, Any]:
    """Flower's /api/workers for ``name``, once Flower has heard from it."""
    deadline = time.monotonic() + 30
    while True:
        status, body = _get(f"{url}/api/workers?refresh=1&workername={name}", credentials)
        assert status == 200, (status, body)
        workers: dict[str, Any] = json.loads(body)
        if name in workers or time.monotonic() > deadline:
            return workers
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("args", "auth"),
    [([], None), (["--address=0.0.0.0"], None), ([], ""), (["--basic-auth=admin"], None)],
    ids=["default", "all-interfaces", "empty-FLOWER_BASIC_AUTH", "no-password"],
)
def test_flower_refuses_to_serve_without_authentication(
    worker_env: dict[str, str], args: list[str], auth: str | None
) -> None:
    env = {**worker_env} if auth is None else {**worker_env, "FLOWER_BASIC_AUTH": auth}
    refused = celery(env, ROOT, "flower", f"--port={_free_port()}", *args)
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith("Error: ") and "--address=127.0.0.1" in lines[0]
    assert "FLOWER_BASIC_AUTH=user:password" in lines[0]


def test_flower_on_localhost_needs_no_authentication(
    worker_env: dict[str, str], worker: str
) -> None:
    env = {**worker_env, "FLOWER_UNAUTHENTICATED_API": "true"}
    with flower(env, "--address=127.0.0.1") as url:
        assert worker in _workers(url, worker)


def test_flower_with_basic_auth_asks_for_it(worker_env: dict[str, str], worker: str) -> None:
    env = {**worker_env, "FLOWER_BASIC_AUTH": "admin:secret"}
    with flower(env) as url:  # every interface: authentication required
        assert _get(f"{url}/api/workers")[0] == 401
        assert _get(f"{url}/api/workers", "admin:wrong")[0] == 401
        assert worker in _workers(url, worker, "admin:secret")


def test_flower_shows_a_node_by_name_and_a_failed_node_as_failure(
    worker_env: dict[str, str], worker: str, tmp_path: Path
) -> None:
    """Through Flower's HTTP API: a node's own task is named after the workflow and the
    node, and the one whose node failed the run is a FAILURE with the node's error. (The
    entry node runs in start_run's task; a node with a timeout always has its own.)"""
    from tests.entry_point import invoke

    path = tmp_path / "flower_demo.json"
    path.write_text(
        json.dumps(
            {
                "metadata": {"name": "flower-demo"},
                "nodes": [
                    {"id": "first", "type": "transform", "config": {"expression": "input"}},
                    {
                        "id": "divide",
                        "type": "transform",
                        "config": {"expression": "1 / 0"},
                        "timeout_ms": 30_000,
                    },
                ],
                "edges": [{"from": "first", "to": "divide"}],
            }
        )
    )
    env = {**worker_env, "FLOWER_UNAUTHENTICATED_API": "true"}
    with flower(env, "--address=127.0.0.1") as url:
        assert worker in _workers(url, worker)
        time.sleep(6)  # Flower turns the worker's task events on when it connects (every 5 s)
        ran = invoke("run", str(path), "--wait", "--timeout", "60", env=worker_env)
        assert ran.returncode == 1, ran.stderr
        deadline = time.monotonic() + 30
        while True:
            status, body = _get(f"{url}/api/tasks?workername={worker}")
            assert status == 200, body
            tasks = list(json.loads(body).values())
            failed = [t for t in tasks if t.get("state") == "FAILURE"]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    names = {t["name"] for t in tasks}
    assert "wfrunner.start_run" in names, names
    (failure,) = failed
    assert failure["name"] == "wfrunner.node:flower-demo.divide"
    assert "NodeFailed" in failure["exception"]
    assert "node 'divide' failed" in failure["exception"]
    assert failure["args"].startswith("run=")  # its argsrepr: run, node, predecessor
