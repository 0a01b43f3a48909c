"""The state URL of a Redis Cluster: how it is spelled, what it builds (no server is
reached: a RedisCluster client connects on first use... except for discovery, so only
parsing and refusals are checked here), and the broker it requires."""

from __future__ import annotations

import pytest

from wfrunner.errors import ConfigurationError
from wfrunner.redisclient import is_cluster_url, redact_cluster
from wfrunner.servers import redact
from wfrunner.settings import Settings
from wfrunner.tasks.broker import broker_kind, broker_url
from wfrunner.tasks.config import celery_settings


@pytest.mark.parametrize(
    ("url", "cluster"),
    [
        ("redis+cluster://10.0.0.5:6379", True),
        ("REDISS+CLUSTER://a:1,b:2", True),
        ("redis://127.0.0.1:6379/0", False),
        ("rediss://host:6380", False),
        ("unix:///tmp/redis.sock", False),
    ],
)
def test_a_cluster_url_is_told_by_its_scheme(url: str, cluster: bool) -> None:
    assert is_cluster_url(url) is cluster


def test_a_cluster_urls_password_is_hidden() -> None:
    url = "rediss+cluster://app:s3cret@10.0.0.5:6379,10.0.0.6:6379?socket_timeout=5"
    assert (
        redact_cluster(url)
        == "rediss+cluster://app:***@10.0.0.5:6379,10.0.0.6:6379?socket_timeout=5"
    )
    assert redact(url) == redact_cluster(url)
    assert "s3cret" not in redact(url)


def test_a_cluster_holds_state_but_is_refused_as_broker() -> None:
    cluster = "redis+cluster://10.0.0.5:6379"
    with pytest.raises(ConfigurationError, match="set WFRUNNER_BROKER_URL=redis://"):
        broker_kind(broker_url(Settings(redis_url=cluster), cluster))
    with pytest.raises(ConfigurationError, match="cannot be Celery's broker"):
        celery_settings(Settings(broker_url=cluster), "redis://127.0.0.1:6379/0")


def test_the_broker_is_the_state_redis_unless_named() -> None:
    assert broker_url(Settings(), "redis://a:6379/0") == "redis://a:6379/0"
    named = Settings.from_env({"WFRUNNER_BROKER_URL": "redis://broker:6379/1"})
    assert broker_url(named, "redis+cluster://a:6379") == "redis://broker:6379/1"
