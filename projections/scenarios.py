"""Capacity scenarios: each what-if, its hypothetical changes and, once committed, what
each real command did.

Only this read model handles scenario events, so a scenario never shows in the real
allocations or utilisation (``allocations``): those change when a commit's real commands
are recorded on the resources' streams.

Tables, all versioned: ``rm_scenarios`` (key ``scenario_id``), ``rm_scenario_changes``
(key ``scenario_id, change_id``; a removed change's row ends), ``rm_scenario_outcomes``
(key ``scenario_id, seq``; written once, at the commit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import msgspec

from programledger.domain.capacity import (
    Allocation,
    AllocationStatus,
    CapacityStep,
    capacity_at_ordinal,
    over_allocated_periods,
    with_step,
    worsened_periods,
)
from programledger.domain.scenario import (
    SCENARIO_EVENT_TYPES,
    HypotheticalAllocation,
    HypotheticalCapacity,
    Scenario,
    ScenarioAllocationAdded,
    ScenarioCapacityChangeAdded,
    ScenarioChangeRemoved,
    ScenarioCommitted,
    ScenarioDiscarded,
)
from programledger.domain.values import OverAllocationPeriod
from programledger.projections.allocations import ALLOCATIONS, MAX_UTILISATION_DAYS, RESOURCES
from programledger.projections.engine.core import (
    Context,
    ProjectedEvent,
    Projection,
    Tracked,
    fold,
)
from programledger.projections.engine.queries import (
    AsOf,
    Filters,
    ListSpec,
    Page,
    Reader,
    VersionedRow,
    fetch_by_key,
    fetch_one,
    fetch_page,
    resolve_position,
    version_clause,
)
from programledger.projections.engine.tables import CURRENT, Column, Index, SortKey, Table

__all__ = [
    "CHANGES",
    "OUTCOMES",
    "PROJECTION",
    "SCENARIOS",
    "DepartmentWeek",
    "Evaluation",
    "ResourceImpact",
    "ScenarioChangeRow",
    "ScenarioOutcomeRow",
    "ScenarioRow",
    "changes_of",
    "evaluate",
    "evaluate_scenario",
    "get_scenario",
    "list_scenarios",
    "outcomes_of",
    "scenarios_by_id",
]

SCENARIOS = Table(
    "rm_scenarios",
    key=(Column("scenario_id", "uuid", True),),
    columns=(
        Column("name", "text", True),
        Column("description", "text"),
        Column("status", "text", True),
        Column("changes", "integer", True),
        Column("updated_by", "text", True),
        Column("override_reason", "text"),
        Column("discard_reason", "text"),
        Column("version", "integer", True),
    ),
    indexes=(Index("status", "(status, name, scenario_id)", CURRENT),),
    sorts={"name": SortKey("name", "text")},
)

CHANGES = Table(
    "rm_scenario_changes",
    key=(Column("scenario_id", "uuid", True), Column("change_id", "uuid", True)),
    columns=(
        Column("seq", "integer", True),
        Column("kind", "text", True),
        Column("resource_key", "text", True),
        Column("program_id", "uuid"),
        Column("workstream_id", "uuid"),
        Column("start_date", "date"),
        Column("end_date", "date"),
        Column("percentage", "integer"),
        Column("capacity", "integer"),
        Column("effective_from", "date"),
        Column("reason", "text"),
        Column("added_by", "text", True),
    ),
    indexes=(Index("scenario", "(scenario_id, seq)", CURRENT),),
)

OUTCOMES = Table(
    "rm_scenario_outcomes",
    key=(Column("scenario_id", "uuid", True), Column("seq", "integer", True)),
    columns=(
        Column("change_id", "uuid", True),
        Column("command", "text", True),
        Column("accepted", "boolean", True),
        Column("stream_id", "text"),
        Column("position", "bigint"),
        Column("error_code", "text"),
        Column("message", "text"),
    ),
    indexes=(Index("scenario", "(scenario_id, seq)", CURRENT),),
)


def _scenario(s: Scenario, event: ProjectedEvent) -> tuple[Any, ...]:
    data = event.event
    changes = len(s.allocations) + len(s.capacity_changes)
    return (
        s.name,
        s.description,
        s.status.value,
        changes,
        event.actor,
        data.override_reason if isinstance(data, ScenarioCommitted) else None,
        data.reason if isinstance(data, ScenarioDiscarded) else None,
        event.version,
    )


def _allocation(a: HypotheticalAllocation, seq: int, actor: str) -> tuple[Any, ...]:
    return (
        seq,
        "ALLOCATION",
        a.resource_key,
        a.program_id,
        a.workstream_id,
        a.start_date,
        a.end_date,
        a.percentage,
        None,
        None,
        None,
        actor,
    )


def _capacity(c: HypotheticalCapacity, seq: int, actor: str) -> tuple[Any, ...]:
    return (
        seq,
        "CAPACITY",
        c.resource_key,
        None,
        None,
        None,
        None,
        None,
        c.capacity,
        c.effective_from,
        c.reason,
        actor,
    )


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    before, after = fold(ctx, event)
    key = (after.scenario_id,)
    data = event.event
    row = _scenario(after, event)
    if before is None:
        ctx.change(SCENARIOS, key, None, row)
    else:
        ctx.replace(SCENARIOS, key, row)
    match data:
        case ScenarioAllocationAdded():
            new = _allocation(data.change(), event.version, event.actor)
            ctx.change(CHANGES, (*key, data.change_id), None, new)
        case ScenarioCapacityChangeAdded():
            new = _capacity(data.change, event.version, event.actor)
            ctx.change(CHANGES, (*key, data.change.change_id), None, new)
        case ScenarioChangeRemoved():
            ctx.end(CHANGES, (*key, data.change_id))
        case ScenarioCommitted():
            for seq, o in enumerate(data.outcomes, start=1):
                ctx.change(
                    OUTCOMES,
                    (*key, seq),
                    None,
                    (
                        o.change_id,
                        o.command,
                        o.accepted,
                        o.stream_id,
                        o.position,
                        o.error_code,
                        o.message,
                    ),
                )


PROJECTION = Projection(
    name="scenarios",
    description="capacity what-ifs: their hypothetical changes and commit outcomes",
    handles=frozenset(t.event_type for t in SCENARIO_EVENT_TYPES),
    tables=(SCENARIOS, CHANGES, OUTCOMES),
    states={"scenario": Tracked[Scenario]},
    handle=_handle,
)


# Queries


class ScenarioRow(VersionedRow, frozen=True, kw_only=True):
    scenario_id: UUID
    name: str
    description: str | None
    status: str
    changes: int
    updated_by: str
    override_reason: str | None
    discard_reason: str | None
    version: int


class ScenarioChangeRow(VersionedRow, frozen=True, kw_only=True):
    scenario_id: UUID
    change_id: UUID
    seq: int
    kind: str
    """ALLOCATION (hypothetical work) or CAPACITY (a hypothetical capacity)."""
    resource_key: str
    program_id: UUID | None
    workstream_id: UUID | None
    start_date: date | None
    end_date: date | None
    percentage: int | None
    capacity: int | None
    effective_from: date | None
    reason: str | None
    added_by: str


class ScenarioOutcomeRow(VersionedRow, frozen=True, kw_only=True):
    scenario_id: UUID
    seq: int
    change_id: UUID
    command: str
    accepted: bool
    stream_id: str | None
    position: int | None
    error_code: str | None
    message: str | None


def _scenario_row(data: dict[str, Any]) -> ScenarioRow:
    return ScenarioRow(**data)


SCENARIO_LIST = ListSpec(table=SCENARIOS, convert=_scenario_row)


async def get_scenario(
    pool: Reader, scenario_id: UUID, *, as_of: AsOf = None
) -> ScenarioRow | None:
    return await fetch_one(pool, SCENARIOS, _scenario_row, (scenario_id,), as_of)


async def scenarios_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, ScenarioRow]:
    """The scenarios of ``ids`` now or as of a position, in one statement."""
    return await fetch_by_key(pool, SCENARIO_LIST, ids, as_of=as_of)


async def list_scenarios(
    pool: Reader,
    *,
    status: str | None = None,
    sort: str = "name",
    descending: bool = False,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[ScenarioRow]:
    filters = Filters()
    filters.equals("status", status)
    return await fetch_page(
        pool,
        SCENARIO_LIST,
        filters,
        sort=sort,
        descending=descending,
        first=first,
        after=after,
        last=last,
        before=before,
        as_of=as_of,
        count=count,
    )


async def _of(pool: Reader, table: Table, scenario_id: UUID, as_of: AsOf) -> list[dict[str, Any]]:
    filters = Filters()
    filters.equals("scenario_id", scenario_id)
    async with pool.acquire() as conn:
        version_clause(filters, await resolve_position(conn, as_of), table, whole_list=False)
        rows = await conn.fetch(
            f"SELECT {', '.join(table.column_names)} FROM {table.name} "
            f"WHERE {filters.sql()} ORDER BY seq",
            *filters.args,
        )
    return [dict(row) for row in rows]


async def changes_of(
    pool: Reader, scenario_id: UUID, *, as_of: AsOf = None
) -> list[ScenarioChangeRow]:
    """A scenario's changes in the order they were added."""
    return [ScenarioChangeRow(**row) for row in await _of(pool, CHANGES, scenario_id, as_of)]


async def outcomes_of(
    pool: Reader, scenario_id: UUID, *, as_of: AsOf = None
) -> list[ScenarioOutcomeRow]:
    """What each real command of the commit did, in the order they were sent."""
    return [ScenarioOutcomeRow(**row) for row in await _of(pool, OUTCOMES, scenario_id, as_of)]


# What-if evaluation


class ResourceImpact(msgspec.Struct, frozen=True, kw_only=True):
    """One resource the scenario changes, real and with the scenario."""

    resource_key: str
    department: str
    over_allocated_now: list[OverAllocationPeriod]
    over_allocated_with_scenario: list[OverAllocationPeriod]
    worsened: list[OverAllocationPeriod]
    """Periods the scenario pushes over capacity or further over: what a commit without
    an override reason would be refused for."""


class DepartmentWeek(msgspec.Struct, frozen=True, kw_only=True):
    """A department's load in one ISO week, real and with the scenario (person-days in
    percent of an FTE, as the utilisation read)."""

    department: str
    week_start: date
    iso_year: int
    iso_week: int
    capacity_days: int
    capacity_days_with_scenario: int
    confirmed_days: int
    confirmed_days_with_scenario: int
    over_allocated: int
    """Resources of the department over capacity on some day of the week."""
    over_allocated_with_scenario: int

    @property
    def utilisation(self) -> float | None:
        return self.confirmed_days / self.capacity_days if self.capacity_days else None

    @property
    def utilisation_with_scenario(self) -> float | None:
        with_scenario = self.capacity_days_with_scenario
        return self.confirmed_days_with_scenario / with_scenario if with_scenario else None


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    start: date
    end: date
    resources: list[ResourceImpact]
    departments: list[DepartmentWeek]
    """Every week of ``[start, end]`` of every department the scenario touches."""


class _Member(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    department: str
    schedule: tuple[CapacityStep, ...]
    allocations: tuple[Allocation, ...]


def _week_load(
    allocations: Sequence[Allocation], schedule: Sequence[CapacityStep], monday: date
) -> tuple[int, int, bool]:
    """Capacity days, confirmed days and whether any day is over capacity, in the week."""
    first = monday.toordinal()
    capacity = confirmed = 0
    over = False
    for day in range(first, first + 7):
        cap = capacity_at_ordinal(schedule, day)
        load = sum(
            a.percentage
            for a in allocations
            if a.status is AllocationStatus.CONFIRMED
            and a.start_date.toordinal() <= day <= a.end_date.toordinal()
        )
        capacity += cap
        confirmed += load
        over = over or load > cap
    return capacity, confirmed, over


def evaluate(
    members: Sequence[_Member], changes: Sequence[ScenarioChangeRow], start: date, end: date
) -> Evaluation:
    """The scenario's changes laid over the real resources ``members`` (every resource
    of the departments it touches): hypothetical work counts as confirmed, hypothetical
    capacity applies in the order added. Pure; nothing is written."""
    after: dict[str, tuple[tuple[CapacityStep, ...], tuple[Allocation, ...]]] = {
        m.key: (m.schedule, m.allocations) for m in members
    }
    for c in changes:
        schedule, allocations = after[c.resource_key]
        if c.kind == "CAPACITY":
            assert c.capacity is not None
            after[c.resource_key] = (with_step(schedule, c.effective_from, c.capacity), allocations)
        else:
            assert c.program_id is not None
            assert c.start_date is not None
            assert c.end_date is not None
            assert c.percentage is not None
            work = Allocation(
                allocation_id=c.change_id,
                program_id=c.program_id,
                workstream_id=c.workstream_id,
                start_date=c.start_date,
                end_date=c.end_date,
                percentage=c.percentage,
                status=AllocationStatus.CONFIRMED,
            )
            after[c.resource_key] = (schedule, (*allocations, work))
    touched = {c.resource_key for c in changes}
    impacts = [
        ResourceImpact(
            resource_key=m.key,
            department=m.department,
            over_allocated_now=over_allocated_periods(m.allocations, m.schedule),
            over_allocated_with_scenario=over_allocated_periods(after[m.key][1], after[m.key][0]),
            worsened=worsened_periods(m.allocations, m.schedule, after[m.key][1], after[m.key][0]),
        )
        for m in members
        if m.key in touched
    ]
    weeks: list[DepartmentWeek] = []
    monday = start - timedelta(days=start.weekday())
    departments = sorted({m.department for m in members if m.key in touched})
    while monday <= end:
        for department in departments:
            totals = [0, 0, 0, 0, 0, 0]
            for m in members:
                if m.department != department:
                    continue
                real = _week_load(m.allocations, m.schedule, monday)
                with_scenario = _week_load(after[m.key][1], after[m.key][0], monday)
                for i, value in enumerate((*real, *with_scenario)):
                    totals[i] += int(value)
            year, week, _ = monday.isocalendar()
            weeks.append(
                DepartmentWeek(
                    department=department,
                    week_start=monday,
                    iso_year=year,
                    iso_week=week,
                    capacity_days=totals[0],
                    confirmed_days=totals[1],
                    over_allocated=totals[2],
                    capacity_days_with_scenario=totals[3],
                    confirmed_days_with_scenario=totals[4],
                    over_allocated_with_scenario=totals[5],
                )
            )
        monday += timedelta(days=7)
    return Evaluation(start=start, end=end, resources=impacts, departments=weeks)


_schedule_decoder = msgspec.json.Decoder(tuple[CapacityStep, ...])
MEMBERS_MAX = 500
"""Resources an evaluation reads: the departments a scenario touches, at most this many."""


async def evaluate_scenario(
    pool: Reader, scenario_id: UUID, start: date | None = None, end: date | None = None
) -> Evaluation | None:
    """The scenario evaluated against the real resources and allocations as the read
    models hold them now; ``None`` for an unknown scenario. ``start``/``end`` default to
    the span of its hypothetical work (and capacity changes). Raises ``ValueError`` for a
    span it cannot evaluate."""
    if await get_scenario(pool, scenario_id) is None:
        return None
    changes = await changes_of(pool, scenario_id)
    days = [d for c in changes for d in (c.start_date, c.end_date, c.effective_from) if d]
    start = start or (min(days) if days else None)
    end = end or (max(days) if days else None)
    if start is None or end is None:
        raise ValueError("the scenario has no dated change: give start and end")
    if end < start:
        raise ValueError("end must be on or after start")
    if (end - start).days > MAX_UTILISATION_DAYS:
        raise ValueError(f"a span of at most {MAX_UTILISATION_DAYS} days can be evaluated")
    keys = sorted({c.resource_key for c in changes})
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT resource_key, department, capacity_schedule FROM {RESOURCES.name} "
            "WHERE valid_to_pos IS NULL AND department IN (SELECT department FROM "
            f"{RESOURCES.name} WHERE valid_to_pos IS NULL AND resource_key = ANY($1::text[])) "
            f"ORDER BY resource_key LIMIT {MEMBERS_MAX}",
            keys,
        )
        work = await conn.fetch(
            "SELECT resource_key, allocation_id, program_id, workstream_id, start_date, "
            f"end_date, percentage, status FROM {ALLOCATIONS.name} "
            "WHERE valid_to_pos IS NULL AND resource_key = ANY($1::text[]) AND status <> $2",
            [r[0] for r in rows],
            AllocationStatus.RELEASED.value,
        )
    allocations: dict[str, list[Allocation]] = {}
    for w in work:
        allocations.setdefault(w[0], []).append(
            Allocation(
                allocation_id=w[1],
                program_id=w[2],
                workstream_id=w[3],
                start_date=w[4],
                end_date=w[5],
                percentage=w[6],
                status=AllocationStatus(w[7]),
            )
        )
    members = [
        _Member(
            key=r[0],
            department=r[1],
            schedule=_schedule_decoder.decode(r[2]),
            allocations=tuple(allocations.get(r[0], ())),
        )
        for r in rows
    ]
    known = {m.key for m in members}
    return evaluate(members, [c for c in changes if c.resource_key in known], start, end)
