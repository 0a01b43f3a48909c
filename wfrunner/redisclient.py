"""The Redis client of wfrunner's hot state: one server, or a Redis Cluster.

A state URL names one Redis (``redis://``, ``rediss://``, ``unix://``) or a cluster::

    redis+cluster://[user:password@]host:port[,host:port...][?option=value...]
    rediss+cluster://...                                     (TLS to every node)

The cluster's nodes listed are only where discovery starts (any one that answers is
enough; the client learns the others from ``CLUSTER SLOTS``). Every key of a run shares the
hash tag ``{run_id}`` (:mod:`wfrunner.engine.keys`), so each Lua script, transaction and
multi-key command of a run goes to the one master owning the run's slot, and runs spread
over the masters. Replicas are never read (no ``load_balancing_strategy``): a replica may lag
its master, and the engine's reads decide what it writes next.

Celery cannot use a cluster as broker or result backend (kombu's Redis transport needs one
server): with a cluster state URL, ``WFRUNNER_BROKER_URL`` must name the broker.

Both clients get the same retry policy: a call whose reply was lost is sent again with
the same arguments, which every script answers as already applied (they are idempotent per
op key and nonce). On a cluster the retries also follow MOVED and ASK redirections and
refresh the slot map after a failover.
"""

from __future__ import annotations

import re
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    ClusterDownError,
    RedisClusterUnreachableError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.retry import Retry

from wfrunner.errors import ConfigurationError

#: cluster scheme -> the scheme of its nodes
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
DEFAULT_PORT = 6379


#: Redis away for a while (a lost connection, or a cluster whose slot has no master until
#: a replica is promoted): worth trying again, as every script is idempotent
UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
    RedisClusterUnreachableError,
)


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def retry_policy() -> Retry:
    """Five retries, 50 ms doubling to 2 s apart: the policy of every state client."""
    return Retry(ExponentialBackoff(cap=2.0, base=0.05), 5)


def connect(url: str, *, retry: bool = True, **options: Any) -> redis.Redis:
    """A client of the state URL ``url``, with ``options`` (``decode_responses``,
    timeouts) passed to its connections; ``retry``: with :func:`retry_policy` (a probe
    that must answer at once goes without). A :class:`~redis.cluster.RedisCluster` for a
    cluster URL, typed as ``redis.Redis``: it answers every command wfrunner sends one
    server (the scripts, pipelines and pub/sub of a run stay in one slot)."""
    policy = retry_policy() if retry else Retry(NoBackoff(), 0)
    if is_cluster_url(url):
        return cast(redis.Redis, connect_cluster(url, policy, **options))
    if retry:
        options.setdefault("retry_on_timeout", True)
    return redis.Redis.from_url(url, retry=policy, **options)


def connect_cluster(url: str, policy: Retry | None = None, **options: Any) -> RedisCluster:
    """The :class:`RedisCluster` of a ``redis+cluster://`` URL (``policy``: its retries,
    by default :func:`retry_policy`)."""
    scheme, _, rest = url.partition("://")
    netloc = re.split(r"[/?]", rest, maxsplit=1)[0]
    tail = urlsplit(f"{CLUSTER_SCHEMES[scheme.lower()]}://node{rest[len(netloc) :]}")
    if tail.path.strip("/") not in ("", "0"):
        raise ConfigurationError(
            f"{redact_cluster(url)}: a Redis Cluster has only database 0; drop the "
            f"'{tail.path}' after the hosts"
        )
    userinfo, _, hosts = netloc.rpartition("@")
    nodes = [_node(url, host) for host in hosts.split(",") if host.strip()]
    if not nodes:
        raise ConfigurationError(
            f"{redact_cluster(url)} names no node: expected redis+cluster://host:port[,...]"
        )
    username, _, password = userinfo.partition(":")
    if username:
        options.setdefault("username", unquote(username))
    if password:
        options.setdefault("password", unquote(password))
    if tail.scheme == "rediss":
        options.setdefault("ssl", True)
    return RedisCluster(
        startup_nodes=nodes,
        retry=policy or retry_policy(),  # (no load_balancing_strategy: masters only)
        **{**_typed(dict(parse_qsl(tail.query))), **options},
    )


def _node(url: str, host: str) -> ClusterNode:
    host = host.strip()
    try:
        parsed = urlsplit(f"redis://{host}")
        port = parsed.port or DEFAULT_PORT
        name = parsed.hostname
    except ValueError:
        name = None
    if not name:
        raise ConfigurationError(
            f"{redact_cluster(url)}: {host!r} is not host:port (e.g. 10.0.0.5:6379)"
        )
    return ClusterNode(name, port)  # type: ignore[no-untyped-call]


def _typed(query: dict[str, str]) -> dict[str, Any]:
    """Query options as the client takes them: numbers, flags as booleans."""
    typed: dict[str, Any] = {}
    for name, value in query.items():
        if value.lower() in ("true", "yes", "false", "no"):
            typed[name] = value.lower() in ("true", "yes")
        elif re.fullmatch(r"\d+", value):
            typed[name] = int(value)
        else:
            try:
                typed[name] = float(value)
            except ValueError:
                typed[name] = value
    return typed


def redact_cluster(url: str) -> str:
    """A cluster URL with its password replaced by ``***``."""
    scheme, _, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hosts}"


def primaries(client: redis.Redis) -> list[redis.Redis]:
    """A client per master: the one server itself, or each primary of a cluster (what
    must be asked something no key routes, such as ``INFO`` or ``SCAN``)."""
    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]
