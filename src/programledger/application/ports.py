"""The parts of the event store the application uses.

``CommandStore`` is the command handlers' part: it reads one stream at a time and appends
with more than an expected version: handlers fingerprint the *command* behind an
idempotency key (their events depend on state, so a retry may decide different events)
and look a key up before deciding. ``StreamReader``, reading one stream, is shared with an
export (:class:`~programledger.application.export.ExportSource`). ``PostgresEventStore``
satisfies both as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from programledger.application.eventstore import (
    AppendResult,
    BrokenChain,
    EventMetadata,
    RecordedEvent,
    StreamVerification,
    Version,
)
from programledger.domain.events import DomainEvent

__all__ = ["CommandStore", "StreamReader", "require_intact"]


class StreamReader(Protocol):
    """Reading one stream, which both the command handlers and an export do."""

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        recorded_before: datetime | None = None,
    ) -> list[RecordedEvent]: ...

    async def verify(self, stream_id: str) -> StreamVerification:
        """Walk the stream's hash chain and report its first broken link."""
        ...


async def require_intact(store: StreamReader, stream_ids: Sequence[str]) -> None:
    """Raise :class:`BrokenChain` for the first of ``stream_ids`` (streams that have
    events) whose hash chain does not hold, before anything presents them as the record."""
    for stream_id in stream_ids:
        result = await store.verify(stream_id)
        if not result.ok:
            raise BrokenChain(result)


class CommandStore(StreamReader, Protocol):
    async def append(
        self,
        stream_id: str,
        expected_version: Version,
        events: Sequence[DomainEvent],
        metadata: EventMetadata,
        *,
        idempotency_key: str | None = None,
        fingerprint: bytes | None = None,
    ) -> AppendResult: ...

    def check_events(self, events: Sequence[DomainEvent]) -> None:
        """Raise :class:`~programledger.application.eventstore.InvalidAppend` when
        ``events`` could not be stored, writing nothing: lets a handler refuse a command
        before an earlier append of it (a code reservation) that cannot be undone."""
        ...

    async def find_idempotent(
        self, key: str, fingerprint: bytes | None = None
    ) -> AppendResult | None: ...
