"""A real Redis Cluster for the tests: three masters with one replica each, six
``redis-server --cluster-enabled yes`` processes on free loopback ports, joined by
``redis-cli --cluster create``.

``WFRUNNER_TEST_STATE=cluster`` puts wfrunner's hot state on it for the e2e, integration
and fault suites (the Celery broker stays on the test Redis database); the tests of
tests/cluster/ always run on it. The node timeout is short (2 s) so that a killed master's
replica promotes itself within seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

#: how long a master may be unreachable before the cluster fails it over (ms)
NODE_TIMEOUT_MS = 2000
MASTERS = 3

#: WFRUNNER_TEST_STATE=cluster: the suites put the hot state on a cluster of their own
STATE_VARIABLE = "WFRUNNER_TEST_STATE"


def state_on_cluster() -> bool:
    """Whether this session keeps wfrunner's hot state on a Redis Cluster."""
    value = os.environ.get(STATE_VARIABLE, "").strip().lower()
    if value not in ("", "redis", "cluster"):
        raise ValueError(f"{STATE_VARIABLE}={value!r}: expected 'cluster' or 'redis'")
    return value == "cluster"


def cluster_supported() -> bool:
    """redis-server and redis-cli are installed and the server knows cluster mode."""
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        return False
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    digits = version.stdout.split("v=", 1)[-1].split(".", 1)[0]
    return digits.isdigit() and int(digits) >= 5  # redis-cli --cluster since 5


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 < 65536 and _bindable(port + 10000):
            return port


@dataclass
class ClusterNodeProcess:
    """One ``redis-server`` of the cluster."""

    folder: Path
    port: int = field(default_factory=cluster_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.port}.log"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{self.port}.conf"]
        args += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(self.folder)]
        args += ["--save", "", "--appendonly", "no", "--logfile", str(self.log)]
        self.proc = subprocess.Popen(args, start_new_session=True)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def alive(self) -> bool:
        with contextlib.suppress(redis.RedisError), self.client() as c:
            return bool(c.ping())
        return False

    def kill(self) -> None:
        """SIGKILL: the node dies without a word to the others."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class RedisClusterProcesses:
    """Three masters and three replicas on loopback, created empty."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.nodes = [ClusterNodeProcess(folder) for _ in range(MASTERS * 2)]

    @property
    def url(self) -> str:
        """The state URL wfrunner takes (every node is a startup node)."""
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        _until(lambda: all(n.alive() for n in self.nodes), "every node answers PING")
        create = ["redis-cli", "--cluster", "create", *(n.address for n in self.nodes)]
        create += ["--cluster-replicas", "1", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says cluster_state:ok and agrees on three masters."""
        _until(self._ok, "cluster_state:ok on every live node", timeout)

    def _ok(self) -> bool:
        """Every live node says cluster_state:ok, and every slot's master is alive (a
        killed master stays in the slot map until its replica has taken over)."""
        live = {n.address for n in self.nodes if n.proc is not None}
        for node in self.nodes:
            if node.proc is None:
                continue
            with node.client() as c:
                try:
                    if c.cluster("info").get("cluster_state") != "ok":
                        return False
                    owners = {f"{e[2][0]}:{int(e[2][1])}" for e in _slot_ranges(c)}
                except redis.RedisError:
                    return False
            if not owners <= live or len(owners) != MASTERS:
                return False
        return True

    def master_of(self, key: str) -> ClusterNodeProcess:
        """The live node that serves ``key``'s slot now."""
        for node in self.nodes:
            if node.proc is None:
                continue
            with node.client() as c:
                owner = _owner(c, int(c.cluster("keyslot", key)))
            return self.node_at(owner)
        raise RuntimeError("no live node")

    def masters(self) -> list[ClusterNodeProcess]:
        """The live nodes that are masters now."""
        found = []
        for node in self.nodes:
            if node.proc is None:
                continue
            with node.client() as c:
                if c.info("replication")["role"] == "master":
                    found.append(node)
        return found

    def node_at(self, address: str) -> ClusterNodeProcess:
        for node in self.nodes:
            if node.address == address:
                return node
        raise KeyError(address)

    def flush(self) -> None:
        """Empty every master (replicas follow)."""
        for node in self.nodes:
            if node.proc is None:
                continue
            with node.client() as c, contextlib.suppress(redis.ReadOnlyError):
                if c.info("replication")["role"] == "master":
                    c.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def _slot_ranges(client: redis.Redis) -> list[list[object]]:
    return list(client.execute_command("CLUSTER", "SLOTS"))


def _owner(client: redis.Redis, slot: int) -> str:
    for entry in _slot_ranges(client):
        start, end, master = int(entry[0]), int(entry[1]), entry[2]
        if start <= slot <= end:
            return f"{master[0]}:{int(master[1])}"
    raise RuntimeError(f"slot {slot} is not covered")


def _until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise RuntimeError(f"Redis Cluster: gave up waiting for {what}")
