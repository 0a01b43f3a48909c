"""Hostile and random input: always a typed error naming the problem, never a crash.

Hypothesis generates definitions (often invalid: unknown types, huge or unicode ids, garbage
CEL, random configs), raw bytes (invalid UTF-8 included) and CEL expressions over random
JSON. The CLI is driven in-process for speed and, for a fixed set of hostile files, as a
subprocess the way a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.entry_point import invoke
from wfrunner import conditions
from wfrunner.cli.app import main
from wfrunner.compiler import IR, compile_workflow, limits
from wfrunner.compiler.source import parse_json, split_definitions
from wfrunner.errors import CompileError, ConditionError, WorkflowError

MAX_LINE = 500
conditions.check("true")  # celpy raises the recursion limit once; not inside a Hypothesis test
NODE_TYPES = ["function", "http", "conditional", "loop", "parallel", "transform"]
NODE_TYPES += ["aggregate", "filter", "human"]
CEL_SAMPLES = [
    "output.ok",
    "input > 3",
    "size(input) == 2",
    "output.score >= inputs.threshold",
    "input.map(x, x * 2)",
    "iteration < 3",
    "ctx.a.b == 'x'",
    "true",
    "1 / 0 == 1",
]
CONFIG_KEYS = ["function_name", "expression", "filter_expression", "condition"]
CONFIG_KEYS += ["max_iterations", "loop_back_to", "break_path", "timeout_path", "url", "method"]
CONFIG_KEYS += ["strategy", "operation", "field"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
node_ids = st.one_of(
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.text(max_size=12),
    st.text(alphabet="xy", min_size=limits.MAX_ID_LENGTH - 2, max_size=limits.MAX_ID_LENGTH + 3),
    st.text(min_size=200, max_size=400),
)
cel_texts = st.one_of(st.sampled_from(CEL_SAMPLES), st.text(max_size=40), json_values)
configs = st.one_of(
    st.dictionaries(
        st.sampled_from(CONFIG_KEYS),
        st.one_of(cel_texts, st.sampled_from(["a", "b", "f", "merge", "sum"]), json_values),
        max_size=5,
    ),
    json_values,
)


@st.composite
def nodes(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    node: dict[str, Any] = {"id": draw(node_ids), "type": draw(st.sampled_from(NODE_TYPES))}
    if draw(st.booleans()):
        node["type"] = draw(st.one_of(st.text(max_size=10), json_values))
    if draw(st.booleans()):
        node["config"] = draw(configs)
    if draw(st.integers(0, 4)) == 0:
        node["timeout_ms"] = draw(json_values)
    if draw(st.integers(0, 4)) == 0:
        node["retry"] = draw(json_values)
    return node


@st.composite
def edges(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    edge: dict[str, Any] = {"from": draw(node_ids), "to": draw(node_ids)}
    if draw(st.booleans()):
        edge["condition"] = draw(cel_texts)
    return edge


@st.composite
def definitions(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    doc: dict[str, Any] = {
        "nodes": draw(st.lists(nodes(), max_size=8)),
        "edges": draw(st.lists(edges(), max_size=12)),
    }
    if draw(st.booleans()):
        doc["metadata"] = draw(json_values)
    if draw(st.integers(0, 5)) == 0:
        del doc[draw(st.sampled_from(["nodes", "edges"]))]
    return doc


def assert_lines(problems: list[str]) -> None:
    assert problems
    for problem in problems:
        assert isinstance(problem, str)
        assert len(problem.splitlines()) == 1, problem
        assert len(problem) <= MAX_LINE
        problem.encode("utf-8")  # printable to any UTF-8 terminal or file


@settings(max_examples=200, deadline=None)
@given(definitions())
def test_compile_returns_ir_or_one_line_problems(doc: Any) -> None:
    try:
        ir = compile_workflow(doc)
    except CompileError as exc:
        assert_lines(exc.problems)
    except WorkflowError as exc:
        assert_lines([str(exc)])
    else:
        assert isinstance(ir, IR)
        json.dumps(ir.to_dict())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=2, max_size=30),
    st.sampled_from(NODE_TYPES),
)
def test_random_cycles_are_named(path: list[str], node_type: str) -> None:
    ids = [*sorted(set(path)), "start"]
    doc = {
        "nodes": [{"id": i, "type": node_type, "config": {"function_name": "f"}} for i in ids],
        "edges": [{"from": "start", "to": path[0]}]
        + [{"from": s, "to": t} for s, t in zip(path, path[1:] + path[:1], strict=True)],
    }
    with pytest.raises(CompileError) as caught:
        compile_workflow(doc)
    assert_lines(caught.value.problems)
    # the closed walk over ``path`` always contains a cycle, named by its nodes
    named = [
        p.removeprefix("cycle ").split(" is not declared")[0].split(" -> ")
        for p in caught.value.problems
        if p.startswith("cycle ")
    ]
    assert named, caught.value.problems
    for cycle in named:
        assert cycle[0] == cycle[-1] and set(cycle) <= set(path), cycle


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        definitions().map(lambda d: json.dumps(d).encode()),
        st.sampled_from([b"\xff\xfe", b'{"nodes": "\\ud800"}', b"1" * 5000, b"[" * 5000]),
    )
)
def test_random_bytes_give_a_value_or_a_workflow_error(data: bytes) -> None:
    try:
        value = parse_json(data, "in.json")
    except WorkflowError as exc:
        assert str(exc).startswith("in.json: ")
        assert_lines([str(exc)])
        return
    try:
        found = split_definitions(value, "in.json", "in")
    except WorkflowError as exc:
        assert_lines([str(exc)])
    else:
        assert all(d.source.startswith("in.json") for d in found)


CEL_TOKENS = [
    "input", "output", "inputs", "ctx", "iteration", "value", "nope", "x", ".", ",", "(", ")",
    "[", "]", "{", "}", ":", "1", "0", "-1", "2.5", "'s'", '"t"', "b'x'", "true", "null",
    " + ", " - ", " * ", " / ", " % ", " == ", " < ", " && ", " || ", "!", " ? ", " in ",
    ".map(x, ", ".filter(x, ", ".all(x, ", ".exists(x, ", ".reduce(r, i, 0, ", "size(",
    "string(", "int(", "double(", "has(", ".size()", "matches(", "timestamp(", "duration(",
]  # fmt: skip
cel_expressions = st.one_of(
    st.lists(st.sampled_from(CEL_TOKENS), min_size=1, max_size=25).map("".join),
    st.text(max_size=60),
    st.sampled_from(CEL_SAMPLES),
)


@settings(max_examples=250, deadline=None)
@given(
    cel_expressions,
    st.dictionaries(st.sampled_from(list(conditions.VARIABLES)), json_values, max_size=6),
)
def test_cel_evaluation_raises_only_condition_errors(expression: str, variables: Any) -> None:
    try:
        value = conditions.evaluate(expression, variables, where="edge a->b", max_steps=5_000)
    except ConditionError as exc:
        assert exc.expression == expression
        assert str(exc).startswith("edge a->b: CEL expression ")
    else:
        json.dumps(value)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        definitions().map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=100),
    ),
    command=st.sampled_from(["validate", "compile", "graph"]),
)
def test_cli_in_process_exit_2_and_one_line_per_problem(
    data: bytes, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "wf.json"
        path.write_bytes(data)
        code, out, err = run_cli([command, str(path)], capsys)
    assert code in (0, 2), (code, out, err)
    assert "Traceback" not in out + err
    if code == 2:
        lines = (out if command == "validate" else err).strip().splitlines()
        assert lines and lines[0].startswith("error")
        assert all(len(line) <= MAX_LINE + 100 for line in lines)


def hostile_files() -> dict[str, bytes]:
    def fn(node_id: str) -> dict[str, Any]:
        return {"id": node_id, "type": "function", "config": {"function_name": "f"}}

    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    fan = [fn("s")] + [fn(f"b{i}") for i in range(limits.MAX_FAN_OUT + 1)]
    return {
        "cycle": json.dumps(
            {
                "nodes": [fn("a"), fn("b")],
                "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}],
            }
        ).encode(),
        "too_many_nodes": json.dumps(
            {"nodes": [fn(f"n{i}") for i in range(limits.MAX_NODES + 1)], "edges": []}
        ).encode(),
        "fan_out": json.dumps(
            {"nodes": fan, "edges": [{"from": "s", "to": n["id"]} for n in fan[1:]]}
        ).encode(),
        "deep_config": json.dumps(
            {"nodes": [{**fn("a"), "config": {"function_name": "f", "x": deep}}], "edges": []}
        ).encode(),
        "huge_id": json.dumps({"nodes": [fn("x" * 100_000)], "edges": []}).encode(),
        "invalid_utf8": b'{"nodes": [{"id": "\xc3\x28", "type": "function"}], "edges": []}',
        "lone_surrogate": b'{"nodes": [{"id": "\\udc00", "type": "function"}], "edges": []}',
        "huge_integer": b'{"nodes": [], "edges": [], "x": ' + b"9" * 5000 + b"}",
        "unknown_type": json.dumps(
            {"nodes": [{"id": "a", "type": "teleport"}], "edges": []}
        ).encode(),
        "long_cel": json.dumps(
            {
                "nodes": [fn("a"), fn("b")],
                "edges": [{"from": "a", "to": "b", "condition": "true && " * 1000 + "true"}],
            }
        ).encode(),
        "deep_cel": json.dumps(
            {
                "nodes": [fn("a"), fn("b")],
                "edges": [{"from": "a", "to": "b", "condition": "(" * 500 + "1" + ")" * 500}],
            }
        ).encode(),
        "newline_edge": json.dumps(
            {"nodes": [fn("a")], "edges": [{"from": "a", "to": "b\nerror: fake"}]}
        ).encode(),
    }


HOSTILE = hostile_files()


def wfrunner(*args: str) -> subprocess.CompletedProcess[str]:
    return invoke(*args)


def check_lines(text: str) -> list[str]:
    lines = text.strip().splitlines()
    assert lines and all(line.startswith("error") for line in lines), lines
    assert all(len(line) <= MAX_LINE + 100 for line in lines)
    return lines


def test_cli_validate_subprocess_on_hostile_files(tmp_path: Path) -> None:
    paths = []
    for name, data in sorted(HOSTILE.items()):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_bytes(data)
    result = wfrunner("validate", *map(str, paths))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = check_lines(result.stdout)
    for path in paths:
        assert any(str(path) in line for line in lines), path
    assert len(lines) <= len(paths) * (limits.MAX_PROBLEMS + 1)


@pytest.mark.parametrize("command", ["compile", "graph"])
@pytest.mark.parametrize("name", ["cycle", "invalid_utf8", "huge_id", "newline_edge"])
def test_cli_compile_and_graph_subprocess(tmp_path: Path, name: str, command: str) -> None:
    path = tmp_path / f"{name}.json"
    path.write_bytes(HOSTILE[name])
    result = wfrunner(command, str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not result.stdout  # nothing written
    first, *rest = result.stderr.strip().splitlines()
    assert first.startswith("error: ")
    assert all(line.startswith("  - ") for line in rest)
    assert len(rest) <= limits.MAX_PROBLEMS + 1
