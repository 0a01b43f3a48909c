"""Pure decisions of the concurrency limits: the DSL field, handler registration and its
environment override, which nodes pay for a slot, and the words that say why one waits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import wfrunner
from wfrunner import handlers, waits
from wfrunner.compiler import compile_workflow
from wfrunner.compiler.ir import IR, IRNode
from wfrunner.engine import handler_slots
from wfrunner.errors import CompileError, ConfigurationError
from wfrunner.runlimits import Admission, name_of, submitted_score, waiting_reason, workflow_keys
from wfrunner.settings import Settings


def workflow(**extra: Any) -> dict[str, Any]:
    return {
        "nodes": [{"id": "a", "type": "function", "config": {"function_name": "f"}}],
        "edges": [],
        **extra,
    }


def test_max_runs_reaches_the_ir_and_survives_storing_it() -> None:
    ir = compile_workflow(workflow(concurrency={"max_runs": 3}))
    assert ir.max_runs == 3
    assert IR.from_dict(ir.to_dict()).max_runs == 3
    plain = compile_workflow(workflow())
    assert plain.max_runs is None and "concurrency" not in plain.to_dict()


@pytest.mark.parametrize(
    ("concurrency", "problem"),
    [
        ({"max_runs": 0}, "workflow.concurrency.max_runs: is 0; it must be at least 1"),
        ({"max_runs": 2.5}, "workflow.concurrency.max_runs: must be of type integer, not 2.5"),
        ({"max_runs": True}, "workflow.concurrency.max_runs: must be of type integer, not true"),
        ({}, "workflow.concurrency: missing required field 'max_runs'"),
        (
            {"max_runs": 2, "per": "tenant"},
            "workflow.concurrency: has unknown field 'per'; expected: 'max_runs'",
        ),
        ("2", 'workflow.concurrency: must be of type object, not "2"'),
    ],
)
def test_a_bad_concurrency_is_one_problem_naming_the_field(concurrency: Any, problem: str) -> None:
    with pytest.raises(CompileError) as caught:
        compile_workflow(workflow(concurrency=concurrency))
    assert str(caught.value).splitlines()[1:] == [f"  - {problem}"]


def test_a_handler_limit_is_registered_with_it() -> None:
    @wfrunner.handler("unit.limited", max_concurrency=3)
    def limited(value: Any, config: dict[str, Any]) -> Any:
        return value

    assert handlers.max_concurrency("unit.limited") == 3
    assert handlers.max_concurrency("unit.no-such-handler") is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_bad_handler_limit_is_refused_at_registration(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"'unit\.bad': max_concurrency must be"):
        wfrunner.handler("unit.bad", max_concurrency=bad)


def test_the_environment_override_is_parsed_and_checked() -> None:
    assert handlers.parse_concurrency(" charge=2, refund = 1 ,") == {"charge": 2, "refund": 1}
    assert handlers.parse_concurrency("") == {}
    env = {"WFRUNNER_HANDLER_CONCURRENCY": "charge=2"}
    assert Settings.from_env(env).handler_concurrency == (("charge", 2),)
    for bad in ("charge", "charge=0", "=2", "charge=two"):
        with pytest.raises(ConfigurationError, match="WFRUNNER_HANDLER_CONCURRENCY: "):
            Settings.from_env({"WFRUNNER_HANDLER_CONCURRENCY": bad})


def node(function_name: str | None, node_type: str = "function") -> IRNode:
    config = {"function_name": function_name} if function_name else {"expression": "1"}
    return IRNode(id="n", type=node_type, config=config)


def test_only_nodes_of_a_limited_handler_take_a_slot() -> None:
    @wfrunner.handler("unit.capped", max_concurrency=4)
    def capped(value: Any, config: dict[str, Any]) -> Any:
        return value

    assert handler_slots.cap(node("unit.capped"), {}) == 4
    assert handler_slots.cap(node("unit.capped"), {"unit.capped": 1}) == 1  # the override wins
    assert handler_slots.cap(node("unit.other"), {"unit.other": 2}) == 2
    assert handler_slots.cap(node("unit.other"), {}) is None
    assert handler_slots.cap(node(None, "transform"), {"unit.capped": 1}) is None


def test_a_put_off_delivery_comes_back_soon_and_spread() -> None:
    delays = [handler_slots.look_again_in(None) for _ in range(200)]
    assert all(
        0.5 * handler_slots.LOOK_AGAIN_MAX <= d <= handler_slots.LOOK_AGAIN_MAX for d in delays
    )
    assert len(set(delays)) > 100
    assert all(handler_slots.look_again_in(0.2) <= 0.2 for _ in range(50))
    assert all(handler_slots.look_again_in(-3) >= 0.025 for _ in range(50))


def test_why_a_run_or_a_node_waits() -> None:
    assert waiting_reason("etl", 2, 2, 3) == (
        "waiting for a slot: 2 of 2 runs of 'etl' running; 3rd in the queue"
    )
    assert waiting_reason("etl", 1, 1, None) == "waiting for a slot: 1 of 1 runs of 'etl' running"
    words = [waiting_reason("w", 1, 1, n).rsplit("; ", 1)[1] for n in (1, 2, 11, 12, 21, 113)]
    assert words == [
        "1st in the queue",
        "2nd in the queue",
        "11th in the queue",
        "12th in the queue",
        "21st in the queue",
        "113th in the queue",
    ]
    assert handler_slots.waiting_reason("charge", 2, 2) == "handler 'charge' slots (2 of 2 busy)"


def test_keys_and_replies() -> None:
    assert workflow_keys("etl") == ["wfr:{wf:etl}:slots", "wfr:{wf:etl}:queue", "wfr:{wf:etl}:max"]
    assert name_of("wfr:{wf:a%7Bb%7D}:queue") == "a{b}"
    assert handler_slots.handler_keys("pay.charge") == [
        "wfr:{h:pay.charge}:slots",
        "wfr:{h:pay.charge}:max",
    ]
    assert handler_slots.name_of("wfr:{h:pay.charge}:max") == "pay.charge"
    assert Admission.parse([0, 2, 2, 3, "r7", "r8"]) == Admission(False, 2, 2, 3, ("r7", "r8"))
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert submitted_score(moment) % 1_000_000 == 123456


def test_a_waiting_note_is_shown_while_it_is_recent() -> None:
    assert waits.current({"for": "x", "since": 100.0}, 100.0 + waits.NOTE_SHOWN_FOR)
    assert not waits.current({"for": "x", "since": 100.0}, 100.1 + waits.NOTE_SHOWN_FOR)
    assert not waits.current({"for": "x"}, 100.0)
