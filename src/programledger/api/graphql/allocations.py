"""People's time in GraphQL: ``resources``, ``allocations`` and ``utilisation`` (weekly
load per resource), over the ``allocations`` read model."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from programledger.api.graphql.connections import Connection, connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.links import Link, linked, program_of
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    DEFAULT_PAGE,
    counts,
    enum_argument,
    enum_filter,
    listing,
    lookup,
    moment,
    plain,
    read,
    read_field,
    uuid,
    values,
)
from programledger.api.graphql.types import SafeInt
from programledger.domain.capacity import AllocationStatus
from programledger.domain.values import Department, PartyKind
from programledger.projections import allocations
from programledger.projections.allocations import AllocationRow, ResourceRow, UtilisationWeek
from programledger.projections.engine.queries import Reader

if TYPE_CHECKING:
    from programledger.api.graphql.programs import ProgramType

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


def _resource_allocations(root: strawberry.Parent[ResourceType], info: ApiInfo) -> Any:
    return ALLOCATIONS_OF.load(info, root.at, root.resource_key)


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
    at: strawberry.Private[int | None]
    allocations: list[AllocationType] = strawberry.field(
        resolver=_resource_allocations,
        description=linked("The resource's allocations by start date (at most 500)"),
    )

    @staticmethod
    def of(r: ResourceRow, at: int | None) -> ResourceType:
        return ResourceType(
            id=global_id("Resource", r.resource_key),
            resource_key=r.resource_key,
            name=r.name,
            kind=r.kind,
            department=r.department,
            role=r.role,
            version=r.version,
            updated_at=r.valid_from_time,
            at=at,
            capacity_schedule=[
                CapacityStepType(effective_from=s.effective_from, capacity=s.capacity)
                for s in r.capacity_schedule
            ],
        )


def _allocation_resource(root: strawberry.Parent[AllocationType], info: ApiInfo) -> Any:
    return RESOURCE.load(info, root.at, root.resource_key)


def _allocation_program(root: strawberry.Parent[AllocationType], info: ApiInfo) -> Any:
    return program_of(info, root.at, UUID(root.program_id))


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
    at: strawberry.Private[int | None]
    resource: ResourceType | None = strawberry.field(
        resolver=_allocation_resource, description=linked("The person or team")
    )
    program: Annotated[ProgramType, strawberry.lazy("programledger.api.graphql.programs")] = (
        strawberry.field(resolver=_allocation_program, description=linked("The program"))
    )

    @staticmethod
    def of(a: AllocationRow, at: int | None) -> AllocationType:
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
            at=at,
        )


async def _resources_by_key(
    reads: Reader, keys: Sequence[str], at: int | None
) -> Mapping[str, ResourceType]:
    found = await allocations.resources_by_key(reads, keys, as_of=at)
    return {key: ResourceType.of(row, at) for key, row in found.items()}


async def _allocations_of(
    reads: Reader, keys: Sequence[str], at: int | None
) -> Mapping[str, list[AllocationType]]:
    found = await allocations.allocations_of_resources(reads, keys, as_of=at)
    return {key: [AllocationType.of(row, at) for row in rows] for key, rows in found.items()}


RESOURCE: Link[str, ResourceType | None] = Link("resource", _resources_by_key, None)
ALLOCATIONS_OF: Link[str, list[AllocationType]] = Link("resource.allocations", _allocations_of, [])


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


def _resource_filters(
    department: Annotated[list[Enum] | None, enum_argument(Department)] = None,
    kind: Annotated[Enum | None, enum_argument(PartyKind, many=False)] = None,
) -> dict[str, Any]:
    return {"department": values(department), "kind": None if kind is None else kind.value}


def _allocation_filters(filter: AllocationFilter | None = None) -> dict[str, Any]:
    f = filter or AllocationFilter()
    return {
        "resource_key": f.resource_key,
        "program_id": uuid(f.program_id, "programId"),
        "workstream_id": uuid(f.workstream_id, "workstreamId"),
        "status": values(f.status),
        "active_on": f.active_on,
    }


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


def _resource_key(resource_key: str) -> str:
    return resource_key


_resource = lookup(allocations.get_resource, plain(ResourceType.of), _resource_key)


_resources = listing(
    allocations.list_resources,
    plain(ResourceType.of),
    _resource_filters,
    ResourceSort.RESOURCE_KEY,
    descending=False,
)


_allocations = listing(
    allocations.list_allocations,
    plain(AllocationType.of),
    _allocation_filters,
    AllocationSort.START_DATE,
    descending=False,
)


@strawberry.type
class AllocationQueries:
    resource: ResourceType | None = read_field(_resource, "One person or team, by key." + AS_OF)
    resources: Connection[ResourceType] = read_field(_resources, "People and teams." + AS_OF)
    allocations: Connection[AllocationType] = read_field(_allocations, "Allocations." + AS_OF)
    utilisation: UtilisationType = read_field(
        _utilisation, "Weekly load per resource; knownAt/knownAtPosition: as known then."
    )
