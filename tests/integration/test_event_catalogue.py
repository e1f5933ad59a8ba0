"""The store refuses event types and schema versions its catalogue does not hold."""

from __future__ import annotations

from typing import ClassVar

import asyncpg
import pytest

from programledger.adapters.codec import EventCodec
from programledger.adapters.postgres.catalogue import (
    catalogue_pairs,
    missing_from_catalogue,
    sync_catalogue,
)
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import EventMetadata, ExpectedVersion, InvalidAppend
from programledger.domain.events import DomainEvent, EventRegistry
from tests.support.events import Noted, Renamed, raw_append, store_test_registry

META = EventMetadata(actor="catalogue-test")


class Unlisted(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "TestUnlisted"
    text: str


async def _raw_append(pool: asyncpg.Pool, event_type: str, version: int) -> None:
    async with pool.acquire() as conn:
        await raw_append(conn, "person-1", event_type, version, b'{"name": "Ada Lovelace"}')


async def _stored(pool: asyncpg.Pool) -> tuple[int, int]:
    async with pool.acquire() as conn:
        events = await conn.fetchval("SELECT count(*) FROM events")
        streams = await conn.fetchval("SELECT count(*) FROM streams")
    return events, streams


def test_the_catalogue_holds_every_version_an_upcaster_chain_reads() -> None:
    assert catalogue_pairs(store_test_registry()) == [
        ("TestNoted", 1),
        ("TestRenamed", 1),
        ("TestRenamed", 2),
    ]


@pytest.mark.parametrize(("event_type", "version"), [("Forged", 1), ("TestRenamed", 3)])
async def test_a_raw_append_outside_the_catalogue_is_refused_and_writes_nothing(
    pool: asyncpg.Pool, event_type: str, version: int
) -> None:
    with pytest.raises(asyncpg.PostgresError) as refused:
        await _raw_append(pool, event_type, version)
    assert refused.value.sqlstate == "PL415"
    assert f"event type '{event_type}' at schema version {version}" in str(refused.value)
    assert await _stored(pool) == (0, 0)


async def test_an_older_version_an_upcaster_reads_is_accepted(pool: asyncpg.Pool) -> None:
    await _raw_append(pool, "TestRenamed", 1)
    assert await _stored(pool) == (1, 1)


async def test_code_newer_than_the_catalogue_gets_a_clear_refusal_until_migrate(
    pool: asyncpg.Pool, schema: str
) -> None:
    registry = EventRegistry([Noted, Renamed, Unlisted])
    store = PostgresEventStore(pool, EventCodec(registry), schema=schema)
    with pytest.raises(InvalidAppend) as refused:
        await store.append("note-1", ExpectedVersion.NO_STREAM, [Unlisted(text="x")], META)
    assert refused.value.field == "event_type"
    assert str(refused.value) == (
        "event type 'TestUnlisted' at schema version 1 is not in the store's catalogue; "
        "only event types the code registers can be stored; run `programledger migrate` "
        "with the release that defines it"
    ), "said once, on one line"
    assert await _stored(pool) == (0, 0)
    async with pool.acquire() as conn:
        assert await missing_from_catalogue(conn, registry) == [("TestUnlisted", 1)]
        assert await sync_catalogue(conn, registry) == 1
        assert await sync_catalogue(conn, registry) == 0
        assert await missing_from_catalogue(conn, registry) == []
    result = await store.append("note-1", ExpectedVersion.NO_STREAM, [Unlisted(text="x")], META)
    assert result.last_version == 1


async def test_an_uncatalogued_event_among_several_refuses_the_whole_append(
    pool: asyncpg.Pool, schema: str
) -> None:
    store = PostgresEventStore(
        pool, EventCodec(EventRegistry([Noted, Renamed, Unlisted])), schema=schema
    )
    with pytest.raises(InvalidAppend) as refused:
        await store.append(
            "note-1", ExpectedVersion.NO_STREAM, [Noted(text="a"), Unlisted(text="b")], META
        )
    assert "'TestUnlisted' at schema version 1 is not in the store's catalogue" in str(
        refused.value
    )
    assert await _stored(pool) == (0, 0)
    result = await store.append("note-1", ExpectedVersion.NO_STREAM, [Noted(text="a")], META)
    assert (result.first_version, result.last_version) == (1, 1)
