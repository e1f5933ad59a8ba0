"""The event store as the application sees it: its value types and its errors.

The ports, each as narrow as its user needs, are ``ports.CommandStore`` (the command
handlers) and ``export.ExportSource`` (the audit export); ``adapters/postgres/eventstore.py``
implements both. Keeping the errors here lets the API map them without importing an adapter.
"""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

import msgspec

from programledger.application.errors import OperationalError
from programledger.domain.events import DomainEvent

__all__ = [
    "AppendResult",
    "BrokenChain",
    "ConcurrencyConflict",
    "EventMetadata",
    "EventStoreError",
    "ExpectedVersion",
    "IdempotencyKeyReused",
    "InvalidAppend",
    "RecordedEvent",
    "StreamVerification",
    "Version",
]


class ExpectedVersion(enum.Enum):
    """What an append asserts about the stream besides an exact version number."""

    ANY = "any"
    """No check: the events go after whatever is there."""
    NO_STREAM = "no_stream"
    """The stream must not exist yet (same as the exact version 0)."""


Version = int | ExpectedVersion
"""An exact stream version (0 = no stream yet), or one of :class:`ExpectedVersion`."""


class EventMetadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who and what caused an append; written on every event of it.

    ``actor`` comes from the authenticated caller, never from a request body.
    ``program_id`` lets subscribers filter by program, including on streams (a resource)
    that serve several programs.
    """

    actor: str
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    reason: str | None = None
    program_id: UUID | None = None


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored: its data upcast to the current schema, and all its metadata."""

    position: int
    event_id: UUID
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    schema_version: int
    """The schema version of ``data`` as returned (current), not necessarily as stored."""
    stored_schema_version: int
    data: DomainEvent
    metadata: EventMetadata
    recorded_at: datetime
    hash: bytes


class AppendResult(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    first_version: int
    last_version: int
    """The stream's version after the append: the next expected version."""
    first_position: int
    last_position: int
    """The global position of the last event written; wait for projections to reach it."""
    event_ids: list[UUID]
    recorded_at: datetime
    replayed: bool = False
    """True when an idempotency key matched an earlier append: nothing was written now."""


class StreamVerification(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of walking one stream's hash chain."""

    stream_id: str
    ok: bool
    events_checked: int
    broken_at_version: int | None = None
    """The first version whose link does not hold (``None`` when the chain is whole)."""
    problem: str | None = None


class BrokenChain(OperationalError):
    """A stream's hash chain does not hold: what is stored was altered, removed or
    reordered outside the store. What would present the stream as the record (history,
    an export, a rebuild) refuses with this instead of serving the altered data."""

    def __init__(self, verification: StreamVerification) -> None:
        self.stream_id = verification.stream_id
        self.version = verification.broken_at_version or 1
        self.problem = verification.problem or "the chain does not hold"
        super().__init__(
            f"integrity: the hash chain of stream {self.stream_id!r} is broken at version "
            f"{self.version} ({self.problem}); refusing to serve it as the record "
            "(`programledger verify` reports every broken stream)"
        )


class EventStoreError(Exception):
    """Base of every error the store raises on purpose; nothing was written."""


class ConcurrencyConflict(EventStoreError):
    def __init__(self, stream_id: str, expected: Version, actual: int) -> None:
        shown = expected.value if isinstance(expected, ExpectedVersion) else expected
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the append expected {shown}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual_version = actual


class IdempotencyKeyReused(EventStoreError):
    """The key was used before for a different append; the first one stands."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for a different command; "
            "use a new key for a new command"
        )
        self.key = key


class InvalidAppend(EventStoreError):
    """The append itself is malformed (stream id, event data, size, metadata)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
