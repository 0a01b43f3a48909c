"""Each definition limit: just under compiles, just over is one named problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wfrunner.compiler import compile_workflow, limits
from wfrunner.compiler.source import load_definitions, parse_json, split_definitions
from wfrunner.engine.payloads import encode_payload
from wfrunner.errors import CompileError, PayloadError, WorkflowError


def fn(node_id: str) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "config": {"function_name": "f"}}


def edge(source: str, target: str, condition: str | None = None) -> dict[str, Any]:
    out = {"from": source, "to": target}
    if condition is not None:
        out["condition"] = condition
    return out


def chain(count: int) -> dict[str, Any]:
    nodes = [fn(f"n{i}") for i in range(count)]
    return {"nodes": nodes, "edges": [edge(f"n{i}", f"n{i + 1}") for i in range(count - 1)]}


def fan(width: int) -> dict[str, Any]:
    branches = [f"b{i}" for i in range(width)]
    nodes = [fn("start"), *map(fn, branches), fn("join")]
    edges = [edge("start", b) for b in branches] + [edge(b, "join") for b in branches]
    return {"nodes": nodes, "edges": edges}


def problems(doc: Any) -> list[str]:
    with pytest.raises(CompileError) as info:
        compile_workflow(doc)
    return info.value.problems


def test_ten_thousand_node_chain_compiles() -> None:
    """How long it takes is measured by ``bench/compile_and_cel.py``, not asserted here."""
    ir = compile_workflow(chain(10_000))
    assert ir.entry_nodes == ("n0",) and ir.terminal_nodes() == ("n9999",)
    assert [ir.nodes[f"n{i}"].dependents for i in (0, 5_000)] == [("n1",), ("n5001",)]


def test_node_limit() -> None:
    compile_workflow(chain(limits.MAX_NODES))
    assert problems(chain(limits.MAX_NODES + 1)) == [
        f"workflow: {limits.MAX_NODES + 1:,} nodes; the limit is {limits.MAX_NODES:,}"
    ]


@pytest.mark.timeout(10)
def test_hundred_thousand_nodes_are_refused_at_once() -> None:
    doc = {"nodes": [fn(f"n{i}") for i in range(100_000)], "edges": []}
    assert problems(doc) == ["workflow: 100,000 nodes; the limit is 20,000"]


def test_edge_limit() -> None:
    doc = chain(3)
    doc["edges"] = [edge("n0", "n1")] * (limits.MAX_EDGES + 1)
    assert problems(doc) == [
        f"workflow: {limits.MAX_EDGES + 1:,} edges; the limit is {limits.MAX_EDGES:,}"
    ]


def test_thousand_way_fan_out_and_join_compile() -> None:
    ir = compile_workflow(fan(1_000))
    assert len(ir.nodes["start"].dependents) == 1_000
    assert ir.nodes["join"].wait_for_all and len(ir.nodes["join"].dependencies) == 1_000


def test_fan_out_and_fan_in_limits() -> None:
    compile_workflow(fan(limits.MAX_FAN_OUT))
    found = problems(fan(limits.MAX_FAN_OUT + 1))
    assert found == [
        f"node 'start': {limits.MAX_FAN_OUT + 1:,} outgoing edges; "
        f"the limit is {limits.MAX_FAN_OUT:,}",
        f"node 'join': {limits.MAX_FAN_IN + 1:,} incoming edges; "
        f"the limit is {limits.MAX_FAN_IN:,}",
    ]


def test_id_length_limit() -> None:
    ok = "a" * limits.MAX_ID_LENGTH
    compile_workflow({"nodes": [fn(ok)], "edges": []})
    long_id = "b" * (limits.MAX_ID_LENGTH + 1)
    found = problems({"nodes": [fn("a"), fn(long_id)], "edges": [edge("a", long_id)]})
    assert f"id is {limits.MAX_ID_LENGTH + 1} characters long; the limit is 128" in found[0]
    assert found[0].startswith("node 'bbbbbbbb")
    assert all(len(p) < 200 for p in found)


def test_huge_id_is_named_briefly() -> None:
    huge = "x" * 1_000_000
    found = problems({"nodes": [fn(huge)], "edges": [edge(huge, "y")]})
    assert any("id is 1,000,000 characters long" in p for p in found)
    assert all(len(p) <= limits.MAX_PROBLEM_LENGTH for p in found)


def test_trailing_newline_in_id_is_refused() -> None:
    found = problems({"nodes": [fn("a\n")], "edges": []})
    assert found == ["node 'a\\n'.id: it may only contain letters, digits, '_' and '-'"]


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_config_depth_limit() -> None:
    # the definition, nodes, the node and its config are four levels
    ok = {"nodes": [{**fn("a"), "config": {"function_name": "f", "x": nested(59)}}], "edges": []}
    compile_workflow(ok)
    deep = {"nodes": [{**fn("a"), "config": {"function_name": "f", "x": nested(61)}}], "edges": []}
    assert problems(deep) == [
        "node 'a'.config.x[0][0]...: objects and arrays nested more than 64 levels deep (the limit)"
    ]


def test_very_deep_definition_needs_no_deep_stack() -> None:
    doc = {"nodes": [fn("a")], "edges": [], "metadata": {"tags": nested(50_000)}}
    (problem,) = problems(doc)
    assert problem.startswith("workflow.metadata.tags[0][0][0][0]...: objects and arrays nested")


def test_cel_amount_limits() -> None:
    nodes = [fn(f"n{i}") for i in range(limits.MAX_EXPRESSIONS + 2)]
    edges = [edge("n0", f"n{i}", f"output.x == {i}") for i in range(1, len(nodes))]
    assert problems({"nodes": nodes, "edges": edges}) == [
        f"workflow: {limits.MAX_EXPRESSIONS + 1:,} distinct CEL expressions; "
        f"the limit is {limits.MAX_EXPRESSIONS:,}"
    ]
    long = "output.value == '" + "x" * 4000 + "'"
    nodes = [fn(f"n{i}") for i in range(40)]
    edges = [edge("n0", f"n{i}", f"{long} && {i} > 0") for i in range(1, 40)]
    (problem,) = problems({"nodes": nodes, "edges": edges})
    assert problem.endswith(
        f"characters of CEL in all; the limit is {limits.MAX_EXPRESSION_TEXT:,}"
    )


def test_problems_are_capped() -> None:
    doc = {"nodes": [fn("a")], "edges": [edge("a", f"ghost{i}") for i in range(500)]}
    found = problems(doc)
    assert len(found) == limits.MAX_PROBLEMS + 1
    assert found[-1] == "... and 400 more problems"


def test_schema_errors_of_a_large_array_stay_capped() -> None:
    doc = {"nodes": [{"id": i, "type": "nope"} for i in range(15_000)], "edges": []}
    found = problems(doc)
    assert len(found) == limits.MAX_PROBLEMS + 1
    assert found[-1].startswith("... and ") and found[-1].endswith(" more problems")


def test_long_cycle_message_is_abbreviated() -> None:
    doc = chain(3_000)
    doc["edges"].append(edge("n2999", "n0"))
    doc["nodes"].append(fn("end"))
    doc["edges"].append(edge("n5", "end"))
    found = [p for p in problems(doc) if p.startswith("cycle")]
    assert len(found) == 1
    assert "n0 -> n1 -> " in found[0] and "(3000 nodes)" in found[0]
    assert len(found[0]) < 300


def test_many_far_loops_are_checked_quickly() -> None:
    nodes = [fn(f"n{i}") for i in range(2_000)]
    loops = [
        {
            "id": f"L{i}",
            "type": "loop",
            "config": {"max_iterations": 2, "condition": "false", "loop_back_to": "n0"},
        }
        for i in range(limits.MAX_LOOPS)
    ]
    edges = [edge(f"n{i}", f"n{i + 1}") for i in range(1_999)]
    edges += [edge("n1999", f"L{i}") for i in range(limits.MAX_LOOPS)]
    edges += [edge(f"L{i}", "end") for i in range(limits.MAX_LOOPS)]
    ir = compile_workflow({"nodes": [*nodes, *loops, fn("end")], "edges": edges})
    assert ir.nodes["L7"].loop is not None and ir.nodes["L7"].loop.loop_back_to == "n0"
    loops.append({**loops[0], "id": "Lx"})
    over = {"nodes": [*nodes, *loops, fn("end")], "edges": edges}
    assert problems(over) == [
        f"workflow: {limits.MAX_LOOPS + 1:,} loop nodes; the limit is {limits.MAX_LOOPS:,}"
    ]


def test_definition_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(chain(2)))
    monkeypatch.setattr("wfrunner.compiler.source.MAX_DEFINITION_BYTES", 10)
    with pytest.raises(WorkflowError, match=r"big.json: \d+ bytes is larger than the 10 byte"):
        load_definitions(path)
    with pytest.raises(WorkflowError, match="is more than the 10 byte limit"):
        parse_json(b"[" + b" " * 20 + b"]", "x.json")


def test_workflows_per_file_limit() -> None:
    many = {f"w{i}": chain(1) for i in range(limits.MAX_WORKFLOWS_PER_FILE + 1)}
    with pytest.raises(WorkflowError, match="1,001 workflows in one file; the limit is 1,000"):
        split_definitions(many, "x.json", "x")


def test_payload_warns_then_refuses(caplog: pytest.LogCaptureFixture) -> None:
    value = "x" * 100
    with caplog.at_level("WARNING", logger="wfrunner.payloads"):
        encode_payload(value, max_bytes=1_000, warn_bytes=200)
        assert not caplog.records
        encode_payload(value, max_bytes=1_000, warn_bytes=50)
    (record,) = caplog.records
    assert "payload is 102 bytes, over the warning size of 50 bytes" in record.getMessage()
    with pytest.raises(PayloadError, match="payload is 102 bytes, over the limit of 101 bytes"):
        encode_payload(value, max_bytes=101, warn_bytes=50)


def test_deeply_nested_payload_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="nested too deeply"):
        encode_payload(nested(10_000), max_bytes=1 << 20)


def test_lone_surrogate_payload_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="lone surrogate"):
        encode_payload({"a": "\ud800"}, max_bytes=1 << 20)
