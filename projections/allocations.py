"""Resources, their allocations to programs, and utilisation per ISO week.

Rows come from folding each resource stream (capacity schedule and every allocation)
with the domain's ``evolve``.

Utilisation is bitemporal. Valid time is the ISO week the row is about; transaction time
is the version range every read-model row has. So "Alice's load in April, as known on
1 March" reads the week rows of April whose versions were current on 1 March. A week row
holds, in *percent-days* (a percentage summed over the seven days, exact integers):
capacity, confirmed load and proposed load; ``over_allocated`` is set when on some day of
the week the confirmed load is above that day's capacity (the domain's rule), and
``program_ids`` lists the programs with confirmed work in it. Weeks without any load have
no row. An event only recomputes the weeks it can change: an allocation's old and new
periods, or (a capacity change) the weeks from its effective date on.

Tables: ``rm_resources`` (key ``resource_key``), ``rm_allocations`` (key
``allocation_id``), ``rm_utilisation`` (key ``resource_key, week_start``), all versioned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from itertools import accumulate
from typing import Any
from uuid import UUID

import msgspec

from programledger.domain import (
    RESOURCE_EVENT_TYPES,
    Allocation,
    AllocationStatus,
    CapacityStep,
    Resource,
    ResourceCapacityChanged,
)
from programledger.domain.capacity import capacity_at_ordinal
from programledger.projections.core import (
    Context,
    ProjectedEvent,
    Projection,
    Tracked,
    fold,
)
from programledger.projections.queries import (
    AsOf,
    Filters,
    ListSpec,
    Page,
    Reader,
    VersionedRow,
    fetch_one,
    fetch_page,
)
from programledger.projections.tables import CURRENT, Column, Index, SortKey, Table

__all__ = [
    "ALLOCATIONS",
    "PROJECTION",
    "RESOURCES",
    "UTILISATION",
    "AllocationRow",
    "ResourceRow",
    "UtilisationWeek",
    "get_allocation",
    "get_resource",
    "list_allocations",
    "list_resources",
    "utilisation",
    "weeks_of",
]

RESOURCES = Table(
    "rm_resources",
    key=(Column("resource_key", "text", True),),
    columns=(
        Column("name", "text", True),
        Column("kind", "text", True),
        Column("department", "text", True),
        Column("role", "text", True),
        Column("capacity_schedule", "jsonb", True),
        Column("version", "bigint", True),
    ),
    indexes=(Index("department", "(department, resource_key)", CURRENT),),
    sorts={"resource_key": SortKey("resource_key", "text"), "name": SortKey("name", "text")},
)

ALLOCATIONS = Table(
    "rm_allocations",
    key=(Column("allocation_id", "uuid", True),),
    columns=(
        Column("resource_key", "text", True),
        Column("program_id", "uuid", True),
        Column("workstream_id", "uuid"),
        Column("start_date", "date", True),
        Column("end_date", "date", True),
        Column("percentage", "integer", True),
        Column("status", "text", True),
        Column("note", "text"),
    ),
    indexes=(
        Index("resource", "(resource_key, start_date, allocation_id)", CURRENT),
        Index("program", "(program_id, start_date, allocation_id)", CURRENT),
        Index("program_history", "(program_id, valid_from_pos)"),
        Index("resource_history", "(resource_key, valid_from_pos)"),
    ),
    sorts={
        "start_date": SortKey("start_date", "date"),
        "end_date": SortKey("end_date", "date"),
        "percentage": SortKey("percentage", "integer", indexed=False),
    },
)

UTILISATION = Table(
    "rm_utilisation",
    key=(Column("resource_key", "text", True), Column("week_start", "date", True)),
    columns=(
        Column("iso_year", "integer", True),
        Column("iso_week", "integer", True),
        Column("capacity_days", "integer", True),
        Column("confirmed_days", "integer", True),
        Column("proposed_days", "integer", True),
        Column("over_allocated", "boolean", True),
        Column("program_ids", "uuid[]", True),
    ),
    # Few indexes: every allocation event writes a version of each week it spans. Every
    # query names a week range, which by_week serves now and as of (no GiST range index);
    # the key's own indexes serve the resource order.
    range_index=False,
    sorts={
        "resource": SortKey("resource_key", "text", indexed=False),
        "week": SortKey("week_start", "date"),
    },
)

_encoder = msgspec.json.Encoder()
_RELEASED = AllocationStatus.RELEASED
_CONFIRMED = AllocationStatus.CONFIRMED


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _mondays(first: date, last: date) -> Iterable[date]:
    week = _monday(first)
    while week <= last:
        yield week
        week += timedelta(days=7)


def weeks_of(
    resource: Resource | None, weeks: Iterable[date] | None = None
) -> dict[date, tuple[Any, ...]]:
    """The utilisation rows of ``resource`` for ``weeks`` (Mondays; ``None``: every week
    any of its live allocations touches), leaving out weeks without load.

    Loads are summed per day over the span of ``weeks`` with difference arrays, so one
    event costs the allocations plus the days once, not the allocations once per week.
    """
    if resource is None:
        return {}
    live = [a for a in resource.allocations if a.status is not _RELEASED]
    if weeks is None:
        weeks = {w for a in live for w in _mondays(a.start_date, a.end_date)}
    weeks = list(weeks)
    if not weeks:
        return {}
    first = min(weeks).toordinal()
    span = max(weeks).toordinal() + 7 - first
    confirmed = [0] * (span + 1)
    proposed = [0] * (span + 1)
    programs: dict[int, set[UUID]] = {}
    for a in live:
        start = max(a.start_date.toordinal() - first, 0)
        end = min(a.end_date.toordinal() - first, span - 1)
        if start > end:
            continue
        if a.status is _CONFIRMED:
            confirmed[start] += a.percentage
            confirmed[end + 1] -= a.percentage
            for week in range(start // 7, end // 7 + 1):
                programs.setdefault(week, set()).add(a.program_id)
        else:
            proposed[start] += a.percentage
            proposed[end + 1] -= a.percentage
    daily = list(accumulate(confirmed))
    daily_proposed = list(accumulate(proposed))
    schedule = resource.capacity_schedule
    constant = schedule[0].capacity if len(schedule) == 1 else None
    rows: dict[date, tuple[Any, ...]] = {}
    for monday in weeks:
        i = monday.toordinal() - first
        load = daily[i : i + 7]
        loaded, pending = sum(load), sum(daily_proposed[i : i + 7])
        if not loaded and not pending:
            continue
        if constant is not None:
            capacity_days, over = constant * 7, max(load) > constant
        else:
            capacity = _capacity_of_week(schedule, first + i)
            capacity_days = sum(capacity)
            over = any(n > c for n, c in zip(load, capacity, strict=True))
        year, week, _ = monday.isocalendar()
        rows[monday] = (
            year, week, capacity_days, loaded, pending, over, sorted(programs.get(i // 7, ())),
        )  # fmt: skip
    return rows


def _capacity_of_week(schedule: Sequence[CapacityStep], start: int) -> list[int]:
    """Capacity on each day of the week starting on ordinal ``start``: one lookup unless
    a step of the schedule begins inside the week."""
    inside = (s.effective_from for s in schedule if s.effective_from is not None)
    if not any(start < day.toordinal() <= start + 6 for day in inside):
        return [capacity_at_ordinal(schedule, start)] * 7
    return [capacity_at_ordinal(schedule, start + day) for day in range(7)]


def _resource(r: Resource, version: int) -> tuple[Any, ...]:
    schedule = _encoder.encode(r.capacity_schedule)
    return (r.name, r.kind.value, r.department.value, r.role, schedule, version)


def _allocation(key: str, a: Allocation) -> tuple[Any, ...]:
    return (
        key, a.program_id, a.workstream_id, a.start_date, a.end_date, a.percentage,
        a.status.value, a.note,
    )  # fmt: skip


def _find(resource: Resource | None, allocation_id: UUID) -> Allocation | None:
    if resource is None:
        return None
    return next((a for a in resource.allocations if a.allocation_id == allocation_id), None)


def _affected_weeks(
    event: ProjectedEvent, before: Resource | None, after: Resource
) -> set[date] | None:
    """The weeks whose rows ``event`` may change (``None``: none at all)."""
    data = event.event
    allocation_id = getattr(data, "allocation_id", None)
    if isinstance(allocation_id, UUID):
        weeks: set[date] = set()
        for state in (before, after):
            found = _find(state, allocation_id)
            if found is not None:
                weeks.update(_mondays(found.start_date, found.end_date))
        return weeks
    if isinstance(data, ResourceCapacityChanged):
        since = _monday(data.effective_from) if data.effective_from else date.min
        spanned = {
            w
            for state in (before, after)
            if state is not None
            for a in state.allocations
            if a.status is not _RELEASED
            for w in _mondays(a.start_date, a.end_date)
        }
        return {w for w in spanned if w >= since}
    return None


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    before, after = fold(ctx, event)
    key = after.key
    if before is None:
        ctx.change(RESOURCES, (key,), None, _resource(after, event.version))
    else:
        ctx.replace(RESOURCES, (key,), _resource(after, event.version))
    allocation_id = getattr(event.event, "allocation_id", None)
    if isinstance(allocation_id, UUID):
        was, now = _find(before, allocation_id), _find(after, allocation_id)
        ctx.change(
            ALLOCATIONS,
            (allocation_id,),
            None if was is None else _allocation(key, was),
            None if now is None else _allocation(key, now),
        )
    weeks = _affected_weeks(event, before, after)
    if weeks:
        old_weeks, new_weeks = weeks_of(before, weeks), weeks_of(after, weeks)
        for week in sorted(weeks):
            ctx.change(UTILISATION, (key, week), old_weeks.get(week), new_weeks.get(week))


PROJECTION = Projection(
    name="allocations",
    description="resources, allocations, and utilisation per resource per ISO week",
    handles=frozenset(t.event_type for t in RESOURCE_EVENT_TYPES),
    tables=(RESOURCES, ALLOCATIONS, UTILISATION),
    states={"resource": Tracked[Resource]},
    handle=_handle,
)


# Queries


class ResourceRow(VersionedRow, frozen=True, kw_only=True):
    resource_key: str
    name: str
    kind: str
    department: str
    role: str
    capacity_schedule: list[CapacityStep]
    """Capacity (percent of one FTE) from each date on; the first step has no date."""
    version: int


class AllocationRow(VersionedRow, frozen=True, kw_only=True):
    allocation_id: UUID
    resource_key: str
    program_id: UUID
    workstream_id: UUID | None
    start_date: date
    end_date: date
    percentage: int
    status: str
    note: str | None


class UtilisationWeek(VersionedRow, frozen=True, kw_only=True):
    resource_key: str
    week_start: date
    """The Monday of the ISO week."""
    iso_year: int
    iso_week: int
    capacity_days: int
    confirmed_days: int
    proposed_days: int
    over_allocated: bool
    program_ids: list[UUID]
    capacity: float
    """Average capacity over the week, percent of one FTE (``capacity_days / 7``)."""
    confirmed: float
    proposed: float
    utilisation: float | None
    """Confirmed load over capacity (1.0 = fully booked); ``None`` without capacity."""


_schedule_decoder = msgspec.json.Decoder(list[CapacityStep])


def _resource_row(data: dict[str, Any]) -> ResourceRow:
    data["capacity_schedule"] = _schedule_decoder.decode(data["capacity_schedule"])
    return ResourceRow(**data)


def _allocation_row(data: dict[str, Any]) -> AllocationRow:
    return AllocationRow(**data)


def _week_row(data: dict[str, Any]) -> UtilisationWeek:
    capacity, confirmed = data["capacity_days"], data["confirmed_days"]
    return UtilisationWeek(
        **data,
        capacity=capacity / 7,
        confirmed=confirmed / 7,
        proposed=data["proposed_days"] / 7,
        utilisation=confirmed / capacity if capacity else None,
    )


RESOURCE_LIST = ListSpec(table=RESOURCES, convert=_resource_row)

ALLOCATION_LIST = ListSpec(table=ALLOCATIONS, convert=_allocation_row)

UTILISATION_LIST = ListSpec(table=UTILISATION, convert=_week_row)


async def list_resources(
    pool: Reader,
    *,
    department: Sequence[str] | None = None,
    kind: str | None = None,
    sort: str = "resource_key",
    descending: bool = False,
    first: int = 50,
    after: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[ResourceRow]:
    filters = Filters()
    filters.any_of("department", department, "text")
    filters.equals("kind", kind)
    return await fetch_page(
        pool, RESOURCE_LIST, filters, sort=sort, descending=descending, first=first,
        after=after, as_of=as_of,
        count=count,
    )  # fmt: skip


async def get_resource(
    pool: Reader, resource_key: str, *, as_of: AsOf = None
) -> ResourceRow | None:
    return await fetch_one(pool, RESOURCES, _resource_row, (resource_key,), as_of)


async def list_allocations(
    pool: Reader,
    *,
    resource_key: str | None = None,
    program_id: UUID | None = None,
    workstream_id: UUID | None = None,
    status: Sequence[str] | None = None,
    active_on: date | None = None,
    sort: str = "start_date",
    descending: bool = False,
    first: int = 50,
    after: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[AllocationRow]:
    """Allocations of a resource or to a program; ``active_on`` keeps those whose period
    contains that day."""
    filters = Filters()
    filters.equals("resource_key", resource_key)
    filters.equals("program_id", program_id)
    filters.equals("workstream_id", workstream_id)
    filters.any_of("status", status, "text")
    if active_on is not None:
        filters.where("start_date <= {0} AND end_date >= {0}", active_on)
    return await fetch_page(
        pool, ALLOCATION_LIST, filters, sort=sort, descending=descending, first=first,
        after=after, as_of=as_of,
        count=count,
    )  # fmt: skip


async def get_allocation(
    pool: Reader, allocation_id: UUID, *, as_of: AsOf = None
) -> AllocationRow | None:
    return await fetch_one(pool, ALLOCATIONS, _allocation_row, (allocation_id,), as_of)


async def utilisation(
    pool: Reader,
    *,
    start: date,
    end: date,
    resource_key: str | None = None,
    over_allocated_only: bool = False,
    known_at: AsOf = None,
    sort: str = "resource",
    first: int = 500,
    after: str | None = None,
    count: bool = True,
) -> Page[UtilisationWeek]:
    """Weekly load of each resource in the valid-time period ``[start, end]`` (the weeks
    that touch it), as known at ``known_at`` (a position or recorded time; ``None``: now).
    Weeks without load are absent."""
    if end < start:
        raise ValueError("end must be on or after start")
    filters = Filters()
    filters.where("week_start BETWEEN {} AND {}", _monday(start), end)
    filters.equals("resource_key", resource_key)
    if over_allocated_only:
        filters.where("over_allocated")
    return await fetch_page(
        pool, UTILISATION_LIST, filters, sort=sort, descending=False, first=first,
        after=after, as_of=known_at,
        count=count,
    )  # fmt: skip
