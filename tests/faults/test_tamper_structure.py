"""Rewrites of the log's shape that no single stream's hash chain shows, each found by
``check_structure`` (or, for the audit trail, ``check_audit_trail``) with its message.

Tampering is done as a superuser would, triggers disabled (``tests/support/tamper.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import pytest_asyncio

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.structure import StructureReport, check_structure
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.application.handlers import Application
from programledger.projections.audit import check_audit_trail
from programledger.projections.engine.rebuild import rebuild
from tests.support.events import Noted
from tests.support.ledger import settled
from tests.support.projection_process import Ids, app_store, busy_history, run_steps
from tests.support.tamper import tamper

META = EventMetadata(actor="structure-test")


Rewrite = Callable[[str], Awaitable[None]]


@pytest.fixture
def rewrite(pg_url: str, schema: str) -> Rewrite:
    return functools.partial(tamper, pg_url, schema)


@pytest_asyncio.fixture
async def notes(event_store: PostgresEventStore) -> None:
    await _notes(event_store)


async def _check(pool: asyncpg.Pool) -> StructureReport:
    async with pool.acquire() as conn:
        return await check_structure(conn)


def _messages(report: StructureReport, check: str) -> list[str]:
    return [p.message for p in report.problems if p.check == check]


async def _notes(store: PostgresEventStore) -> None:
    """note-a: v1 alone, then v2-v4 in one append; note-b: v1, v2 in two appends."""
    await store.append("note-a", ExpectedVersion.NO_STREAM, [Noted(text="a1")], META)
    await store.append("note-b", ExpectedVersion.NO_STREAM, [Noted(text="b1")], META)
    await store.append("note-a", 1, [Noted(text=f"a{i}") for i in (2, 3, 4)], META)
    await store.append("note-b", 1, [Noted(text="b2")], META)


async def _position(pool: asyncpg.Pool, stream: str, version: int) -> int:
    return int(
        await pool.fetchval(
            "SELECT position FROM events WHERE stream_id = $1 AND version = $2", stream, version
        )
    )


async def test_holes_left_by_rolled_back_appends_are_explained(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    await _notes(event_store)
    async with pool.acquire() as conn:
        for _ in range(2):
            # A caller's transaction that appends, then rolls back: its positions are gone.
            tx = conn.transaction()
            await tx.start()
            await event_store.append(
                "note-c",
                ExpectedVersion.ANY,
                [Noted(text="x"), Noted(text="y")],
                META,
                connection=conn,
            )
            await tx.rollback()
    await event_store.append("note-a", 4, [Noted(text="a5")], META)
    report = await _check(pool)
    assert report.ok, report.problems
    assert (report.events, report.unused_positions) == (7, 4)


async def test_an_event_deleted_from_the_middle_of_an_append_is_a_hole_nothing_explains(
    pool: asyncpg.Pool, notes: None, rewrite: Rewrite
) -> None:
    middle = await _position(pool, "note-a", 3)
    await rewrite(f"DELETE FROM events WHERE position = {middle}")
    assert _messages(await _check(pool), "positions") == [
        f"position {middle} is missing from the middle of one append (transaction "
        f"{await _tx(pool, middle + 1)}): an event was deleted"
    ]


async def _swap_positions(rewrite: Rewrite, p: int, q: int) -> None:
    await rewrite(
        f"""
        UPDATE events SET position = -1 WHERE position = {p};
        UPDATE events SET position = {p} WHERE position = {q};
        UPDATE events SET position = {q} WHERE position = -1;
        """,
    )


async def _tx(pool: asyncpg.Pool, position: int) -> str:
    return str(await pool.fetchval("SELECT tx_id::text FROM events WHERE position = $1", position))


async def test_positions_swapped_between_streams_contradict_transaction_order(
    pool: asyncpg.Pool, notes: None, rewrite: Rewrite
) -> None:
    a1, b1 = await _position(pool, "note-a", 1), await _position(pool, "note-b", 1)
    await _swap_positions(rewrite, a1, b1)
    [message] = _messages(await _check(pool), "positions")
    assert f"position {b1} belongs to transaction" in message
    assert "appends take positions in transaction order, so events were moved" in message


async def test_versions_out_of_position_order_within_a_stream(
    pool: asyncpg.Pool, notes: None, rewrite: Rewrite
) -> None:
    b1, b2 = await _position(pool, "note-b", 1), await _position(pool, "note-b", 2)
    await _swap_positions(rewrite, b1, b2)
    report = await _check(pool)
    assert _messages(report, "versions") == [
        f"note-b: version 2 is at position {b1}, before version 1 at position {b2}"
    ]


async def test_a_recorded_time_that_goes_back_within_a_stream(
    pool: asyncpg.Pool, notes: None, rewrite: Rewrite
) -> None:
    await rewrite(
        "UPDATE events SET recorded_at = recorded_at - interval '1 hour' "
        "WHERE stream_id = 'note-b' AND version = 2",
    )
    [message] = _messages(await _check(pool), "times")
    assert message.startswith("note-b: version 2 was recorded at ")
    assert ", before version 1 (" in message


async def test_a_forged_row_beyond_the_sequence(
    pool: asyncpg.Pool, notes: None, rewrite: Rewrite
) -> None:
    await rewrite(
        "CREATE TEMP TABLE forged AS SELECT * FROM events"
        " WHERE stream_id = 'note-b' AND version = 2;"
        " UPDATE forged SET position = position + 1000, event_id = gen_random_uuid(),"
        " version = version + 10;"
        " INSERT INTO events SELECT * FROM forged",
    )
    head = await pool.fetchval("SELECT max(position) FROM events")
    assert _messages(await _check(pool), "positions")[0].startswith(
        f"position {head} is beyond every position the store handed out"
    )


@pytest.mark.parametrize(
    ("setup", "what"),
    [
        ("INSERT INTO relay_checkpoints (name, position) VALUES ('default', {beyond})", "relay"),
        ("INSERT INTO projection_status (name, position) VALUES ('audit', {beyond})", "projection"),
        (
            "INSERT INTO projection_status (name, rebuild_position) VALUES ('risks', {beyond})",
            "rebuild of projection",
        ),
    ],
)
async def test_a_checkpoint_beyond_the_last_event(
    event_store: PostgresEventStore, pool: asyncpg.Pool, setup: str, what: str
) -> None:
    """What deleting the tail (or truncating the store) leaves behind."""
    await _notes(event_store)
    head = int(await pool.fetchval("SELECT max(position) FROM events"))
    await pool.execute(setup.format(beyond=head + 3))
    [message] = _messages(await _check(pool), "checkpoints")
    assert message.startswith(f"the {what} '")
    assert f"checkpoint is at position {head + 3}, beyond the last event ({head})" in message


@pytest_asyncio.fixture
async def audited(pool: asyncpg.Pool, schema: str) -> PostgresEventStore:
    store = app_store(pool, schema)
    await run_steps(Application(store), busy_history(2), Ids())
    await settled(store)
    await rebuild(pool, store, "audit", progress=False)
    return store


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (
            "UPDATE rm_audit SET actor = 'mallory' WHERE position = {p}",
            "rm_audit's row at position {p} differs from its event",
        ),
        (
            "DELETE FROM rm_audit WHERE position = {p}",
            "rm_audit has no row for the event at position {p}",
        ),
        (
            "INSERT INTO rm_audit SELECT {p} + 1000, gen_random_uuid(), stream_id, stream_type,"
            " entity_id, program_id, version, event_type, actor, reason, correlation_id,"
            " causation_id, recorded_at, changes FROM rm_audit WHERE position = {p}",
            "rm_audit has a row at position {q} that no event explains, beyond its checkpoint"
            " {checkpoint}",
        ),
        (
            "UPDATE rm_audit SET changes = '[]' WHERE position = {p}",
            "rm_audit's changes at position {p} ({stream} version {version}) are not what the"
            " event changed",
        ),
    ],
)
async def test_an_edited_audit_trail_differs_from_the_events(
    audited: PostgresEventStore, pool: asyncpg.Pool, edit: str, says: str
) -> None:
    async with pool.acquire() as conn:
        assert await check_audit_trail(conn, audited) == []
        # The third row: not every position has one (a program's code reservation has none).
        p = int(await conn.fetchval("SELECT position FROM rm_audit ORDER BY position OFFSET 2"))
        row = await conn.fetchrow("SELECT stream_id, version FROM rm_audit WHERE position = $1", p)
        assert row is not None
        checkpoint = await conn.fetchval(
            "SELECT position FROM projection_status WHERE name = 'audit'"
        )
        await conn.execute(edit.format(p=p))
        problems = await check_audit_trail(conn, audited)
    assert [str(x) for x in problems] == [
        "read-models: "
        + says.format(
            p=p, q=p + 1000, checkpoint=checkpoint, stream=row["stream_id"], version=row["version"]
        )
    ]
