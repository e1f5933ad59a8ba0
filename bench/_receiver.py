"""A lean webhook receiver for ``bench/feed.py``, run in a process of its own.

A receiver is another service: in the benchmark's process it would take the worker's CPU
(the Litestar receiver the tests use costs about as much per request as the delivery), so
the figure would measure the receiver. This one is the least a receiver can be: HTTP/1.1
with keep-alive over asyncio, a ``200`` for every ``POST`` with a body, and one line on
stdout per request, ``<data.position> <arrival time.time()>``, for the benchmark to count
and time. It prints ``listening <url>`` first.

Run: ``python bench/_receiver.py`` (port 0: a free one).
"""

from __future__ import annotations

import asyncio
import sys
import time

import msgspec

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _Data(msgspec.Struct):
    position: int


class _Body(msgspec.Struct):
    data: _Data


_decoder = msgspec.json.Decoder(_Body)


class _Http(asyncio.Protocol):
    def __init__(self, out: list[bytes]) -> None:
        self._buffer = bytearray()
        self._out = out
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self._buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self._buffer) < end + 4 + length:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            try:
                position = _decoder.decode(body).data.position
            except msgspec.MsgspecError:
                position = -1
            self._out.append(b"%d %.6f\n" % (position, time.time()))
            assert self._transport is not None
            self._transport.write(_OK)


async def main() -> None:
    out: list[bytes] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Http(out), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.buffer.write(f"listening http://127.0.0.1:{port}/hook\n".encode())
    sys.stdout.buffer.flush()
    while True:
        await asyncio.sleep(0.005)
        if out:
            lines = b"".join(out)
            out.clear()
            sys.stdout.buffer.write(lines)
            sys.stdout.buffer.flush()


if __name__ == "__main__":
    asyncio.run(main())
