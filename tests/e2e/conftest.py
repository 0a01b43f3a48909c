"""A real Celery worker (in-process, thread pool) on the real Redis and PostgreSQL.

One worker and one migrated database serve the whole e2e session: the Celery app is
configured once per process. They are the ``wfrunner.testing`` plugin's (what users'
test suites get); the names below are this suite's. Each test registers its own
workflows and starts its own runs, so tests stay independent without restarting the
worker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from examples import handlers as _example_handlers  # noqa: F401  (registers them)
from tests.brokers import RabbitMQ, broker_choice
from tests.conftest import OWNER_KEY
from tests.e2e import handlers as _handlers  # noqa: F401  (registers the test handlers)
from tests.e2e.api_client import api  # noqa: F401 (the REST API fixture)
from wfrunner.testing import TestServers


@pytest.fixture(scope="session")
def engine_database(wfrunner_database: str) -> str:
    return wfrunner_database


@pytest.fixture(scope="session")
def engine_env(
    wfrunner_servers: TestServers, wfrunner_app: Any, wfrunner_database: str
) -> dict[str, str]:
    """The servers the in-process engine uses (set in this process's environment), and
    its broker when it is not that Redis."""
    broker = os.environ.get("WFRUNNER_BROKER_URL")
    return {
        "WFRUNNER_REDIS_URL": wfrunner_servers.state,
        "WFRUNNER_DATABASE_URL": wfrunner_database,
        **({"WFRUNNER_BROKER_URL": broker} if broker else {}),
    }


@pytest.fixture(scope="module")
def worker_env(
    redis_url: str, engine_database: str, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """The environment of a worker subprocess: the Redis database after the tests' (the
    in-process worker must not take its tasks), emptied before and after, and no other
    WFRUNNER_ or CELERY_ variable; with WFRUNNER_TEST_BROKER=amqp, a fresh virtual host
    of the tests' RabbitMQ as its broker."""
    base, db = redis_url.rsplit("/", 1)
    url = f"{base}/{(int(db or 0) + 1) % 16}"
    client = redis.Redis.from_url(url)
    if client.dbsize() and not client.exists(OWNER_KEY):
        pytest.fail(f"{url} holds keys that are not the tests': empty it")
    client.flushdb()
    client.set(OWNER_KEY, "1")
    broker: dict[str, str] = {}
    rabbitmq: RabbitMQ | None = None
    if broker_choice() == "amqp":
        rabbitmq = request.getfixturevalue("rabbitmq")
        vhost = f"cli-{uuid.uuid4().hex[:8]}"
        broker["WFRUNNER_BROKER_URL"] = rabbitmq.vhost(vhost)
    yield {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WFRUNNER_", "CELERY_"))},
        "WFRUNNER_REDIS_URL": url,
        "WFRUNNER_DATABASE_URL": engine_database,
        **broker,
    }
    client.flushdb()
    client.close()
    if rabbitmq is not None:
        rabbitmq.drop_vhost(vhost)


@pytest.fixture(scope="session")
def worker(wfrunner_worker: Any, engine_env: dict[str, str]) -> Any:
    return wfrunner_worker
