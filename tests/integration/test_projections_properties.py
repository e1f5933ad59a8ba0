"""Properties of the read models, for random valid histories (hypothesis):

- the read models the live runners build from NATS equal, row for row and version for
  version, what a fresh rebuild from the event store builds, however few handler states
  the runners may keep in memory;
- any read model as of a past position equals folding its streams up to that position;
- an event changes no row of a read model that does not declare it can
  (``Projection.row_events``).

Examples share one store (each run uses fresh ids), so the runners keep running across
them and every rebuild is swapped in under live runners.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.handlers import Application
from programledger.domain import objective, portfolio, program, resource, risk
from programledger.domain.capacity import AllocationStatus, capacity_on
from programledger.domain.objective import key_result_progress
from programledger.domain.program import MilestoneStatus, Program, allocated_budget, slip_days
from programledger.domain.resource import Resource
from programledger.domain.risk import Risk, RiskStatus
from programledger.projections.allocations import get_resource, list_allocations, utilisation
from programledger.projections.audit import audit_trail
from programledger.projections.decisions import list_decisions, list_lessons
from programledger.projections.engine.core import (
    DEFAULT_STATE_CACHE_BYTES,
    Applier,
    StateStore,
    from_stored,
)
from programledger.projections.engine.rebuild import rebuild
from programledger.projections.engine.runner import StateCacheMetrics
from programledger.projections.engine.status import wait_for_position
from programledger.projections.milestones import list_dependencies, list_milestones
from programledger.projections.portfolios import get_portfolio
from programledger.projections.programs import get_program, list_programs
from programledger.projections.registry import PROJECTIONS
from programledger.projections.risks import get_risk, heat_map, list_risks
from tests.support.projection_process import (
    DAY0,
    Ids,
    LiveSystem,
    Step,
    app_store,
    run_steps,
    steps,
    table_rows,
)

SETTINGS = settings(
    max_examples=int(os.environ.get("PROJECTION_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


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
    """Of every committed event (the store's safe head may trail it while another
    transaction is open)."""
    return int(await pool.fetchval("SELECT coalesce(max(position), 0) FROM events"))


async def _caught_up(store: PostgresEventStore, pool: asyncpg.Pool) -> int:
    head = await _last_position(pool)
    assert await wait_for_position(pool, head, 30)
    return head


@SETTINGS
@given(history=steps())
async def test_live_read_models_equal_a_fresh_rebuild(
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    live: LiveSystem,
    pg_url: str,
    history: list[Step],
) -> None:
    await run_steps(Application(store), history)
    await _caught_up(store, pool)
    built_live = {name: await table_rows(pool, p) for name, p in PROJECTIONS.items()}
    for name in PROJECTIONS:
        # In shares where the projection allows it (the others ignore ``workers``).
        await rebuild(pool, store, name, progress=False, workers=2, database_url=pg_url)
    rebuilt = {name: await table_rows(pool, p) for name, p in PROJECTIONS.items()}
    assert _differences(built_live, rebuilt) == []


@SETTINGS
@given(history=steps())
async def test_a_projection_changes_rows_only_on_the_events_it_declares(
    store: PostgresEventStore, pool: asyncpg.Pool, history: list[Step]
) -> None:
    """Read-your-writes waits only for the read models whose rows a write's events can
    change (``Projection.changed_by``); an event outside them must change no row."""
    start = await _last_position(pool)
    await run_steps(Application(store), history)
    raw = await store.read_all_raw(start, 10_000)
    convert = from_stored(store.codec)
    for projection in PROJECTIONS.values():
        # Every stream of the run is new: a state not in the cache is no state at all.
        states = StateStore(projection.state_table.name, projection.states, complete=True)
        applier = Applier(projection, states)
        for item in raw:
            decoded, poison = applier.decode([item], convert)
            if not decoded:
                continue
            applier.unloaded(decoded)
            staged = _staged(applier)
            assert poison is None
            assert applier.apply(decoded) is None
            if item.event_type not in projection.changed_by:
                assert _staged(applier) == staged, (projection.name, item.event_type)


def _staged(applier: Applier) -> dict[str, tuple[str, int, int, int]]:
    """What the applier has staged to write, table by table."""
    return {
        name: (repr(c.open), len(c.closed), len(c.close_in_table), len(c.added))
        for name, c in applier.changes.items()
    }


@pytest_asyncio.fixture
async def live_forgetful(
    store: PostgresEventStore, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[LiveSystem]:
    """Runners that keep one handler state between batches: nearly every state an event
    needs has been evicted and is read back from its table."""
    async with LiveSystem(store, pg_url, nats_url, subject_prefix, state_cache_limit=1) as system:
        yield system


@settings(SETTINGS, max_examples=max(2, SETTINGS.max_examples // 4))
@given(history=steps())
async def test_runners_that_evict_states_build_what_a_rebuild_builds(
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    live_forgetful: LiveSystem,
    pg_url: str,
    history: list[Step],
) -> None:
    await run_steps(Application(store), history)
    await _caught_up(store, pool)
    built_live = {name: await table_rows(pool, p) for name, p in PROJECTIONS.items()}
    for name in PROJECTIONS:
        await rebuild(pool, store, name, progress=False, database_url=pg_url)
    rebuilt = {name: await table_rows(pool, p) for name, p in PROJECTIONS.items()}
    assert _differences(built_live, rebuilt) == []
    runners = live_forgetful.runners.values()
    assert all(r.cached_states <= 1 + live_forgetful.settings.batch_size for r in runners)
    registry = CollectorRegistry()
    registry.register(StateCacheMetrics(list(runners)))
    evicted = registry.get_sample_value(
        "programledger_projection_state_cache_evictions_total", {"projection": "programs"}
    )
    read = registry.get_sample_value(
        "programledger_projection_state_cache_misses_total", {"projection": "programs"}
    )
    assert (evicted or 0) > 0
    assert (read or 0) > 0
    held, budget = (
        registry.get_sample_value(f"programledger_projection_state_cache_{name}", labels)
        for name, labels in (
            ("bytes", {"projection": "programs"}),
            ("bytes_limit", {"projection": "programs"}),
        )
    )
    assert budget == DEFAULT_STATE_CACHE_BYTES
    assert held is not None
    assert 0 <= held <= budget


def _differences(
    live: dict[str, dict[str, list[tuple[Any, ...]]]],
    rebuilt: dict[str, dict[str, list[tuple[Any, ...]]]],
) -> list[tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Per table, the rows only the live side has and those only the rebuild has."""
    found = []
    for name, tables in live.items():
        for table, rows in tables.items():
            other = rebuilt[name][table]
            if rows != other:
                only_live = [r for r in rows if r not in other]
                only_rebuilt = [r for r in other if r not in rows]
                found.append((table, only_live, only_rebuilt))
    return found


async def _fold(store: PostgresEventStore, stream_id: str, position: int) -> list[Any]:
    return [r.data for r in await store.read_stream(stream_id) if r.position <= position]


def _weeks(state: Resource | None) -> dict[date, tuple[int, int, bool]]:
    """Utilisation computed day by day, independently of the projection's sweep."""
    if state is None:
        return {}
    confirmed: dict[date, int] = defaultdict(int)
    proposed: dict[date, int] = defaultdict(int)
    for a in state.allocations:
        if a.status is AllocationStatus.RELEASED:
            continue
        day = a.start_date
        while day <= a.end_date:
            target = confirmed if a.status is AllocationStatus.CONFIRMED else proposed
            target[day] += a.percentage
            day += timedelta(days=1)
    weeks: dict[date, list[Any]] = {}
    for day in {*confirmed, *proposed}:
        week = weeks.setdefault(day - timedelta(days=day.weekday()), [0, 0, False])
        week[0] += confirmed.get(day, 0)
        week[1] += proposed.get(day, 0)
        week[2] = week[2] or confirmed.get(day, 0) > capacity_on(state.capacity_schedule, day)
    return {w: (c, p, o) for w, (c, p, o) in weeks.items()}


async def _check_program(
    store: PostgresEventStore, pool: asyncpg.Pool, pid: UUID, risks: list[Risk], at: int
) -> None:
    events = await _fold(store, f"program-{pid}", at)
    state: Program | None = program.fold(events)
    row = await get_program(pool, pid, as_of=at)
    if state is None:
        assert row is None
        return
    assert row is not None
    allocated = sum(a.amount.amount_minor for a in state.budget_allocations)
    assert (row.status, row.name, row.priority, row.version) == (
        state.status.value,
        state.name,
        state.priority,
        len(events),
    )
    assert (row.budget_planned, row.budget_allocated) == (
        state.planned_budget.amount_minor,
        allocated,
    )
    assert row.health == (state.health and state.health.value)
    bands = Counter(r.band.value.lower() for r in risks if r.status is not RiskStatus.CLOSED)
    assert (
        row.open_risks_low,
        row.open_risks_medium,
        row.open_risks_high,
        row.open_risks_critical,
    ) == (bands["low"], bands["medium"], bands["high"], bands["critical"])
    upcoming = sorted(
        (m.forecast_date, m.milestone_id)
        for m in state.milestones
        if m.status is not MilestoneStatus.DONE
    )
    assert row.next_milestone_id == (upcoming[0][1] if upcoming else None)

    milestones = await list_milestones(pool, program_id=pid, as_of=at, first=500)
    assert {
        m.milestone_id: (m.baseline_date, m.forecast_date, m.status, m.slip_days)
        for m in milestones.items
    } == {
        m.milestone_id: (
            m.baseline_date,
            m.forecast_date,
            m.status.value,
            (m.forecast_date - m.baseline_date).days,
        )
        for m in state.milestones
    }
    dependencies = await list_dependencies(pool, program_id=pid, as_of=at, first=500)
    assert {d.dependency_id: (d.status, d.needed_by) for d in dependencies.items} == {
        d.dependency_id: (d.status.value, d.needed_by) for d in state.dependencies
    }
    decisions = await list_decisions(pool, program_id=pid, as_of=at, first=500)
    assert {d.decision_id: d.superseded_by for d in decisions.items} == {
        d.decision_id: d.superseded_by for d in state.decisions
    }
    lessons = await list_lessons(pool, program_id=pid, as_of=at)
    assert lessons.total_count == len(state.lessons)
    trail = await audit_trail(pool, entity_id=str(pid), as_of=at, first=1)
    assert trail.total_count == len(events)
    cells = {
        (c.probability, c.impact): c.count
        for c in (await heat_map(pool, program_id=pid, as_of=at)).cells
        if c.count
    }
    assert cells == dict(
        Counter((r.probability, r.impact) for r in risks if r.status is not RiskStatus.CLOSED)
    )


async def _check_portfolios(
    store: PostgresEventStore, pool: asyncpg.Pool, ids: Ids, risks: dict[UUID, list[Risk]], at: int
) -> None:
    """Each portfolio's roll-up as of ``at`` equals summing its programs folded up to it."""
    programs = [program.fold(await _fold(store, f"program-{p}", at)) for p in ids.used("program")]
    objectives = [
        objective.fold(await _fold(store, f"objective-{o}", at)) for o in ids.used("objective")
    ]
    for fid in ids.used("portfolio"):
        state = portfolio.fold(await _fold(store, f"portfolio-{fid}", at))
        row = await get_portfolio(pool, fid, as_of=at)
        assert (row is None) == (state is None)
        if state is None or row is None:
            continue
        members = [p for p in programs if p is not None and p.portfolio_id == fid]
        open_risks = [
            r for p in members for r in risks[p.program_id] if r.status is not RiskStatus.CLOSED
        ]
        bands = Counter(r.band.value.lower() for r in open_risks)
        health = Counter(p.health.value if p.health else None for p in members)
        slips = [slip_days(m) for p in members for m in p.milestones]
        served = [
            o
            for o in objectives
            if o is not None and set(o.program_ids) & {p.program_id for p in members}
        ]
        krs = [k for o in served for k in o.key_results]
        assert (row.status, row.programs, row.programs_unreported) == (
            state.status.value,
            len(members),
            health[None],
        )
        assert (row.programs_green, row.programs_amber, row.programs_red) == (
            health["GREEN"],
            health["AMBER"],
            health["RED"],
        )
        assert (row.open_risks_low, row.open_risks_medium, row.open_risks_high) == (
            bands["low"],
            bands["medium"],
            bands["high"],
        )
        assert (row.open_risks_critical, row.risk_exposure) == (
            bands["critical"],
            sum(r.score for r in open_risks),
        )
        assert (row.milestones, row.milestones_slipped, row.slip_days) == (
            len(slips),
            sum(1 for s in slips if s > 0),
            sum(s for s in slips if s > 0),
        )
        assert [
            (b.currency, b.programs, b.planned, b.allocated, b.actual) for b in row.budgets
        ] == (
            [
                (
                    "EUR",
                    len(members),
                    sum(p.planned_budget.amount_minor for p in members),
                    sum(allocated_budget(p) for p in members),
                    sum(p.actual_spend.amount.amount_minor for p in members if p.actual_spend),
                )
            ]
            if members
            else []
        )
        assert (row.objectives, row.key_results) == (len(served), len(krs))
        assert row.key_result_progress == (
            sum(key_result_progress(k) for k in krs) // len(krs) if krs else None
        )


async def _check_resource(store: PostgresEventStore, pool: asyncpg.Pool, key: str, at: int) -> None:
    events = await _fold(store, f"resource-{key}", at)
    state: Resource | None = resource.fold(events)
    row = await get_resource(pool, key, as_of=at)
    assert (row is None) == (state is None)
    if state is None or row is None:
        return
    assert (row.version, row.capacity_schedule) == (len(events), list(state.capacity_schedule))
    allocations = await list_allocations(pool, resource_key=key, as_of=at, first=500)
    assert {
        a.allocation_id: (a.status, a.start_date, a.end_date, a.percentage)
        for a in allocations.items
    } == {
        a.allocation_id: (a.status.value, a.start_date, a.end_date, a.percentage)
        for a in state.allocations
    }
    weeks = await utilisation(
        pool,
        start=DAY0 - timedelta(days=7),
        end=DAY0 + timedelta(400),
        resource_key=key,
        known_at=at,
    )
    assert {
        w.week_start: (w.confirmed_days, w.proposed_days, w.over_allocated) for w in weeks.items
    } == _weeks(state)


async def _check_whole_lists(pool: asyncpg.Pool, at: int) -> None:
    """Whole lists as of ``at`` through every path a query can take (the range index for
    counts and unindexed orders, a sort's index for indexed ones) hold exactly the
    versions whose range contains ``at``, ends included and excluded as they should."""
    for table, key, listing, sorts in (
        ("rm_programs", "program_id", list_programs, ("code", "priority", "status")),
        ("rm_risks", "risk_id", list_risks, ("score", "title", "status")),
    ):
        expected = {
            r[0]
            for r in await pool.fetch(
                f"SELECT {key} FROM {table} "
                "WHERE int8range(valid_from_pos, valid_to_pos) @> $1::bigint",
                at,
            )
        }
        for sort in sorts:
            page = await listing(pool, as_of=at, sort=sort, first=500)
            assert page.total_count == len(expected), (table, sort, at)
            if not page.has_next_page:
                assert {getattr(row, key) for row in page.items} == expected, (table, sort, at)


async def _check_utilisation_pages(pool: asyncpg.Pool, at: int) -> None:
    """Utilisation of every resource, paged in either order, counted or not, filtered to
    over-allocated weeks or not, is one consistent list."""
    period = {"start": DAY0 - timedelta(days=7), "end": DAY0 + timedelta(400), "known_at": at}
    everything = await utilisation(pool, **period, first=500)  # type: ignore[arg-type]
    assert everything.total_count is not None
    if everything.has_next_page:
        return
    assert everything.total_count == len(everything.items)
    orders = {
        "resource": lambda w: (w.resource_key, w.week_start),
        "week": lambda w: (w.week_start, w.resource_key),
    }
    for sort, order in orders.items():
        for count in (True, False):
            seen: list[Any] = []
            after = None
            while True:
                page = await utilisation(
                    pool,
                    **period,  # type: ignore[arg-type]
                    sort=sort,
                    first=3,
                    after=after,
                    count=count,
                )
                assert page.total_count == (everything.total_count if count else None)
                seen.extend(page.items)
                if not page.has_next_page:
                    break
                after = page.end_cursor
            assert seen == sorted(everything.items, key=order), (sort, count)
    over = await utilisation(pool, **period, over_allocated_only=True, first=500)  # type: ignore[arg-type]
    assert over.items == [w for w in everything.items if w.over_allocated]
    assert over.total_count == len(over.items)
    # Keyset chunks in resource order skip resources without an over-allocated week.
    walked: list[Any] = []
    after = None
    while True:
        page = await utilisation(
            pool,
            **period,  # type: ignore[arg-type]
            over_allocated_only=True,
            first=2,
            after=after,
            count=False,
        )
        walked.extend(page.items)
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert walked == over.items


@SETTINGS
@given(history=steps(), data=st.data())
async def test_as_of_a_past_position_equals_folding_the_streams_up_to_it(
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    live: LiveSystem,
    history: list[Step],
    data: st.DataObject,
) -> None:
    start = await _last_position(pool)
    ids = Ids()
    await run_steps(Application(store), history, ids)
    head = await _caught_up(store, pool)
    # Drawn as fractions of the run's span: bounds that depend on the store would make
    # hypothesis' draws differ between a test case and its replay.
    for share in data.draw(st.lists(st.integers(0, 1000), min_size=1, max_size=3)):
        at = start + (head - start) * share // 1000
        risks: dict[UUID, list[Risk]] = defaultdict(list)
        for rid in ids.used("risk"):
            folded = risk.fold(await _fold(store, f"risk-{rid}", at))
            row = await get_risk(pool, rid, as_of=at)
            assert (row is None) == (folded is None)
            if folded is not None and row is not None:
                risks[folded.program_id].append(folded)
                assert (row.score, row.band, row.status, row.owner, row.is_open) == (
                    folded.score,
                    folded.band.value,
                    folded.status.value,
                    folded.owner,
                    folded.status is not RiskStatus.CLOSED,
                )
        for pid in ids.used("program"):
            await _check_program(store, pool, pid, risks[pid], at)
        await _check_portfolios(store, pool, ids, risks, at)
        for key in ids.resource_keys():
            await _check_resource(store, pool, key, at)
        await _check_whole_lists(pool, at)
        await _check_utilisation_pages(pool, at)
