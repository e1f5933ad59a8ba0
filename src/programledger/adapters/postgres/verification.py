"""Verify every stream's hash chain: the auditor's "has anything been altered?".

:meth:`PostgresEventStore.verify` walks one stream. This walks all of them, a page of
streams per query, and also finds the streams that the ``streams`` table no longer lists
but that still have events: deleting a stream's head row would otherwise hide the whole
stream from a walk that only follows ``streams``. (A stream deleted entirely, head and
events, is the Merkle tree's to see: ``ledger_verification.py``.)

For speed the whole walk runs in PostgreSQL (:data:`_CHAINS`): each event's hash is
recomputed there and only one row per stream comes back, saying whether every link held.
The hash is written out in the query rather than calling ``event_hash_v2``: until
migration 0020 declared that function STABLE, PostgreSQL could not inline it, and a call per
event cost three times the expression (measured); the bytes are the same either way. Any
stream that does not pass is walked again by :meth:`PostgresEventStore.verify`, which
names its first broken link; so the fast walk
decides nothing alone: it only passes the streams the per-stream walk would pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import StreamVerification

__all__ = ["VerificationSummary", "count_streams", "verify_page", "verify_streams"]

_EVENT_HASH = """
sha256(
    '\\x70726f6772616d6c65646765722d6576656e742d763200'::bytea
    || int8send(e.position) || uuid_send(e.event_id)
    || int4send(octet_length(convert_to(e.stream_id, 'UTF8'))) || convert_to(e.stream_id, 'UTF8')
    || int4send(octet_length(convert_to(e.stream_type, 'UTF8')))
    || convert_to(e.stream_type, 'UTF8')
    || int8send(e.version)
    || CASE WHEN e.program_id IS NULL THEN '\\x00'::bytea
            ELSE '\\x01'::bytea || uuid_send(e.program_id) END
    || int4send(octet_length(convert_to(e.event_type, 'UTF8'))) || convert_to(e.event_type, 'UTF8')
    || int4send(e.schema_version)
    || int4send(octet_length(j.data)) || j.data
    || int4send(octet_length(j.metadata)) || j.metadata
    || int8send((extract(epoch FROM e.recorded_at) * 1000000)::bigint)
    || int4send(octet_length(e.prev_hash)) || e.prev_hash
)"""
"""``event_hash_v2`` (migration 0006) inlined; docs/integrity.md states the bytes."""

_CHAINS = f"""
SELECT s.stream_id, c.events,
       coalesce(c.intact AND c.events = s.version AND c.head_holds, false) AS ok
FROM (SELECT stream_id, version, last_hash FROM streams WHERE stream_id > $1
      ORDER BY stream_id LIMIT $2) s
CROSS JOIN LATERAL (
    SELECT count(*) AS events, coalesce(bool_and(link), true) AS intact,
           coalesce(bool_or(version = s.version AND hash = s.last_hash), false) AS head_holds
    FROM (
        SELECT e.version, e.hash,
               (e.version = row_number() OVER w
                AND e.prev_hash = coalesce(lag(e.hash) OVER w, ''::bytea)
                AND e.hash_version IN (1, 2)
                AND e.hash_version >= coalesce(lag(e.hash_version) OVER w, 1)
                AND e.hash = CASE e.hash_version
                    WHEN 1 THEN event_hash(e.prev_hash, e.event_id, e.stream_id, e.version,
                                           e.event_type, e.schema_version, e.data,
                                           e.metadata, e.recorded_at)
                    ELSE {_EVENT_HASH} END) IS TRUE AS link
        FROM events e
        CROSS JOIN LATERAL (SELECT convert_to(e.data::text, 'UTF8') AS data,
                                   convert_to(e.metadata::text, 'UTF8') AS metadata) j
        WHERE e.stream_id = s.stream_id
        WINDOW w AS (ORDER BY e.version)
    ) links
) c
ORDER BY s.stream_id
"""
"""Per listed stream after ``$1`` (at most ``$2``): its events, and whether the chain
holds exactly as :func:`~programledger.adapters.postgres.eventstore._walk_chain` checks it
(versions 1, 2, ... with no gap, each link naming the previous hash, hash formats known and
never going down, each hash recomputed, the head naming the last event)."""

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
    store: PostgresEventStore, *, batch: int = 64
) -> AsyncIterator[StreamVerification]:
    """Every stream's verification, ``batch`` streams per query; headless streams come
    first.

    Each page is checked in its own repeatable-read snapshot (as ``verify`` checks a
    stream), so an append during the walk is never mistaken for a broken link. Streams
    created after the walk started may or may not be included.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    async with store.pool.acquire() as conn:
        headless = [r["stream_id"] for r in await conn.fetch(_HEADLESS)]
    for stream_id in headless:
        yield await store.verify(stream_id)
    after = ""
    while page := await _verify_page(store, after, batch):
        for result in page:
            yield result
        after = page[-1].stream_id


async def _verify_page(
    store: PostgresEventStore, after: str, limit: int
) -> list[StreamVerification]:
    """The listed streams after ``after`` (at most ``limit``), checked by :data:`_CHAINS`;
    any that fails is walked again by ``store.verify`` for its first broken link."""
    async with store.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        await conn.execute("SET LOCAL jit = off")
        rows = await conn.fetch(_CHAINS, after, limit)
    return [
        StreamVerification(stream_id=r["stream_id"], ok=True, events_checked=r["events"])
        if r["ok"]
        else await store.verify(r["stream_id"])
        for r in rows
    ]


async def verify_page(
    store: PostgresEventStore, *, after: str | None, limit: int, batch: int = 64
) -> tuple[list[StreamVerification], str | None]:
    """At most ``limit`` listed streams after the stream id ``after`` (``None``: from the
    first, headless streams included), ``batch`` per query, and the id to continue after
    (``None``: done).

    For an API request, whose time must stay bounded however large the store is.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    results: list[StreamVerification] = []
    if after is None:
        async with store.pool.acquire() as conn:
            headless = [r["stream_id"] for r in await conn.fetch(_HEADLESS)]
        results += [await store.verify(s) for s in headless]
    position = after or ""
    listed = 0
    while listed < limit:
        page = await _verify_page(store, position, min(batch, limit - listed))
        if not page:
            return results, None
        results += page
        listed += len(page)
        position = page[-1].stream_id
    more = await store.stream_ids(after=position, limit=1)
    return results, position if more else None
