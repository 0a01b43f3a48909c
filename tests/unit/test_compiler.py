"""The original Go compiler's cases (sequential, fan-out, branch, loop, type mapping,
validation errors) plus every rejection docs/dsl.md lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wfrunner.compiler import IR, compile_workflow
from wfrunner.compiler.source import load_definitions
from wfrunner.errors import CompileError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "workflows"


def fn(node_id: str, node_type: str = "function", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "config": {"function_name": "f", **config}}


def wf(nodes: list[dict[str, Any]], edges: list[tuple[str, ...]]) -> dict[str, Any]:
    out = []
    for edge in edges:
        item = {"from": edge[0], "to": edge[1]}
        if len(edge) > 2:
            item["condition"] = edge[2]
        out.append(item)
    return {"nodes": nodes, "edges": out}


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(CompileError) as info:
        compile_workflow(doc)
    return info.value.problems


def test_sequential() -> None:
    ir = compile_workflow(wf([fn("A"), fn("B"), fn("C")], [("A", "B"), ("B", "C")]))
    assert ir.entry_nodes == ("A",)
    assert ir.nodes["A"].dependents == ("B",)
    assert ir.nodes["B"].dependencies == ("A",)
    assert ir.nodes["B"].dependents == ("C",)
    assert ir.terminal_nodes() == ("C",)
    assert ir.terminal_count() == 1
    assert not any(n.wait_for_all for n in ir.nodes.values())


def test_parallel_fan_out_detects_join() -> None:
    ir = compile_workflow(
        wf([fn("A"), fn("B"), fn("C"), fn("D")], [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")])
    )
    assert ir.nodes["A"].dependents == ("B", "C")
    assert ir.nodes["D"].dependencies == ("B", "C")
    assert ir.nodes["D"].wait_for_all is True
    assert ir.nodes["B"].wait_for_all is False
    assert ir.terminal_nodes() == ("D",)


def test_triple_fan_in() -> None:
    ir = compile_workflow(
        wf([fn("A"), fn("B"), fn("C"), fn("D")], [("A", "D"), ("B", "D"), ("C", "D")])
    )
    assert ir.entry_nodes == ("A", "B", "C")
    assert ir.nodes["D"].dependencies == ("A", "B", "C")
    assert ir.nodes["D"].wait_for_all


def test_conditional_branch_rules_in_edge_order() -> None:
    doc = wf(
        [fn("fetch"), {"id": "eval", "type": "conditional"}, fn("hi"), fn("lo"), fn("log")],
        [
            ("fetch", "eval"),
            ("eval", "hi", "output.score >= 80"),
            ("eval", "lo", "output.score < 80"),
            ("eval", "log"),
        ],
    )
    ir = compile_workflow(doc)
    node = ir.nodes["eval"]
    assert node.branch is not None
    assert [(r.condition, r.next_nodes) for r in node.branch.rules] == [
        ("output.score >= 80", ("hi",)),
        ("output.score < 80", ("lo",)),
    ]
    assert node.branch.default == ()
    assert node.dependents == ("log",)  # unconditional edges are always taken
    assert node.is_terminal is False
    assert set(ir.terminal_nodes()) == {"hi", "lo", "log"}
    assert node.successors == ("log", "hi", "lo")


def test_branch_then_join_is_a_join_of_both_paths() -> None:
    ir = load_ir("valid/branch_join.json")
    assert ir.nodes["finalize"].dependencies == ("high", "low")
    assert ir.nodes["finalize"].wait_for_all
    assert ir.terminal_nodes() == ("finalize",)


def test_loop_config() -> None:
    ir = load_ir("valid/loop.json")
    check = ir.nodes["check"]
    assert check.loop is not None
    assert check.loop.max_iterations == 5
    assert check.loop.loop_back_to == "step"
    assert check.loop.condition == "output.n < inputs.target"
    assert check.loop.break_path == ("done",)
    assert check.loop.timeout_path == ("gave_up",)
    assert check.is_terminal is False
    # the loop-back is not a forward dependency: 'step' is no join
    assert ir.nodes["step"].dependencies == ("start",)
    assert ir.nodes["step"].wait_for_all is False
    assert ir.nodes["done"].dependencies == ("check",)
    assert set(ir.terminal_nodes()) == {"done", "gave_up"}


def test_loop_defaults_back_to_itself_and_plain_edges_join_break_path() -> None:
    loop = {"id": "L", "type": "loop", "config": {"max_iterations": 3, "condition": "true"}}
    ir = compile_workflow(wf([fn("A"), loop, fn("B")], [("A", "L"), ("L", "B")]))
    assert ir.nodes["L"].loop is not None
    assert ir.nodes["L"].loop.loop_back_to == "L"
    assert ir.nodes["L"].loop.break_path == ("B",)
    assert ir.nodes["L"].dependents == ()
    assert ir.nodes["B"].dependencies == ("L",)


def test_declared_loop_edge_back_is_not_a_cycle() -> None:
    loop = {
        "id": "L",
        "type": "loop",
        "config": {
            "max_iterations": 3,
            "loop_back_to": "A",
            "condition": "true",
            "break_path": ["B"],
        },
    }
    ir = compile_workflow(wf([fn("A"), loop, fn("B")], [("A", "L"), ("L", "A")]))
    assert ir.nodes["A"].dependencies == ()
    assert ir.entry_nodes == ("A",)


@pytest.mark.parametrize(
    "node_type, config",
    [
        ("function", {"function_name": "f"}),
        ("http", {"url": "https://example.com"}),
        ("transform", {"expression": "input"}),
        ("filter", {"filter_expression": "value > 1"}),
        ("aggregate", {"strategy": "union"}),
        ("parallel", {}),
        ("conditional", {}),
    ],
)
def test_type_mapping_plain_nodes(node_type: str, config: dict[str, Any]) -> None:
    ir = compile_workflow(
        wf([fn("start"), {"id": "n", "type": node_type, "config": config}], [("start", "n")])
    )
    node = ir.nodes["n"]
    assert node.type == node_type
    assert node.branch is None and node.loop is None
    assert node.is_terminal


def test_a_human_node_compiles_with_its_timeout_and_policy() -> None:
    doc = wf(
        [
            fn("start"),
            {
                "id": "cfo",
                "type": "human",
                "timeout_ms": 5000,
                "config": {"on_timeout": "approve", "prompt": "ok?"},
            },
        ],
        [("start", "cfo")],
    )
    node = compile_workflow(doc).nodes["cfo"]
    assert (node.type, node.timeout_ms, node.config["on_timeout"]) == ("human", 5000, "approve")


def test_a_human_node_with_a_handler_or_an_unknown_policy_is_refused() -> None:
    """A handler would make the approval approve itself."""
    config = {"function_name": "ask_the_cfo", "on_timeout": "escalate", "prompt": 3}
    found = problems(
        wf([fn("start"), {"id": "cfo", "type": "human", "config": config}], [("start", "cfo")])
    )
    assert found == [
        "node 'cfo': a human node is decided with 'wfrunner approve|reject', not by a "
        "handler: remove config.function_name (or make it a 'function' node)",
        "node 'cfo': config.on_timeout \"escalate\" is not one of reject, approve",
        "node 'cfo': config.prompt must be a string, not 3",
    ]


def test_type_mapping_conditional_and_loop() -> None:
    loop = {"id": "L", "type": "loop", "config": {"max_iterations": 2, "condition": "false"}}
    doc = wf(
        [fn("A"), {"id": "c", "type": "conditional"}, loop, fn("x")],
        [("A", "c"), ("c", "L", "input == 1"), ("L", "x")],
    )
    ir = compile_workflow(doc)
    assert ir.nodes["c"].branch is not None and ir.nodes["c"].loop is None
    assert ir.nodes["L"].loop is not None and ir.nodes["L"].branch is None


def test_any_node_with_conditional_edges_gets_a_branch() -> None:
    ir = compile_workflow(wf([fn("A"), fn("B")], [("A", "B", "output.ok")]))
    assert ir.nodes["A"].branch is not None
    assert ir.nodes["A"].dependents == ()


def test_edge_to_missing_node() -> None:
    found = problems(wf([fn("A")], [("A", "ghost")]))
    assert found == ['edge A->ghost: unknown node "ghost"']


def test_cycle_with_no_terminal_node_reports_everything() -> None:
    found = problems(wf([fn("A"), fn("B")], [("A", "B"), ("B", "A")]))
    assert any(p.startswith("cycle A -> B -> A is not declared as a loop") for p in found)
    assert any("no entry node" in p for p in found)
    assert any("no terminal node" in p for p in found)


def test_cycle_below_an_entry_is_named() -> None:
    found = problems(
        wf([fn("S"), fn("A"), fn("B"), fn("T")], [("S", "A"), ("A", "B"), ("B", "A"), ("B", "T")])
    )
    assert found == [
        "cycle A -> B -> A is not declared as a loop: make its last node a loop node "
        "(type 'loop', config.loop_back_to) or remove an edge"
    ]


def test_self_edge_is_a_cycle() -> None:
    found = problems(wf([fn("A"), fn("B")], [("A", "A"), ("A", "B")]))
    assert any(p.startswith("cycle A -> A") for p in found)


def test_every_problem_at_once_one_line_each_naming_the_node() -> None:
    defs = load_definitions(FIXTURES / "invalid" / "many_problems.json")
    found = problems(defs[0].definition)
    expected_fragments = [
        "node 'b'.type: is \"teleport\"",
        "node 'a': duplicate id",
        'edge a->ghost: unknown node "ghost"',
        "edge a->c: condition",
        "edge c->d: appears more than once",
        "node 'a': function node without config.function_name needs config.function_name",
        "node 'c': http node without config.function_name needs config.url",
        "node 'd': aggregate node without config.function_name needs config.strategy",
        "loop 'e': config.max_iterations is required",
        "loop 'e': config.loop_back_to names unknown node \"nowhere\"",
        "loop 'e': config.condition \"output.ok ==\" does not parse",
        "node 'f': config.expression \"input +\" does not parse",
    ]
    for fragment in expected_fragments:
        assert any(fragment in p for p in found), (fragment, found)
    assert all("\n" not in p for p in found)


@pytest.mark.parametrize(
    "node, fragment",
    [
        (
            {"id": "t", "type": "transform", "config": {"transformation": "uppercase"}},
            "node 't': transform node without config.function_name needs config.expression",
        ),
        ({"id": "t", "type": "filter", "config": {}}, "needs config.filter_expression"),
        (
            {"id": "t", "type": "aggregate", "config": {"strategy": "zip"}},
            'config.strategy "zip" is not one of merge, union, concat',
        ),
        (
            {"id": "t", "type": "aggregate", "config": {"operation": "median"}},
            'config.operation "median" is not one of',
        ),
        (
            {"id": "t", "type": "http", "config": {"url": "https://x", "method": "BREW"}},
            'config.method "BREW"',
        ),
        (
            {"id": "t", "type": "function", "config": {"function_name": ""}},
            "config.function_name must be a non-empty string",
        ),
        (
            {"id": "t", "type": "loop", "config": {"max_iterations": 0, "condition": "true"}},
            "loop 't': config.max_iterations is 0; it must be at least 1",
        ),
        (
            {"id": "t", "type": "loop", "config": {"max_iterations": 2}},
            "loop 't': config.condition is required",
        ),
        (
            {
                "id": "t",
                "type": "loop",
                "config": {"max_iterations": 2, "condition": "true", "timeout_path": ["zz"]},
            },
            "loop 't': config.timeout_path names unknown node 'zz'",
        ),
        (
            {"id": "bad id!", "type": "function", "config": {"function_name": "f"}},
            "node 'bad id!'.id: is \"bad id!\"; it may only contain",
        ),
        (
            {"id": "t", "type": "function", "config": {"function_name": "f"}, "timeout_ms": -1},
            "node 't'.timeout_ms: is -1; it must be at least 0",
        ),
        (
            {
                "id": "t",
                "type": "function",
                "config": {"function_name": "f"},
                "retry": {"max_attempts": 11},
            },
            "node 't'.retry.max_attempts: is 11; it must be at most 10",
        ),
        ({"type": "function"}, "nodes[1]: missing required field 'id'"),
    ],
)
def test_node_config_rejections(node: dict[str, Any], fragment: str) -> None:
    found = problems(wf([fn("start"), node], []))
    assert any(fragment in p for p in found), found


def test_handler_makes_builtin_config_optional() -> None:
    ir = compile_workflow(
        wf([{"id": "t", "type": "transform", "config": {"function_name": "up"}}], [])
    )
    assert ir.nodes["t"].function_name == "up"


def test_loop_back_to_must_be_upstream() -> None:
    loop = {
        "id": "L",
        "type": "loop",
        "config": {
            "max_iterations": 2,
            "condition": "true",
            "loop_back_to": "X",
            "break_path": ["X"],
        },
    }
    found = problems(wf([fn("A"), loop, fn("X")], [("A", "L")]))
    assert any("loop 'L': config.loop_back_to 'X' is not upstream" in p for p in found)


def test_condition_on_a_loop_edge_is_rejected() -> None:
    loop = {"id": "L", "type": "loop", "config": {"max_iterations": 2, "condition": "true"}}
    found = problems(wf([fn("A"), loop, fn("B")], [("A", "L"), ("L", "B", "output.x")]))
    assert any(p.startswith("edge L->B: a loop node's exits follow its loop config") for p in found)


def test_not_an_object() -> None:
    assert problems([1, 2]) == ["workflow: must be of type object, not [1, 2]"]  # type: ignore[arg-type]


def test_empty_nodes() -> None:
    assert any("needs at least 1 item" in p for p in problems({"nodes": [], "edges": []}))


def test_retry_and_timeout_are_carried() -> None:
    node = {**fn("A"), "timeout_ms": 500, "retry": {"max_attempts": 4}}
    ir = compile_workflow(wf([node], []))
    assert ir.nodes["A"].timeout_ms == 500
    assert ir.nodes["A"].retry is not None
    assert ir.nodes["A"].retry.max_attempts == 4
    assert ir.nodes["A"].retry.backoff_ms == 1000


def load_ir(name: str) -> IR:
    (definition,) = load_definitions(FIXTURES / name)
    return compile_workflow(definition.definition, definition.source)


@pytest.mark.parametrize("path", sorted((FIXTURES / "valid").glob("*.json")), ids=lambda p: p.name)
def test_valid_fixtures_compile_and_round_trip(path: Path) -> None:
    (definition,) = load_definitions(path)
    ir = compile_workflow(definition.definition, definition.source)
    data = json.loads(json.dumps(ir.to_dict()))
    assert IR.from_dict(data) == ir
    # the IR's shape (docs/dsl.md)
    assert set(data) >= {"nodes", "entry_nodes"}
    for node_id, node in data["nodes"].items():
        assert node["id"] == node_id
        assert set(node) >= {
            "id",
            "type",
            "dependencies",
            "dependents",
            "is_terminal",
            "wait_for_all",
        }


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "invalid").glob("*.json")), ids=lambda p: p.name
)
def test_invalid_fixtures_are_rejected(path: Path) -> None:
    (definition,) = load_definitions(path)
    with pytest.raises(CompileError):
        compile_workflow(definition.definition)


def test_ten_thousand_node_chain_compiles_without_recursion() -> None:
    nodes = [fn(f"n{i}") for i in range(10_000)]
    edges = [(f"n{i}", f"n{i + 1}") for i in range(9_999)]
    ir = compile_workflow(wf(nodes, edges))
    assert ir.entry_nodes == ("n0",)
    assert ir.terminal_nodes() == ("n9999",)


def test_long_cycle_is_found_without_recursion() -> None:
    nodes = [fn(f"n{i}") for i in range(5_000)] + [fn("end")]
    edges = [(f"n{i}", f"n{i + 1}") for i in range(4_999)] + [("n4999", "n1"), ("n0", "end")]
    found = problems(wf(nodes, edges))
    assert len(found) == 1 and found[0].startswith("cycle n1 -> n2 -> ")


def test_join_mixing_a_loop_body_and_the_outside_is_rejected() -> None:
    loop = {
        "id": "L",
        "type": "loop",
        "config": {
            "max_iterations": 3,
            "loop_back_to": "X",
            "condition": "true",
            "break_path": ["after"],
        },
    }
    doc = wf(
        [fn("S"), fn("X"), loop, fn("Y"), fn("J"), fn("after")],
        [("S", "X"), ("X", "L"), ("S", "Y"), ("X", "J"), ("Y", "J")],
    )
    found = problems(doc)
    assert found == [
        "join 'J' takes inputs from inside loop 'L' (X) and from outside it (Y): "
        "leave the loop through its break_path or timeout_path instead"
    ]


def test_join_after_a_loop_exit_is_fine() -> None:
    loop = {
        "id": "L",
        "type": "loop",
        "config": {
            "max_iterations": 3,
            "loop_back_to": "X",
            "condition": "true",
            "break_path": ["J"],
        },
    }
    ir = compile_workflow(
        wf(
            [fn("S"), fn("X"), loop, fn("Y"), fn("J")],
            [("S", "X"), ("X", "L"), ("S", "Y"), ("Y", "J")],
        )
    )
    assert ir.nodes["J"].dependencies == ("L", "Y")


def test_join_inside_a_loop_body_is_fine() -> None:
    loop = {
        "id": "L",
        "type": "loop",
        "config": {
            "max_iterations": 3,
            "loop_back_to": "A",
            "condition": "true",
            "break_path": ["end"],
        },
    }
    ir = compile_workflow(
        wf(
            [fn("A"), fn("B"), fn("C"), fn("J"), loop, fn("end")],
            [("A", "B"), ("A", "C"), ("B", "J"), ("C", "J"), ("J", "L")],
        )
    )
    assert ir.nodes["J"].wait_for_all
