"""Read-model tables get planner statistics without autovacuum: a table that changed as
much as autovacuum's defaults wait for is analyzed, one that did not is left alone.

Autovacuum is switched off on the tables here, so what gives them statistics is ours
(this machine's PostgreSQL runs with it off; CI's may not).
"""

from __future__ import annotations

import asyncpg

from programledger.projections.engine.statistics import (
    ANALYZE_TARGET,
    StatisticsKeeper,
    analyze_stale,
)
from tests.support.relay_process import eventually


async def _table(pool: asyncpg.Pool, name: str, rows: int) -> None:
    await pool.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, kind text)")
    await pool.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = false)")
    await pool.execute(
        f"INSERT INTO {name} SELECT n, 'k' || n % 7 FROM generate_series(1, $1) n", rows
    )


async def _has_statistics(pool: asyncpg.Pool, name: str) -> bool:
    found = await pool.fetchval(
        "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = $1",
        name,
    )
    return bool(found)


async def test_a_table_changed_past_the_threshold_is_analyzed_once(pool: asyncpg.Pool) -> None:
    await _table(pool, "rm_busy", 2_000)
    await _table(pool, "rm_quiet", 20)
    assert not await _has_statistics(pool, "rm_busy")
    analyzed: list[str] = []

    async def busy_analyzed() -> bool:
        # The server's activity counters reach pg_stat_user_tables within a second or so.
        async with pool.acquire() as conn:
            analyzed.extend(await analyze_stale(conn, ["rm_busy", "rm_quiet"]))
        return "rm_busy" in analyzed

    await eventually(busy_analyzed, within=15)
    assert "rm_quiet" not in analyzed  # 20 rows: below the threshold of 50
    assert await _has_statistics(pool, "rm_busy")
    assert not await _has_statistics(pool, "rm_quiet")
    async with pool.acquire() as conn:
        assert await analyze_stale(conn, ["rm_busy", "rm_quiet"]) == []


async def test_the_keeper_analyzes_in_the_background_at_most_every_interval(
    pool: asyncpg.Pool,
) -> None:
    await _table(pool, "rm_live", 1_000)
    keeper = StatisticsKeeper(["rm_live"], interval=0.0)

    async def analyzed() -> bool:
        keeper.poke(pool)
        return keeper.analyzed == 1

    try:
        await eventually(analyzed, within=15)
        assert await _has_statistics(pool, "rm_live")
        slow = StatisticsKeeper(["rm_live"], interval=3600.0)
        slow.poke(pool)
        first = slow._task
        slow.poke(pool)
        assert slow._task is first  # one check at a time, none before the interval
        await slow.close()
    finally:
        await keeper.close()


async def test_the_keeper_samples_at_its_own_statistics_target(pool: asyncpg.Pool) -> None:
    """A coarse histogram (ANALYZE_TARGET buckets), so an analysis costs a tenth of one at
    the server's default; the server's default stays as it was for everything else."""
    await _table(pool, "rm_wide", 5_000)
    default = await pool.fetchval("SHOW default_statistics_target")
    assert int(default) != ANALYZE_TARGET

    async def analyzed() -> bool:
        async with pool.acquire() as conn:
            return await analyze_stale(conn, ["rm_wide"]) == ["rm_wide"]

    await eventually(analyzed, within=15)
    bounds = await pool.fetchval(
        "SELECT array_length(histogram_bounds::text::text[], 1) FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = 'rm_wide' AND attname = 'id'"
    )
    assert bounds == ANALYZE_TARGET + 1
    assert await pool.fetchval("SHOW default_statistics_target") == default
