"""A TCP proxy between the workers and Redis that loses what a fault test tells it to.

- ``drop_reply_of``: for a command containing these bytes (the SHA of ``commit_node.lua``,
  so an ``EVALSHA`` of it), the command reaches Redis and runs, but the reply is thrown
  away and both connections closed: an ambiguous write. Each distinct command is treated
  so at most once, so the client's retry (the same bytes) gets its answer.
- ``swallow_push_of``: an ``LPUSH`` whose bytes contain this marker (a kombu message for
  a chosen node) is answered ``:1`` without reaching Redis, once per run id found by
  ``run_of``: the worker believes it published a message the broker never got.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
import threading
import time
from dataclasses import dataclass, field

LPUSH = b"*3\r\n$5\r\nLPUSH\r\n"
_RUN = re.compile(rb"run=([0-9a-f]+) ")  # in the message's argsrepr header


def _resp_array_end(data: bytes) -> int | None:
    """Where the RESP array of bulk strings at the start of ``data`` ends, or None."""
    head = data.index(b"\r\n")
    count, pos = int(data[1:head]), head + 2
    for _ in range(count):
        end = data.find(b"\r\n", pos)
        if end < 0:
            return None
        pos = end + 2 + int(data[pos + 1 : end]) + 2
        if pos > len(data):
            return None
    return pos


@dataclass
class RedisProxy:
    target_port: int
    drop_reply_of: bytes | None = None
    drop_probability: float = 0.3
    swallow_push_of: bytes | None = None
    drops: int = 0
    #: run id -> time.time() the publish was swallowed
    swallowed: dict[str, float] = field(default_factory=dict)
    port: int = 0
    _seen: set[bytes] = field(default_factory=set)

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop)
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cwriter.close()
            return
        conn = {"drop": False}
        up = asyncio.ensure_future(self._up(creader, swriter, cwriter, conn))
        down = asyncio.ensure_future(self._down(sreader, cwriter, swriter, conn))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for writer in (cwriter, swriter):
            writer.close()

    async def _up(self, reader, swriter, cwriter, conn) -> None:  # type: ignore[no-untyped-def]
        buffer = b""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            buffer += data
            if self.swallow_push_of and buffer.startswith(LPUSH):
                end = _resp_array_end(buffer)
                if end is None:
                    continue  # the rest of the command is still on its way
                command, buffer = buffer[:end], buffer[end:]
                if self._swallow(command):
                    cwriter.write(b":1\r\n")
                    await cwriter.drain()
                else:
                    swriter.write(command)
                if not buffer:
                    continue
            data, buffer = buffer, b""
            if self.drop_reply_of and self.drop_reply_of in data:
                key = hashlib.sha1(data).digest()
                if key not in self._seen and random.random() < self.drop_probability:
                    self._seen.add(key)
                    conn["drop"] = True
            swriter.write(data)
            await swriter.drain()

    def _swallow(self, command: bytes) -> bool:
        assert self.swallow_push_of is not None
        if self.swallow_push_of not in command:
            return False
        match = _RUN.search(command)
        run_id = match.group(1).decode() if match else "?"
        if run_id in self.swallowed:
            return False
        self.swallowed[run_id] = time.time()
        return True

    async def _down(self, reader, cwriter, swriter, conn) -> None:  # type: ignore[no-untyped-def]
        while True:
            data = await reader.read(65536)
            if not data:
                return
            if conn["drop"]:
                self.drops += 1
                return  # the reply is lost; _handle closes both sides
            cwriter.write(data)
            await cwriter.drain()
