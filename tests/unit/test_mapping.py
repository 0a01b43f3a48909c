"""Map nodes' pure parts: item identity, which item comes next, ordering, what a rebuild
finds in flight, and the compiler's checks of map_over / max_concurrency."""

from __future__ import annotations

from typing import Any

import pytest

from wfrunner.compiler import compile_workflow
from wfrunner.compiler.ir import IRNode
from wfrunner.engine import mapping
from wfrunner.engine.mapnode import elements
from wfrunner.engine.tokens import Token
from wfrunner.errors import CompileError, ConditionError
from wfrunner.tasks import inline

HEAD = Token("r1", "A", "M", "ref-in", hop=3, iteration=2, scope="L=2", passes=1)


def test_every_item_has_its_own_identity_and_a_redelivery_the_same() -> None:
    items = [mapping.item_token(HEAD, i, f"ref{i}") for i in range(3)]
    keys = {t.key for t in items} | {HEAD.key, mapping.finish_token(HEAD, "ref-in").key}
    assert len(keys) == 5
    # the key does not depend on the element: a rebuilt run names the same token
    assert mapping.item_token(HEAD, 1, "other").key == items[1].key
    assert mapping.item_token(HEAD, 1, "ref1") == items[1]
    # an item keeps the head's scope, iteration and passes (a map in a loop's pass)
    assert (items[0].scope, items[0].iteration, items[0].passes) == ("L=2", 2, 1)


def test_roles() -> None:
    assert mapping.role("M", HEAD) == mapping.Role(mapping.HEAD)
    assert mapping.role("M", mapping.item_token(HEAD, 12, "r")) == mapping.Role(mapping.ITEM, 12)
    finish = mapping.finish_token(HEAD, "r")
    assert mapping.role("M", finish) == mapping.Role(mapping.FINISH)
    # a node whose id begins like another's is not confused with it
    assert mapping.role("M", Token("r1", "M2[3]", "M")).kind == mapping.HEAD


def test_next_item_keeps_at_most_cap_in_flight() -> None:
    assert mapping.first_items(5, 2) == [0, 1]
    assert mapping.first_items(1, 10) == [0]
    assert mapping.next_item(0, 2, 5) == 2
    assert mapping.next_item(2, 2, 5) == 4
    assert mapping.next_item(3, 2, 5) is None
    for done in ([], [1], [1, 3], [0, 1, 2, 3]):
        flying = mapping.in_flight(5, 2, done)
        assert len(flying) <= 2
    assert mapping.in_flight(5, 2, [1, 3]) == [0]
    assert mapping.in_flight(5, 2, [0, 1, 2, 3, 4]) == []


def test_every_item_is_emitted_once_whatever_order_items_finish_in() -> None:
    total, cap = 7, 3
    for order in ([6, 5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5, 6], [2, 0, 1, 5, 3, 4, 6]):
        emitted = list(mapping.first_items(total, cap))
        flying = set(emitted)
        done: list[int] = []
        while flying:
            i = next(i for i in order if i in flying)
            flying.remove(i)
            done.append(i)
            following = mapping.next_item(i, cap, total)
            if following is not None:
                emitted.append(following)
                flying.add(following)
            assert len(flying) <= cap
        assert sorted(emitted) == list(range(total))


def test_results_are_ordered_by_index() -> None:
    assert mapping.ordered({2: "c", 0: "a", 1: "b"}, 3) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="missing"):
        mapping.ordered({0: "a"}, 2)


def node(**config: Any) -> IRNode:
    return IRNode("M", "transform", config={"expression": "input", **config})


def test_map_over_must_give_a_list_within_the_limit() -> None:
    variables = {"input": {"xs": [1, 2, 3]}, "inputs": None, "ctx": {}, "iteration": 1}
    assert elements(node(map_over="input.xs"), variables, 3) == [1, 2, 3]
    with pytest.raises(ConditionError, match="over the limit of 2"):
        elements(node(map_over="input.xs"), variables, 2)
    with pytest.raises(ConditionError, match=r"config\.map_over.*gave a number, not a list"):
        elements(node(map_over="size(input.xs)"), variables, 10)


def workflow(config: dict[str, Any], node_type: str = "transform") -> dict[str, Any]:
    extra = {"max_iterations": 2, "condition": "false"} if node_type == "loop" else {}
    return {
        "nodes": [
            {"id": "A", "type": "transform", "config": {"expression": "input"}},
            {"id": "M", "type": node_type, "config": {"expression": "input", **extra, **config}},
            {"id": "Z", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [{"from": "A", "to": "M"}, {"from": "M", "to": "Z"}],
    }


@pytest.mark.parametrize(
    ("config", "node_type", "message"),
    [
        ({"map_over": "input.("}, "transform", "node 'M': config.map_over \"input.(\" does not"),
        ({"map_over": 3}, "transform", "node 'M': config.map_over must be a CEL expression"),
        ({"map_over": "input", "max_concurrency": 0}, "transform", "config.max_concurrency"),
        ({"map_over": "input", "max_concurrency": 1.5}, "transform", "config.max_concurrency"),
        ({"map_over": "input", "max_concurrency": True}, "transform", "config.max_concurrency"),
        ({"map_over": "input"}, "human", "not allowed on a human node"),
        ({"map_over": "input"}, "loop", "not allowed on a loop node"),
        ({"max_concurrency": 2}, "transform", "config.max_concurrency needs config.map_over"),
        ({"map_over": "input", "workflow": "child"}, "subworkflow", "not allowed on a subw"),
    ],
)
def test_the_compiler_refuses_a_wrong_map_config(
    config: dict[str, Any], node_type: str, message: str
) -> None:
    with pytest.raises(CompileError) as info:
        compile_workflow(workflow(config, node_type))
    found = [p for p in info.value.problems if "'M'" in p]
    assert len(found) == 1 and message in found[0], info.value.problems


def test_a_map_node_compiles() -> None:
    ir = compile_workflow(workflow({"map_over": "input.xs", "max_concurrency": 4}))
    assert mapping.is_map(ir.nodes["M"]) and mapping.concurrency(ir.nodes["M"]) == 4
    assert not mapping.is_map(ir.nodes["Z"])
    assert mapping.concurrency(compile_workflow(workflow({"map_over": "input"})).nodes["M"]) == 10


def test_a_maps_items_are_timed_apart_from_its_head_for_inline_execution() -> None:
    """A map node's head is quick whatever its handler: its items must not be kept in
    the head's task one after another on the strength of the head's time."""
    ir = compile_workflow(workflow({"map_over": "input.xs", "max_concurrency": 2}))
    head = Token("r1", "A", "M")
    items = [mapping.item_token(head, i, f"ref{i}") for i in range(2)]
    assert inline.timed(items[0]) == "M[]" and inline.timed(head) == "M"
    durations = inline.Durations()
    durations.record("w", inline.timed(head), 0.0001)  # the head took no time
    keep, publish = inline.plan(ir, "w", items, [], durations)
    assert (keep, publish) == ([items[0]], [items[1]])
    durations.record("w", inline.timed(items[0]), 0.0001)  # quick items are kept
    keep, publish = inline.plan(ir, "w", items, [], durations)
    assert (keep, publish) == (items, [])


def test_only_the_head_fetches_what_map_over_reads() -> None:
    reads_ctx = IRNode("M", "transform", config={"map_over": "ctx.A.xs", "expression": "input"})
    item = mapping.item_token(HEAD, 0, "ref")
    assert mapping.head_reads(reads_ctx, HEAD, "ctx")
    assert not mapping.head_reads(reads_ctx, HEAD, "inputs")
    assert not mapping.head_reads(reads_ctx, item, "ctx")
    assert not mapping.head_reads(node(), HEAD, "ctx")


def test_on_error_is_refused_on_a_map_node() -> None:
    definition = workflow({"map_over": "input.xs"})
    definition["nodes"].append({"id": "E", "type": "transform", "config": {"expression": "1"}})
    definition["nodes"][1]["on_error"] = "E"
    with pytest.raises(CompileError) as info:
        compile_workflow(definition)
    found = [p for p in info.value.problems if "'M'" in p]
    assert len(found) == 1 and "on_error is not supported on a map node" in found[0], found
