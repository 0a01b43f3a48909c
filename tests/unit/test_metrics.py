"""The metrics' names for kombu's priority lists, and WFRUNNER_METRICS_PORT / WFRUNNER_OTEL
read as settings (a bad value names the variable)."""

from __future__ import annotations

import pytest

from wfrunner.errors import ConfigurationError
from wfrunner.metrics import queue_keys
from wfrunner.settings import Settings


def test_queue_keys_one_list_per_priority_step() -> None:
    assert queue_keys("wfrunner.tasks", (0, 3, 6, 9), "\x06\x16") == [
        "wfrunner.tasks",
        "wfrunner.tasks\x06\x163",
        "wfrunner.tasks\x06\x166",
        "wfrunner.tasks\x06\x169",
    ]


def test_settings_defaults_off() -> None:
    settings = Settings.from_env({})
    assert settings.metrics_port == 0 and settings.otel is False
    on = Settings.from_env({"WFRUNNER_METRICS_PORT": "9808", "WFRUNNER_OTEL": "1"})
    assert on.metrics_port == 9808 and on.otel is True


@pytest.mark.parametrize(
    "env, message",
    [
        ({"WFRUNNER_METRICS_PORT": "http"}, "WFRUNNER_METRICS_PORT='http' is not a whole number"),
        ({"WFRUNNER_METRICS_PORT": "70000"}, "WFRUNNER_METRICS_PORT=70000 is not a port"),
        ({"WFRUNNER_METRICS_PORT": "-1"}, "WFRUNNER_METRICS_PORT=-1 must be at least 0"),
        ({"WFRUNNER_OTEL": "maybe"}, "WFRUNNER_OTEL='maybe' must be 1 or 0"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)
