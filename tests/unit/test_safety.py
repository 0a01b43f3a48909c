"""The worker refuses unsafe Celery settings: the check, and a real ``celery worker``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.worker import WorkController
from kombu.asynchronous import get_event_loop, set_event_loop

from wfrunner.errors import ConfigurationError
from wfrunner.settings import Settings
from wfrunner.tasks.config import celery_settings
from wfrunner.tasks.safety import check, unsafe_settings


@pytest.fixture(autouse=True)
def keep_event_loop() -> Iterator[None]:
    """A WorkController made here sets kombu's process-wide event loop to its hub, which
    never runs: the in-process worker a later test of the session starts would take it
    over, and its countdown tasks (a node's retry) would never fire."""
    loop = get_event_loop()
    yield
    set_event_loop(loop)


def safe(**changes: Any) -> dict[str, Any]:
    return {**celery_settings(Settings(), "redis://x"), **changes}


def test_the_default_configuration_is_safe() -> None:
    assert unsafe_settings(celery_settings(Settings(), "redis://x")) == []
    check(celery_settings(Settings(), "redis://x"))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"accept_content": ["json", "pickle"]},
            "accept_content=['json', 'pickle'] accepts pickle: set accept_content = ['json']",
        ),
        (
            {"accept_content": ["application/x-python-serialize"]},
            "accept_content=['application/x-python-serialize'] accepts "
            "application/x-python-serialize: set accept_content = ['json']",
        ),
        ({"accept_content": "yaml"}, "accept_content=['yaml'] accepts yaml"),
        ({"accept_content": []}, "accept_content=[] accepts nothing"),
        (
            {"result_accept_content": ["json", "msgpack"]},
            "result_accept_content=['json', 'msgpack'] accepts msgpack: "
            "set result_accept_content = ['json']",
        ),
        ({"task_serializer": "pickle"}, "task_serializer='pickle': set task_serializer = 'json'"),
        ({"result_serializer": "yaml"}, "result_serializer='yaml': set result_serializer = 'json'"),
        ({"event_serializer": "pickle"}, "event_serializer='pickle': set event_serializer"),
        ({"task_acks_late": False}, "task_acks_late is off: set task_acks_late = True"),
        (
            {"task_reject_on_worker_lost": None},
            "task_reject_on_worker_lost is off: set task_reject_on_worker_lost = True",
        ),
    ],
)
def test_each_unsafe_setting_is_reported(changes: dict[str, Any], expected: str) -> None:
    problems = unsafe_settings(safe(**changes))
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


def test_safe_variants() -> None:
    assert unsafe_settings(safe(accept_content=["application/json"])) == []
    assert unsafe_settings(safe(result_accept_content=None)) == []
    # a time limit beyond the visibility timeout is safe: the token's lease keeps the
    # redelivered copy from running the node while it still runs (engine/leases.py)
    assert unsafe_settings(safe(task_time_limit=7200)) == []


def test_celery_defaults_are_unsafe() -> None:
    """An app configured without wfrunner's settings would be refused: acks are early."""
    assert [problem.split(" ")[0] for problem in unsafe_settings({})] == [
        "task_acks_late",
        "task_reject_on_worker_lost",
    ]


def test_check_lists_every_problem() -> None:
    with pytest.raises(ConfigurationError) as info:
        check(safe(task_serializer="pickle", task_acks_late=False))
    message = str(info.value)
    assert message.startswith("the worker refuses to start with unsafe settings:\n  - ")
    assert "task_serializer='pickle'" in message
    assert "task_acks_late is off" in message


def _worker(name: str, **changes: Any) -> WorkController:
    app = Celery(name, set_as_current=False, include=["wfrunner.tasks.safety"])
    app.conf.update(safe(broker_url="memory://", result_backend="cache+memory://", **changes))
    return WorkController(app=app, pool_cls="solo", concurrency=1)


def test_an_in_process_worker_refuses_unsafe_settings() -> None:
    with pytest.raises(SystemExit, match="task_acks_late is off"):
        _worker("wfrunner", task_acks_late=False)
    _worker("wfrunner")  # safe: starts


def test_other_celery_apps_are_not_judged() -> None:
    _worker("someone-else", task_acks_late=False)


def test_worker_refuses_an_unsafe_celeryconfig(tmp_path: Path, redis_url: str) -> None:
    """The worker refuses before it consumes anything, so the test session's Redis is safe."""
    (tmp_path / "celeryconfig.py").write_text("event_serializer = 'pickle'\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        "WFRUNNER_REDIS_URL": redis_url,
        "WFRUNNER_HOME": str(tmp_path / "home"),
    }
    env.pop("WFRUNNER_DATABASE_URL", None)
    command = [sys.executable, "-m", "celery", "-A", "wfrunner", "worker", "--pool", "solo"]
    try:
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail("the worker started instead of refusing:\n" + str(exc.stderr))
    assert done.returncode != 0
    assert "the worker refuses to start with unsafe settings" in done.stderr
    assert "event_serializer='pickle': set event_serializer = 'json'" in done.stderr
