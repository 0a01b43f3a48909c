"""The pure pieces of ``bench.capacity``: whose each logged Redis command is, and a
phase's counters with the benchmark's own polls and the idle share taken out."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

from bench.attribution import attribute
from bench.counters import Reading, phase_cost
from wfrunner.resources import lua_source

QUEUES = ["wfrunner.tasks", "wfrunner.completion"]
TASKS_9 = b"wfrunner.tasks\x06\x169"  # kombu's queue of priority 9
CUT = b"x" * 128 + b"... (872 more bytes)"  # a 1,000-byte argument as the slow log keeps it
KEYS = (b"2", b"wfr:{r}:meta", b"wfr:{r}:counter")
COMMIT = hashlib.sha1(lua_source("commit_node").encode(), usedforsecurity=False).hexdigest()


def entry(usec: int, client: bytes, *args: bytes) -> list[object]:
    """A SLOWLOG GET entry: id, time, microseconds, arguments, client address, name."""
    return [0, 0, usec, list(args), client, b""]


def test_commands_are_attributed_by_the_key_they_name() -> None:
    worker, caller = b"127.0.0.1:1", b"127.0.0.1:2"
    found = attribute(
        [
            entry(5, caller, b"LPUSH", TASKS_9, CUT),
            entry(3, worker, b"BRPOP", b"wfrunner.tasks", TASKS_9, b"1"),
            entry(1, worker, b"MULTI"),
            entry(2, worker, b"ZADD", b"unacked_index", b"1", b"tag"),
            entry(2, worker, b"HSET", b"unacked", b"tag", b"{}"),
            entry(90, worker, b"EVALSHA", COMMIT.encode(), *KEYS),
            entry(4, b"?:0", b"HSET", b"wfr:{r}:meta", b"state", b"RUNNING"),
            entry(1, caller, b"SUBSCRIBE", b"celery-task-meta-abc"),
            entry(1, caller, b"LLEN", b"wfrunner.tasks"),
            entry(1, caller, b"CLIENT", b"SETINFO", b"LIB-NAME", b"redis-py"),
        ],
        QUEUES,
    )  # fmt: skip
    assert found.commands == {
        "broker:LPUSH": 1, "broker:BRPOP": 1, "broker:MULTI": 1, "broker:ZADD": 1,
        "broker:HSET": 1, "state:EVALSHA": 1, "script:HSET": 1, "results:SUBSCRIBE": 1,
        "other:LLEN": 1, "other:CLIENT": 1,
    }  # fmt: skip
    assert found.kinds() == {"broker": 5, "state": 1, "script": 1, "results": 1, "other": 2}
    assert found.messages == {"wfrunner.tasks (priority 9)": 1}
    assert found.message_bytes == 1000  # 128 logged + 872 cut off
    assert found.script_calls == {"commit_node": 1}
    assert found.script_usec == {"commit_node": 90}


def test_a_phase_cost_leaves_out_the_benchmark_polls_and_the_idle_share() -> None:
    side: Any = SimpleNamespace(queues=QUEUES)
    before = Reading(0.0, {"cmd:llen": 10, "cmd:hlen": 5, "cmd:info": 2, "cmd:evalsha": 0,
                           "own_commands": 0, "xacts": 7, "own_statements": 3})  # fmt: skip
    # 4 looks at the queues (2 LLEN + 1 HLEN each), 2 INFO, 100 scripts over 10 s
    after = Reading(10.0, {"cmd:llen": 18, "cmd:hlen": 9, "cmd:info": 4, "cmd:evalsha": 100,
                           "own_commands": 12, "xacts": 20, "own_statements": 8})  # fmt: skip
    idle = {"cmd:evalsha": 0.5, "xacts": 0.1}
    cost = phase_cost(before, after, side, idle)
    assert cost["cmd:llen"] == 0 and cost["cmd:hlen"] == 0
    assert "cmd:info" not in cost
    assert cost["cmd:evalsha"] == 95  # 100 - 0.5/s x 10 s
    assert cost["xacts"] == 7  # 13 - 5 of our own statements - 0.1/s x 10 s


def test_with_the_broker_on_rabbitmq_messages_are_its_count_and_redis_is_all_state() -> None:
    from bench.capacity import Findings, Measured
    from bench.capacity_report import messages, rabbitmq_table, sizing_table
    from bench.ceilings import Ceiling

    on_redis = Measured("defaults", "chain-10", 10, 10.0, 1.0, {"cmd:lpush": 100.0,
                        "redis_cpu": 0.03}, "")  # fmt: skip
    on_rabbitmq = Measured("defaults", "chain-10", 10, 10.0, 1.0, {"amqp:published": 50.0,
                           "amqp:delivered": 50.0, "broker_cpu": 0.05, "redis_cpu": 0.03},
                           "")  # fmt: skip
    assert messages(on_redis) == 10.0 and messages(on_rabbitmq) == 5.0
    loop = Ceiling("task message (publish + consume + ack)", "", 1000, 1.0, 0.1)  # 100 µs
    sized = {}
    for measured in (on_redis, on_rabbitmq):
        table = sizing_table(Findings([measured], ceilings=[loop]), 0.5)
        sized[measured is on_rabbitmq] = table.splitlines()[2].split("|")[6].strip()
    # 300 µs/node of Redis CPU at 1,000 nodes/s: 0.3 cores; a message a node at 100 µs
    # is the broker's on Redis, none of it when RabbitMQ is the broker
    assert sized == {False: "0.2", True: "0.3"}
    # RabbitMQ's CPU: 0.05 s over 50 messages and 100 nodes
    assert "| 5.00 | 5.00 | 0.00 | 1,000 | 500 |" in rabbitmq_table(Findings([on_rabbitmq]))
