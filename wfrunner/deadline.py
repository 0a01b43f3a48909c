"""One wall-clock deadline over blocking socket work (an ``http`` node's whole exchange).

A socket timeout bounds each wait, not their sum: a server that sends a byte just before
each timeout (in the headers, the TLS handshake or the body) would hold the worker as long
as it liked. A :class:`Deadline` watches the sockets it is shown and shuts them down when
its time is up, which wakes any read blocked on them; connects get what time is left as
their timeout. It holds a duplicate of each socket, so the shutdown reaches the connection
even after TLS took the socket over, and never a descriptor reused by someone else.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType


class Deadline:
    """``seconds`` from entering the ``with`` block; :attr:`expired` once they are up."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self.at = time.monotonic() + self.seconds
        self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        with self._lock:  # not while _expire shuts one down: its descriptor stays ours
            for sock in self._watched:
                sock.close()
            self._watched = []

    def remaining(self) -> float:
        """Seconds left; ``TimeoutError`` when there are none."""
        left = self.at - time.monotonic()
        if left <= 0 or self.expired:
            raise TimeoutError("the deadline passed")
        return left

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it has)."""
        duplicate = sock.dup()
        with self._lock:
            self._watched.append(duplicate)
            if self.expired:
                _shut(duplicate)

    def _expire(self) -> None:
        with self._lock:  # shutdown does not block
            self.expired = True
            for sock in self._watched:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed or never connected
        sock.shutdown(socket.SHUT_RDWR)


__all__ = ["Deadline"]
