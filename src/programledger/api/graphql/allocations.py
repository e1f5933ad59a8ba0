"""People's time in GraphQL: ``resources``, ``allocations`` and ``utilisation`` (weekly
load per resource), over the ``allocations`` read model."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Annotated

import strawberry

from programledger.api.graphql.connections import Connection, connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    DEFAULT_PAGE,
    counts,
    enum_argument,
    enum_filter,
    list_page,
    moment,
    one_connection,
    paging,
    read,
    reader,
    selected,
    uuid,
    values,
)
from programledger.api.graphql.types import SafeInt
from programledger.domain.capacity import AllocationStatus
from programledger.domain.values import Department, PartyKind
from programledger.projections import allocations
from programledger.projections.allocations import AllocationRow, ResourceRow, UtilisationWeek
from programledger.projections.engine.queries import Reader

__all__ = [
    "AllocationFilter",
    "AllocationQueries",
    "AllocationSort",
    "AllocationType",
    "ResourceSort",
    "ResourceType",
    "UtilisationType",
    "UtilisationWeekType",
]


@strawberry.enum(description="Sort keys of resources.")
class ResourceSort(enum.Enum):
    RESOURCE_KEY = "resource_key"
    NAME = "name"


@strawberry.enum(description="Sort keys of allocations.")
class AllocationSort(enum.Enum):
    START_DATE = "start_date"
    END_DATE = "end_date"
    PERCENTAGE = "percentage"


@strawberry.input
class AllocationFilter:
    resource_key: str | None = None
    program_id: strawberry.ID | None = None
    workstream_id: strawberry.ID | None = None
    status: list[Enum] | None = enum_filter(AllocationStatus)
    active_on: date | None = None


@strawberry.type(name="CapacityStep")
class CapacityStepType:
    effective_from: date | None
    capacity: int


@strawberry.type(name="Resource")
class ResourceType(Node):
    resource_key: str
    name: str
    kind: str = strawberry.field(graphql_type=domain_enum(PartyKind))
    department: str = strawberry.field(graphql_type=domain_enum(Department))
    role: str
    capacity_schedule: list[CapacityStepType]
    version: int
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )

    @staticmethod
    def of(r: ResourceRow) -> ResourceType:
        return ResourceType(
            id=global_id("Resource", r.resource_key),
            resource_key=r.resource_key,
            name=r.name,
            kind=r.kind,
            department=r.department,
            role=r.role,
            version=r.version,
            updated_at=r.valid_from_time,
            capacity_schedule=[
                CapacityStepType(effective_from=s.effective_from, capacity=s.capacity)
                for s in r.capacity_schedule
            ],
        )


def _allocation_resource(root: strawberry.Parent[AllocationType]) -> ResourceType | None:
    if root.resources is None:
        # The field returning allocations reads their resources when its selection names
        # them; missing here means the selection was misread: fail rather than answer null.
        raise RuntimeError("the allocations' resources were selected but not read")
    row = root.resources.get(root.resource_key)
    return None if row is None else ResourceType.of(row)


@strawberry.type(name="Allocation")
class AllocationType(Node):
    allocation_id: strawberry.ID
    resource_key: str
    program_id: strawberry.ID
    workstream_id: strawberry.ID | None
    start_date: date
    end_date: date
    percentage: int
    status: str = strawberry.field(graphql_type=domain_enum(AllocationStatus))
    note: str | None
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )
    resources: strawberry.Private[Mapping[str, ResourceRow] | None]
    resource: ResourceType | None = strawberry.field(
        resolver=_allocation_resource,
        description="The person or team, as of the same moment; read for the whole page at once.",
    )

    @staticmethod
    def of(a: AllocationRow, resources: Mapping[str, ResourceRow] | None = None) -> AllocationType:
        return AllocationType(
            id=global_id("Allocation", a.allocation_id),
            allocation_id=strawberry.ID(str(a.allocation_id)),
            resource_key=a.resource_key,
            program_id=strawberry.ID(str(a.program_id)),
            workstream_id=None if a.workstream_id is None else strawberry.ID(str(a.workstream_id)),
            start_date=a.start_date,
            end_date=a.end_date,
            percentage=a.percentage,
            status=a.status,
            note=a.note,
            updated_at=a.valid_from_time,
            resources=resources,
        )


async def resources_of(
    reads: Reader, rows: Sequence[AllocationRow], position: int | None, wanted: bool
) -> Mapping[str, ResourceRow] | None:
    """The resources of ``rows`` at ``position`` in one statement, if ``wanted`` (the
    operation selects ``resource`` on them); ``None`` when not read."""
    if not wanted:
        return None
    if not rows:
        return {}
    keys = [row.resource_key for row in rows]
    return await allocations.resources_by_key(reads, keys, as_of=position)


@strawberry.type(name="UtilisationWeek", description="One resource's load in one ISO week.")
class UtilisationWeekType:
    resource_key: str
    week_start: date = strawberry.field(description="The Monday of the ISO week.")
    iso_year: int
    iso_week: int
    capacity: float = strawberry.field(description="Average capacity, percent of one FTE.")
    confirmed: float
    proposed: float
    utilisation: float | None = strawberry.field(
        description="Confirmed over capacity (1.0 = fully booked); null without capacity."
    )
    over_allocated: bool
    program_ids: list[strawberry.ID]

    @staticmethod
    def of(w: UtilisationWeek) -> UtilisationWeekType:
        return UtilisationWeekType(
            resource_key=w.resource_key,
            week_start=w.week_start,
            iso_year=w.iso_year,
            iso_week=w.iso_week,
            capacity=w.capacity,
            confirmed=w.confirmed,
            proposed=w.proposed,
            utilisation=w.utilisation,
            over_allocated=w.over_allocated,
            program_ids=[strawberry.ID(str(p)) for p in w.program_ids],
        )


@strawberry.type(
    name="Utilisation",
    description="Weekly load in a period; overAllocated lists the weeks above capacity.",
)
class UtilisationType:
    weeks: Connection[UtilisationWeekType]
    over_allocated: list[UtilisationWeekType]


async def _resources(
    info: ApiInfo,
    department: Annotated[list[Enum] | None, enum_argument(Department)] = None,
    kind: Annotated[Enum | None, enum_argument(PartyKind, many=False)] = None,
    order_by: ResourceSort = ResourceSort.RESOURCE_KEY,
    descending: bool = False,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[ResourceType]:
    when = moment(as_of, as_of_position)
    return await list_page(
        info,
        allocations.list_resources,
        ResourceType.of,
        when,
        order_by,
        descending,
        paging(first, after, last, before),
        department=values(department),
        kind=None if kind is None else kind.value,
    )


async def _allocations(
    info: ApiInfo,
    filter: AllocationFilter | None = None,
    order_by: AllocationSort = AllocationSort.START_DATE,
    descending: bool = False,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[AllocationType]:
    when = moment(as_of, as_of_position)
    f = filter or AllocationFilter()
    wanted = "resource" in selected(info, ("nodes",)) | selected(info, ("edges", "node"))
    async with one_connection(info.context.services.pool) as reads:
        page = await read(
            allocations.list_allocations(
                reads,
                resource_key=f.resource_key,
                program_id=uuid(f.program_id, "programId"),
                workstream_id=uuid(f.workstream_id, "workstreamId"),
                status=values(f.status),
                active_on=f.active_on,
                sort=order_by.value,
                descending=descending,
                **paging(first, after, last, before),
                as_of=when,
                count=counts(info),
            )
        )
        found = await resources_of(reads, page.items, page.as_of_position, wanted)
    return connection(page, lambda a: AllocationType.of(a, found))


async def _utilisation(
    info: ApiInfo,
    from_: Annotated[date, strawberry.argument(name="from")],
    to: date,
    resource_key: str | None = None,
    over_allocated_only: bool = False,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    known_at: datetime | None = None,
    known_at_position: SafeInt | None = None,
) -> UtilisationType:
    """Weekly load in the valid-time period, as known at ``knownAt`` (now by default)."""
    when = moment(known_at, known_at_position)
    page = await read(
        allocations.utilisation(
            info.context.services.pool,
            start=from_,
            end=to,
            resource_key=resource_key,
            over_allocated_only=over_allocated_only,
            known_at=when,
            first=first,
            after=after,
            count=counts(info, "weeks"),
        )
    )
    weeks = connection(page, UtilisationWeekType.of)
    return UtilisationType(weeks=weeks, over_allocated=[w for w in weeks.nodes if w.over_allocated])


async def _resource(
    info: ApiInfo,
    resource_key: str,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> ResourceType | None:
    when = moment(as_of, as_of_position)
    row = await read(allocations.get_resource(info.context.services.pool, resource_key, as_of=when))
    return None if row is None else ResourceType.of(row)


@strawberry.type
class AllocationQueries:
    resource: ResourceType | None = strawberry.field(
        resolver=_resource, extensions=reader(), description="One person or team, by key." + AS_OF
    )
    resources: Connection[ResourceType] = strawberry.field(
        resolver=_resources, extensions=reader(), description="People and teams." + AS_OF
    )
    allocations: Connection[AllocationType] = strawberry.field(
        resolver=_allocations, extensions=reader(), description="Allocations." + AS_OF
    )
    utilisation: UtilisationType = strawberry.field(
        resolver=_utilisation,
        extensions=reader(),
        description="Weekly load per resource; knownAt/knownAtPosition: as known then.",
    )
