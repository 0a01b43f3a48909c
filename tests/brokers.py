"""A RabbitMQ node of the tests' own (Debian's ``rabbitmq-server``), never the machine's.

The node gets its own name, ports, data, log and (empty) plugin list under a temporary
folder, and its own ``HOME``, so its Erlang cookie is not the system node's either; it
listens on loopback only. Ports are taken below the kernel's ephemeral range (32768+),
where an outgoing connection could hold one between the check and the node's listen.

``WFRUNNER_TEST_BROKER=amqp`` makes the engine's test fixtures (the in-process worker,
the CLI-worker subprocesses, the fault clusters) use such a node as their Celery broker;
the run state stays on the test Redis. Each user of the node gets a virtual host of its
own, so no test sees another's messages.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

#: the switch: "redis" (default) or "amqp"
BROKER_VARIABLE = "WFRUNNER_TEST_BROKER"
SCRIPTS = Path("/usr/lib/rabbitmq/bin")
#: seconds the node may take to boot (4-5 s here)
BOOT_TIMEOUT = 90


def broker_choice() -> str:
    value = (os.environ.get(BROKER_VARIABLE) or "redis").strip().lower()
    if value not in ("redis", "amqp"):
        raise ValueError(f"{BROKER_VARIABLE}={value!r}: expected 'redis' or 'amqp'")
    return value


def redis_broker_only(reason: str) -> pytest.MarkDecorator:
    """Skip under ``WFRUNNER_TEST_BROKER=amqp``: the test drives a Redis-broker mechanism
    (``reason`` says which)."""
    return pytest.mark.skipif(broker_choice() == "amqp", reason=f"Redis broker only: {reason}")


def rabbitmq_missing() -> str | None:
    """Why no node can be started here, or None."""
    if not (SCRIPTS / "rabbitmq-server").exists():
        return "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
    return None


def _free_port(taken: set[int]) -> int:
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port between 20000 and 32000")


class RabbitMQ:
    """One ``rabbitmq-server`` node; :meth:`vhost` hands out fresh virtual hosts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.node = f"wfrtest-{os.getpid()}-{uuid.uuid4().hex[:6]}@localhost"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "server.log"

    def env(self) -> dict[str, str]:
        plugins = self.folder / "enabled_plugins"
        plugins.touch()
        config = self.folder / "rabbitmq.conf"
        if not config.exists():
            config.write_text("")
        return {
            **os.environ,
            "HOME": str(self.folder),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        }

    def start(self) -> None:
        """Start the node and wait until it serves; tries other ports if one was taken."""
        errors = []
        for _ in range(3):
            self.port = _free_port(set())
            self.dist_port = _free_port({self.port})
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen(
                    [str(SCRIPTS / "rabbitmq-server")],
                    env=self.env(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._distribution_up():  # before it, the CLI finds no node at all
                waited = self.ctl("await_startup", "--timeout", str(BOOT_TIMEOUT), check=False)
                if waited.returncode == 0:
                    return
                errors.append(waited.stdout + waited.stderr)
            else:
                errors.append("the node's distribution port never opened")
            self.kill()
        raise RuntimeError(f"rabbitmq-server did not start:\n{errors[-1]}\n{self.tail()}")

    def _distribution_up(self) -> bool:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.dist_port), timeout=1),
            ):
                return True
            time.sleep(0.1)
        return False

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(SCRIPTS / "rabbitmqctl"), "-n", self.node, "-q", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=BOOT_TIMEOUT + 30,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
        return done

    def vhost(self, name: str) -> str:
        """A new virtual host ``name`` (a name not used before), open to the guest user;
        its amqp:// URL."""
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return self.url(name)

    def drop_vhost(self, name: str) -> None:
        self.ctl("delete_vhost", name, check=False)

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def queue_types(self, vhost: str) -> dict[str, str]:
        """Queue name -> type ("quorum", "classic") in ``vhost``, as the server says."""
        listed = self.ctl("list_queues", "-p", vhost, "name", "type", "--no-table-headers")
        rows = (line.split("\t") for line in listed.stdout.splitlines() if "\t" in line)
        return {name.strip(): kind.strip() for name, kind in rows}

    def stop(self) -> None:
        if self.proc is None:
            return
        self.ctl("stop", check=False)
        self.kill()

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self.proc = None
        shutil.rmtree(self.folder / "mnesia", ignore_errors=True)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
