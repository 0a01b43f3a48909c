"""The broker apart from the state Redis (WFRUNNER_BROKER_URL): the settings each kind of
broker gets, where start_run's result goes, and which celeryconfig brokers are refused."""

from __future__ import annotations

import pytest

from wfrunner.errors import ConfigurationError
from wfrunner.settings import Settings
from wfrunner.tasks.broker import countdown
from wfrunner.tasks.config import celery_settings, check_broker

STATE = "redis://127.0.0.1:6379/8"
RABBIT = "amqp://guest:guest@rabbit:5672/wfr"


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_without_a_broker_url_the_state_redis_is_the_broker_and_backend() -> None:
    conf = celery_settings(settings(), STATE)
    assert conf["broker_url"] == conf["result_backend"] == STATE
    assert conf["broker_transport"] == "wfrunner.tasks.transport:Transport"
    assert conf["task_queues"] is None


def test_a_redis_broker_apart_keeps_the_results() -> None:
    other = "redis://broker:6379/0"
    conf = celery_settings(settings(WFRUNNER_BROKER_URL=other), STATE)
    assert conf["broker_url"] == conf["result_backend"] == other


def test_rabbitmq_gets_quorum_queues_on_topic_exchanges_and_confirms() -> None:
    conf = celery_settings(settings(WFRUNNER_BROKER_URL=RABBIT), STATE)
    assert conf["broker_url"] == RABBIT
    assert conf["broker_transport"] is None  # kombu's py-amqp transport
    assert conf["broker_transport_options"] == {"confirm_publish": True}
    queues = {q.name: q for q in conf["task_queues"]}
    assert set(queues) == {"wfrunner.tasks", "wfrunner.completion"}
    for name, queue in queues.items():
        assert queue.queue_arguments == {"x-queue-type": "quorum"}
        assert queue.durable
        assert (queue.exchange.name, queue.exchange.type) == (name, "topic")
    assert conf["result_backend"] == STATE  # a plain redis:// state keeps the results


@pytest.mark.parametrize(
    ("state", "override", "backend"),
    [
        ("redis+cluster://a:7000", None, "rpc://"),  # a Redis Cluster cannot be one
        ("redis+cluster://a:7000", "redis://results:6379/2", "redis://results:6379/2"),
        (STATE, "rpc://", "rpc://"),
    ],
)
def test_the_result_backend_on_rabbitmq(state: str, override: str | None, backend: str) -> None:
    env = {
        "WFRUNNER_BROKER_URL": RABBIT,
        **({"WFRUNNER_RESULT_BACKEND": override} if override else {}),
    }
    conf = celery_settings(Settings.from_env(env), state)
    assert conf["result_backend"] == backend
    redis_options = {"visibility_timeout": 3600}
    assert conf["result_backend_transport_options"] == (
        {} if backend == "rpc://" else redis_options
    )


def test_an_unsupported_broker_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="sqs://q is not supported"):
        celery_settings(settings(WFRUNNER_BROKER_URL="sqs://q"), STATE)


@pytest.mark.parametrize(
    "same",
    [RABBIT, "pyamqp://guest:guest@rabbit/wfr", "amqp://other:pw@rabbit:5672/wfr"],
)
def test_a_celeryconfig_naming_the_same_rabbitmq_is_accepted(same: str) -> None:
    env = {"WFRUNNER_REDIS_URL": STATE, "WFRUNNER_BROKER_URL": RABBIT}
    check_broker({"broker_url": same}, STATE, env)


@pytest.mark.parametrize("other", ["amqp://guest:guest@rabbit:5672/", "amqp://rabbit2/wfr", STATE])
def test_a_celeryconfig_naming_another_broker_is_refused(other: str) -> None:
    env = {"WFRUNNER_REDIS_URL": STATE, "WFRUNNER_BROKER_URL": RABBIT}
    with pytest.raises(ConfigurationError) as refused:
        check_broker({"broker_url": other}, STATE, env)
    assert "is not wfrunner's broker, WFRUNNER_BROKER_URL=amqp://guest:***@rabbit" in str(
        refused.value
    )


def test_a_celeryconfig_cannot_move_the_broker_off_the_state_redis_to_rabbitmq() -> None:
    with pytest.raises(ConfigurationError, match="set WFRUNNER_BROKER_URL"):
        check_broker({"broker_url": RABBIT}, STATE, {"WFRUNNER_REDIS_URL": STATE})


@pytest.mark.parametrize(("asked", "published"), [(0.3, 1.0), (1.0, 1.0), (2.5, 2.5)])
def test_rabbitmq_countdowns_are_at_least_a_second(asked: float, published: float) -> None:
    """Celery's native delayed delivery refuses a countdown under one second."""
    assert countdown({"broker_url": RABBIT}, asked) == published
    assert countdown({"broker_url": STATE}, asked) == asked
