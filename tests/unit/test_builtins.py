"""Built-in node behaviour: transform, filter, aggregate, http (against a real local server)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from wfrunner import http_node
from wfrunner.builtins import run_builtin
from wfrunner.errors import ConditionError, NodeError


def run(node_type: str, config: dict[str, Any], input: Any, **kwargs: Any) -> Any:
    """Run a built-in with the CEL variables of docs/dsl.md; ``ctx`` may be overridden."""
    variables = {
        "output": None,
        "input": input,
        "inputs": kwargs.pop("inputs", {}),
        "ctx": kwargs.pop("ctx", None),
        "iteration": 1,
    }
    return run_builtin("n1", node_type, config, input, variables, **kwargs)


# --- transform -----------------------------------------------------------------------------


def test_transform_evaluates_the_expression_over_the_variables() -> None:
    config = {"expression": '{"total": input.price * input.qty, "who": inputs.user}'}
    result = run("transform", config, {"price": 3, "qty": 4}, inputs={"user": "ann"})
    assert result == {"total": 12, "who": "ann"}


def test_transform_condition_errors_propagate_naming_the_node() -> None:
    with pytest.raises(ConditionError) as info:
        run("transform", {"expression": "input.missing"}, {"x": 1})
    assert str(info.value).startswith("node 'n1': CEL expression 'input.missing': ")


def test_transform_without_an_expression() -> None:
    with pytest.raises(NodeError, match=r"^node 'n1': transform needs config.expression"):
        run("transform", {}, 1)


# --- filter --------------------------------------------------------------------------------


def test_filter_keeps_elements_whose_expression_holds() -> None:
    config = {"filter_expression": "value.score >= inputs.min"}
    items = [{"score": 1}, {"score": 5}, {"score": 9}]
    assert run("filter", config, items, inputs={"min": 5}) == [{"score": 5}, {"score": 9}]


def test_filter_falls_back_to_expression() -> None:
    assert run("filter", {"expression": "value % 2 == 0"}, [1, 2, 3, 4]) == [2, 4]


def test_filter_needs_a_list() -> None:
    with pytest.raises(NodeError) as info:
        run("filter", {"filter_expression": "true"}, {"a": 1})
    assert str(info.value) == "node 'n1': filter needs a list input, got object"


def test_filter_expression_must_be_boolean() -> None:
    with pytest.raises(ConditionError, match="must be true or false"):
        run("filter", {"filter_expression": "value"}, [1])


def test_filter_without_an_expression() -> None:
    with pytest.raises(NodeError, match=r"^node 'n1': filter needs config.filter_expression"):
        run("filter", {}, [1])


# --- aggregate: strategies -----------------------------------------------------------------

JOIN_CTX = {"a": None, "b": None, "c": None}


def test_merge_shallow_merges_a_joins_objects_in_order() -> None:
    join = {"a": {"x": 1, "y": {"deep": 1}}, "b": {"y": {"deep": 1}, "z": 3}}
    merged = run("aggregate", {"strategy": "merge"}, join, ctx=JOIN_CTX)
    assert merged == {"x": 1, "y": {"deep": 1}, "z": 3}
    assert list(merged) == ["x", "y", "z"]


def test_merge_refuses_two_branches_setting_one_key_differently() -> None:
    """Neither may silently win: the key and both branches are named."""
    join = {"a": {"id": 7, "total": 3}, "b": {"id": 7}, "c": {"total": 4}}
    with pytest.raises(NodeError) as info:
        run("aggregate", {"strategy": "merge"}, join, ctx=JOIN_CTX)
    assert str(info.value) == (
        "node 'n1': merge: the output of 'a' and the output of 'c' both set key 'total' "
        "(3 and 4); neither may silently win: give them different keys, or use strategy concat"
    )


def test_merge_refuses_a_non_object_output() -> None:
    with pytest.raises(NodeError) as info:
        run("aggregate", {"strategy": "merge"}, {"a": {"x": 1}, "b": [1]}, ctx=JOIN_CTX)
    assert str(info.value) == "node 'n1': merge needs objects, but the output of 'b' is list"


def test_merge_of_a_single_object_returns_it() -> None:
    one = {"x": {"p": 1}, "y": {"q": 2}}
    # its keys are not nodes in ctx, so it is one predecessor's object, not a join
    assert run("aggregate", {"strategy": "merge"}, one, ctx={"prev": one}) == one
    assert run("aggregate", {"strategy": "merge"}, one, join=False) == one
    assert run("aggregate", {"strategy": "merge"}, one, join=True) == {"p": 1, "q": 2}


def test_merge_of_a_list_of_objects() -> None:
    assert run("aggregate", {"strategy": "merge"}, [{"a": 1}, {"a": 1, "b": 3}]) == {"a": 1, "b": 3}
    with pytest.raises(NodeError, match="merge: element 0 and element 1 both set key 'a'"):
        run("aggregate", {"strategy": "merge"}, [{"a": 1}, {"a": 2}])
    with pytest.raises(NodeError, match="merge needs objects, but element 1 is number"):
        run("aggregate", {"strategy": "merge"}, [{"a": 1}, 2])


def test_concat_joins_lists_in_predecessor_order() -> None:
    join = {"b": [3], "a": [1, 2], "c": []}
    assert run("aggregate", {"strategy": "concat"}, join, ctx=JOIN_CTX) == [3, 1, 2]


def test_concat_of_a_plain_list_returns_it() -> None:
    assert run("aggregate", {"strategy": "concat"}, [1, 1, 2]) == [1, 1, 2]


def test_concat_refuses_non_lists() -> None:
    with pytest.raises(NodeError) as info:
        run("aggregate", {"strategy": "concat"}, {"a": [1], "b": "x"}, ctx=JOIN_CTX)
    assert str(info.value) == "node 'n1': concat needs lists, but the output of 'b' is string"
    with pytest.raises(NodeError, match="concat needs a list or a join of lists, got number"):
        run("aggregate", {"strategy": "concat"}, 3)


def test_union_drops_later_duplicates_by_json_value() -> None:
    join = {"a": [1, {"k": 1, "j": 2}, "x"], "b": [{"j": 2, "k": 1}, 1, 2, "x"]}
    expected = [1, {"k": 1, "j": 2}, "x", 2]
    assert run("aggregate", {"strategy": "union"}, join, ctx=JOIN_CTX) == expected
    assert run("aggregate", {"strategy": "union"}, [3, 3, 1]) == [3, 1]


def test_unknown_strategy_and_missing_config() -> None:
    with pytest.raises(NodeError, match=r"config.strategy 'zip' is not one of merge, union"):
        run("aggregate", {"strategy": "zip"}, [1])
    with pytest.raises(NodeError) as info:
        run("aggregate", {}, [1])
    assert str(info.value) == (
        "node 'n1': aggregate needs config.strategy (merge, union, concat) "
        "or config.operation (sum, count, min, max, avg)"
    )


# --- aggregate: operations -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "expected"),
    [("sum", 10), ("count", 4), ("min", 1), ("max", 4), ("avg", 2.5)],
)
def test_operations_over_a_joins_outputs(operation: str, expected: float) -> None:
    join = {"a": 1, "b": [2, 3], "c": 4}  # a list output contributes its elements
    assert run("aggregate", {"operation": operation}, join, ctx=JOIN_CTX) == expected


@pytest.mark.parametrize(
    ("operation", "expected"),
    [("sum", 6.5), ("count", 3), ("min", 0.5), ("max", 4), ("avg", 6.5 / 3)],
)
def test_operations_over_a_field_of_list_elements(operation: str, expected: float) -> None:
    items = [{"price": 2}, {"price": 4}, {"price": 0.5}]
    assert run("aggregate", {"operation": operation, "field": "price"}, items) == expected


def test_sum_keeps_integers_integral() -> None:
    result = run("aggregate", {"operation": "sum"}, [1, 2])
    assert result == 3 and isinstance(result, int)


def test_operations_over_nothing() -> None:
    assert run("aggregate", {"operation": "sum"}, []) == 0
    assert run("aggregate", {"operation": "count"}, []) == 0
    with pytest.raises(NodeError, match=r"^node 'n1': avg of no values"):
        run("aggregate", {"operation": "avg"}, [])
    with pytest.raises(NodeError, match=r"^node 'n1': max of no values"):
        run("aggregate", {"operation": "max"}, {}, ctx={})


def test_missing_field_is_named() -> None:
    with pytest.raises(NodeError) as info:
        run("aggregate", {"operation": "sum", "field": "price"}, [{"price": 1}, {"cost": 2}])
    assert str(info.value) == (
        "node 'n1': sum needs config.field 'price' in every value, "
        'but value 1 ({"cost": 2}) has none'
    )


def test_non_numbers_are_refused() -> None:
    with pytest.raises(NodeError) as info:
        run("aggregate", {"operation": "avg", "field": "price"}, [{"price": "3"}])
    assert str(info.value) == "node 'n1': avg needs numbers, but field 'price' of value 0 is string"
    with pytest.raises(NodeError, match="sum needs numbers, but value 1 is boolean"):
        run("aggregate", {"operation": "sum"}, [1, True])


def test_unknown_operation() -> None:
    with pytest.raises(NodeError, match=r"config.operation 'median' is not one of"):
        run("aggregate", {"operation": "median"}, [1])


def test_strategy_then_operation() -> None:
    join = {"a": [{"n": 1}, {"n": 2}], "b": [{"n": 2}, {"n": 5}]}
    config = {"strategy": "union", "operation": "sum", "field": "n"}
    assert run("aggregate", config, join, ctx=JOIN_CTX) == 8
    merged = {"a": {"x": 1, "y": 2}, "b": {"z": 10}}
    assert run("aggregate", {"strategy": "merge", "operation": "sum"}, merged, join=True) == 13


def test_a_single_object_is_one_value() -> None:
    one = {"price": 7}
    assert run("aggregate", {"operation": "max", "field": "price"}, one, ctx={"prev": one}) == 7


# --- other types ---------------------------------------------------------------------------


@pytest.mark.parametrize("node_type", ["conditional", "loop", "parallel"])
def test_pass_through_types(node_type: str) -> None:
    value = {"any": ["thing", 1]}
    assert run(node_type, {}, value) is value


def test_a_human_node_never_approves_itself_as_a_built_in() -> None:
    with pytest.raises(NodeError, match=r"^node 'n1': a human node is decided by an approval"):
        run("human", {}, {"amount": 10_000})


def test_function_without_handler_and_unknown_type() -> None:
    with pytest.raises(NodeError, match=r"^node 'n1': function node needs config.function_name"):
        run("function", {}, 1)
    with pytest.raises(NodeError, match=r"^node 'n1': type 'teleport' has no built-in behaviour"):
        run("teleport", {}, 1)


# --- http ----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        if path == "/json":
            self._send(200, b'{"ok": true, "n": [1, 2]}', "application/json; charset=utf-8")
        elif path == "/text":
            self._send(200, "héllo".encode(), "text/plain; charset=utf-8", X_Trace="abc")
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"nope", "text/plain")
        elif path == "/big":
            self._send(200, b"x" * 5000, "text/plain")
        elif path == "/badjson":
            self._send(200, b"{not json", "application/json")
        elif path == "/slow":
            time.sleep(1.5)
            self._send(200, b"late", "text/plain")
        elif path == "/redirect":
            self._send(302, b"", "text/plain", Location="/json")
        elif path == "/redirect-ftp":
            self._send(302, b"", "text/plain", Location="ftp://example.com/x")
        elif path == "/redirect-metadata":
            url = "http://169.254.169.254/latest/meta-data/"
            self._send(302, b"", "text/plain", Location=url)
        else:
            self._send(404, b"", "text/plain")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        echo = {
            "method": self.command,
            "content_type": self.headers.get("Content-Type"),
            "x_key": self.headers.get("X-Key"),
            "body": raw.decode(),
        }
        self._send(201, json.dumps(echo).encode(), "application/json")

    do_PUT = do_POST


@pytest.fixture(scope="module")
def local_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture()
def http_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """WFRUNNER_HTTP_* changes made through the yielded monkeypatch, reread by the node."""

    def clear() -> None:
        http_node.http_allow.cache_clear()
        http_node.default_timeout.cache_clear()

    monkeypatch.delenv("WFRUNNER_HTTP_ALLOW", raising=False)
    monkeypatch.delenv("WFRUNNER_HTTP_TIMEOUT", raising=False)
    clear()
    yield monkeypatch
    monkeypatch.undo()
    clear()


@pytest.fixture()
def allow_local(http_env: pytest.MonkeyPatch) -> None:
    """The SSRF rules refuse loopback addresses: allow 127.0.0.1 for the local server."""
    http_env.setenv("WFRUNNER_HTTP_ALLOW", "127.0.0.1")


@pytest.fixture()
def server(local_server: str, allow_local: None) -> str:
    return local_server


def test_http_get_json(server: str) -> None:
    result = run("http", {"url": f"{server}/json"}, None)
    assert result["status"] == 200
    assert result["body"] == {"ok": True, "n": [1, 2]}
    assert result["headers"]["content-type"] == "application/json; charset=utf-8"


def test_http_get_text_with_lower_cased_headers(server: str) -> None:
    result = run("http", {"url": f"{server}/text", "method": "get"}, None)
    assert result["body"] == "héllo"
    assert result["headers"]["x-trace"] == "abc"


def test_http_post_json_body(server: str) -> None:
    config = {
        "url": f"{server}/echo",
        "method": "POST",
        "body": {"a": [1]},
        "headers": {"X-Key": 7},
    }
    result = run("http", config, None)
    assert result["status"] == 201
    assert result["body"] == {
        "method": "POST",
        "content_type": "application/json",
        "x_key": "7",
        "body": '{"a": [1]}',
    }


def test_http_string_body_is_sent_as_is(server: str) -> None:
    config = {
        "url": f"{server}/echo",
        "method": "PUT",
        "body": "a=1&b=2",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }
    body = run("http", config, None)["body"]
    assert body["method"] == "PUT"
    assert body["body"] == "a=1&b=2"
    assert body["content_type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("status", [404, 500, 503])
def test_http_error_status(server: str, status: int) -> None:
    url = f"{server}/status/{status}"
    with pytest.raises(NodeError) as info:
        run("http", {"url": url}, None)
    assert str(info.value) == f"node 'n1': GET {url} answered {status}"


def test_http_oversize_body(server: str) -> None:
    with pytest.raises(NodeError) as info:
        run("http", {"url": f"{server}/big"}, None, max_bytes=1000)
    assert str(info.value) == f"node 'n1': GET {server}/big answered more than the 1000-byte limit"
    assert len(run("http", {"url": f"{server}/big"}, None, max_bytes=5000)["body"]) == 5000


def test_http_timeout(server: str) -> None:
    with pytest.raises(NodeError) as info:
        run("http", {"url": f"{server}/slow"}, None, timeout_s=0.2)
    assert str(info.value) == (
        f"node 'n1': GET {server}/slow failed: no complete answer within the 0.2 s timeout "
        "(the node's timeout_ms, else WFRUNNER_HTTP_TIMEOUT)"
    )


def test_http_timeout_defaults_to_the_setting(local_server: str, http_env: Any) -> None:
    http_env.setenv("WFRUNNER_HTTP_ALLOW", "127.0.0.0/8")
    http_env.setenv("WFRUNNER_HTTP_TIMEOUT", "1")
    with pytest.raises(NodeError, match=r"failed: no complete answer within the 1 s timeout "):
        run("http", {"url": f"{local_server}/slow"}, None)


@pytest.mark.usefixtures("allow_local")
def test_http_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(NodeError, match=rf"^node 'n1': GET {url} failed: .*refused"):
        run("http", {"url": url}, None)


def test_http_invalid_json(server: str) -> None:
    with pytest.raises(NodeError, match="answered application/json that is not valid JSON"):
        run("http", {"url": f"{server}/badjson"}, None)


def test_http_follows_redirects_to_http_only(server: str) -> None:
    assert run("http", {"url": f"{server}/redirect"}, None)["body"]["ok"] is True
    with pytest.raises(NodeError, match=r"'ftp://example\.com/x'"):
        run("http", {"url": f"{server}/redirect-ftp"}, None)


def test_http_default_refuses_loopback(local_server: str, http_env: Any) -> None:
    url = f"{local_server}/json"
    with pytest.raises(NodeError) as info:
        run("http", {"url": url}, None)
    assert str(info.value) == (
        f"node 'n1': refusing to call {url}: 127.0.0.1 is a loopback address; "
        "allow it with WFRUNNER_HTTP_ALLOW"
    )


def test_http_redirect_to_a_refused_address(server: str) -> None:
    with pytest.raises(NodeError) as info:
        run("http", {"url": f"{server}/redirect-metadata"}, None)
    assert str(info.value) == (
        "node 'n1': refusing to call http://169.254.169.254/latest/meta-data/: "
        "169.254.169.254 is a link-local address (the cloud metadata service); "
        "allow it with WFRUNNER_HTTP_ALLOW"
    )


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "http://", 5, None])
def test_http_refuses_non_http_urls(url: Any) -> None:
    with pytest.raises(NodeError, match=r"^node 'n1': refusing .*http:// or https://"):
        run("http", {"url": url}, None)
