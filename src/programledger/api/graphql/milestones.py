"""Milestones and dependencies in GraphQL: ``milestones`` and ``dependencies``, over the
``milestones`` read model."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from programledger.api.graphql.connections import Connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.links import Link, linked, program_of
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    an_id,
    enum_argument,
    listing,
    lookup,
    plain,
    read_field,
    uuid,
    values,
)
from programledger.domain.program import DependencyStatus, ItemKind, MilestoneStatus
from programledger.projections import milestones
from programledger.projections.engine.queries import Reader
from programledger.projections.milestones import DependencyRow, MilestoneRow

if TYPE_CHECKING:
    from programledger.api.graphql.programs import ProgramType

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


def _program(root: strawberry.Parent[MilestoneType | DependencyType], info: ApiInfo) -> Any:
    return program_of(info, root.at, UUID(root.program_id))


def _target_program(root: strawberry.Parent[DependencyType], info: ApiInfo) -> Any:
    if root.target_program_id is None:
        return None
    return program_of(info, root.at, UUID(root.target_program_id))


def _waits_on(root: strawberry.Parent[MilestoneType], info: ApiInfo) -> Any:
    return WAITS_ON.load(info, root.at, (UUID(root.program_id), UUID(root.milestone_id)))


def _waited_on_by(root: strawberry.Parent[MilestoneType], info: ApiInfo) -> Any:
    return WAITED_ON_BY.load(info, root.at, (UUID(root.program_id), UUID(root.milestone_id)))


def _item_milestone(
    at: int | None, kind: str | None, item: strawberry.ID | None, info: ApiInfo
) -> Any:
    if kind != ItemKind.MILESTONE or item is None:
        return None
    return MILESTONE.load(info, at, UUID(item))


def _dependent_milestone(root: strawberry.Parent[DependencyType], info: ApiInfo) -> Any:
    return _item_milestone(root.at, root.dependent_kind, root.dependent_id, info)


def _target_milestone(root: strawberry.Parent[DependencyType], info: ApiInfo) -> Any:
    return _item_milestone(root.at, root.target_kind, root.target_item_id, info)


_PROGRAM = Annotated["ProgramType", strawberry.lazy("programledger.api.graphql.programs")]


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
    at: strawberry.Private[int | None]
    program: _PROGRAM = strawberry.field(resolver=_program, description=linked("The program"))
    dependencies: list[DependencyType] = strawberry.field(
        resolver=_waits_on,
        description=linked("What this milestone waits on (dependencies it is the dependent of)"),
    )
    dependents: list[DependencyType] = strawberry.field(
        resolver=_waited_on_by,
        description=linked("The dependencies waiting on this milestone, of any program"),
    )

    @staticmethod
    def of(m: MilestoneRow, at: int | None) -> MilestoneType:
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
            at=at,
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
    at: strawberry.Private[int | None]
    program: _PROGRAM = strawberry.field(
        resolver=_program, description=linked("The program the dependency is recorded on")
    )
    target_program: _PROGRAM | None = strawberry.field(
        resolver=_target_program,
        description=linked("The program whose item is waited on (null: an external party)"),
    )
    dependent_milestone: MilestoneType | None = strawberry.field(
        resolver=_dependent_milestone,
        description=linked("The milestone that waits (null when a workstream does)"),
    )
    target_milestone: MilestoneType | None = strawberry.field(
        resolver=_target_milestone,
        description=linked("The milestone waited on (null for a workstream or a party)"),
    )

    @staticmethod
    def of(d: DependencyRow, at: int | None) -> DependencyType:
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
            at=at,
        )


def _by_item(
    found: Mapping[UUID, list[DependencyRow]],
    item: Callable[[DependencyRow], UUID | None],
    at: int | None,
) -> dict[tuple[UUID, UUID], list[DependencyType]]:
    """``found`` (by program) by (program, item)."""
    grouped: defaultdict[tuple[UUID, UUID], list[DependencyType]] = defaultdict(list)
    for program_id, rows in found.items():
        for row in rows:
            item_id = item(row)
            if item_id is not None:
                grouped[(program_id, item_id)].append(DependencyType.of(row, at))
    return grouped


async def _waiting(
    reads: Reader, keys: Sequence[tuple[UUID, UUID]], at: int | None
) -> Mapping[tuple[UUID, UUID], list[DependencyType]]:
    found = await milestones.dependencies_of_programs(reads, [p for p, _ in keys], as_of=at)
    return _by_item(found, lambda d: d.dependent_id, at)


async def _waited_on(
    reads: Reader, keys: Sequence[tuple[UUID, UUID]], at: int | None
) -> Mapping[tuple[UUID, UUID], list[DependencyType]]:
    found = await milestones.dependencies_on_programs(reads, [p for p, _ in keys], as_of=at)
    return _by_item(found, lambda d: d.target_item_id, at)


async def _milestones_by_id(
    reads: Reader, keys: Sequence[UUID], at: int | None
) -> Mapping[UUID, MilestoneType]:
    found = await milestones.milestones_by_id(reads, keys, as_of=at)
    return {key: MilestoneType.of(row, at) for key, row in found.items()}


WAITS_ON: Link[tuple[UUID, UUID], list[DependencyType]] = Link(
    "milestone.dependencies", _waiting, []
)
"""A milestone's dependencies, by (program, milestone): one statement for the programs."""
WAITED_ON_BY: Link[tuple[UUID, UUID], list[DependencyType]] = Link(
    "milestone.dependents", _waited_on, []
)
MILESTONE: Link[UUID, MilestoneType | None] = Link("milestone", _milestones_by_id, None)


def _milestone_filters(
    program_id: strawberry.ID | None = None,
    workstream_id: strawberry.ID | None = None,
    status: Annotated[list[Enum] | None, enum_argument(MilestoneStatus)] = None,
    due_from: date | None = None,
    due_to: date | None = None,
    slipped_only: bool = False,
) -> dict[str, Any]:
    return {
        "program_id": uuid(program_id, "programId"),
        "workstream_id": uuid(workstream_id, "workstreamId"),
        "status": values(status),
        "due_from": due_from,
        "due_to": due_to,
        "slipped_only": slipped_only,
    }


def _dependency_filters(
    program_id: strawberry.ID | None = None,
    target_program_id: strawberry.ID | None = None,
    status: Annotated[list[Enum] | None, enum_argument(DependencyStatus)] = None,
    needed_by_to: date | None = None,
) -> dict[str, Any]:
    return {
        "program_id": uuid(program_id, "programId"),
        "target_program_id": uuid(target_program_id, "targetProgramId"),
        "status": values(status),
        "needed_by_to": needed_by_to,
    }


def _milestone_id(id: strawberry.ID) -> UUID:
    return an_id(id, "id")


_milestone = lookup(milestones.get_milestone, plain(MilestoneType.of), _milestone_id)


_milestones = listing(
    milestones.list_milestones,
    plain(MilestoneType.of),
    _milestone_filters,
    MilestoneSort.FORECAST_DATE,
    descending=False,
)


_dependencies = listing(
    milestones.list_dependencies,
    plain(DependencyType.of),
    _dependency_filters,
    DependencySort.NEEDED_BY,
    descending=False,
)


@strawberry.type
class MilestoneQueries:
    milestone: MilestoneType | None = read_field(_milestone, "One milestone." + AS_OF)
    milestones: Connection[MilestoneType] = read_field(_milestones, "Milestones." + AS_OF)
    dependencies: Connection[DependencyType] = read_field(_dependencies, "Dependencies." + AS_OF)
