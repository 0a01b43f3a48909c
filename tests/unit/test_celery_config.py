"""The Celery settings wfrunner chooses for speed: no task events unless asked for (each is
a publish per task; Flower turns a worker's on when it connects)."""

from __future__ import annotations

import pytest

from wfrunner.errors import ConfigurationError
from wfrunner.settings import Settings
from wfrunner.tasks.config import PREFETCH_MULTIPLIER, celery_settings, check_broker


def test_task_events_are_off_by_default() -> None:
    conf = celery_settings(Settings.from_env({}), "redis://x")
    assert conf["worker_send_task_events"] is False
    assert conf["task_send_sent_event"] is False


@pytest.mark.parametrize("value", ["1", "true", "yes", "on"])
def test_task_events_can_be_always_on(value: str) -> None:
    conf = celery_settings(Settings.from_env({"WFRUNNER_TASK_EVENTS": value}), "redis://x")
    assert conf["worker_send_task_events"] is True
    assert conf["task_send_sent_event"] is True


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_task_events_can_be_said_off(value: str) -> None:
    assert Settings.from_env({"WFRUNNER_TASK_EVENTS": value}).task_events is False


def test_a_value_that_is_neither_on_nor_off_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="WFRUNNER_TASK_EVENTS='maybe' must be 1 or 0"):
        Settings.from_env({"WFRUNNER_TASK_EVENTS": "maybe"})


def test_late_acks_stay_whatever_the_prefetch() -> None:
    """A reserved message is acknowledged only once its task has run (at-least-once)."""
    conf = celery_settings(Settings(), "redis://x")
    assert conf["worker_prefetch_multiplier"] == PREFETCH_MULTIPLIER
    assert conf["task_acks_late"] is True


STATE = "redis://127.0.0.1:6379/8"


@pytest.mark.parametrize(
    "same",
    [STATE, "redis://localhost:6379/8", "redis://127.0.0.1/8", "redis://:pw@127.0.0.1:6379/8"],
)
def test_a_broker_on_wfrunners_redis_is_accepted(same: str) -> None:
    check_broker({"broker_url": same}, STATE, {"WFRUNNER_REDIS_URL": STATE})


@pytest.mark.parametrize("key", ["broker_url", "broker_read_url", "broker_write_url"])
@pytest.mark.parametrize("other", ["redis://127.0.0.1:6379/9", "redis://other:6379/8"])
def test_a_broker_elsewhere_is_refused_naming_both_urls(key: str, other: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_broker({key: other}, STATE, {"WFRUNNER_REDIS_URL": STATE})
    message = str(refused.value)
    assert f"celeryconfig.{key}={other}" in message
    assert f"WFRUNNER_REDIS_URL={STATE}" in message
    assert "\n" not in message


def test_celery_b_is_checked_too_and_passwords_are_hidden() -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_broker({}, STATE, {"CELERY_BROKER_URL": "redis://:hunter2@elsewhere:6379/0"})
    message = str(refused.value)
    assert "CELERY_BROKER_URL (celery -b)=redis://:***@elsewhere:6379/0" in message
    assert f"the embedded Redis {STATE} (WFRUNNER_REDIS_URL is unset)" in message
    assert "hunter2" not in message
