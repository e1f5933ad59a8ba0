"""A ledger export checked offline with the public key alone, restored by import with the
same positions, times and hashes, and proved to extend an earlier export."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from programledger.adapters.codec import EventCodec
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.ledger_export import (
    ImportRefused,
    export_ledger,
    import_ledger,
)
from programledger.adapters.postgres.migrations import migrate
from programledger.adapters.postgres.verification import VerificationSummary, verify_streams
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.application.ledger_audit import verify_export
from programledger.domain.events import EventRegistry
from programledger.domain.integrity import head_from_json
from tests.support.events import Noted
from tests.support.ledger import check_ledger, new_signer, seal_all, settled

META = EventMetadata(actor="export-test", program_id=uuid.uuid4())


async def _write(store: PostgresEventStore, n: int, tag: str) -> None:
    for i in range(n):
        await store.append(
            f"note-{i % 3}", ExpectedVersion.ANY, [Noted(text=f"{tag}{i}\u00e9")], META
        )


async def _export(store: PostgresEventStore) -> list[bytes]:
    await settled(store)
    return [line async for line in export_ledger(store.pool)]


@pytest_asyncio.fixture
async def other_store(pg_url: str, registry: EventRegistry) -> AsyncIterator[PostgresEventStore]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_url)
    await migrate(conn, name, registry=registry)
    await conn.close()
    pool = await create_pool(pg_url, name, min_size=1, max_size=4)
    yield PostgresEventStore(pool, EventCodec(registry), schema=name)
    await pool.close()
    conn = await asyncpg.connect(pg_url)
    await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
    await conn.close()


async def test_export_verifies_offline_and_restores_whole(
    event_store: PostgresEventStore, other_store: PostgresEventStore, pg_url: str
) -> None:
    signer = new_signer()
    await _write(event_store, 12, "a")
    await seal_all(event_store, signer, pg_url)
    first = await _export(event_store)
    await _write(event_store, 9, "b")
    await seal_all(event_store, signer, pg_url)
    await _write(event_store, 2, "unsealed")
    second = await _export(event_store)

    report = verify_export(second, [signer.public_key])
    assert report.ok, report.problems
    assert (report.events, report.tree_size, report.unsealed) == (23, 21, 2)

    earlier = head_from_json(json.loads(first[0])["tree_head"])
    assert verify_export(second, [signer.public_key], against=[earlier]).ok
    # Another key, and an export whose event was edited, are refused.
    assert "signature does not hold" in "\n".join(
        verify_export(second, [new_signer().public_key]).problems
    )
    edited = [line.replace("a3\u00e9".encode(), b"X3") for line in second]
    assert edited != second
    problems = "\n".join(verify_export(edited, [signer.public_key]).problems)
    assert "the event's content does not match its hash" in problems
    # Dropping an event from the file breaks the chain and the tree.
    dropped = [second[0], *second[1:5], *second[6:]]
    problems = "\n".join(verify_export(dropped, [signer.public_key], against=[earlier]).problems)
    assert "the events give another root" in problems

    async with other_store.pool.acquire() as conn:
        assert await import_ledger(conn, second) == 23
        with pytest.raises(ImportRefused, match="already holds events"):
            await import_ledger(conn, second)
        copied = await conn.fetch("SELECT position, recorded_at, hash, data FROM events ORDER BY 1")
    async with event_store.pool.acquire() as conn:
        original = await conn.fetch(
            "SELECT position, recorded_at, hash, data FROM events ORDER BY 1"
        )
    assert [tuple(r) for r in copied] == [tuple(r) for r in original]
    summary = VerificationSummary()
    async for result in verify_streams(other_store):
        summary.add(result)
    assert summary.ok
    assert summary.events == 23
    restored = await check_ledger(other_store, signer, against=[earlier])
    assert restored.ok, restored.problems
    assert restored.tree_size == 21
    # The restored store keeps appending where the original left off.
    await _write(other_store, 1, "after")
    assert await settled(other_store) == max(r["position"] for r in original) + 1
    await seal_all(other_store, signer, pg_url)
    assert (await check_ledger(other_store, signer, against=[earlier])).ok


@pytest.mark.parametrize(
    ("field", "value", "refusal"),
    [
        ("event_type", "Forged", "event type 'Forged' at schema version 1 is not in this store"),
        ("schema_version", 9, "event type 'TestNoted' at schema version 9 is not in this store"),
        ("schema_version", 0, "line 3 is not an exported event: Expected `int` >= 1"),
        ("version", 0, "line 3 is not an exported event: Expected `int` >= 1"),
        ("hash_version", 3, "line 3 is not an exported event: Invalid enum value 3"),
    ],
)
async def test_an_import_of_an_event_no_append_would_write_is_refused_and_writes_nothing(
    event_store: PostgresEventStore,
    other_store: PostgresEventStore,
    field: str,
    value: object,
    refusal: str,
) -> None:
    """The store's own tables no longer check these: the append functions and the import do."""
    await _write(event_store, 3, "a")
    lines = await _export(event_store)
    second = json.loads(lines[2])
    second[field] = value
    lines[2] = json.dumps(second).encode()
    async with other_store.pool.acquire() as conn:
        with pytest.raises(ImportRefused) as refused:
            await import_ledger(conn, lines)
        assert refusal in str(refused.value)
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
        assert await conn.fetchval("SELECT count(*) FROM streams") == 0
