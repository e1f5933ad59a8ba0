"""A line of the global feed is exactly the message the relay publishes, written out: its
subject, its headers with the store's mark, and the envelope bytes :func:`encode_message`
gives. ``encode_lines`` builds lines its own (faster) way, so it is held to that here."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from programledger.adapters.codec import EventCodec
from programledger.adapters.nats.envelope import HEADER_STORE_ID, encode_lines, encode_message
from programledger.adapters.postgres.eventstore import RawEvent
from programledger.bootstrap import event_registry

_CODEC = EventCodec(event_registry())
_STORE = "76a3b515-68ab-4f91-9ff9-592048240a63"
_text = st.text(max_size=12)
_ids = st.none() | st.uuids().map(str)


@st.composite
def _events(draw: st.DrawFn) -> RawEvent:
    metadata = {
        "actor": draw(_text),
        "correlation_id": draw(_ids),
        "causation_id": draw(_ids),
        "reason": draw(st.none() | _text),
        "program_id": draw(_ids),
    }
    data = {"resource_key": draw(_text), "capacity": draw(st.integers(0, 100)), "reason": "x"}
    return RawEvent(
        position=draw(st.integers(1, 2**62)),
        event_id=draw(st.uuids()),
        stream_id=f"resource-{draw(st.integers(0, 10**6))}",
        stream_type="resource",
        version=draw(st.integers(1, 10**6)),
        event_type="ResourceCapacityChanged",
        schema_version=1,
        data=msgspec.json.encode({**data, "effective_from": None}),
        metadata=msgspec.json.encode(
            {k: v for k, v in metadata.items() if v is not None or draw(st.booleans())}
        ),
        recorded_at=datetime.fromtimestamp(draw(st.integers(0, 2**33)) / 1000, UTC),
        hash=b"\x00" * 32,
    )


def _as_relay_publishes(prefix: str, event: RawEvent) -> bytes:
    message = encode_message(prefix, event, _CODEC)
    message.headers[HEADER_STORE_ID] = _STORE
    encode = msgspec.json.encode
    return (
        b'{"subject":'
        + encode(message.subject)
        + b',"headers":'
        + encode(message.headers)
        + b',"envelope":'
        + message.payload
        + b"}\n"
    )


@given(st.lists(_events(), max_size=5))
def test_a_feed_line_is_the_relays_message_byte_for_byte(events: list[RawEvent]) -> None:
    expected = b"".join(_as_relay_publishes("acme.pl", e) for e in events)
    assert encode_lines("acme.pl", events, _CODEC, _STORE) == expected


def test_a_feed_line_without_a_correlation_id_has_no_such_header() -> None:
    event = RawEvent(
        position=7,
        event_id=UUID(int=1),
        stream_id="resource-r1",
        stream_type="resource",
        version=2,
        event_type="ResourceCapacityChanged",
        schema_version=1,
        data=b'{"resource_key":"r1","capacity":5,"effective_from":null,"reason":"x"}',
        metadata=b'{"actor":"a"}',
        recorded_at=datetime(2027, 1, 1, tzinfo=UTC),
        hash=b"",
    )
    line = msgspec.json.decode(encode_lines("p", [event], _CODEC, _STORE))
    assert list(line["headers"]) == [
        "Nats-Msg-Id",
        "Programledger-Position",
        "Programledger-Stream-Id",
        "Programledger-Version",
        "Programledger-Event-Type",
        "Programledger-Schema-Version",
        "Programledger-Store-Id",
    ]
