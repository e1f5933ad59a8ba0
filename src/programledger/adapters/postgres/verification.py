"""Verify every stream's hash chain: the auditor's "has anything been altered?".

:meth:`PostgresEventStore.verify` walks one stream. This walks all of them, a few at a
time, and also finds the streams that the ``streams`` table no longer lists but that still
have events: deleting a stream's head row would otherwise hide the whole stream from a
walk that only follows ``streams``. (A stream deleted entirely, head and events, needs the
global seals DESIGN §1 plans; nothing here can see it.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import StreamVerification

__all__ = ["VerificationSummary", "count_streams", "verify_page", "verify_streams"]

_HEADLESS = """
SELECT DISTINCT e.stream_id FROM events e
WHERE NOT EXISTS (SELECT FROM streams s WHERE s.stream_id = e.stream_id)
ORDER BY e.stream_id
"""


@dataclass(slots=True)
class VerificationSummary:
    """Totals of a walk, and each broken stream's first broken link."""

    streams: int = 0
    events: int = 0
    broken: list[StreamVerification] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.broken

    def add(self, result: StreamVerification) -> None:
        self.streams += 1
        self.events += result.events_checked
        if not result.ok:
            self.broken.append(result)


async def count_streams(store: PostgresEventStore) -> int:
    """How many streams :func:`verify_streams` will report (for a progress bar's total)."""
    async with store.pool.acquire() as conn:
        listed = await conn.fetchval("SELECT count(*) FROM streams")
        headless = await conn.fetchval(f"SELECT count(*) FROM ({_HEADLESS}) h")
    return int(listed) + int(headless)


async def verify_streams(
    store: PostgresEventStore, *, batch: int = 16
) -> AsyncIterator[StreamVerification]:
    """Every stream's verification, ``batch`` streams checked at once (bounded further by
    the pool's size); headless streams come first.

    Each stream is checked in its own repeatable-read snapshot (see ``verify``), so an
    append during the walk is never mistaken for a broken link. Streams created after the
    walk started may or may not be included.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    async with store.pool.acquire() as conn:
        headless = [r["stream_id"] for r in await conn.fetch(_HEADLESS)]
    for start in range(0, len(headless), batch):
        for result in await _verify_all(store, headless[start : start + batch]):
            yield result
    after = ""
    while page := await store.stream_ids(after=after, limit=batch):
        for result in await _verify_all(store, page):
            yield result
        after = page[-1]


async def _verify_all(store: PostgresEventStore, stream_ids: list[str]) -> list[StreamVerification]:
    return list(await asyncio.gather(*(store.verify(s) for s in stream_ids)))


async def verify_page(
    store: PostgresEventStore, *, after: str | None, limit: int, batch: int = 16
) -> tuple[list[StreamVerification], str | None]:
    """At most ``limit`` listed streams after the stream id ``after`` (``None``: from the
    first, headless streams included), and the id to continue after (``None``: done).

    For an API request, whose time must stay bounded however large the store is.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    results: list[StreamVerification] = []
    if after is None:
        async with store.pool.acquire() as conn:
            headless = [r["stream_id"] for r in await conn.fetch(_HEADLESS)]
        for start in range(0, len(headless), batch):
            results += await _verify_all(store, headless[start : start + batch])
    position = after or ""
    listed = 0
    while listed < limit:
        page = await store.stream_ids(after=position, limit=min(batch, limit - listed))
        if not page:
            return results, None
        results += await _verify_all(store, page)
        listed += len(page)
        position = page[-1]
    more = await store.stream_ids(after=position, limit=1)
    return results, position if more else None
