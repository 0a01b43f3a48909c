"""``wfrunner.testing``: a pytest plugin that runs your workflows on a real engine.

Enable it in your ``conftest.py`` with ``pytest_plugins = ["wfrunner.testing"]`` (or
``pytest -p wfrunner.testing``); docs/sdk.md has a complete example. Its fixtures:

- ``run_workflow(definition_or_id, inputs=None, timeout=60)``: registers the workflow
  (a dict or a file; a string naming no file is a workflow id), runs it and returns its
  finished :class:`wfrunner.RunDocument`; a run still going after ``timeout`` fails the
  test (:class:`wfrunner.errors.RunTimeout`).
- ``register_workflow(definition_or_path, name=None)``: the stored workflow's id.
- ``wfrunner_worker``: a Celery worker in the test process (a thread pool) that runs the
  handlers your test modules register with ``@wfrunner.handler``; one per session.
- ``wfrunner_database``: a fresh migrated PostgreSQL database, one per session, or per
  test with ``wfrunner_database_scope = test`` in the pytest ini options.
- ``wfrunner_servers``: the Redis (``.redis_url``) and PostgreSQL server
  (``.postgres_admin_url``): those of ``WFRUNNER_TEST_REDIS_URL`` /
  ``WFRUNNER_TEST_DATABASE_URL``, else ``WFRUNNER_REDIS_URL`` / ``WFRUNNER_DATABASE_URL``,
  else those ``wfrunner_server_defaults`` names (none unless you override it), else
  embedded ones started for the session. The Redis database is flushed, so one holding
  keys no test session wrote is refused.
- ``wfrunner_broker_url``: the Celery broker, ``WFRUNNER_TEST_BROKER_URL`` (e.g. a
  RabbitMQ's ``amqp://guest:guest@127.0.0.1:5672/tests``), else the session's Redis;
  override the fixture to start a broker of your own.

The worker is real (the same Celery worker code on the real Redis and PostgreSQL), so
what passes here runs the same under ``celery -A wfrunner worker``.
"""

from __future__ import annotations

from wfrunner.testing.engine import RegisterWorkflow, RunWorkflow
from wfrunner.testing.plugin import (
    pytest_addoption,
    pytest_configure,
    register_workflow,
    run_workflow,
    wfrunner_app,
    wfrunner_broker_url,
    wfrunner_database,
    wfrunner_home,
    wfrunner_server_defaults,
    wfrunner_servers,
    wfrunner_session_database,
    wfrunner_worker,
)
from wfrunner.testing.servers import TestServers

__all__ = [
    "RegisterWorkflow",
    "RunWorkflow",
    "TestServers",
    "pytest_addoption",
    "pytest_configure",
    "register_workflow",
    "run_workflow",
    "wfrunner_app",
    "wfrunner_broker_url",
    "wfrunner_database",
    "wfrunner_home",
    "wfrunner_server_defaults",
    "wfrunner_servers",
    "wfrunner_session_database",
    "wfrunner_worker",
]
