"""Rebuilds under load: swapped in while runners consume and writers write, started by a
runner that finds its tables built by another definition, one at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.handlers import Application
from programledger.projections.engine.rebuild import RebuildInProgress, rebuild
from programledger.projections.engine.status import projection_status, wait_for_position
from programledger.projections.registry import PROJECTIONS
from tests.support.projection_process import (
    Ids,
    LiveSystem,
    Step,
    app_store,
    run_steps,
    steps,
    table_rows,
)
from tests.support.relay_process import eventually


@pytest_asyncio.fixture
async def store(pool: asyncpg.Pool, schema: str) -> PostgresEventStore:
    return app_store(pool, schema)


@pytest_asyncio.fixture
async def live(
    store: PostgresEventStore, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[LiveSystem]:
    async with LiveSystem(store, pg_url, nats_url, subject_prefix) as system:
        yield system


async def _last_position(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT coalesce(max(position), 0) FROM events"))


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(histories=st.lists(steps(max_size=60), min_size=3, max_size=3))
async def test_a_rebuild_while_runners_consume_and_writers_write_ends_consistent(
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    live: LiveSystem,
    pg_url: str,
    histories: list[list[Step]],
) -> None:
    app = Application(store)
    writers = [asyncio.create_task(run_steps(app, h, Ids())) for h in histories]
    for name in PROJECTIONS:
        # In shares where allowed: the tail after the workers' cut goes on in this process.
        await rebuild(pool, store, name, progress=False, workers=2, database_url=pg_url)
    await asyncio.gather(*writers)
    assert await wait_for_position(pool, await _last_position(pool), 30)
    built_live = {name: await table_rows(pool, p) for name, p in PROJECTIONS.items()}
    for name in PROJECTIONS:
        await rebuild(pool, store, name, progress=False)
    assert {name: await table_rows(pool, p) for name, p in PROJECTIONS.items()} == built_live
    # Every runner noticed the swaps and started again from the rebuilt checkpoint.
    await eventually(lambda: all(r.stats.resyncs > 0 for r in live.runners.values()))


async def test_a_runner_rebuilds_tables_built_by_another_definition(
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    pg_url: str,
    nats_url: str,
    subject_prefix: str,
) -> None:
    # Risks rebuild in one process, programs in shares (worker processes).
    chosen = [PROJECTIONS["risks"], PROJECTIONS["programs"]]
    history: list[Step] = [("propose", 0), ("identify", 0, 0, 3, 4, None), ("assess", 0, 5, 5)]
    await run_steps(Application(store), history)
    head = await _last_position(pool)
    async with LiveSystem(store, pg_url, nats_url, subject_prefix, chosen):
        assert await wait_for_position(pool, head, 20, ["risks", "programs"])
    # A release that changed both projections: their stored definitions no longer match.
    await pool.execute("UPDATE projection_status SET definition = 'an older release'")
    await pool.execute("DELETE FROM rm_risks")
    await pool.execute("DELETE FROM rm_programs")

    async def rebuilt() -> bool:
        return all(
            status.rebuilt_at is not None and status.position == head
            for status in await projection_status(pool, ["risks", "programs"])
        )

    async with LiveSystem(store, pg_url, nats_url, subject_prefix, chosen):
        await eventually(rebuilt, within=20)
        for table in ("rm_risks", "rm_programs"):
            current = f"SELECT count(*) FROM {table} WHERE valid_to_pos IS NULL"
            assert await pool.fetchval(current) == 1


async def test_one_rebuild_at_a_time_with_a_progress_bar(
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    schema: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await run_steps(Application(store), [("propose", 0), ("activate", 0)])
    key = f"programledger.rebuild:{schema}:programs"
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
        try:
            with pytest.raises(RebuildInProgress):
                await rebuild(pool, store, "programs")
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
    report = await rebuild(pool, store, "programs", progress=True)
    assert (report.events_read, report.events_applied) == (3, 2)
    assert report.position == await _last_position(pool)
    assert report.rate > 0
    assert "rebuild programs" in capsys.readouterr().out
    with pytest.raises(KeyError, match="no projection named"):
        await rebuild(pool, store, "nope")
