"""The NATS client every programledger process connects with: nats-py's, with a faster
header parser.

Each event message carries nine headers (position, stream, version, type...). nats-py
2.16 parses a header block line by line and looks for whitespace in each name with a
generator over its characters, which cost a projection consuming the stream a quarter of
its CPU. :meth:`Client._parse_header_lines` does the same with ``str.split``, accepting
and refusing exactly the blocks nats-py does (``tests/unit/test_nats_headers.py`` holds
the two side by side); a nats-py that stops calling it only loses the speed.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NatsClient

__all__ = ["Client", "connect"]


class Client(NatsClient):
    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        headers: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon:
                continue
            try:
                key = name.strip().decode("ascii")
            except UnicodeDecodeError:
                continue
            if key and key.split() != [key]:
                continue  # whitespace inside a name: not a header name
            headers[key] = value.strip().decode("utf-8", "replace")
        return headers


async def connect(servers: str | list[str], **options: Any) -> Client:
    """:func:`nats.connect`, with :class:`Client`."""
    client = Client()
    await client.connect(servers, **options)
    return client
