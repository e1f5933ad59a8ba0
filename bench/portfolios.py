"""A portfolio's roll-up over 200 programs, now and as of a past position.

Builds a store of ``--events`` events (1,000,000 by default) by bulk load (``COPY``, as
``bench/projections.py`` and ``bench/reads.py`` do): programs with their milestones,
decisions, budget, health and three risks each (the mix of ``bench/projections.py``),
every program moved into a portfolio of ``--programs-per-portfolio`` (200) as it is
proposed, and an objective with two key results linked to each portfolio's first
program and checked in. Then rebuilds the ``portfolios`` read model from it, as
``programledger rebuild`` does, and reads the first portfolio's roll-up (one row: health,
budget per currency, risk exposure, slips, key results; what the GraphQL ``portfolio``
field reads) through ``get_portfolio``, now and as of the middle of the store.

The reference, measured in the same run, is one plain primary-key ``SELECT`` of the
current roll-up row: the least any read of a stored roll-up can cost.

Goals (issue 17): the roll-up answers in at most 50 ms now, and in at most twice that as
of a past position. Run:
``.venv/bin/python bench/portfolios.py [--events 1000000] [--programs-per-portfolio 200]
[--repeats 200] --database-url URL``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script from a checkout, with the project installed in .venv (the strict editable
# install links the working tree's code): reach bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import asyncpg

from bench._common import (
    drop_schemas,
    fresh_schema_name,
    median,
    percentile,
    positive_int,
    postgres_url,
    print_table,
    server_facts,
)
from bench.projections import DAY, Item, _program, _risk, _store, load_store, readable
from programledger.domain.objective import (
    KeyResultAdded,
    KeyResultCheckedIn,
    ObjectiveDefined,
    ObjectiveLinkedToProgram,
)
from programledger.domain.portfolio import PortfolioCreated
from programledger.domain.program import ProgramMovedToPortfolio
from programledger.projections.engine.rebuild import rebuild
from programledger.projections.portfolios import get_portfolio

NOW_GOAL_MS = 50.0
AS_OF_FACTOR = 2.0


def objective(portfolio: int, first_program: uuid.UUID) -> Iterator[Item]:
    """An objective with two key results, linked to ``first_program`` and checked in."""
    oid = uuid.uuid4()
    stream = f"objective-{oid}"
    yield (
        stream,
        "objective",
        ObjectiveDefined(
            objective_id=oid,
            title=f"Objective {portfolio}",
            owner="Dana",
            starts_on=DAY,
            ends_on=DAY + timedelta(days=365),
        ),
        None,
    )
    for k in range(2):
        kr = uuid.uuid4()
        yield (
            stream,
            "objective",
            KeyResultAdded(
                objective_id=oid,
                key_result_id=kr,
                name=f"KR {k}",
                unit="customers",
                baseline=0,
                target=1000,
                confidence=50,
            ),
            None,
        )
        yield (
            stream,
            "objective",
            KeyResultCheckedIn(
                objective_id=oid, key_result_id=kr, value=400, confidence=70, checked_on=DAY
            ),
            None,
        )
    link = ObjectiveLinkedToProgram(objective_id=oid, program_id=first_program)
    yield stream, "objective", link, first_program


def store_items(per_portfolio: int) -> Iterator[Item]:
    """Portfolio after portfolio: created, then its programs (each moved into it after
    its proposal) with their risks, then its objective; endless (``load_store`` cuts)."""
    n = 0
    while True:
        portfolio = n // per_portfolio
        fid = uuid.uuid4()
        created = PortfolioCreated(portfolio_id=fid, name=f"Portfolio {portfolio}", owner="Pat")
        yield f"portfolio-{fid}", "portfolio", created, None
        first = None
        for _ in range(per_portfolio):
            pid = uuid.uuid4()
            first = first or pid
            events = _program(pid, n)
            moved = ProgramMovedToPortfolio(
                program_id=pid, from_portfolio_id=None, to_portfolio_id=fid
            )
            events.insert(1, moved)
            for e in events:
                yield f"program-{pid}", "program", e, pid
            for r in range(3):
                risk = _risk(pid, n * 3 + r)
                rid = risk[0].risk_id  # type: ignore[attr-defined]
                for e in risk:
                    yield f"risk-{rid}", "risk", e, pid
            n += 1
        assert first is not None
        yield from objective(portfolio, first)


async def timed_ms(call: Callable[[], Awaitable[Any]], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def measure(
    pool: asyncpg.Pool, events: int, repeats: int
) -> tuple[list[str], list[list[str]]]:
    portfolio_id = await pool.fetchval(
        "SELECT portfolio_id FROM rm_portfolios WHERE valid_to_pos IS NULL "
        "ORDER BY valid_from_pos LIMIT 1"
    )
    middle = events // 2

    async def roll_up(as_of: int | None) -> None:
        row = await get_portfolio(pool, portfolio_id, as_of=as_of)
        assert row is not None
        assert row.programs > 0

    async def reference() -> None:
        await pool.fetchrow(
            "SELECT * FROM rm_portfolios WHERE portfolio_id = $1 AND valid_to_pos IS NULL",
            portfolio_id,
        )

    row = await get_portfolio(pool, portfolio_id)
    assert row is not None
    await roll_up(None)  # warm the statement cache
    now = await timed_ms(lambda: roll_up(None), repeats)
    then = await timed_ms(lambda: roll_up(middle), repeats)
    ref = await timed_ms(reference, repeats)
    p_now, p_then, p_ref = percentile(now, 99), percentile(then, 99), percentile(ref, 99)
    rows = [
        [f"roll-up now ({row.programs} programs)", f"p50 {median(now):.2f} p99 {p_now:.2f} ms"],
        [f"roll-up as of position {middle:,}", f"p50 {median(then):.2f} p99 {p_then:.2f} ms"],
        ["reference: primary-key SELECT", f"p50 {median(ref):.2f} p99 {p_ref:.2f} ms"],
    ]
    as_of_goal = AS_OF_FACTOR * NOW_GOAL_MS
    lines = [
        f"target portfolio_rollup_now_p99_ms: ours={p_now:.2f} ref={p_ref:.2f} "
        f"ratio={p_now / p_ref:.3f} goal=<={NOW_GOAL_MS:g}ms "
        f"{'met' if p_now <= NOW_GOAL_MS else 'missed'}",
        f"target portfolio_rollup_as_of_p99_ms: ours={p_then:.2f} ref={p_now:.2f} "
        f"ratio={p_then / p_now:.3f} goal=<={as_of_goal:g}ms (2x the goal now) "
        f"{'met' if p_then <= as_of_goal else 'missed'}",
    ]
    return lines, rows


async def main(args: argparse.Namespace) -> None:
    schema = fresh_schema_name("portfolios")
    with postgres_url(args.database_url) as (url, where):
        print(f"PostgreSQL from {where}: {await server_facts(url)}")
        try:
            started = time.perf_counter()
            await load_store(url, schema, args.events, store_items(args.programs_per_portfolio))
            print(f"loaded {args.events:,} events in {time.perf_counter() - started:.0f}s")
            store = await _store(url, schema)
            pool = store.pool
            try:
                await readable(store, args.events)
                report = await rebuild(pool, store, "portfolios", progress=not args.quiet)
                print(f"rebuilt portfolios: {report.rate:,.0f} events/s", flush=True)
                lines, rows = await measure(pool, args.events, args.repeats)
            finally:
                await pool.close()
        finally:
            await drop_schemas(url, [schema])
    print_table("portfolio roll-up", ["what", "time"], rows)
    for line in lines:
        print(line)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--nats-url", default=None, help="unused: the bench reads PostgreSQL")
    parser.add_argument(
        "--events", type=positive_int, default=1_000_000, help="events in the store"
    )
    parser.add_argument("--programs-per-portfolio", type=positive_int, default=200)
    parser.add_argument("--repeats", type=positive_int, default=200, help="reads timed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
