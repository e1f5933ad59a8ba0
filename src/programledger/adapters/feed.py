"""The global feed: the event store read the way the relay publishes it.

NATS keeps events for its stream's max age only; this feed serves every event ever
recorded, with the subject, headers and envelope the relay would give it
(:func:`~programledger.adapters.nats.envelope.encode_message`) and the same filters (program,
stream types, event types), so a consumer that fell behind the stream catches up here and
carries on from NATS with the same code.

Reads go only up to a safe head (:meth:`PostgresEventStore.head_position`): every position
at or below it is committed or will never exist, so a cursor handed out can never be passed
by a transaction that commits later. Pages are keyset reads (``position > cursor``): a
reader holds no cursor, transaction or snapshot between pages, and a page is the most it
keeps in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from uuid import UUID

from programledger.adapters.nats.envelope import (
    HEADER_STORE_ID,
    EventEnvelope,
    OutgoingMessage,
    decode_envelope,
    encode_lines,
    encode_message,
)
from programledger.adapters.nats.subscriber import EventSelection
from programledger.adapters.postgres.catalogue import catalogued_event_types
from programledger.adapters.postgres.eventstore import PostgresEventStore, RawEvent

__all__ = [
    "MAX_FEED_PAGE",
    "EventLog",
    "FeedPage",
    "FeedPosition",
    "StoreBackfill",
    "check_after",
    "feed_selection",
]

MAX_FEED_PAGE = 1000
"""The most events one page (a GraphQL answer, a backfill's read) holds."""
STREAM_PAGE = 2000
"""The events of one read of the HTTP stream: a few MB at most, and half the queries."""
_ENCODE_SLICE = 250
"""Events encoded between two turns of the event loop while a page is encoded."""


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """One event of a page, as NATS would carry it."""

    position: int
    message: OutgoingMessage


@dataclass(frozen=True, slots=True)
class FeedPage:
    events: list[FeedPosition]
    end_position: int
    """Where the next page starts (its ``after``): the last event's position when there
    are more, else the head the page was read up to, so a filter that matched nothing
    still moves the reader on."""
    head: int
    has_more: bool


_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MAX_TYPES = 64


def feed_selection(
    program_id: str | None, stream_types: Sequence[str] | None, event_types: Sequence[str] | None
) -> EventSelection:
    """The selection a feed request asks for, or ``ValueError`` saying what is wrong; the
    rules are the subjects' (a type is a subject token), so a filter means the same here
    and on NATS."""
    program = None
    if program_id is not None:
        try:
            program = UUID(program_id)
        except ValueError:
            raise ValueError(f"program {program_id!r} is not a UUID") from None
    return EventSelection(
        program,
        _types(stream_types, "stream type"),
        _types(event_types, "event type"),
    )


def _types(values: Sequence[str] | None, what: str) -> frozenset[str] | None:
    if not values:
        return None
    if len(values) > _MAX_TYPES:
        raise ValueError(f"give at most {_MAX_TYPES} of {what}")
    for value in values:
        if not _TOKEN.match(value):
            raise ValueError(f"{what} {value!r} is not one: letters, digits, _ or - only")
    return frozenset(values)


class EventLog:
    """Pages and streams of the global feed over one store and subject prefix."""

    def __init__(self, store: PostgresEventStore, prefix: str) -> None:
        self._store = store
        self.prefix = prefix

    async def head(self) -> int:
        """The safe head now: the last position a reader may be given."""
        return await self._store.head_position()

    async def messages(self, rows: Sequence[RawEvent]) -> list[FeedPosition]:
        store = str(await self._store.store_id())
        return [FeedPosition(row.position, self._message(row, store)) for row in rows]

    def _message(self, row: RawEvent, store: str) -> OutgoingMessage:
        """The message as the relay publishes it, the store's mark included (the relay adds
        it to what :func:`encode_message` builds, so the feed does the same)."""
        message = encode_message(self.prefix, row, self._store.codec)
        message.headers[HEADER_STORE_ID] = store
        return message

    async def selection(
        self,
        program_id: str | None,
        stream_types: Sequence[str] | None,
        event_types: Sequence[str] | None,
    ) -> EventSelection:
        """:func:`feed_selection`, and ``ValueError`` for an event type the store cannot
        hold (its catalogue is every type it ever accepted): a misspelt type would match
        nothing, and a reader would take the empty feed for the truth."""
        selection = feed_selection(program_id, stream_types, event_types)
        if selection.event_types:
            async with self._store.pool.acquire() as conn:
                known = await catalogued_event_types(conn)
            unknown = sorted(selection.event_types - known)
            if unknown:
                raise ValueError(
                    f"event type {', '.join(map(repr, unknown))}: not in this store's "
                    "catalogue (docs/events.md lists the types)"
                )
        return selection

    async def page(self, after: int, first: int, selection: EventSelection) -> FeedPage:
        """Up to ``first`` selected events after ``after``, up to the safe head now."""
        if not 1 <= first <= MAX_FEED_PAGE:
            raise ValueError(f"first must be between 1 and {MAX_FEED_PAGE}")
        if after < 0:
            raise ValueError("after must be a position, 0 or more")
        head = await self.head()
        check_after(after, head)
        if after == head:
            return FeedPage([], after, head, False)
        rows = await self.read(after, head, selection, first + 1)
        if len(rows) > first:
            events = await self.messages(rows[:first])
            return FeedPage(events, events[-1].position, head, True)
        return FeedPage(await self.messages(rows), head, head, False)

    async def lines(
        self, after: int, through: int, selection: EventSelection, *, page: int = STREAM_PAGE
    ) -> AsyncIterator[bytes]:
        """NDJSON of the selected events after ``after`` up to ``through`` (a safe head
        :meth:`head` returned), a page of lines per item.

        The next page is read while the caller takes this one (PostgreSQL works on it
        while this process encodes and sends), and no further: a slow reader slows the
        reads instead of filling memory, which holds at most two pages.
        """
        if after >= through:
            return
        store = str(await self._store.store_id())
        codec = self._store.codec
        pending = asyncio.ensure_future(self.read(after, through, selection, page))
        try:
            while True:
                rows = await pending
                if not rows:
                    return
                more = len(rows) == page and rows[-1].position < through
                if more:
                    after = rows[-1].position
                    pending = asyncio.ensure_future(self.read(after, through, selection, page))
                parts = []
                for start in range(0, len(rows), _ENCODE_SLICE):
                    parts.append(
                        encode_lines(self.prefix, rows[start : start + _ENCODE_SLICE], codec, store)
                    )
                    # Let the next page's read go out: its query is sent only when this
                    # task lets the loop run, and PostgreSQL then works while we encode.
                    await asyncio.sleep(0)
                yield b"".join(parts)
                if not more:
                    return
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending

    async def read(
        self, after: int, through: int, selection: EventSelection, limit: int
    ) -> list[RawEvent]:
        return await self._store.read_feed(
            after,
            through,
            program_id=selection.program_id,
            stream_types=selection.stream_types,
            event_types=selection.event_types,
            limit=limit,
        )


def check_after(after: int, head: int) -> None:
    """Refuse a position beyond the head: no reader was ever given one (the head never goes
    back), so it comes from another store or a bug, and reading on from it would skip
    events."""
    if after > head:
        raise ValueError(
            f"after {after} is beyond the last position recorded, {head}: a position from "
            "another store?"
        )


class StoreBackfill:
    """The subscriber helper's backfill read from the store directly, for workers inside
    the deployment (the webhook worker); downstream services use ``FeedClient``."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def events(
        self, after: int, selection: EventSelection
    ) -> AsyncIterator[EventEnvelope | int]:
        head = await self._log.head()
        while after < head:
            rows = await self._log.read(after, head, selection, MAX_FEED_PAGE)
            for message in await self._log.messages(rows):
                yield decode_envelope(message.message.payload)
            if len(rows) < MAX_FEED_PAGE:
                break
            after = rows[-1].position
        yield head
