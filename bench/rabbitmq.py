"""A private RabbitMQ node for the benchmark, and the CPU its Erlang VM has used.

The node is the tests' own (:class:`tests.brokers.RabbitMQ`: its own name, ports, data and
cookie under a temporary folder, loopback only), so nobody else's messages or CPU are
counted. Its CPU is the ``beam.smp`` process's (user + system, psutil): RabbitMQ runs in
that one process, as a Redis runs in ``redis-server``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from bench.infra import BenchError

if TYPE_CHECKING:  # tests.brokers imports pytest: only --rabbitmq needs it
    from tests.brokers import RabbitMQ

#: the virtual host the benchmark uses on its node
VHOST = "bench"
#: Erlang flags the node starts with unless ``RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS`` is set
#: (set it empty for Erlang's defaults): no scheduler busy-waiting. An idle scheduler
#: otherwise spins before it sleeps: CPU that is no work, that a saturated node does not
#: spend, and that a node at a few hundred messages/s may add to every message (measured
#: both ways in docs/scaling.md; the difference was not established).
NO_BUSY_WAIT = "+sbwt none +sbwtdcpu none +sbwtdio none"


def start(stack: ExitStack) -> RabbitMQ:
    """Start a node (4-5 s on an idle machine); ``stack`` stops it and removes its folder."""
    from tests.brokers import RabbitMQ, rabbitmq_missing

    missing = rabbitmq_missing()
    if missing:
        raise BenchError(f"--rabbitmq: {missing}")
    os.environ.setdefault("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", NO_BUSY_WAIT)  # node.env()
    folder = Path(tempfile.mkdtemp(prefix="bench-rabbitmq-"))
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    node = RabbitMQ(folder)
    node.start()
    stack.callback(node.stop)
    node.vhost(VHOST)
    return node


def url(node: RabbitMQ) -> str:
    return node.url(VHOST)


def describe(node: RabbitMQ) -> str:
    """The node's version and Erlang flags, for the report."""
    done = node.ctl("version", check=False)
    flags = os.environ.get("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS") or "Erlang's defaults"
    return f"RabbitMQ {done.stdout.strip() or '(version unknown)'} ({flags})"


def beam_cpu(node: RabbitMQ) -> float:
    """CPU seconds (user + system) the node's ``beam.smp`` has used so far."""
    if node.proc is None:
        raise BenchError("the RabbitMQ node is not running")
    root = psutil.Process(node.proc.pid)
    for proc in [root, *root.children(recursive=True)]:
        if proc.name() == "beam.smp":
            times = proc.cpu_times()
            return float(times.user + times.system)
    raise BenchError(f"no beam.smp under the RabbitMQ node's process {node.proc.pid}")


#: Erlang printing the node's global AMQP 0-9-1 counters: received, delivered, acked
_COUNTERS = """
O = rabbit_global_counters:overview(),
P = maps:get([{protocol, amqp091}], O),
Q = [maps:get([{protocol, amqp091}, {queue_type, T}], O)
     || T <- [rabbit_classic_queue, rabbit_quorum_queue]],
Sum = fun(K) -> lists:sum([maps:get(K, M) || M <- Q]) end,
io:format("~b ~b ~b~n", [maps:get(messages_received_total, P),
                         Sum(messages_delivered_total), Sum(messages_acknowledged_total)]).
"""


def counters(node: RabbitMQ) -> dict[str, float]:
    """The node's messages so far (``amqp:published``, received from publishers;
    ``amqp:delivered``; ``amqp:acked``) and its CPU seconds (``broker_cpu``)."""
    cpu = beam_cpu(node)
    printed = node.ctl("eval", _COUNTERS).stdout.split()
    published, delivered, acked = (float(n) for n in printed[:3])
    return {
        "amqp:published": published,
        "amqp:delivered": delivered,
        "amqp:acked": acked,
        "broker_cpu": cpu,
    }


def depth(node: RabbitMQ, queues: list[str]) -> int:
    """Ready messages in ``queues`` (unacknowledged ones are not counted)."""
    from wfrunner.tasks.broker import amqp_depths

    return sum(amqp_depths(url(node), tuple(queues)).values())
