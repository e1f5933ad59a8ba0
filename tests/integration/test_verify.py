"""Verifying every stream finds each kind of tampering, in every stream it happened in.

Tampering is done the way an attacker with superuser rights would: with triggers
disabled for the transaction (``session_replication_role = replica``).
"""

from __future__ import annotations

import pytest

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.verification import (
    VerificationSummary,
    count_streams,
    verify_page,
    verify_streams,
)
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from tests.support.events import Noted
from tests.support.tamper import tamper

META = EventMetadata(actor="auditor-test")


async def _write(store: PostgresEventStore, streams: int, events: int) -> None:
    for s in range(streams):
        for e in range(events):
            await store.append(f"note-{s:03d}", ExpectedVersion.ANY, [Noted(text=f"{s}/{e}")], META)


async def _verify_all(store: PostgresEventStore) -> VerificationSummary:
    summary = VerificationSummary()
    async for result in verify_streams(store, batch=4):
        summary.add(result)
    return summary


async def test_an_untouched_store_verifies_whole(event_store: PostgresEventStore) -> None:
    await _write(event_store, streams=11, events=3)
    assert await count_streams(event_store) == 11
    summary = await _verify_all(event_store)
    assert summary.ok
    assert (summary.streams, summary.events) == (11, 33)


async def test_an_empty_store_has_nothing_to_verify(event_store: PostgresEventStore) -> None:
    assert await count_streams(event_store) == 0
    summary = await _verify_all(event_store)
    assert summary.ok
    assert summary.streams == 0


async def test_every_tampered_stream_is_reported_with_its_first_broken_link(
    event_store: PostgresEventStore, pg_url: str, schema: str
) -> None:
    await _write(event_store, streams=9, events=4)
    # An edited payload, a removed middle event, a removed last event, a forged head, a hash
    # format no append writes.
    await tamper(
        pg_url,
        schema,
        """
        UPDATE events SET data = '{"text": "forged", "n": 0}'
         WHERE stream_id = 'note-001' AND version = 2;
        DELETE FROM events WHERE stream_id = 'note-003' AND version = 3;
        DELETE FROM events WHERE stream_id = 'note-005' AND version = 4;
        UPDATE streams SET last_hash = '\\x00' WHERE stream_id = 'note-007';
        UPDATE events SET hash_version = 3 WHERE stream_id = 'note-008' AND version = 3;
    """,
    )
    summary = await _verify_all(event_store)
    broken = {b.stream_id: (b.broken_at_version, b.problem) for b in summary.broken}
    assert broken == {
        "note-001": (2, "the event's content does not match its hash"),
        "note-003": (3, "version 3 is missing"),
        "note-005": (4, "version 4 is missing"),
        "note-007": (4, "the stream's head does not match its last event"),
        "note-008": (3, "the event's hash format 3 is unknown"),
    }
    assert summary.streams == 9


async def test_a_stream_whose_head_row_was_deleted_is_still_found(
    event_store: PostgresEventStore, pg_url: str, schema: str
) -> None:
    """Walking only the ``streams`` table would never see this stream again."""
    await _write(event_store, streams=3, events=2)
    await tamper(pg_url, schema, "DELETE FROM streams WHERE stream_id = 'note-002'")
    assert await count_streams(event_store) == 3
    summary = await _verify_all(event_store)
    assert [(b.stream_id, b.problem) for b in summary.broken] == [
        ("note-002", "events exist but the stream's head record is missing")
    ]
    assert summary.streams == 3


async def test_a_walk_page_by_page_sees_every_stream_once_headless_first(
    event_store: PostgresEventStore, pg_url: str, schema: str
) -> None:
    """What the API's bounded ``verifyIntegrity`` pages through."""
    await _write(event_store, streams=7, events=2)
    await tamper(pg_url, schema, "DELETE FROM streams WHERE stream_id = 'note-004'")
    seen: list[str] = []
    pages = 0
    after: str | None = None
    while True:
        results, after = await verify_page(event_store, after=after, limit=2, batch=4)
        pages += 1
        seen += [r.stream_id for r in results]
        if after is None:
            break
    assert seen[0] == "note-004"  # the headless stream, on the first page
    assert sorted(seen) == [f"note-{i:03d}" for i in range(7)]
    assert len(seen) == len(set(seen))
    assert pages == 3  # 6 listed streams, 2 a page
    with pytest.raises(ValueError, match="limit"):
        await verify_page(event_store, after=None, limit=0)
