"""A runner asked to stop stops promptly, whatever it is doing: working through a backlog
(a batch being committed while the next is applied), idle, standing by for the lock, or
rebuilding tables built by another definition. A worker that outlives its SIGTERM grace
period gets SIGKILLed mid-batch; a stop must never depend on how much work is left."""

from __future__ import annotations

import asyncio
from datetime import date
from uuid import uuid4

import asyncpg
import pytest_asyncio

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.application.handlers import Application
from programledger.domain.program import (
    Health,
    ProgramActivated,
    ProgramHealthReported,
    ProgramProposed,
)
from programledger.domain.values import Money
from programledger.projections.engine.runner import RunnerState
from programledger.projections.engine.status import projection_status, wait_for_position
from programledger.projections.registry import PROJECTIONS
from tests.support.projection_process import LiveSystem, app_store, busy_history, run_steps
from tests.support.relay_process import eventually

DAY = date(2027, 1, 1)
STOP_WITHIN = 5.0
"""A fetch wait (0.1 s here) and one batch's commit, with room for a loaded machine."""


@pytest_asyncio.fixture
async def store(pool: asyncpg.Pool, schema: str) -> PostgresEventStore:
    return app_store(pool, schema)


async def _head(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT coalesce(max(position), 0) FROM events"))


async def test_runners_stop_promptly_mid_backlog_then_resume_where_they_stopped(
    store: PostgresEventStore, pool: asyncpg.Pool, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    await run_steps(Application(store), busy_history(120))
    head = await _head(pool)
    # Small batches: many commits in flight while the next batch is applied.
    async with LiveSystem(store, pg_url, nats_url, subject_prefix, batch_size=10) as live:
        # Mid-backlog: the busiest runners have applied a few batches (some read models,
        # such as the what-ifs', handle none of this history's events).
        await eventually(lambda: max(r.stats.batches for r in live.runners.values()) >= 3)
        status = await projection_status(pool)
        assert any(s.position < head for s in status), "every runner finished too early"
        took = await asyncio.gather(
            *(live.stop_runner(r, STOP_WITHIN) for r in live.runners.values())
        )
        assert max(took) < STOP_WITHIN
        assert {s.state for s in await projection_status(pool)} == {"stopped"}
        for runner in live.runners.values():
            assert runner.state is RunnerState.STOPPED
        stopped_at = {s.name: s.position for s in await projection_status(pool)}
        # Restarted, each goes on from its checkpoint and reaches the head.
        for projection in PROJECTIONS.values():
            live.start(projection)
        assert await wait_for_position(pool, head, 30)
    resumed = {s.name: s for s in await projection_status(pool)}
    for name, position in stopped_at.items():
        assert resumed[name].events_applied >= 0
        assert resumed[name].position >= position


async def test_idle_and_standby_runners_stop_promptly(
    store: PostgresEventStore, pool: asyncpg.Pool, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    await run_steps(Application(store), busy_history(5))
    head = await _head(pool)
    risks = PROJECTIONS["risks"]
    async with LiveSystem(store, pg_url, nats_url, subject_prefix, [risks]) as live:
        assert await wait_for_position(pool, head, 20, ["risks"])
        active = live.runners["risks"]
        standby = live.start(risks)
        await eventually(lambda: standby.state is RunnerState.STANDBY)
        assert await live.stop_runner(standby, STOP_WITHIN) < STOP_WITHIN
        assert active.state is RunnerState.ACTIVE
        assert await live.stop_runner(active, STOP_WITHIN) < STOP_WITHIN


async def _bulk_history(store: PostgresEventStore, programs: int, reports: int) -> None:
    """``programs`` programs with ``reports`` health reports each, appended directly in
    large batches: enough events that a rebuild takes a while."""
    for n in range(programs):
        pid = uuid4()
        stream = f"program-{pid}"
        metadata = EventMetadata(actor="tom", program_id=pid)
        await store.append(
            stream,
            ExpectedVersion.NO_STREAM,
            [
                ProgramProposed(
                    program_id=pid,
                    code=f"STOP{n}",
                    name=f"Program {n}",
                    description=None,
                    objective="Ship",
                    objective_key=None,
                    sponsor="Dana",
                    owner="Tom",
                    priority=2,
                    start_date=DAY,
                    target_end_date=DAY,
                    planned_budget=Money(amount_minor=1, currency="EUR"),
                ),
                ProgramActivated(program_id=pid),
            ],
            metadata,
        )
        health = list(Health)
        for start in range(0, reports, 500):
            await store.append(
                stream,
                ExpectedVersion.ANY,
                [
                    ProgramHealthReported(program_id=pid, health=health[i % 3], summary=f"week {i}")
                    for i in range(start, min(start + 500, reports))
                ],
                metadata,
            )


async def test_a_runner_stops_promptly_while_rebuilding_and_leaves_the_live_tables(
    store: PostgresEventStore, pool: asyncpg.Pool, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    audit = PROJECTIONS["audit"]
    await run_steps(Application(store), busy_history(1))
    before = await _head(pool)
    async with LiveSystem(store, pg_url, nats_url, subject_prefix, [audit]):
        assert await wait_for_position(pool, before, 20, ["audit"])
    rows = await pool.fetchval("SELECT count(*) FROM rm_audit")
    await _bulk_history(store, programs=10, reports=2500)
    # A release that changed the audit projection: the runner rebuilds before consuming.
    await pool.execute(
        "UPDATE projection_status SET definition = 'an older release' WHERE name = 'audit'"
    )

    async def rebuilding() -> bool:
        return bool(await pool.fetchval("SELECT to_regclass('rm_audit__rebuild') IS NOT NULL"))

    async with LiveSystem(store, pg_url, nats_url, subject_prefix, [audit]) as live:
        await eventually(rebuilding, within=20)
        runner = live.runners["audit"]
        assert await live.stop_runner(runner, STOP_WITHIN) < STOP_WITHIN
    [status] = await projection_status(pool, ["audit"])
    assert (status.position, status.rebuilt_at) == (before, None)
    assert await pool.fetchval("SELECT count(*) FROM rm_audit") == rows
    assert not await rebuilding()
    # The next start rebuilds from scratch and swaps in the whole history.
    head = await _head(pool)
    async with LiveSystem(store, pg_url, nats_url, subject_prefix, [audit]):
        assert await wait_for_position(pool, head, 60, ["audit"])
    assert await pool.fetchval("SELECT count(*) FROM rm_audit") == rows + 10 * (2 + 2500)
