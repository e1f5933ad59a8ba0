"""Our NATS client parses message headers exactly as nats-py does, only faster."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client as NatsClient

from programledger.adapters.nats.client import Client

_pieces = st.sampled_from(
    [
        b"Nats-Msg-Id",
        b"Programledger-Position",
        b":",
        b": ",
        b"\r\n",
        b" ",
        b"\t",
        b"\x1c",
        b"\x0b",
        b"a b",
        b"\xc3\xa9",
        b"\xff",
        b"value",
        b"12",
        b"",
        b"\r",
        b"\n",
    ]
)


@given(st.lists(_pieces, max_size=30).map(b"".join) | st.binary(max_size=200))
def test_any_header_block_parses_as_nats_py_parses_it(raw: bytes) -> None:
    assert Client._parse_header_lines(raw) == NatsClient._parse_header_lines(raw)


def test_the_headers_of_an_event_message() -> None:
    raw = (
        b"Nats-Msg-Id: 9f0e2b1c-1f3e-4e7a-9b1a-2f3c4d5e6f70\r\n"
        b"Programledger-Position: 123456\r\nProgramledger-Actor: \xc3\xa9mile\r\n\r\n"
    )
    assert Client._parse_header_lines(raw) == {
        "Nats-Msg-Id": "9f0e2b1c-1f3e-4e7a-9b1a-2f3c4d5e6f70",
        "Programledger-Position": "123456",
        "Programledger-Actor": "émile",
    }
