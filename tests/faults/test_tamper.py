"""The tamper matrix: what a superuser (a malicious DBA) can do to the store, and the
message that gives each rewrite away.

Tampering runs with triggers off for the transaction (``session_replication_role =
replica``), as a superuser can. Each case first seals the store (a sealer signs heads over
every event), then rewrites, then runs both checks ``programledger verify`` runs: every
stream's hash chain, and the Merkle tree against the events and the signed heads. The
stream chains alone miss most of these; the tree misses none.
"""

from __future__ import annotations

import re
from uuid import uuid4

import pytest

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.ledger import LedgerStore
from programledger.adapters.postgres.verification import VerificationSummary, verify_streams
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.application.signing import HeadSigner
from programledger.domain.integrity import SignedHead, event_hash_v2
from tests.support.events import Noted
from tests.support.ledger import check_ledger, new_signer, seal_all, tamper

META = EventMetadata(actor="tamper-test", program_id=uuid4())
STREAMS = 4
EVENTS = 4

CONTENT = "the event's content does not match its hash"
ROOT = "the events give another root"
GONE = "which is gone (an event was deleted)"


async def _write(store: PostgresEventStore) -> None:
    """Streams note-0..3 of four events each, interleaved in position order."""
    for version in range(EVENTS):
        for s in range(STREAMS):
            await store.append(
                f"note-{s}", ExpectedVersion.ANY, [Noted(text=f"{s}/{version}", n=version)], META
            )


async def _position(store: PostgresEventStore, stream: str, version: int) -> int:
    async with store.pool.acquire() as conn:
        position = await conn.fetchval(
            "SELECT position FROM events WHERE stream_id = $1 AND version = $2", stream, version
        )
    return int(position)


async def _chains(store: PostgresEventStore) -> dict[str, tuple[int | None, str | None]]:
    summary = VerificationSummary()
    async for result in verify_streams(store):
        summary.add(result)
    return {b.stream_id: (b.broken_at_version, b.problem) for b in summary.broken}


async def _problems(store: PostgresEventStore, signer: HeadSigner, **kw: object) -> str:
    report = await check_ledger(store, signer, **kw)  # type: ignore[arg-type]
    return "\n".join(report.problems)


@pytest.fixture
def signer() -> HeadSigner:
    return new_signer()


@pytest.fixture
async def sealed(
    event_store: PostgresEventStore, signer: HeadSigner, pg_url: str
) -> PostgresEventStore:
    await _write(event_store)
    await seal_all(event_store, signer, pg_url)
    report = await check_ledger(event_store, signer)
    assert report.ok, report.problems
    assert report.tree_size == STREAMS * EVENTS
    assert await _chains(event_store) == {}
    return event_store


async def test_positions_swapped_between_streams(
    sealed: PostgresEventStore, signer: HeadSigner, pg_url: str, schema: str
) -> None:
    a = await _position(sealed, "note-0", 2)
    b = await _position(sealed, "note-1", 3)
    await _swap(pg_url, schema, a, b)
    assert await _chains(sealed) == {"note-0": (2, CONTENT), "note-1": (3, CONTENT)}
    assert ROOT in await _problems(sealed, signer)


async def test_positions_swapped_within_a_stream(
    sealed: PostgresEventStore, signer: HeadSigner, pg_url: str, schema: str
) -> None:
    a = await _position(sealed, "note-2", 1)
    b = await _position(sealed, "note-2", 2)
    await _swap(pg_url, schema, a, b)
    assert await _chains(sealed) == {"note-2": (1, CONTENT)}
    assert ROOT in await _problems(sealed, signer)


@pytest.mark.parametrize(
    "assignment",
    [
        "program_id = gen_random_uuid()",
        "stream_type = 'forged'",
        "position = position + 1000",
    ],
    ids=["program_id", "stream_type", "position"],
)
async def test_columns_the_first_hash_format_left_out_are_covered(
    sealed: PostgresEventStore, signer: HeadSigner, pg_url: str, schema: str, assignment: str
) -> None:
    await tamper(
        pg_url, schema, f"UPDATE events SET {assignment} WHERE stream_id = 'note-3' AND version = 2"
    )
    assert await _chains(sealed) == {"note-3": (2, CONTENT)}
    problems = await _problems(sealed, signer)
    if assignment.startswith("position"):
        # Moved out from under its leaf: the leaf's event is gone (the moved one reads as
        # a new event the sealer has not reached).
        assert GONE in problems
        assert "covers 16 events but only 15 of them are left" in problems


async def test_last_event_deleted_and_stream_head_reset(
    sealed: PostgresEventStore, signer: HeadSigner, pg_url: str, schema: str
) -> None:
    """The chain still holds: only the tree sees the missing event."""
    position = await _position(sealed, "note-1", EVENTS)
    await tamper(
        pg_url,
        schema,
        """
        DELETE FROM events WHERE stream_id = 'note-1' AND version = 4;
        UPDATE streams s SET version = 3, last_position = e.position, last_hash = e.hash
          FROM events e WHERE e.stream_id = 'note-1' AND e.version = 3
           AND s.stream_id = 'note-1';
        """,
    )
    assert await _chains(sealed) == {}
    problems = await _problems(sealed, signer)
    assert f"leaf {position - 1} of the tree is the event at position {position}, {GONE}" in (
        problems
    )
    assert "covers 16 events but only 15 of them are left" in problems


async def test_whole_stream_deleted(
    sealed: PostgresEventStore, signer: HeadSigner, pg_url: str, schema: str
) -> None:
    await tamper(
        pg_url,
        schema,
        "DELETE FROM events WHERE stream_id = 'note-2'; "
        "DELETE FROM streams WHERE stream_id = 'note-2'",
    )
    assert await _chains(sealed) == {}
    problems = await _problems(sealed, signer)
    assert problems.count(GONE) == EVENTS
    assert "covers 16 events but only 12 of them are left" in problems


async def test_store_truncated(
    sealed: PostgresEventStore, signer: HeadSigner, pg_url: str, schema: str
) -> None:
    kept = await LedgerStore(sealed.pool).latest_head()
    assert kept is not None
    await tamper(pg_url, schema, "TRUNCATE events, streams")
    assert await _chains(sealed) == {}
    problems = await _problems(sealed, signer)
    assert f"covers {STREAMS * EVENTS} events but only 0 of them are left" in problems

    # Truncating the tree and the heads as well leaves nothing in the store to compare
    # with: the head an auditor kept still gives it away.
    await tamper(pg_url, schema, "TRUNCATE tree_leaves, tree_nodes, tree_heads")
    assert await _problems(sealed, signer) == ""
    problems = await _problems(sealed, signer, against=[kept])
    assert (
        f"the kept head of size {STREAMS * EVENTS} covers {STREAMS * EVENTS} events "
        "but only 0 of them are left" in problems
    )


async def test_forged_event_with_a_correct_chain_hash(
    event_store: PostgresEventStore, signer: HeadSigner, pg_url: str, schema: str
) -> None:
    """Inserted at a position no event took (an append that rolled back), at the end of
    a stream, with the hash the chain expects and the stream's head moved on."""
    await event_store.append("note-9", ExpectedVersion.NO_STREAM, [Noted(text="real")], META)
    async with event_store.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        result = await event_store.append(
            "note-8", ExpectedVersion.NO_STREAM, [Noted(text="rolled back")], META, connection=conn
        )
        await transaction.rollback()
    hole = result.first_position
    await _write(event_store)
    await seal_all(event_store, signer, pg_url)
    await tamper(
        pg_url,
        schema,
        """
        INSERT INTO events (position, tx_id, event_id, stream_id, stream_type, version,
            event_type, schema_version, program_id, data, metadata, recorded_at, prev_hash,
            hash, hash_version)
        SELECT $1, e.tx_id, gen_random_uuid(), e.stream_id, e.stream_type, 2, e.event_type,
            e.schema_version, e.program_id, '{"text": "forged", "n": 0}', e.metadata,
            e.recorded_at, e.hash,
            event_hash_v2(e.hash, $1, gen_random_uuid(), e.stream_id, e.stream_type, 2,
                e.program_id, e.event_type, e.schema_version, '{"text": "forged", "n": 0}',
                e.metadata, e.recorded_at), 2
        FROM events e WHERE e.stream_id = 'note-9';
        """,
        hole,
    )
    # The forged row's event id differs from the one hashed: hash it again, as a careful
    # forger would.
    await tamper(
        pg_url,
        schema,
        f"""
        UPDATE events SET hash = event_hash_v2(prev_hash, position, event_id, stream_id,
            stream_type, version, program_id, event_type, schema_version, data, metadata,
            recorded_at) WHERE position = {hole};
        UPDATE streams s SET version = 2, last_position = {hole}, last_hash = e.hash
          FROM events e WHERE e.position = {hole} AND s.stream_id = 'note-9';
        """,
    )
    assert await _chains(event_store) == {}
    problems = await _problems(event_store, signer)
    assert f"the event at position {hole} is not in the tree though later events are" in problems


async def test_tail_rewritten_with_recomputed_hashes(
    sealed: PostgresEventStore, signer: HeadSigner, pg_url: str, schema: str
) -> None:
    kept = await LedgerStore(sealed.pool).latest_head()
    assert kept is not None
    await _rewrite_tail(sealed, pg_url, schema)
    assert await _chains(sealed) == {}
    problems = await _problems(sealed, signer)
    # The first head over a rewritten event (the sealer may have made several).
    assert re.search(rf"signed head of size \d+: {ROOT}", problems), problems


async def test_tail_rewritten_and_the_tree_resealed_with_another_key(
    sealed: PostgresEventStore, signer: HeadSigner, pg_url: str, schema: str
) -> None:
    """The forger rebuilds the tree and signs new heads, but not with the key."""
    kept = await LedgerStore(sealed.pool).latest_head()
    assert kept is not None
    await _rewrite_tail(sealed, pg_url, schema)
    await tamper(
        pg_url, schema, "TRUNCATE tree_leaves, tree_nodes, tree_heads, tree_head_publications"
    )
    await seal_all(sealed, new_signer(), pg_url)
    assert await _chains(sealed) == {}
    problems = await _problems(sealed, signer)
    assert "the signature does not hold for a trusted key (forged or altered head)" in problems
    problems = await _problems(sealed, signer, against=[kept])
    assert f"the kept head of size {STREAMS * EVENTS}: {ROOT}" in problems


async def test_a_head_forged_with_another_key_or_inconsistent_with_the_rest(
    sealed: PostgresEventStore, signer: HeadSigner, pg_url: str, schema: str
) -> None:
    """One head re-signed by another key; then, signed with the right key, a head whose
    root belongs to another history (what only a key holder can make)."""
    ledger = LedgerStore(sealed.pool)
    last = await ledger.latest_head()
    assert last is not None
    forged = new_signer().sign(last.head)
    await tamper(
        pg_url,
        schema,
        "UPDATE tree_heads SET signature = $2, key_id = $3 WHERE tree_size = $1",
        last.head.size,
        forged.signature,
        forged.key_id,
    )
    problems = await _problems(sealed, signer)
    assert f"signed head of size {last.head.size}: the signature does not hold" in problems
    forked: SignedHead = signer.sign(
        type(last.head)(
            size=last.head.size,
            root=bytes(32),
            timestamp_ms=last.head.timestamp_ms,
            previous=last.head.previous,
        )
    )
    await tamper(
        pg_url,
        schema,
        "UPDATE tree_heads SET root_hash = $2, signature = $3, key_id = $4, digest = $5 "
        "WHERE tree_size = $1",
        last.head.size,
        forked.head.root,
        forked.signature,
        forked.key_id,
        forked.head.digest(),
    )
    problems = await _problems(sealed, signer, against=[last])
    assert f"signed head of size {last.head.size}: {ROOT}" in problems
    assert "have different roots: the ledger was rewritten since" in problems


async def _swap(pg_url: str, schema: str, a: int, b: int) -> None:
    """Two events exchange positions (the primary key is checked row by row)."""
    await tamper(
        pg_url,
        schema,
        f"UPDATE events SET position = -position WHERE position = {a}; "
        f"UPDATE events SET position = {a} WHERE position = {b}; "
        f"UPDATE events SET position = {b} WHERE position = -{a}",
    )


async def _rewrite_tail(store: PostgresEventStore, pg_url: str, schema: str) -> None:
    """note-0's last two events get new data, and every hash after is recomputed."""
    async with store.pool.acquire() as conn:
        rows = [
            dict(r)
            for r in await conn.fetch(
                "SELECT * FROM events WHERE stream_id = 'note-0' ORDER BY version"
            )
        ]
    previous = rows[1]["hash"]
    for row in rows[2:]:
        row["data"] = b'{"n": 99, "text": "rewritten"}'
        row["prev_hash"] = previous
        row["hash"] = previous = event_hash_v2(
            prev_hash=previous,
            position=row["position"],
            event_id=row["event_id"],
            stream_id=row["stream_id"],
            stream_type=row["stream_type"],
            version=row["version"],
            program_id=row["program_id"],
            event_type=row["event_type"],
            schema_version=row["schema_version"],
            data=row["data"],
            metadata=row["metadata"],
            recorded_at=row["recorded_at"],
        )
        await tamper(
            pg_url,
            schema,
            "UPDATE events SET data = $2::jsonb, prev_hash = $3, hash = $4 WHERE position = $1",
            row["position"],
            row["data"].decode(),
            row["prev_hash"],
            row["hash"],
        )
    await tamper(
        pg_url,
        schema,
        "UPDATE streams SET last_hash = $1 WHERE stream_id = 'note-0'",
        previous,
    )
