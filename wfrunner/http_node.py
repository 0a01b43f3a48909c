"""The ``http`` built-in: the request in ``config`` (``url``, ``method``, ``headers``,
``body``), under the SSRF rules of :mod:`wfrunner.ssrf`, a timeout and a size cap.

The timeout is one wall-clock :class:`~wfrunner.deadline.Deadline` for the whole exchange
(connect, TLS, headers, redirects, body), not a bound on each wait: a server dripping its
answer is cut off when the time is up.

The output is ``{"status", "headers" (lower-cased names), "body"}``; a JSON answer is
decoded, any other is text. Every failure is a :class:`NodeError` naming the node.
"""

from __future__ import annotations

import functools
import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

from wfrunner import ssrf
from wfrunner.deadline import Deadline
from wfrunner.errors import NodeError
from wfrunner.settings import Settings

_CHUNK = 64 * 1024
_KINDS = {bool: "boolean", int: "number", float: "number", str: "string", list: "list"}


@functools.cache
def http_allow() -> ssrf.Allowlist:
    """``WFRUNNER_HTTP_ALLOW``, read once per process (``http_allow.cache_clear()`` rereads)."""
    return ssrf.Allowlist.parse(Settings.from_env().http_allow)


@functools.cache
def default_timeout() -> float:
    """``WFRUNNER_HTTP_TIMEOUT``, read once per process."""
    return float(Settings.from_env().http_timeout)


@dataclass(frozen=True)
class _Call:
    node_id: str
    config: dict[str, Any]
    timeout_s: float
    max_bytes: int

    def error(self, message: str) -> NodeError:
        return NodeError(f"node {self.node_id!r}: {message}")


def _kind(value: Any) -> str:
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


def _check_url(node_id: str, url: Any) -> str:
    """Refuse what is not an http(s) URL; addresses are checked per request by the opener."""
    ssrf.validate_url(node_id, url)
    return str(url)


def _request(call: _Call, url: str, method: str) -> urllib.request.Request:
    headers = call.config.get("headers") or {}
    if not isinstance(headers, dict):
        raise call.error(f"config.headers must be an object, not {_kind(headers)}")
    headers = {str(name): str(value) for name, value in headers.items()}
    body = call.config.get("body")
    data = None
    if isinstance(body, str):
        data = body.encode()
    elif body is not None:
        data = json.dumps(body).encode()
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    # the scheme was checked by _check_url
    return urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310


def _read(call: _Call, response: Any, label: str, deadline: Deadline) -> bytes:
    """The body, refusing more than ``max_bytes``; a read the deadline cut short fails."""
    chunks, size = [], 0
    while chunk := response.read(min(_CHUNK, call.max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > call.max_bytes:
            raise call.error(f"{label} answered more than the {call.max_bytes}-byte limit")
        deadline.remaining()
    deadline.remaining()  # the socket was shut down: the body may be cut short
    return b"".join(chunks)


def _decode(call: _Call, headers: Message, raw: bytes, label: str) -> Any:
    content_type = headers.get_content_type()
    if content_type == "application/json" or content_type.endswith("+json"):
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise call.error(f"{label} answered {content_type} that is not valid JSON") from None
    return raw.decode(headers.get_content_charset() or "utf-8", errors="replace")


def _response_headers(headers: Message) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


def _exchange(
    call: _Call, request: urllib.request.Request, label: str
) -> tuple[int, Message, bytes]:
    """Send ``request``; the status, headers and body, or a NodeError saying what failed."""
    with Deadline(call.timeout_s) as deadline:
        opener = ssrf.build_opener(call.node_id, http_allow(), deadline=deadline)
        try:
            try:
                response = opener.open(request, timeout=call.timeout_s)
            except urllib.error.HTTPError as exc:
                exc.close()
                raise call.error(f"{label} answered {exc.code}") from None
            with response:
                return response.status, response.headers, _read(call, response, label, deadline)
        except (OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            timed_out = isinstance(reason, TimeoutError) or "timed out" in str(reason)
            if deadline.expired or timed_out:
                reason = (
                    f"no complete answer within the {call.timeout_s:g} s timeout "
                    "(the node's timeout_ms, else WFRUNNER_HTTP_TIMEOUT)"
                )
            text = str(reason) or type(reason).__name__
            raise call.error(f"{label} failed: {text}") from None


def call_http(
    node_id: str, config: dict[str, Any], *, timeout_s: float | None, max_bytes: int
) -> dict[str, Any]:
    """Perform the request in ``config``; ``timeout_s=None`` means ``WFRUNNER_HTTP_TIMEOUT``."""
    call = _Call(node_id, config, default_timeout() if timeout_s is None else timeout_s, max_bytes)
    url = _check_url(node_id, config.get("url"))
    method = str(config.get("method") or "GET").upper()
    label = f"{method} {ssrf.shown(url)}"
    status, headers, raw = _exchange(call, _request(call, url, method), label)
    body = _decode(call, headers, raw, label)
    return {"status": status, "headers": _response_headers(headers), "body": body}


__all__ = ["call_http", "default_timeout", "http_allow"]
