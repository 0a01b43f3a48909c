"""The per-process context shared by tasks, the CLI and the API: settings, the resolved
server URLs, a Redis client, the Store, and a cache of compiled workflows.

Built lazily on first use and rebuilt after a fork (:func:`reset`), because connection
pools must not be shared between a prefork parent and its children.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cached_property
from typing import Any

import redis

from wfrunner import handlers, redisclient
from wfrunner.compiler.ir import IR, IRNode
from wfrunner.engine.executor import Executor, Limits
from wfrunner.engine.leases import LeaseKeeper
from wfrunner.engine.runstate import RunState
from wfrunner.engine.tokens import Token
from wfrunner.servers import resolve_database_url, resolve_redis_url
from wfrunner.settings import Settings
from wfrunner.store import Store
from wfrunner.versions import split_reference

#: compiled workflows a process keeps (the least recently used one goes first)
IR_CACHE_SIZE = 128


class Runtime:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._irs: OrderedDict[str, tuple[IR, str, int]] = OrderedDict()
        self._lock = threading.Lock()
        handlers.load_modules(self.settings.handler_modules)

    @cached_property
    def redis_url(self) -> str:
        return resolve_redis_url(self.settings.redis_url, self.settings.home)

    @cached_property
    def database_url(self) -> str:
        url = resolve_database_url(self.settings.database_url, self.settings.home)
        if self.settings.database_url is None:
            # the embedded database is ours: keep its schema current
            from wfrunner.store import migrate

            migrate.upgrade(url)
        return url

    @cached_property
    def redis(self) -> redis.Redis:
        # a call whose reply was lost is sent again with the same arguments: every script
        # is idempotent per op key and nonce, so the retry is answered as already applied
        # (one server, or a Redis Cluster: wfrunner/redisclient.py)
        return redisclient.connect(self.redis_url, decode_responses=True, health_check_interval=30)

    @cached_property
    def state(self) -> RunState:
        return RunState(
            self.redis,
            flush_every=float(self.settings.flush_interval),
            lease_seconds=float(self.settings.lease_seconds),
            reconcile_every=float(self.settings.reconcile_interval),
            shards=self.settings.background_shards,
        )

    @cached_property
    def leases(self) -> LeaseKeeper:
        """The process's lease heartbeat (one thread, started by the first lease)."""
        return LeaseKeeper(self.state, float(self.settings.lease_seconds))

    @cached_property
    def store(self) -> Store:
        return Store(self.database_url, prepare=self.settings.pg_prepare)

    @cached_property
    def executor(self) -> Executor:
        settings = self.settings
        return Executor(
            self.state,
            Limits(
                max_payload_bytes=settings.max_payload_bytes,
                payload_warn_bytes=settings.payload_warn_bytes,
                max_deliveries=settings.max_deliveries,
                http_timeout_s=float(settings.http_timeout),
                max_loop_passes=settings.max_loop_passes,
                handler_concurrency=dict(settings.handler_concurrency),
                max_map_items=settings.max_map_items,
            ),
            self.leases,
            launch=self._launch,
        )

    def _launch(self, token: Token, node: IRNode, node_input: Any, child_run_id: str) -> None:
        """Start a subworkflow node's child run (:func:`wfrunner.subflows.launch`)."""
        from wfrunner import subflows

        subflows.launch(self, token, node, node_input, child_run_id)

    def ir(self, workflow_id: str) -> IR:
        """The compiled workflow; workflows never change under an id, so it is cached, the
        ``IR_CACHE_SIZE`` most recently used ones: a worker that sees many workflows over
        its life must not keep every one of them."""
        return self._workflow(workflow_id)[0]

    def workflow_name(self, workflow_id: str) -> str:
        """The name the workflow was registered under (the ``workflow`` label of metrics
        and spans), cached with its IR: no read of its own."""
        return self._workflow(workflow_id)[1]

    def workflow_version(self, workflow_id: str) -> int:
        """The version number of the workflow under its name, cached with its IR."""
        return self._workflow(workflow_id)[2]

    def resolve_workflow(self, reference: str, version: int | None = None) -> str:
        """The id of the workflow a user named (:mod:`wfrunner.versions`): a known id is
        answered from the cache, with no read; a name is looked up each time, since a new
        version may have been registered since."""
        name, version = split_reference(reference, version)
        if version is None:
            with self._lock:
                if name in self._irs:
                    return name
        record = self.store.resolve_workflow(name, version)
        with self._lock:
            self._remember(record.id, (IR.from_dict(record.ir), record.name, record.version))
        return record.id

    def _remember(self, workflow_id: str, cached: tuple[IR, str, int]) -> None:
        self._irs[workflow_id] = cached
        self._irs.move_to_end(workflow_id)
        while len(self._irs) > IR_CACHE_SIZE:
            self._irs.popitem(last=False)

    def _workflow(self, workflow_id: str) -> tuple[IR, str, int]:
        with self._lock:
            cached = self._irs.get(workflow_id)
            if cached is not None:
                self._irs.move_to_end(workflow_id)
                return cached
        record = self.store.get_workflow(workflow_id)
        cached = IR.from_dict(record.ir), record.name, record.version
        with self._lock:
            self._remember(workflow_id, cached)
        return cached

    def close(self) -> None:
        if "leases" in self.__dict__:
            self.leases.close()
        if "redis" in self.__dict__:
            self.redis.close()
        if "store" in self.__dict__:
            self.store.close()


_current: Runtime | None = None
_current_lock = threading.Lock()


def runtime() -> Runtime:
    global _current
    if _current is None:
        with _current_lock:
            if _current is None:
                _current = Runtime()
    return _current


def reset() -> None:
    """Forget the process's runtime (after a fork, or when settings changed in tests)."""
    global _current
    with _current_lock:
        if _current is not None:
            _current.close()
        _current = None
