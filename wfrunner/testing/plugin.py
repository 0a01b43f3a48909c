"""The fixtures of ``wfrunner.testing`` (see its module docstring)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wfrunner.errors import ConfigurationError
from wfrunner.testing import engine
from wfrunner.testing.servers import TestServers, find_servers, fresh_database, stop_embedded

DATABASE_SCOPE_OPTION = "wfrunner_database_scope"
BROKER_VARIABLE = "WFRUNNER_TEST_BROKER_URL"
_SCOPES = {"session": "session", "test": "function", "function": "function"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        DATABASE_SCOPE_OPTION,
        "wfrunner.testing: 'session' (default): one migrated PostgreSQL database for the "
        "whole test session; 'test': a fresh one for each test",
        default="session",
    )


def pytest_configure(config: pytest.Config) -> None:
    _database_scope("wfrunner_database", config)  # a bad value stops pytest with one line


def _database_scope(fixture_name: str, config: pytest.Config) -> Any:
    value = str(config.getini(DATABASE_SCOPE_OPTION)).strip().lower()
    if value not in _SCOPES:
        raise pytest.UsageError(
            f"{DATABASE_SCOPE_OPTION} = {value!r}: expected 'session' or 'test'"
        )
    return _SCOPES[value]


@pytest.fixture(scope="session")
def wfrunner_home() -> Iterator[Path]:
    """Where embedded servers keep their data when none is configured; removed at the end."""
    home = Path(tempfile.mkdtemp(prefix="wfrunner-test-"))
    yield home
    stop_embedded(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def wfrunner_server_defaults() -> tuple[str | None, str | None]:
    """The Redis and PostgreSQL URLs to try when no variable names one, before embedded
    servers are started (none: override this fixture to name yours)."""
    return None, None


@pytest.fixture(scope="session")
def wfrunner_servers(
    wfrunner_home: Path, wfrunner_server_defaults: tuple[str | None, str | None]
) -> TestServers:
    """The session's Redis (a database it owns and flushes) and PostgreSQL server."""
    try:
        return find_servers(wfrunner_home, *wfrunner_server_defaults)
    except ConfigurationError as exc:
        pytest.exit(str(exc), returncode=2)


@pytest.fixture(scope="session")
def wfrunner_session_database(wfrunner_servers: TestServers) -> Iterator[str]:
    """The session's migrated database: the engine's from the start, so a worker that
    starts before any test's database (and records itself) never resolves another."""
    with fresh_database(wfrunner_servers.postgres_admin_url, "wfr_test", migrated=True) as url:
        yield url


@pytest.fixture(scope="session")
def wfrunner_broker_url() -> str | None:
    """The Celery broker of the session's engine: ``WFRUNNER_TEST_BROKER_URL`` (e.g. a
    RabbitMQ's ``amqp://...``), else None: the session's Redis. Override it to start one."""
    return os.environ.get(BROKER_VARIABLE) or None


@pytest.fixture(scope="session")
def wfrunner_app(
    wfrunner_servers: TestServers,
    wfrunner_session_database: str,
    wfrunner_broker_url: str | None,
) -> Iterator[Any]:
    """The Celery app, and this process's engine, on the session's servers (and broker;
    with the hot state on a server of its own, the session's Redis is the broker)."""
    servers = wfrunner_servers
    broker = wfrunner_broker_url or (servers.redis_url if servers.state_url else "")
    values = {
        "WFRUNNER_REDIS_URL": servers.state,
        "WFRUNNER_DATABASE_URL": wfrunner_session_database,
        "WFRUNNER_BROKER_URL": broker,
    }
    with engine.environment(values):
        yield engine.configure_app(servers.state)


@pytest.fixture(scope=_database_scope)
def wfrunner_database(
    request: pytest.FixtureRequest,
    wfrunner_servers: TestServers,
    wfrunner_app: Any,
    wfrunner_session_database: str,
) -> Iterator[str]:
    """The fresh migrated PostgreSQL database the engine of this process uses: the
    session's, or one per test (ini option ``wfrunner_database_scope``), dropped after."""
    if request.scope == "session":
        yield wfrunner_session_database
        return
    with (
        fresh_database(wfrunner_servers.postgres_admin_url, "wfr_test", migrated=True) as url,
        engine.environment({"WFRUNNER_DATABASE_URL": url}),
    ):
        yield url


@pytest.fixture(scope="session")
def wfrunner_worker(wfrunner_app: Any) -> Iterator[Any]:
    """A Celery worker in this process (a thread pool) running the registered handlers."""
    from wfrunner.tasks.local import local_worker

    with local_worker(wfrunner_app) as worker:
        yield worker


@pytest.fixture()
def register_workflow(wfrunner_app: Any, wfrunner_database: str) -> engine.RegisterWorkflow:
    """``register_workflow(definition_or_path, name=None)``: the stored workflow's id."""
    return engine.register


@pytest.fixture()
def run_workflow(wfrunner_worker: Any, wfrunner_database: str) -> engine.RunWorkflow:
    """``run_workflow(definition_or_id, inputs=None, timeout=60)``: the finished run's
    document (a :class:`wfrunner.RunDocument`)."""
    return engine.run
