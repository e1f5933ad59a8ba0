"""The one statement that commits a runner's batch: a version closed and the next one
opened together under the partial unique index, states and checkpoint with them, the
notification at commit; nothing written onto a status row that moved, nor when a close
finds other versions than the states say; held back by a rebuild's swap, which locks the
tables before the status row as the statement does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import pytest
import pytest_asyncio

from programledger.projections.engine.commit import Checkpoint, Claim, commit_batch
from programledger.projections.engine.core import (
    Closes,
    Connection,
    Inserts,
    Projection,
    ProjectionBug,
    TableWrites,
)
from programledger.projections.engine.storage import (
    lock_status,
    lock_tables,
    prepare_tables,
    projection_channel,
)
from programledger.projections.engine.tables import Column, Table
from tests.support.relay_process import eventually

ITEMS = Table(
    "rm_commit_items",
    key=(Column("item_id", "uuid", True),),
    columns=(Column("label", "text", True),),
)
PROJECTION = Projection(
    name="commit_items",
    description="items, for the commit statement's tests",
    handles=frozenset(),
    tables=(ITEMS,),
    states={},
    handle=lambda ctx, event: None,
)
AT = datetime(2027, 1, 1, tzinfo=UTC)
Parts = list[tuple[Closes | None, Inserts | None]]


def _writes(item: UUID, label: str, position: int, *, closing: int | None) -> Parts:
    """Item ``item`` labelled ``label`` from ``position`` on, ending the version current
    since ``closing``, as the runner hands them to the statement."""
    ends = {} if closing is None else {(item,): (position, AT)}
    writes = TableWrites(ITEMS, ITEMS.name, ends, [], [(item, label, position, None, AT, None)])
    parts = writes.parts()
    assert parts is not None
    return [parts]


async def _commit(
    conn: Connection,
    claim: Claim,
    position: int,
    writes: Parts,
    states: tuple[list[str], list[bytes]] = ([], []),
) -> bool:
    return await commit_batch(
        conn,
        claim,
        Checkpoint(position, AT, 1),
        channel=projection_channel(await conn.fetchval("SELECT current_schema()")),
        state_table=PROJECTION.state_table.name,
        states=states,
        writes=writes,
    )


async def _versions(pool: asyncpg.Pool) -> list[tuple[str, int, int | None]]:
    rows = await pool.fetch(
        "SELECT label, valid_from_pos, valid_to_pos FROM rm_commit_items ORDER BY valid_from_pos"
    )
    return [(r["label"], r["valid_from_pos"], r["valid_to_pos"]) for r in rows]


async def _status(pool: asyncpg.Pool) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT position, generation FROM projection_status WHERE name = $1", PROJECTION.name
    )
    assert row is not None
    return row["position"], row["generation"]


@pytest_asyncio.fixture
async def generation(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        assert await prepare_tables(conn, PROJECTION)
    return (await _status(pool))[1]


async def test_a_version_closed_and_the_next_opened_in_one_statement_then_notified(
    pool: asyncpg.Pool, generation: int
) -> None:
    heard: list[str] = []
    listener = await pool.acquire()
    schema = await listener.fetchval("SELECT current_schema()")
    channel = projection_channel(schema)

    def hear(*args: object) -> None:
        heard.append(str(args[3]))

    await listener.add_listener(channel, hear)
    item = uuid4()
    try:
        async with pool.acquire() as conn:
            first = _writes(item, "first", 1, closing=None)
            assert await _commit(conn, Claim(PROJECTION.name, generation, 0), 1, first)
            second = _writes(item, "second", 2, closing=1)
            states = (["item-1"], [b"\x01"])
            assert await _commit(conn, Claim(PROJECTION.name, generation, 1), 2, second, states)
        await eventually(lambda: heard == ["commit_items:1", "commit_items:2"])
    finally:
        await listener.remove_listener(channel, hear)
        await pool.release(listener)
    assert await _versions(pool) == [("first", 1, 2), ("second", 2, None)]
    assert await _status(pool) == (2, generation)
    assert await pool.fetchval("SELECT state FROM rm_commit_items_state") == b"\x01"


async def test_nothing_is_written_onto_a_status_row_that_moved(
    pool: asyncpg.Pool, generation: int
) -> None:
    item = uuid4()
    async with pool.acquire() as conn:
        assert await _commit(conn, Claim(PROJECTION.name, generation, 0), 1, [])
        # A runner that still thinks the checkpoint is 0, or the tables of the generation
        # before a swap, commits nothing and is told so.
        for stale in (Claim(PROJECTION.name, generation, 0), Claim(PROJECTION.name, -1, 1)):
            writes = _writes(item, "late", 2, closing=None)
            assert not await _commit(conn, stale, 2, writes, (["item-1"], [b"\x02"]))
    assert await _versions(pool) == []
    assert await _status(pool) == (1, generation)
    assert await pool.fetchval("SELECT count(*) FROM rm_commit_items_state") == 0


async def test_a_close_that_finds_no_current_version_stores_nothing_of_the_batch(
    pool: asyncpg.Pool, generation: int
) -> None:
    async with pool.acquire() as conn:
        # The states say this item has a current version; the table has none.
        writes = _writes(uuid4(), "second", 2, closing=1)
        with pytest.raises(ProjectionBug, match="closing 1 current versions found 0"):
            await _commit(conn, Claim(PROJECTION.name, generation, 0), 2, writes)
        assert not conn.is_in_transaction()
    assert await _versions(pool) == []
    assert await _status(pool) == (0, generation)


async def test_a_swap_holds_the_commit_back_and_the_commit_then_writes_nothing(
    pool: asyncpg.Pool, generation: int
) -> None:
    item = uuid4()
    async with pool.acquire() as swap, pool.acquire() as runner:
        transaction = swap.transaction()
        await transaction.start()
        try:
            # As a rebuild's swap: the tables first, then the status row.
            await lock_tables(swap, PROJECTION)
            await lock_status(swap, PROJECTION)
            writes = _writes(item, "during the swap", 1, closing=None)
            committing = asyncio.create_task(
                _commit(runner, Claim(PROJECTION.name, generation, 0), 1, writes)
            )
            pid = runner.get_server_pid()

            async def waits_for_the_tables() -> bool:
                waiting = await pool.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE pid = $1 AND NOT granted "
                    "AND relation = 'rm_commit_items'::regclass",
                    pid,
                )
                return bool(waiting)

            await eventually(waits_for_the_tables)
            await swap.execute(
                "UPDATE projection_status SET generation = generation + 1, position = 5 "
                "WHERE name = $1",
                PROJECTION.name,
            )
        finally:
            await transaction.commit()
        assert not await committing
    assert await _versions(pool) == []
    assert await _status(pool) == (5, generation + 1)
