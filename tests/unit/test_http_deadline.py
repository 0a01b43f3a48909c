"""An ``http`` node's timeout bounds the whole exchange: a server on 127.0.0.1 that drips
its headers or its body, a byte well within each socket timeout, is cut off at the deadline."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from wfrunner import http_node
from wfrunner.builtins import run_builtin
from wfrunner.deadline import Deadline
from wfrunner.errors import NodeError

DRIP_EVERY = 0.05  # seconds between bytes: far inside the 0.5 s socket timeout
TIMEOUT = 0.5

Script = Callable[[socket.socket, threading.Event], None]


def _drip(conn: socket.socket, stop: threading.Event, data: bytes) -> None:
    """Send ``data`` a byte at a time, then nothing until stopped (the client hangs up)."""
    for byte in data:
        if stop.wait(DRIP_EVERY):
            return
        conn.sendall(bytes([byte]))
    stop.wait(60)


def drip_headers(conn: socket.socket, stop: threading.Event) -> None:
    _drip(conn, stop, b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10_000)


def drip_body(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
    _drip(conn, stop, b"b" * 100_000)


def drip_chunks(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    _drip(conn, stop, b"1\r\nc\r\n" * 100_000)


def prompt(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")


@pytest.fixture()
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Script], str]]:
    """A one-connection-at-a-time socket server on 127.0.0.1 running ``script`` per
    connection; the SSRF rules are told to allow it (they refuse loopback otherwise)."""
    monkeypatch.setenv("WFRUNNER_HTTP_ALLOW", "127.0.0.1")
    http_node.http_allow.cache_clear()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)

    def accept(script: Script) -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)  # the request
                # OSError: the client hung up, which is what a cut-off looks like from here
                with contextlib.suppress(OSError):
                    script(conn, stop)

    def start(script: Script) -> str:
        thread = threading.Thread(target=accept, args=(script,), daemon=True)
        thread.start()
        threads.append(thread)
        return f"http://127.0.0.1:{listener.getsockname()[1]}/slow"

    yield start
    stop.set()
    for thread in threads:
        thread.join(5)
    listener.close()
    monkeypatch.undo()
    http_node.http_allow.cache_clear()


def cut_off(url: str) -> str:
    with pytest.raises(NodeError) as info:
        run_builtin("slow_api", "http", {"url": url}, None, {}, timeout_s=TIMEOUT)
    return str(info.value)


@pytest.mark.timeout(30)  # a per-read timeout alone would wait for minutes
@pytest.mark.parametrize("script", [drip_headers, drip_body, drip_chunks])
def test_a_dripping_server_is_cut_off_at_the_deadline(
    serve: Callable[[Script], str], script: Script
) -> None:
    url = serve(script)
    assert cut_off(url) == (
        f"node 'slow_api': GET {url} failed: no complete answer within the 0.5 s timeout "
        "(the node's timeout_ms, else WFRUNNER_HTTP_TIMEOUT)"
    )


def test_a_prompt_answer_is_unaffected(serve: Callable[[Script], str]) -> None:
    url = serve(prompt)
    result = run_builtin("api", "http", {"url": url}, None, {}, timeout_s=TIMEOUT)
    assert result["body"] == "ok"


@pytest.mark.timeout(30)
def test_the_deadline_reaches_a_socket_whose_original_was_closed() -> None:
    """It shuts down its own duplicate: by then TLS may have detached the original."""
    left, right = socket.socketpair()
    right.settimeout(10)
    with right, Deadline(0.2) as deadline:
        deadline.watch(left)
        left.close()
        assert right.recv(1) == b""  # end of stream: the shutdown, not the 10 s timeout
        assert deadline.expired
        with pytest.raises(TimeoutError):
            deadline.remaining()
