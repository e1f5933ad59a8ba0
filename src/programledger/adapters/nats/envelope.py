"""What goes on the wire for one stored event: its subject, its headers and its JSON envelope.

This module is the downstream contract in code (``docs/events.md`` is the same in prose):
the relay builds messages with it and the subscriber helper reads them with it, so the two
sides cannot drift apart. Readers must ignore fields and headers they do not know, which is
what lets us add new ones without a version bump.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Final
from uuid import UUID

import msgspec

from programledger.adapters.codec import EventCodec
from programledger.adapters.postgres.eventstore import RawEvent
from programledger.domain.events import DomainEvent, EventRegistry

__all__ = [
    "HEADER_CORRELATION_ID",
    "HEADER_EVENT_TYPE",
    "HEADER_MSG_ID",
    "HEADER_POSITION",
    "HEADER_SCHEMA_VERSION",
    "HEADER_STORE_ID",
    "HEADER_STREAM_ID",
    "HEADER_UNDECODABLE",
    "HEADER_VERSION",
    "NO_PROGRAM",
    "EventEnvelope",
    "OutgoingMessage",
    "decode_envelope",
    "decode_event",
    "encode_lines",
    "encode_message",
    "encode_undecodable",
    "subject_for",
    "subject_pattern",
    "validate_prefix",
]

HEADER_MSG_ID: Final = "Nats-Msg-Id"
"""JetStream drops a message whose id it saw within the stream's duplicate window."""
HEADER_POSITION: Final = "Programledger-Position"
HEADER_STREAM_ID: Final = "Programledger-Stream-Id"
HEADER_VERSION: Final = "Programledger-Version"
HEADER_EVENT_TYPE: Final = "Programledger-Event-Type"
HEADER_SCHEMA_VERSION: Final = "Programledger-Schema-Version"
HEADER_CORRELATION_ID: Final = "Programledger-Correlation-Id"
HEADER_UNDECODABLE: Final = "Programledger-Undecodable"
"""On an event the relay could not decode: why. Its data and schema version are as stored."""
UNDECODABLE_KIND: Final = "_undecodable._undecodable"
"""The stream type and event type tokens of an undecodable event whose own names cannot
be subject tokens; no consumer filtering on an event type receives it."""
HEADER_STORE_ID: Final = "Programledger-Store-Id"
"""The id of the event store the message came from (see ``0012_store_identity.sql``); set
by the relay, which adds it to what :func:`encode_message` builds."""

NO_PROGRAM: Final = "_"
"""The program token of events that concern no single program (a resource's own facts)."""

_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,3}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class EventEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of every message: the event's metadata, and its data at the current schema.

    ``data`` is kept as raw JSON so the relay copies stored bytes instead of re-encoding
    them, and so a consumer decodes it only into the type it cares about
    (:func:`decode_event`). Absent optional metadata is ``null``, never a missing key.
    """

    event_id: UUID
    position: int
    """Global position in the event store: strictly increasing in delivery order."""
    stream_id: str
    stream_type: str
    version: int
    """The event's version within its stream (1, 2, ...)."""
    event_type: str
    schema_version: int
    """The schema version of ``data`` as published: always the current one."""
    recorded_at: datetime
    actor: str
    correlation_id: UUID | None
    causation_id: UUID | None
    reason: str | None
    program_id: UUID | None
    data: msgspec.Raw


class OutgoingMessage(msgspec.Struct, frozen=True):
    subject: str
    headers: dict[str, str]
    payload: bytes


class _Metadata(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """:class:`EventMetadata` with ids left as the strings stored, since the relay only
    copies them into text (headers, JSON): parsing and printing UUIDs is measurable there."""

    actor: str
    correlation_id: str | None = None
    causation_id: str | None = None
    reason: str | None = None
    program_id: str | None = None


class _Outgoing(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Encodes to exactly the JSON of :class:`EventEnvelope`, from strings."""

    event_id: str
    position: int
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    schema_version: int
    recorded_at: datetime
    actor: str
    correlation_id: str | None
    causation_id: str | None
    reason: str | None
    program_id: str | None
    data: msgspec.Raw


_metadata_decoder = msgspec.json.Decoder(_Metadata)
_envelope_decoder = msgspec.json.Decoder(EventEnvelope)
_encoder = msgspec.json.Encoder()


def validate_prefix(prefix: str) -> str:
    """Subject prefixes are one to four dot-separated tokens, so a filter can never match
    another deployment's subjects by accident (no wildcards, no empty tokens)."""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ValueError(
            f"subject prefix {prefix!r} is not allowed: use 1-4 dot-separated tokens of "
            "letters, digits, _ or -, e.g. 'programledger' or 'acme.programledger'"
        )
    return prefix


def _token(value: str, what: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(
            f"{what} {value!r} cannot be a subject token: use letters, digits, _ or - only"
        )
    return value


def subject_for(prefix: str, program_id: UUID | None, stream_type: str, event_type: str) -> str:
    """``<prefix>.<program id or _>.<stream type>.<EventType>``."""
    program = NO_PROGRAM if program_id is None else str(program_id)
    return (
        f"{prefix}.{program}.{_token(stream_type, 'stream type')}."
        f"{_token(event_type, 'event type')}"
    )


def subject_pattern(
    prefix: str,
    program_id: UUID | None = None,
    stream_type: str | None = None,
    event_type: str | None = None,
) -> str:
    """A filter subject; a ``None`` part matches anything (``*``)."""
    return ".".join(
        (
            prefix,
            "*" if program_id is None else str(program_id),
            "*" if stream_type is None else _token(stream_type, "stream type"),
            "*" if event_type is None else _token(event_type, "event type"),
        )
    )


@functools.lru_cache(maxsize=4096)
def _program_token(program_id: str | None) -> str:
    if program_id is None:
        return NO_PROGRAM
    return _token(program_id, "program id")


@functools.lru_cache(maxsize=4096)
def _kind(stream_type: str, event_type: str) -> str:
    """The subject's last two tokens, validated once per pair: this is on the hot path."""
    return f"{_token(stream_type, 'stream type')}.{_token(event_type, 'event type')}"


def encode_message(prefix: str, event: RawEvent, codec: EventCodec) -> OutgoingMessage:
    """The message for one stored event; the same event always gives the same bytes, so a
    re-publish after a crash is an exact duplicate that JetStream can drop."""
    subject, headers, envelope = _parts(prefix, event, codec)
    return OutgoingMessage(subject, headers, _encoder.encode(envelope))


class _LineHeaders(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    gc=False,
    omit_defaults=True,
    rename={
        "msg_id": HEADER_MSG_ID,
        "position": HEADER_POSITION,
        "stream_id": HEADER_STREAM_ID,
        "version": HEADER_VERSION,
        "event_type": HEADER_EVENT_TYPE,
        "schema_version": HEADER_SCHEMA_VERSION,
        "correlation_id": HEADER_CORRELATION_ID,
        "store_id": HEADER_STORE_ID,
    },
):
    """Encodes to exactly the headers :func:`_build` gives plus the store's mark, in the
    same order, the correlation id left out when there is none. A struct, not a dict: its
    keys are encoded once, not escaped again on every line, and building it is cheaper;
    the two took a quarter of the feed's encoding."""

    msg_id: str
    position: str
    stream_id: str
    version: str
    event_type: str
    schema_version: str
    correlation_id: str | None = None
    store_id: str


class _Line(msgspec.Struct, frozen=True, gc=False):
    """One line of the global feed: the message, its envelope inline. This and the
    structs it holds are untracked by the garbage collector, as :class:`RawEvent` is."""

    subject: str
    headers: _LineHeaders
    envelope: _Outgoing


def encode_lines(
    prefix: str, events: Iterable[RawEvent], codec: EventCodec, store_id: str
) -> bytes:
    """NDJSON of the messages of ``events`` as the relay publishes them, the store's mark
    (:data:`HEADER_STORE_ID`) included: ``{"subject": ..., "headers": {...}, "envelope":
    {...}}`` a line, with exactly the envelope bytes :func:`encode_message` gives.

    One encoder call for a whole page, the stored data spliced in as bytes: the global
    feed streams what the database hands over, and a per-event encode of the envelope and
    then of the line around it cost more than the read.
    """
    lines = []
    for event in events:
        metadata, schema_version, data = _current(event, codec)
        kind = _kind(event.stream_type, event.event_type)
        envelope = _envelope(event, metadata, schema_version, data)
        headers = _LineHeaders(
            msg_id=envelope.event_id,
            position=str(event.position),
            stream_id=event.stream_id,
            version=str(event.version),
            event_type=event.event_type,
            schema_version=str(schema_version),
            correlation_id=metadata.correlation_id,
            store_id=store_id,
        )
        subject = f"{prefix}.{_program_token(metadata.program_id)}.{kind}"
        lines.append(_Line(subject, headers, envelope))
    return _encoder.encode_lines(lines)


def _parts(
    prefix: str, event: RawEvent, codec: EventCodec
) -> tuple[str, dict[str, str], _Outgoing]:
    metadata, schema_version, data = _current(event, codec)
    kind = _kind(event.stream_type, event.event_type)
    return _build(
        prefix, _program_token(metadata.program_id), kind, event, metadata, schema_version, data
    )


def _current(event: RawEvent, codec: EventCodec) -> tuple[_Metadata, int, bytes]:
    """The event's metadata, and its data at the current schema version (upcast if stored
    at an older one)."""
    metadata = _metadata_decoder.decode(event.metadata)
    current = codec.registry.type_for(event.event_type).schema_version
    data = (
        event.data
        if event.schema_version == current
        else codec.to_current_json(event.event_type, event.schema_version, event.data)
    )
    return metadata, current, data


def encode_undecodable(prefix: str, event: RawEvent, reason: str) -> OutgoingMessage:
    """The message for a stored event :func:`encode_message` refused (a type or schema
    version this code does not know, an upcaster that failed, malformed metadata): its
    data and schema version as stored, and the reason in a header, so the relay goes on
    and a consumer that can read it (newer code) still gets it in its place.

    Subject tokens come from the event when they are valid, else from
    :data:`UNDECODABLE_KIND`; metadata that does not decode is left out (the actor reads
    ``"unknown"``).
    """
    try:
        metadata = _metadata_decoder.decode(event.metadata)
    except msgspec.MsgspecError:
        metadata = _Metadata(actor="unknown")
    try:
        program = _program_token(metadata.program_id)
        kind = _kind(event.stream_type, event.event_type)
    except ValueError:
        program, kind = NO_PROGRAM, UNDECODABLE_KIND
    subject, headers, envelope = _build(
        prefix, program, kind, event, metadata, event.schema_version, event.data
    )
    message = OutgoingMessage(subject, headers, _encoder.encode(envelope))
    message.headers[HEADER_UNDECODABLE] = " ".join(reason.split())[:500] or "undecodable"
    return message


def _build(
    prefix: str,
    program: str,
    kind: str,
    event: RawEvent,
    metadata: _Metadata,
    schema_version: int,
    data: bytes,
) -> tuple[str, dict[str, str], _Outgoing]:
    """The subject, the headers and the envelope (to encode) of one message."""
    envelope = _envelope(event, metadata, schema_version, data)
    event_id = envelope.event_id
    headers = {
        HEADER_MSG_ID: event_id,
        HEADER_POSITION: str(event.position),
        HEADER_STREAM_ID: event.stream_id,
        HEADER_VERSION: str(event.version),
        HEADER_EVENT_TYPE: event.event_type,
        HEADER_SCHEMA_VERSION: str(schema_version),
    }
    if metadata.correlation_id is not None:
        headers[HEADER_CORRELATION_ID] = metadata.correlation_id
    return f"{prefix}.{program}.{kind}", headers, envelope


def _envelope(event: RawEvent, metadata: _Metadata, schema_version: int, data: bytes) -> _Outgoing:
    return _Outgoing(
        event_id=str(event.event_id),
        position=event.position,
        stream_id=event.stream_id,
        stream_type=event.stream_type,
        version=event.version,
        event_type=event.event_type,
        schema_version=schema_version,
        recorded_at=event.recorded_at,
        actor=metadata.actor,
        correlation_id=metadata.correlation_id,
        causation_id=metadata.causation_id,
        reason=metadata.reason,
        program_id=metadata.program_id,
        data=msgspec.Raw(data),
    )


def decode_envelope(payload: bytes) -> EventEnvelope:
    """Raises ``msgspec.ValidationError`` / ``msgspec.DecodeError`` for a foreign payload."""
    return _envelope_decoder.decode(payload)


def decode_event(envelope: EventEnvelope, registry: EventRegistry) -> DomainEvent:
    """The typed event of an envelope; raises ``UnknownEventType`` for a type this code
    does not know (a consumer older than the producer should skip or park such events).

    The relay publishes the producer's current schema; a consumer on newer code lifts it
    with its own upcasters, and one on older code gets a ``ValueError`` rather than a
    silently half-read event.
    """
    cls = registry.type_for(envelope.event_type)
    if envelope.schema_version == cls.schema_version:
        event: DomainEvent = msgspec.json.decode(envelope.data, type=cls)
        return event
    lifted = registry.upcast(
        envelope.event_type, envelope.schema_version, msgspec.json.decode(envelope.data)
    )
    converted: DomainEvent = msgspec.convert(lifted, cls)
    return converted
