"""JSON codec for domain events: strict on the way in, upcasting on the way out.

An append is validated by encoding the event and decoding the bytes back against its own
type. msgspec Structs do not check field types on construction, so this round trip is what
guarantees that every stored event can be read again by the code that wrote it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import msgspec

from programledger.application.eventstore import InvalidAppend
from programledger.domain.events import DomainEvent, EventRegistry

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "EncodedEvent", "EventCodec"]

DEFAULT_MAX_EVENT_BYTES = 256 * 1024


class EncodedEvent(NamedTuple):
    event_type: str
    schema_version: int
    data: bytes


def _nul_path(value: Any, encoded: bytes, root: str) -> str | None:
    """The path (from ``root``) of the first string in ``value`` holding a NUL character,
    which PostgreSQL text cannot. ``encoded`` is ``value`` as JSON: NUL shows there as
    ``\\u0000``, so only a value that may hold one is walked, not every value."""
    if b"\\u0000" not in encoded:
        return None
    stack: list[tuple[Any, str]] = [(msgspec.to_builtins(value), root)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where
        elif isinstance(item, dict):
            stack.extend((v, f"{where}.{k}") for k, v in item.items())
            stack.extend((k, f"{where}.<key>") for k in item if isinstance(k, str))
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return None


class EventCodec:
    def __init__(
        self, registry: EventRegistry, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    ) -> None:
        self.registry = registry
        self.max_event_bytes = max_event_bytes
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[type[DomainEvent], msgspec.json.Decoder[Any]] = {}

    def _decoder(self, cls: type[DomainEvent]) -> msgspec.json.Decoder[Any]:
        decoder = self._decoders.get(cls)
        if decoder is None:
            decoder = self._decoders[cls] = msgspec.json.Decoder(cls)
        return decoder

    def encode(self, event: DomainEvent, *, field: str = "event") -> EncodedEvent:
        cls = type(event)
        name = getattr(cls, "event_type", None)
        if not isinstance(name, str) or name not in self.registry:
            raise InvalidAppend(
                f"{field}: unknown event type {name or cls.__qualname__!r}; "
                "only registered event types can be stored",
                field=f"{field}.event_type",
            )
        if self.registry.type_for(name) is not cls:
            raise InvalidAppend(
                f"{field}: {cls.__qualname__} is not the registered class for {name!r}",
                field=f"{field}.event_type",
            )
        try:
            raw = self._encoder.encode(event)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidAppend(f"{field}: {name} cannot be encoded: {exc}", field=field) from exc
        if len(raw) > self.max_event_bytes:
            raise InvalidAppend(
                f"{field}: {name} is {len(raw)} bytes encoded, over the limit of "
                f"{self.max_event_bytes} bytes",
                field=field,
            )
        try:
            self._decoder(cls).decode(raw)
        except msgspec.ValidationError as exc:
            raise InvalidAppend(
                f"{field}: {name} does not match its schema: {exc}", field=field
            ) from exc
        where = _nul_path(event, raw, field)
        if where is not None:
            raise InvalidAppend(f"{field}: {name} has a NUL character at {where}", field=where)
        return EncodedEvent(name, cls.schema_version, raw)

    def encode_all(self, events: list[DomainEvent]) -> Iterator[EncodedEvent]:
        for i, event in enumerate(events):
            yield self.encode(event, field=f"events[{i}]")

    def decode(self, event_type: str, stored_version: int, data: bytes | str) -> DomainEvent:
        cls = self.registry.type_for(event_type)
        if stored_version == cls.schema_version:
            event: DomainEvent = self._decoder(cls).decode(data)
            return event
        lifted = self.registry.upcast(event_type, stored_version, msgspec.json.decode(data))
        converted: DomainEvent = msgspec.convert(lifted, cls)
        return converted

    def to_current_json(self, event_type: str, stored_version: int, data: bytes) -> bytes:
        """The event's data in its current schema, copying bytes when nothing changed."""
        if stored_version == self.registry.type_for(event_type).schema_version:
            return data
        return self._encoder.encode(self.decode(event_type, stored_version, data))
