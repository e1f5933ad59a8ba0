"""Milestones and dependencies in GraphQL: ``milestones`` and ``dependencies``, over the
``milestones`` read model."""

from __future__ import annotations

import enum
from datetime import date, datetime
from enum import Enum
from typing import Annotated

import strawberry

from programledger.api.graphql.connections import Connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    an_id,
    enum_argument,
    list_page,
    moment,
    paging,
    read,
    reader,
    uuid,
    values,
)
from programledger.api.graphql.types import SafeInt
from programledger.domain.program import DependencyStatus, ItemKind, MilestoneStatus
from programledger.projections import milestones
from programledger.projections.milestones import DependencyRow, MilestoneRow

__all__ = [
    "DependencySort",
    "DependencyType",
    "MilestoneQueries",
    "MilestoneSort",
    "MilestoneType",
]


@strawberry.enum(description="Sort keys of milestones.")
class MilestoneSort(enum.Enum):
    FORECAST_DATE = "forecast_date"
    BASELINE_DATE = "baseline_date"
    SLIP_DAYS = "slip_days"
    NAME = "name"


@strawberry.enum(description="Sort keys of dependencies.")
class DependencySort(enum.Enum):
    NEEDED_BY = "needed_by"
    TITLE = "title"
    STATUS = "status"


@strawberry.enum(description="What a dependency waits on.")
class DependencyTargetType(enum.Enum):
    PROGRAM_ITEM = "PROGRAM_ITEM"
    """A workstream or milestone of a program (this one or another)."""
    EXTERNAL = "EXTERNAL"
    """A party outside the portfolio."""


@strawberry.type(name="Milestone")
class MilestoneType(Node):
    milestone_id: strawberry.ID
    program_id: strawberry.ID
    workstream_id: strawberry.ID | None
    name: str
    description: str | None
    baseline_date: date
    forecast_date: date
    actual_date: date | None
    slip_days: int = strawberry.field(description="Forecast minus baseline; negative if ahead.")
    status: str = strawberry.field(graphql_type=domain_enum(MilestoneStatus))
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )

    @staticmethod
    def of(m: MilestoneRow) -> MilestoneType:
        return MilestoneType(
            id=global_id("Milestone", m.milestone_id),
            milestone_id=strawberry.ID(str(m.milestone_id)),
            program_id=strawberry.ID(str(m.program_id)),
            workstream_id=None if m.workstream_id is None else strawberry.ID(str(m.workstream_id)),
            name=m.name,
            description=m.description,
            baseline_date=m.baseline_date,
            forecast_date=m.forecast_date,
            actual_date=m.actual_date,
            slip_days=m.slip_days,
            status=m.status,
            updated_at=m.valid_from_time,
        )


@strawberry.type(name="Dependency")
class DependencyType(Node):
    dependency_id: strawberry.ID
    program_id: strawberry.ID
    title: str
    description: str | None
    dependent_kind: str = strawberry.field(graphql_type=domain_enum(ItemKind))
    dependent_id: strawberry.ID
    target_type: str = strawberry.field(graphql_type=DependencyTargetType)
    target_program_id: strawberry.ID | None
    target_kind: str | None = strawberry.field(graphql_type=domain_enum(ItemKind) | None)
    target_item_id: strawberry.ID | None
    external_party: str | None
    external_contact: str | None
    needed_by: date
    status: str = strawberry.field(graphql_type=domain_enum(DependencyStatus))
    resolution: str | None
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )

    @staticmethod
    def of(d: DependencyRow) -> DependencyType:
        def opt(value: object) -> strawberry.ID | None:
            return None if value is None else strawberry.ID(str(value))

        return DependencyType(
            id=global_id("Dependency", d.dependency_id),
            dependency_id=strawberry.ID(str(d.dependency_id)),
            program_id=strawberry.ID(str(d.program_id)),
            title=d.title,
            description=d.description,
            dependent_kind=d.dependent_kind,
            dependent_id=strawberry.ID(str(d.dependent_id)),
            target_type=d.target_type,
            target_program_id=opt(d.target_program_id),
            target_kind=d.target_kind,
            target_item_id=opt(d.target_item_id),
            external_party=d.external_party,
            external_contact=d.external_contact,
            needed_by=d.needed_by,
            status=d.status,
            resolution=d.resolution,
            updated_at=d.valid_from_time,
        )


async def _milestones(
    info: ApiInfo,
    program_id: strawberry.ID | None = None,
    workstream_id: strawberry.ID | None = None,
    status: Annotated[list[Enum] | None, enum_argument(MilestoneStatus)] = None,
    due_from: date | None = None,
    due_to: date | None = None,
    slipped_only: bool = False,
    order_by: MilestoneSort = MilestoneSort.FORECAST_DATE,
    descending: bool = False,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[MilestoneType]:
    when = moment(as_of, as_of_position)
    return await list_page(
        info,
        milestones.list_milestones,
        MilestoneType.of,
        when,
        order_by,
        descending,
        paging(first, after, last, before),
        program_id=uuid(program_id, "programId"),
        workstream_id=uuid(workstream_id, "workstreamId"),
        status=values(status),
        due_from=due_from,
        due_to=due_to,
        slipped_only=slipped_only,
    )


async def _dependencies(
    info: ApiInfo,
    program_id: strawberry.ID | None = None,
    target_program_id: strawberry.ID | None = None,
    status: Annotated[list[Enum] | None, enum_argument(DependencyStatus)] = None,
    needed_by_to: date | None = None,
    order_by: DependencySort = DependencySort.NEEDED_BY,
    descending: bool = False,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[DependencyType]:
    when = moment(as_of, as_of_position)
    return await list_page(
        info,
        milestones.list_dependencies,
        DependencyType.of,
        when,
        order_by,
        descending,
        paging(first, after, last, before),
        program_id=uuid(program_id, "programId"),
        target_program_id=uuid(target_program_id, "targetProgramId"),
        status=values(status),
        needed_by_to=needed_by_to,
    )


async def _milestone(
    info: ApiInfo,
    id: strawberry.ID,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> MilestoneType | None:
    when = moment(as_of, as_of_position)
    row = await read(
        milestones.get_milestone(info.context.services.pool, an_id(id, "id"), as_of=when)
    )
    return None if row is None else MilestoneType.of(row)


@strawberry.type
class MilestoneQueries:
    milestone: MilestoneType | None = strawberry.field(
        resolver=_milestone, extensions=reader(), description="One milestone." + AS_OF
    )
    milestones: Connection[MilestoneType] = strawberry.field(
        resolver=_milestones, extensions=reader(), description="Milestones." + AS_OF
    )
    dependencies: Connection[DependencyType] = strawberry.field(
        resolver=_dependencies, extensions=reader(), description="Dependencies." + AS_OF
    )
