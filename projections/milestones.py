"""Milestones and dependencies: the schedule of every program and what it waits on.

A milestone row has its baseline (set when planned, moved only by an approved change
request), its forecast (the actual date once done), the slip in days and its status. A
dependency row has what depends (a workstream or milestone of the program) on what (an
item of this or another program, or an external party), its needed-by date and status.
Both come from folding the program stream with the domain's ``evolve``: a row changes
exactly when the item does.

Tables: ``rm_milestones`` (key ``milestone_id``), ``rm_dependencies`` (key
``dependency_id``), both versioned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from programledger.domain.program import (
    PROGRAM_EVENT_TYPES,
    ChangeRequestApproved,
    Dependency,
    ExternalTarget,
    Milestone,
    Program,
    slip_days,
)
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
    fetch_grouped,
    fetch_one,
    fetch_page,
)
from programledger.projections.engine.tables import CURRENT, Column, Index, SortKey, Table

__all__ = [
    "DEPENDENCIES",
    "MILESTONES",
    "PROJECTION",
    "DependencyRow",
    "MilestoneRow",
    "dependencies_by_id",
    "dependencies_of_programs",
    "dependencies_on_programs",
    "get_milestone",
    "list_dependencies",
    "list_milestones",
    "milestones_by_id",
    "milestones_of_programs",
]

MILESTONES = Table(
    "rm_milestones",
    key=(Column("milestone_id", "uuid", True),),
    columns=(
        Column("program_id", "uuid", True),
        Column("workstream_id", "uuid"),
        Column("name", "text", True),
        Column("description", "text"),
        Column("baseline_date", "date", True),
        Column("forecast_date", "date", True),
        Column("actual_date", "date"),
        Column("slip_days", "integer", True),
        Column("status", "text", True),
    ),
    indexes=(
        Index("program", "(program_id, forecast_date, milestone_id)", CURRENT),
        Index("program_history", "(program_id, valid_from_pos)"),
    ),
    sorts={
        "forecast_date": SortKey("forecast_date", "date"),
        "slip_days": SortKey("slip_days", "integer"),
        "name": SortKey("name", "text"),
        "baseline_date": SortKey("baseline_date", "date", indexed=False),
    },
)

DEPENDENCIES = Table(
    "rm_dependencies",
    key=(Column("dependency_id", "uuid", True),),
    columns=(
        Column("program_id", "uuid", True),
        Column("title", "text", True),
        Column("description", "text"),
        Column("dependent_kind", "text", True),
        Column("dependent_id", "uuid", True),
        Column("target_type", "text", True),
        Column("target_program_id", "uuid"),
        Column("target_kind", "text"),
        Column("target_item_id", "uuid"),
        Column("external_party", "text"),
        Column("external_contact", "text"),
        Column("needed_by", "date", True),
        Column("status", "text", True),
        Column("resolution", "text"),
    ),
    indexes=(
        Index("program", "(program_id, needed_by, dependency_id)", CURRENT),
        Index("program_history", "(program_id, valid_from_pos)"),
        Index("target", "(target_program_id, needed_by, dependency_id)", CURRENT),
    ),
    sorts={
        "needed_by": SortKey("needed_by", "date"),
        "title": SortKey("title", "text"),
        "status": SortKey("status", "text", indexed=False),
    },
)


def _milestone(program_id: UUID, m: Milestone) -> tuple[Any, ...]:
    return (
        program_id,
        m.workstream_id,
        m.name,
        m.description,
        m.baseline_date,
        m.forecast_date,
        m.actual_date,
        slip_days(m),
        m.status.value,
    )


def _dependency(program_id: UUID, d: Dependency) -> tuple[Any, ...]:
    target = d.depends_on
    if isinstance(target, ExternalTarget):
        pointed: tuple[Any, ...] = ("EXTERNAL", None, None, None, target.party, target.contact)
    else:
        pointed = ("PROGRAM_ITEM", target.program_id, target.kind.value, target.item_id, None, None)
    return (
        program_id,
        d.title,
        d.description,
        d.dependent.kind.value,
        d.dependent.item_id,
        *pointed,
        d.needed_by,
        d.status.value,
        d.resolution,
    )


Item = TypeVar("Item")


def _item(items: tuple[Item, ...], key: Callable[[Item], UUID], item_id: UUID) -> Item | None:
    return next((i for i in items if key(i) == item_id), None)


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    before, after = fold(ctx, event)
    pid = after.program_id
    data = event.event
    milestone_id = getattr(data, "milestone_id", None)
    if isinstance(milestone_id, UUID):
        _changed(ctx, MILESTONES, before, after, milestone_id, _milestones, _milestone, pid)
    if isinstance(data, ChangeRequestApproved):  # a new baseline for many milestones
        for m in after.milestones:
            _changed(ctx, MILESTONES, before, after, m.milestone_id, _milestones, _milestone, pid)
    dependency_id = getattr(data, "dependency_id", None)
    if isinstance(dependency_id, UUID):
        _changed(ctx, DEPENDENCIES, before, after, dependency_id, _dependencies, _dependency, pid)


def _milestones(p: Program | None, item_id: UUID) -> Milestone | None:
    return None if p is None else _item(p.milestones, lambda m: m.milestone_id, item_id)


def _dependencies(p: Program | None, item_id: UUID) -> Dependency | None:
    return None if p is None else _item(p.dependencies, lambda d: d.dependency_id, item_id)


def _changed(
    ctx: Context,
    table: Table,
    before: Program | None,
    after: Program,
    item_id: UUID,
    find: Callable[[Program | None, UUID], Item | None],
    row: Callable[[UUID, Item], tuple[Any, ...]],
    program_id: UUID,
) -> None:
    ctx.change_item(
        table,
        (item_id,),
        find(before, item_id),
        find(after, item_id),
        lambda item: row(program_id, item),
    )


PROJECTION = Projection(
    name="milestones",
    description="milestones (baseline, forecast, slip, status) and dependencies",
    handles=frozenset(t.event_type for t in PROGRAM_EVENT_TYPES),
    tables=(MILESTONES, DEPENDENCIES),
    states={"program": Tracked[Program]},
    handle=_handle,
    # The handler changes rows only for events naming a milestone or a dependency.
    row_events=frozenset(
        t.event_type
        for t in PROGRAM_EVENT_TYPES
        if {"milestone_id", "dependency_id"} & set(t.__struct_fields__)
    ),
)


# Queries


class MilestoneRow(VersionedRow, frozen=True, kw_only=True):
    milestone_id: UUID
    program_id: UUID
    workstream_id: UUID | None
    name: str
    description: str | None
    baseline_date: date
    forecast_date: date
    """The actual date once the milestone is done."""
    actual_date: date | None
    slip_days: int
    """Forecast minus baseline; negative when ahead of plan."""
    status: str


class DependencyRow(VersionedRow, frozen=True, kw_only=True):
    dependency_id: UUID
    program_id: UUID
    title: str
    description: str | None
    dependent_kind: str
    dependent_id: UUID
    target_type: str
    """``PROGRAM_ITEM`` (the ``target_*`` fields) or ``EXTERNAL`` (``external_*``)."""
    target_program_id: UUID | None
    target_kind: str | None
    target_item_id: UUID | None
    external_party: str | None
    external_contact: str | None
    needed_by: date
    status: str
    resolution: str | None


def _milestone_row(data: dict[str, Any]) -> MilestoneRow:
    return MilestoneRow(**data)


def _dependency_row(data: dict[str, Any]) -> DependencyRow:
    return DependencyRow(**data)


MILESTONE_LIST = ListSpec(table=MILESTONES, convert=_milestone_row)

DEPENDENCY_LIST = ListSpec(table=DEPENDENCIES, convert=_dependency_row)


async def list_milestones(
    pool: Reader,
    *,
    program_id: UUID | None = None,
    workstream_id: UUID | None = None,
    status: Sequence[str] | None = None,
    due_from: date | None = None,
    due_to: date | None = None,
    slipped_only: bool = False,
    sort: str = "forecast_date",
    descending: bool = False,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[MilestoneRow]:
    """Milestones, filtered by program, workstream, status and forecast window;
    ``slipped_only`` keeps those forecast after their baseline."""
    filters = Filters()
    filters.equals("program_id", program_id)
    filters.equals("workstream_id", workstream_id)
    filters.any_of("status", status, "text")
    if due_from is not None:
        filters.where("forecast_date >= {}", due_from)
    if due_to is not None:
        filters.where("forecast_date <= {}", due_to)
    if slipped_only:
        filters.where("slip_days > 0")
    return await fetch_page(
        pool,
        MILESTONE_LIST,
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


async def get_milestone(
    pool: Reader, milestone_id: UUID, *, as_of: AsOf = None
) -> MilestoneRow | None:
    return await fetch_one(pool, MILESTONES, _milestone_row, (milestone_id,), as_of)


async def milestones_of_programs(
    pool: Reader, program_ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, list[MilestoneRow]]:
    """The milestones of each of ``program_ids`` by forecast date, in one statement."""
    return await fetch_grouped(
        pool,
        MILESTONE_LIST,
        "program_id",
        program_ids,
        sort="forecast_date",
        descending=False,
        as_of=as_of,
    )


async def list_dependencies(
    pool: Reader,
    *,
    program_id: UUID | None = None,
    target_program_id: UUID | None = None,
    status: Sequence[str] | None = None,
    needed_by_to: date | None = None,
    sort: str = "needed_by",
    descending: bool = False,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[DependencyRow]:
    """Dependencies recorded on a program, or pointing at one (``target_program_id``)."""
    filters = Filters()
    filters.equals("program_id", program_id)
    filters.equals("target_program_id", target_program_id)
    filters.any_of("status", status, "text")
    if needed_by_to is not None:
        filters.where("needed_by <= {}", needed_by_to)
    return await fetch_page(
        pool,
        DEPENDENCY_LIST,
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


async def milestones_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, MilestoneRow]:
    """The milestones of ``ids`` in one statement."""
    return await fetch_by_key(pool, MILESTONE_LIST, ids, as_of=as_of)


async def dependencies_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, DependencyRow]:
    """The dependencies of ``ids`` in one statement."""
    return await fetch_by_key(pool, DEPENDENCY_LIST, ids, as_of=as_of)


async def dependencies_of_programs(
    pool: Reader, program_ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, list[DependencyRow]]:
    """The dependencies recorded on each of ``program_ids`` (what their items wait on),
    by needed-by date, in one statement."""
    return await fetch_grouped(
        pool,
        DEPENDENCY_LIST,
        "program_id",
        program_ids,
        sort="needed_by",
        descending=False,
        as_of=as_of,
    )


async def dependencies_on_programs(
    pool: Reader, program_ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, list[DependencyRow]]:
    """The dependencies waiting on an item of each of ``program_ids`` (recorded on any
    program), by needed-by date, in one statement."""
    return await fetch_grouped(
        pool,
        DEPENDENCY_LIST,
        "target_program_id",
        program_ids,
        sort="needed_by",
        descending=False,
        as_of=as_of,
    )
