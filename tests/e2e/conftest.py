"""A real Celery worker (in-process, thread pool) on the real Redis and PostgreSQL.

One worker and one migrated database serve the whole e2e session: the Celery app is
configured once per process. Each test registers its own workflows and starts its own
runs, so tests stay independent without restarting the worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import wfrunner
from examples import handlers as _example_handlers  # noqa: F401  (registers them)
from tests.conftest import OWNER_KEY
from tests.databases import fresh_database
from tests.e2e import handlers as _handlers  # noqa: F401  (registers the test handlers)
from wfrunner import client, runtime
from wfrunner.settings import Settings
from wfrunner.tasks.config import celery_settings
from wfrunner.tasks.local import local_worker


@pytest.fixture(scope="session")
def engine_database(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url, "wfr_e2e", migrated=True) as url:
        yield url
        runtime.reset()


@pytest.fixture(scope="session")
def engine_env(redis_url: str, engine_database: str) -> Iterator[dict[str, str]]:
    env = {
        "WFRUNNER_REDIS_URL": redis_url,
        "WFRUNNER_DATABASE_URL": engine_database,
        "WFRUNNER_RUN_TIMEOUT": "300",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    runtime.reset()
    app = wfrunner.app
    app.conf.update(celery_settings(Settings.from_env(), redis_url))
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def worker_env(redis_url: str, engine_database: str) -> Iterator[dict[str, str]]:
    """The environment of a worker subprocess: the Redis database after the tests' (the
    in-process worker must not take its tasks), emptied before and after, and no other
    WFRUNNER_ or CELERY_ variable."""
    base, db = redis_url.rsplit("/", 1)
    url = f"{base}/{(int(db or 0) + 1) % 16}"
    client = redis.Redis.from_url(url)
    if client.dbsize() and not client.exists(OWNER_KEY):
        pytest.fail(f"{url} holds keys that are not the tests': empty it")
    client.flushdb()
    client.set(OWNER_KEY, "1")
    yield {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WFRUNNER_", "CELERY_"))},
        "WFRUNNER_REDIS_URL": url,
        "WFRUNNER_DATABASE_URL": engine_database,
    }
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def worker(engine_env: dict[str, str]) -> Iterator[Any]:
    with local_worker(wfrunner.app) as w:
        yield w


@pytest.fixture()
def run_workflow(worker: Any) -> Any:
    """register + start + wait; returns the run document."""

    def run(definition: dict[str, Any], inputs: Any = None, timeout: float = 60) -> dict[str, Any]:
        workflow_id = client.register_workflow(definition)
        result = wfrunner.start_run.delay(workflow_id, inputs)
        assert result.get(timeout=timeout) == result.id
        return client.wait_for_run(result.id, timeout=timeout)

    return run
