"""Resources, their allocations to programs, and utilisation per ISO week.

Rows come from folding each resource stream (capacity schedule and every allocation)
with the domain's ``evolve``.

Utilisation is bitemporal. Valid time is the ISO week asked about; transaction time is
the version range of the rows it is computed from. So "Alice's load in April, as known on
1 March" is computed from the allocation and resource versions current on 1 March. It is
computed when asked, from those versions (read through the tables' indexes), not stored
per week: an allocation spans weeks, so a stored week row changed with every allocation
event touching it, six or more row versions per event, which held live consumption to a
third of a raw consumer's pace. A week holds, in *percent-days* (a percentage summed over
the seven days, exact integers): capacity, confirmed load and proposed load;
``over_allocated`` is set when on some day of the week the confirmed load is above that
day's capacity (the domain's rule), and ``program_ids`` lists the programs with confirmed
work in it. Weeks without any load are left out.

Tables: ``rm_resources`` (key ``resource_key``), ``rm_allocations`` (key
``allocation_id``), both versioned.

One module over 500 lines: the read model and the utilisation computed from its tables when
asked, since the week arithmetic must agree with the rows it reads and with the domain's
capacity rule.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from itertools import accumulate, islice
from math import ceil
from typing import Any, NamedTuple
from uuid import UUID

import msgspec

from programledger.domain.capacity import (
    Allocation,
    AllocationStatus,
    CapacityStep,
    capacity_at_ordinal,
)
from programledger.domain.resource import RESOURCE_EVENT_TYPES, Resource
from programledger.domain.values import OverAllocationPeriod
from programledger.projections.engine.core import (
    Connection,
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
    check_first,
    decode_cursor,
    fetch_by_key,
    fetch_grouped,
    fetch_one,
    fetch_page,
    resolve_position,
    version_clause,
)
from programledger.projections.engine.tables import CURRENT, Column, Index, SortKey, Table

__all__ = [
    "ALLOCATIONS",
    "MAX_UTILISATION_DAYS",
    "PROJECTION",
    "RESOURCES",
    "AllocationRow",
    "Load",
    "ResourceRow",
    "StaffingPeriod",
    "StaffingRow",
    "UtilisationWeek",
    "allocations_by_id",
    "allocations_of_programs",
    "allocations_of_resources",
    "get_resource",
    "list_allocations",
    "list_resources",
    "resources_by_key",
    "staffing",
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
        Column("override_reason", "text"),
        Column("over_allocation", "jsonb", True),
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

_encoder = msgspec.json.Encoder()


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


MAX_UTILISATION_DAYS = 3 * 366
"""The longest period :func:`utilisation` computes at once. Its cost grows with the weeks
of every resource, and an unbounded one (up to 9999-12-31) cost 0.6 s a request."""
_LAST_DAY = date(9999, 1, 1)
"""Weeks are counted up to the Sunday after a period: no period may end in the last year."""


def _mondays(first: date, last: date) -> Iterable[date]:
    week = _monday(first)
    while week <= last:
        yield week
        week += timedelta(days=7)


class Load(NamedTuple):
    """What utilisation needs of an allocation that is not released."""

    start_date: date
    end_date: date
    percentage: int
    confirmed: bool
    program_id: UUID


def weeks_of(
    loads: Sequence[Load], schedule: Sequence[CapacityStep], weeks: Iterable[date]
) -> dict[date, tuple[Any, ...]]:
    """The utilisation of one resource in ``weeks`` (Mondays), leaving out weeks without
    load: (iso year, iso week, capacity, confirmed, proposed, over-allocated, programs).

    Loads are summed per day over the span of ``weeks`` with difference arrays, so the
    cost is the allocations plus the days once, not the allocations once per week.
    """
    if not loads:
        return {}
    # Only the weeks the loads reach: a resource busy for a quarter costs a quarter,
    # whatever the period asked about.
    reach = _monday(min(a.start_date for a in loads)), max(a.end_date for a in loads)
    weeks = [w for w in weeks if reach[0] <= w <= reach[1]]
    if not weeks:
        return {}
    first = min(weeks).toordinal()
    span = max(weeks).toordinal() + 7 - first
    confirmed = [0] * (span + 1)
    proposed = [0] * (span + 1)
    programs: dict[int, set[UUID]] = {}
    for a in loads:
        start = max(a.start_date.toordinal() - first, 0)
        end = min(a.end_date.toordinal() - first, span - 1)
        if start > end:
            continue
        if a.confirmed:
            confirmed[start] += a.percentage
            confirmed[end + 1] -= a.percentage
            for week in range(start // 7, end // 7 + 1):
                programs.setdefault(week, set()).add(a.program_id)
        else:
            proposed[start] += a.percentage
            proposed[end + 1] -= a.percentage
    daily = list(accumulate(confirmed))
    daily_proposed = list(accumulate(proposed))
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
            year,
            week,
            capacity_days,
            loaded,
            pending,
            over,
            sorted(programs.get(i // 7, ())),
        )
    return rows


def _capacity_of_week(schedule: Sequence[CapacityStep], start: int) -> list[int]:
    """Capacity on each day of the week starting on ordinal ``start``: one lookup unless
    a step of the schedule begins inside the week."""
    inside = (s.effective_from for s in schedule if s.effective_from is not None)
    if not any(start < day.toordinal() <= start + 6 for day in inside):
        return [capacity_at_ordinal(schedule, start)] * 7
    return [capacity_at_ordinal(schedule, start + day) for day in range(7)]


def _resource(r: Resource) -> tuple[Any, ...]:
    schedule = _encoder.encode(r.capacity_schedule)
    return (r.name, r.kind.value, r.department.value, r.role, schedule)


def _allocation(key: str, a: Allocation) -> tuple[Any, ...]:
    return (
        key,
        a.program_id,
        a.workstream_id,
        a.start_date,
        a.end_date,
        a.percentage,
        a.status.value,
        a.note,
        a.override_reason,
        _encoder.encode(a.over_allocation),
    )


def _find(resource: Resource | None, allocation_id: int) -> Allocation | None:
    """The allocation whose id's ``int`` is ``allocation_id``: compared as integers, since
    a ``UUID``'s ``==`` is a Python call, and a resource's every allocation is looked at
    twice per event."""
    if resource is None:
        return None
    return next((a for a in resource.allocations if a.allocation_id.int == allocation_id), None)


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    before, after = fold(ctx, event)
    key = after.key
    allocation_id = getattr(event.event, "allocation_id", None)
    if isinstance(allocation_id, UUID):
        # An allocation event changes only the resource's allocations, never its row:
        # the stream version it moves is read with the row (see queries).
        ctx.change_item(
            ALLOCATIONS,
            (allocation_id,),
            _find(before, allocation_id.int),
            _find(after, allocation_id.int),
            lambda allocation: _allocation(key, allocation),
        )
        return
    old = None if before is None else _resource(before)
    ctx.change(RESOURCES, (key,), old, _resource(after))


PROJECTION = Projection(
    name="allocations",
    description="resources, allocations, and utilisation per resource per ISO week",
    handles=frozenset(t.event_type for t in RESOURCE_EVENT_TYPES),
    tables=(RESOURCES, ALLOCATIONS),
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
    """The resource stream's version: the expected version for the next command. Not a
    column: allocation events move it without changing the row."""


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
    override_reason: str | None
    """Why the last confirmation or adjustment was accepted although it over-allocated the
    resource (in ``over_allocation``); ``None`` when it needed no override."""
    over_allocation: list[OverAllocationPeriod]


class UtilisationWeek(msgspec.Struct, frozen=True, kw_only=True):
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


_STREAM_VERSION = (
    ", (SELECT max(e.version) FROM events e WHERE e.stream_id = 'resource-' || resource_key"
    " AND e.position <= (SELECT position FROM projection_status WHERE name = 'allocations')"
    " AND ({0}::bigint IS NULL OR e.position <= {0}::bigint)"
    " AND ({1}::timestamptz IS NULL OR e.recorded_at <= {1}::timestamptz)) AS version"
)
"""A resource's stream version as of the read: the last of its events at or before the
position (or time) asked about and the projection's checkpoint, so it is the version of
the state the row shows (an expected version for the next command), read in the same
statement as the row."""


def _version_args(as_of: AsOf) -> tuple[int | None, datetime | None]:
    return (
        as_of if isinstance(as_of, int) else None,
        as_of if isinstance(as_of, datetime) else None,
    )


def _resource_row(data: dict[str, Any]) -> ResourceRow:
    data["capacity_schedule"] = _schedule_decoder.decode(data["capacity_schedule"])
    return ResourceRow(**data)


_periods_decoder = msgspec.json.Decoder(list[OverAllocationPeriod])


def _allocation_row(data: dict[str, Any]) -> AllocationRow:
    data["over_allocation"] = _periods_decoder.decode(data["over_allocation"])
    return AllocationRow(**data)


RESOURCE_LIST = ListSpec(table=RESOURCES, convert=_resource_row)

ALLOCATION_LIST = ListSpec(table=ALLOCATIONS, convert=_allocation_row)


async def list_resources(
    pool: Reader,
    *,
    department: Sequence[str] | None = None,
    kind: str | None = None,
    sort: str = "resource_key",
    descending: bool = False,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[ResourceRow]:
    filters = Filters()
    filters.any_of("department", department, "text")
    filters.equals("kind", kind)
    return await fetch_page(
        pool,
        RESOURCE_LIST,
        filters,
        sort=sort,
        descending=descending,
        first=first,
        after=after,
        last=last,
        before=before,
        as_of=as_of,
        count=count,
        extra_select=_STREAM_VERSION,
        extra_args=_version_args(as_of),
    )


async def get_resource(
    pool: Reader, resource_key: str, *, as_of: AsOf = None
) -> ResourceRow | None:
    return await fetch_one(
        pool,
        RESOURCES,
        _resource_row,
        (resource_key,),
        as_of,
        extra_select=_STREAM_VERSION,
        extra_args=_version_args(as_of),
    )


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
    last: int | None = None,
    before: str | None = None,
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
        pool,
        ALLOCATION_LIST,
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


async def allocations_of_programs(
    pool: Reader, program_ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, list[AllocationRow]]:
    """The allocations to each of ``program_ids`` by start date, in one statement."""
    return await fetch_grouped(
        pool,
        ALLOCATION_LIST,
        "program_id",
        program_ids,
        sort="start_date",
        descending=False,
        as_of=as_of,
    )


async def allocations_of_resources(
    pool: Reader, keys: Sequence[str], *, as_of: int | None = None
) -> Mapping[str, list[AllocationRow]]:
    """The allocations of each resource of ``keys`` by start date, in one statement."""
    return await fetch_grouped(
        pool,
        ALLOCATION_LIST,
        "resource_key",
        sorted(set(keys)),
        sort="start_date",
        descending=False,
        as_of=as_of,
    )


async def resources_by_key(
    pool: Reader, keys: Sequence[str], *, as_of: int | None = None
) -> Mapping[str, ResourceRow]:
    """The resources of ``keys`` as of a position (or now), by key, in one statement: the
    resources of a page of allocations."""
    found = await fetch_grouped(
        pool,
        RESOURCE_LIST,
        "resource_key",
        sorted(set(keys)),
        sort="resource_key",
        descending=False,
        as_of=as_of,
        extra_select=_STREAM_VERSION,
        extra_args=_version_args(as_of),
    )
    return {key: rows[0] for key, rows in found.items()}


_UTILISATION_SORTS = ("resource", "week")
_FIRST_CHUNK = 8


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
    that touch it), as known at ``known_at`` (a position or recorded time; ``None``: now),
    by resource then week (``sort="resource"``) or by week then resource (``"week"``).
    Weeks without load are absent.

    Computed from the resources and the allocations current at ``known_at`` that overlap
    the period, read in one snapshot. A page in resource order is a keyset walk: it reads
    the allocations of the next resources after its cursor (an index walk in resource
    order, now or as of a position), a chunk at a time, until the page is full, so a page
    costs the same at the start and at the end of an organisation. Its count comes from
    the allocations' weeks alone; a page in week order, or a count of over-allocated
    weeks, computes every resource.
    """
    if end < start:
        raise ValueError("end must be on or after start")
    if (end - start).days >= MAX_UTILISATION_DAYS:
        raise ValueError(
            f"the period from {start} to {end} is {(end - start).days + 1} days; utilisation "
            f"covers at most {MAX_UTILISATION_DAYS} days (three years) at a time"
        )
    if end >= _LAST_DAY:
        raise ValueError(f"the period must end before {_LAST_DAY}")
    if sort not in _UTILISATION_SORTS:
        raise ValueError(f"cannot sort by {sort!r}; choose one of {list(_UTILISATION_SORTS)}")
    check_first(first)
    cursor = None if after is None else decode_cursor(after, sort, False, 3)
    resume = None if cursor is None else _resume_after(cursor, sort)
    weeks = list(_mondays(start, end))

    def computed(
        loads: dict[str, list[Load]], schedules: dict[str, list[CapacityStep]]
    ) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
        """(place in the sort, week) for each resource of ``loads``, weeks in order."""
        for key in sorted(loads):
            found = weeks_of(loads[key], schedules.get(key, ()), weeks)
            for monday in sorted(found):
                row = found[monday]
                if over_allocated_only and not row[5]:
                    continue
                yield (key if sort == "resource" else monday, key, monday), row

    def after_resume(
        ordered: Iterable[tuple[tuple[Any, ...], tuple[Any, ...]]],
    ) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
        return (item for item in ordered if resume is None or item[0] > resume)

    page: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []
    total: int | None = None
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        position = await resolve_position(conn, known_at)
        if sort == "week" or (count and over_allocated_only):
            loads, schedules = await _loads(conn, position, weeks, resource_key)
            everything = sorted(computed(loads, schedules), key=lambda item: item[0])
            total = len(everything) if count else None
            page = list(islice(after_resume(everything), first + 1))
        else:
            if count:
                # A week has load exactly when a live allocation covers one of its days.
                loads, _ = await _loads(conn, position, weeks, resource_key, schedules=False)
                total = sum(
                    len(_loaded_weeks(load, weeks[0], weeks[-1])) for load in loads.values()
                )
            lower, inclusive = (None, False) if resume is None else (resume[1], True)
            # Chunks sized by the weeks per resource seen so far: most resources have
            # several, so reading ``first + 1`` of them would read several pages.
            limit, resources_read = min(first + 1, _FIRST_CHUNK), 0
            while len(page) <= first:
                loads, schedules = await _loads(
                    conn,
                    position,
                    weeks,
                    resource_key,
                    after_key=lower,
                    inclusive=inclusive,
                    limit=limit,
                )
                if not loads:
                    break
                page.extend(islice(after_resume(computed(loads, schedules)), first + 1 - len(page)))
                lower, inclusive = max(loads), False
                resources_read += len(loads)
                wanted = (first + 1 - len(page)) * resources_read / max(len(page), 1)
                limit = min(first + 1, max(_FIRST_CHUNK, ceil(wanted * 1.25)))
    return Page.of(
        [_week(place[1], place[2], row) for place, row in page[:first]],
        [place for place, _ in page[:first]],
        total_count=total,
        has_next_page=len(page) > first,
        has_previous_page=after is not None,
        as_of_position=position,
        sort=sort,
    )


async def _loads(
    conn: Connection,
    position: int | None,
    weeks: Sequence[date],
    resource_key: str | None,
    *,
    after_key: str | None = None,
    inclusive: bool = False,
    limit: int | None = None,
    schedules: bool = True,
) -> tuple[dict[str, list[Load]], dict[str, list[CapacityStep]]]:
    """The live allocations overlapping ``weeks`` by resource, and the resources'
    capacity schedules, at ``position``: of every resource, or of the first ``limit``
    resources (in key order) after ``after_key`` that have any.

    A chunk walks the allocations' resource index (the current rows' one, or the
    history one that holds each version's range) and is not offered the range index,
    which the planner would prefer for a whole list it cannot estimate.
    """
    live = Filters()
    live.equals("resource_key", resource_key)
    live.where("status <> {}", AllocationStatus.RELEASED.value)
    live.where("start_date <= {} AND end_date >= {}", weeks[-1] + _SUNDAY, weeks[0])
    version_clause(live, position, ALLOCATIONS, whole_list=limit is None)
    if after_key is not None:
        live.where(f"resource_key {'>=' if inclusive else '>'} {{}}", after_key)
    columns = "resource_key, start_date, end_date, percentage, status, program_id"
    if limit is None:
        sql = f"SELECT {columns} FROM {ALLOCATIONS.name} WHERE {live.sql()}"
    else:
        sql = (
            f"WITH chunk AS (SELECT DISTINCT resource_key FROM {ALLOCATIONS.name} "
            f"WHERE {live.sql()} ORDER BY resource_key LIMIT {limit}) "
            f"SELECT {columns} FROM {ALLOCATIONS.name} JOIN chunk USING (resource_key) "
            f"WHERE {live.sql()}"
        )
    loads: dict[str, list[Load]] = {}
    confirmed = AllocationStatus.CONFIRMED.value
    for r in await conn.fetch(sql, *live.args):
        loads.setdefault(r[0], []).append(Load(r[1], r[2], r[3], r[4] == confirmed, r[5]))
    if not schedules or not loads:
        return loads, {}
    resources = Filters()
    if limit is None:
        resources.equals("resource_key", resource_key)
    else:
        resources.where("resource_key = ANY({}::text[])", list(loads))
    version_clause(resources, position, RESOURCES, whole_list=limit is None)
    found = {
        r[0]: _schedule_decoder.decode(r[1])
        for r in await conn.fetch(
            f"SELECT resource_key, capacity_schedule FROM {RESOURCES.name} WHERE {resources.sql()}",
            *resources.args,
        )
    }
    return loads, found


def _loaded_weeks(loads: Sequence[Load], first: date, last: date) -> set[date]:
    """The Mondays from ``first`` to ``last`` of weeks that ``loads`` put load in."""
    found: set[date] = set()
    for a in loads:
        found.update(_mondays(max(a.start_date, first), min(a.end_date, last + _SUNDAY)))
    return found


_SUNDAY = timedelta(days=6)


def _resume_after(cursor: list[str], sort: str) -> tuple[Any, ...]:
    try:
        key, monday = cursor[1], date.fromisoformat(cursor[2])
        first = key if sort == "resource" else date.fromisoformat(cursor[0])
    except ValueError:
        raise ValueError("the cursor is not one this API issued") from None
    return (first, key, monday)


def _week(key: str, monday: date, row: tuple[Any, ...]) -> UtilisationWeek:
    year, week, capacity, confirmed, proposed, over, programs = row
    return UtilisationWeek(
        resource_key=key,
        week_start=monday,
        iso_year=year,
        iso_week=week,
        capacity_days=capacity,
        confirmed_days=confirmed,
        proposed_days=proposed,
        over_allocated=over,
        program_ids=programs,
        capacity=capacity / 7,
        confirmed=confirmed / 7,
        proposed=proposed / 7,
        utilisation=confirmed / capacity if capacity else None,
    )


async def allocations_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, AllocationRow]:
    """The allocations of ``ids`` in one statement."""
    return await fetch_by_key(pool, ALLOCATION_LIST, ids, as_of=as_of)


class StaffingPeriod(enum.StrEnum):
    WEEK = "WEEK"
    """ISO weeks, Monday to Sunday."""
    MONTH = "MONTH"


class StaffingRow(msgspec.Struct, frozen=True, kw_only=True):
    """What one department and role give a program in one period."""

    period_start: date
    period_end: date
    department: str
    role: str
    confirmed_days: int
    """Confirmed load in percent-days: each allocation's percentage times its days in the
    period, summed (exact)."""
    proposed_days: int
    resources: int
    """People and teams of this department and role with live allocations in the period."""

    @property
    def days(self) -> int:
        return (self.period_end - self.period_start).days + 1

    @property
    def confirmed_fte(self) -> float:
        """Average confirmed FTE over the period (1.0 = one full-time person)."""
        return self.confirmed_days / (100 * self.days)

    @property
    def proposed_fte(self) -> float:
        return self.proposed_days / (100 * self.days)


def _periods(start: date, end: date, period: StaffingPeriod) -> tuple[date, date, str]:
    """The first period's start, the last one's end, and the SQL step between starts."""
    if period is StaffingPeriod.WEEK:
        return _monday(start), _monday(end) + _SUNDAY, "7 days"
    following = date(end.year + end.month // 12, end.month % 12 + 1, 1)
    return start.replace(day=1), following - timedelta(days=1), "1 month"


async def staffing(
    pool: Reader,
    *,
    program_id: UUID,
    start: date,
    end: date,
    period: StaffingPeriod = StaffingPeriod.WEEK,
    as_of: AsOf = None,
) -> list[StaffingRow]:
    """A program's staffing by department and role in each week (or month) touching
    ``[start, end]``, as known at ``as_of``: the live (not released) allocations to the
    program, confirmed and proposed apart, and the department and role of their resources
    as they stood then. Periods in order, then department and role; a period, department
    or role without load is absent."""
    if end < start:
        raise ValueError("end must be on or after start")
    if (end - start).days >= MAX_UTILISATION_DAYS:
        raise ValueError(
            f"the period from {start} to {end} is {(end - start).days + 1} days; staffing "
            f"covers at most {MAX_UTILISATION_DAYS} days (three years) at a time"
        )
    if end >= _LAST_DAY:
        raise ValueError(f"the period must end before {_LAST_DAY}")
    first, last, step = _periods(start, end, period)
    live = Filters()
    live.equals("program_id", program_id)
    live.where("status <> {}", AllocationStatus.RELEASED.value)
    live.where("start_date <= {} AND end_date >= {}", last, first)
    people = Filters()
    people.args = live.args  # one numbering for both tables' clauses
    confirmed = AllocationStatus.CONFIRMED.value
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        position = await resolve_position(conn, as_of)
        version_clause(live, position, ALLOCATIONS, whole_list=False)
        version_clause(people, position, RESOURCES, whole_list=False)
        bounds = (live.param(first), live.param(end), live.param(confirmed))
        days = "(least(a.end_date, p.period_end) - greatest(a.start_date, p.period_start) + 1)"
        rows = await conn.fetch(
            f"WITH periods AS (SELECT s::date AS period_start, "
            f"(s + interval '{step}' - interval '1 day')::date AS period_end "
            f"FROM generate_series({bounds[0]}::date, {bounds[1]}::date, interval '{step}') s), "
            f"a AS (SELECT resource_key, start_date, end_date, percentage, status "
            f"FROM {ALLOCATIONS.name} WHERE {live.sql()}), "
            f"r AS (SELECT resource_key, department, role FROM {RESOURCES.name} "
            f"WHERE resource_key IN (SELECT resource_key FROM a) AND {people.sql()}) "
            f"SELECT p.period_start, p.period_end, r.department, r.role, "
            f"sum(a.percentage * {days}) FILTER (WHERE a.status = {bounds[2]}) AS confirmed, "
            f"sum(a.percentage * {days}) FILTER (WHERE a.status <> {bounds[2]}) AS proposed, "
            f"count(DISTINCT a.resource_key) AS resources "
            f"FROM periods p JOIN a ON a.start_date <= p.period_end "
            f"AND a.end_date >= p.period_start JOIN r USING (resource_key) "
            f"GROUP BY 1, 2, 3, 4 ORDER BY 1, 3, 4",
            *live.args,
        )
    return [
        StaffingRow(
            period_start=r["period_start"],
            period_end=r["period_end"],
            department=r["department"],
            role=r["role"],
            confirmed_days=int(r["confirmed"] or 0),
            proposed_days=int(r["proposed"] or 0),
            resources=r["resources"],
        )
        for r in rows
    ]
