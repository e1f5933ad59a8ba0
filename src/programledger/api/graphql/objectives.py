"""Objectives in GraphQL: ``objective``, ``objectives``, ``programObjectives``,
``keyResultCheckIns`` and ``objectiveLinks``, over the ``portfolios`` read model (which
keeps objectives beside the portfolio roll-ups they feed).

An objective's nested lists (``keyResults``, ``programs``, ``links``; a key result's
``checkIns``) are read at the position the objective was read at.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry

from programledger.api.graphql.connections import Connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    an_id,
    enum_filter,
    list_page,
    listing,
    lookup,
    paging,
    plain,
    read_field,
    uuid,
    values,
)
from programledger.api.graphql.recorded import Recorded, recorded
from programledger.api.graphql.types import SafeInt
from programledger.domain.objective import ObjectiveStatus
from programledger.projections import portfolios
from programledger.projections.portfolios import (
    CheckInRow,
    KeyResultRow,
    LinkRow,
    ObjectiveProgramRow,
    ObjectiveRow,
)

__all__ = [
    "CheckInType",
    "KeyResultType",
    "ObjectiveFilter",
    "ObjectiveLinkType",
    "ObjectiveProgramType",
    "ObjectiveQueries",
    "ObjectiveSort",
    "ObjectiveType",
]


def _id(value: UUID) -> strawberry.ID:
    return strawberry.ID(str(value))


@strawberry.enum(description="Sort keys of objectives.")
class ObjectiveSort(enum.Enum):
    TITLE = "title"
    ENDS_ON = "ends_on"
    PROGRESS = "progress"


@strawberry.enum(description="Sort keys of histories: the order they were recorded in.")
class HistorySort(enum.Enum):
    POSITION = "position"


@strawberry.input
class ObjectiveFilter:
    status: list[Enum] | None = enum_filter(ObjectiveStatus)
    owner: str | None = None
    key: str | None = strawberry.field(default=None, description="The OKR id, exactly.")


@strawberry.type(name="KeyResultCheckIn", description="One check-in of a key result.")
class CheckInType:
    position: SafeInt
    objective_id: strawberry.ID
    key_result_id: strawberry.ID
    value: SafeInt
    confidence: int
    checked_on: date
    note: str | None
    actor: str
    recorded_at: datetime

    @staticmethod
    def of(c: CheckInRow) -> CheckInType:
        return CheckInType(
            position=SafeInt(c.position),
            objective_id=_id(c.objective_id),
            key_result_id=_id(c.key_result_id),
            value=SafeInt(c.value),
            confidence=c.confidence,
            checked_on=c.checked_on,
            note=c.note,
            actor=c.actor,
            recorded_at=c.recorded_at,
        )


async def _check_ins_of(
    root: strawberry.Parent[KeyResultType],
    info: ApiInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[CheckInType]:
    return await list_page(
        info,
        portfolios.list_check_ins,
        CheckInType.of,
        root.position,
        HistorySort.POSITION,
        False,
        paging(first, after, last, before),
        key_result_id=UUID(root.key_result_id),
    )


@strawberry.type(name="KeyResult")
class KeyResultType(Recorded):
    key_result_id: strawberry.ID
    objective_id: strawberry.ID
    name: str
    unit: str
    baseline: SafeInt
    target: SafeInt
    current: SafeInt
    confidence: int = strawberry.field(description="Whole percent, 0-100.")
    progress: int = strawberry.field(
        description="Whole percent of the way from baseline to target, 0-100."
    )
    checked_on: date | None = strawberry.field(description="The day of the last check-in.")
    position: strawberry.Private[int | None]

    @staticmethod
    def of(k: KeyResultRow, position: int | None) -> KeyResultType:
        return KeyResultType(
            key_result_id=_id(k.key_result_id),
            objective_id=_id(k.objective_id),
            name=k.name,
            unit=k.unit,
            baseline=SafeInt(k.baseline),
            target=SafeInt(k.target),
            current=SafeInt(k.current),
            confidence=k.confidence,
            progress=k.progress,
            checked_on=k.checked_on,
            **recorded(k),
            position=position,
        )

    check_ins: Connection[CheckInType] = strawberry.field(
        resolver=_check_ins_of, description="Its check-ins, oldest first."
    )


@strawberry.type(name="ObjectiveProgram", description="A program linked to an objective.")
class ObjectiveProgramType:
    objective_id: strawberry.ID
    program_id: strawberry.ID
    linked_at: datetime = strawberry.field(
        description="When it was linked; who linked it, and why a link ended: links."
    )

    @staticmethod
    def of(r: ObjectiveProgramRow) -> ObjectiveProgramType:
        return ObjectiveProgramType(
            objective_id=_id(r.objective_id),
            program_id=_id(r.program_id),
            linked_at=r.valid_from_time,
        )


@strawberry.type(
    name="ObjectiveLink",
    description="An objective linked to (linked: true) or unlinked from a program.",
)
class ObjectiveLinkType:
    position: SafeInt
    objective_id: strawberry.ID
    program_id: strawberry.ID
    linked: bool
    reason: str | None = strawberry.field(description="Why it was unlinked.")
    actor: str
    recorded_at: datetime

    @staticmethod
    def of(r: LinkRow) -> ObjectiveLinkType:
        return ObjectiveLinkType(
            position=SafeInt(r.position),
            objective_id=_id(r.objective_id),
            program_id=_id(r.program_id),
            linked=r.linked,
            reason=r.reason,
            actor=r.actor,
            recorded_at=r.recorded_at,
        )


async def _key_results_of(
    root: strawberry.Parent[ObjectiveType], info: ApiInfo
) -> list[KeyResultType]:
    page = await portfolios.list_key_results(
        info.context.services.pool,
        UUID(root.objective_id),
        sort="name",
        first=100,
        as_of=root.position,
        count=False,
    )
    return [KeyResultType.of(k, root.position) for k in page.items]


async def _programs_of(
    root: strawberry.Parent[ObjectiveType],
    info: ApiInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[ObjectiveProgramType]:
    return await list_page(
        info,
        portfolios.list_objective_programs,
        ObjectiveProgramType.of,
        root.position,
        ObjectiveProgramSort.PROGRAM_ID,
        False,
        paging(first, after, last, before),
        objective_id=UUID(root.objective_id),
    )


async def _links_of(
    root: strawberry.Parent[ObjectiveType],
    info: ApiInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[ObjectiveLinkType]:
    return await list_page(
        info,
        portfolios.list_links,
        ObjectiveLinkType.of,
        root.position,
        HistorySort.POSITION,
        False,
        paging(first, after, last, before),
        objective_id=UUID(root.objective_id),
    )


@strawberry.type(name="Objective")
class ObjectiveType(Node, Recorded):
    objective_id: strawberry.ID
    title: str
    owner: str
    key: str | None = strawberry.field(
        description="Its OKR id: what the programs serving it carry as objectiveKey."
    )
    description: str | None
    starts_on: date
    ends_on: date
    status: str = strawberry.field(graphql_type=domain_enum(ObjectiveStatus))
    closed_reason: str | None
    key_result_count: int
    progress: int | None = strawberry.field(
        description="Mean progress of its key results, whole percent; null without any."
    )
    confidence: int | None = strawberry.field(description="Mean confidence, whole percent.")
    program_count: int
    version: int = strawberry.field(description="The expectedVersion for the next command.")
    position: strawberry.Private[int | None]

    @staticmethod
    def of(o: ObjectiveRow, position: int | None) -> ObjectiveType:
        return ObjectiveType(
            id=global_id("Objective", o.objective_id),
            objective_id=_id(o.objective_id),
            title=o.title,
            owner=o.owner,
            key=o.key,
            description=o.description,
            starts_on=o.starts_on,
            ends_on=o.ends_on,
            status=o.status,
            closed_reason=o.closed_reason,
            key_result_count=o.key_results,
            progress=o.progress,
            confidence=o.confidence,
            program_count=o.programs,
            version=o.version,
            **recorded(o),
            position=position,
        )

    key_results: list[KeyResultType] = strawberry.field(
        resolver=_key_results_of, description="Its key results, by name."
    )

    programs: Connection[ObjectiveProgramType] = strawberry.field(
        resolver=_programs_of, description="The programs linked to it."
    )

    links: Connection[ObjectiveLinkType] = strawberry.field(
        resolver=_links_of, description="Its links and unlinks with programs, oldest first."
    )


def _objective_id(id: strawberry.ID) -> UUID:
    return an_id(id, "id")


def _objective_filters(filter: ObjectiveFilter | None = None) -> dict[str, Any]:
    f = filter or ObjectiveFilter()
    return {"status": values(f.status), "owner": f.owner, "key": f.key}


@strawberry.enum(description="Sort keys of objective-program links.")
class ObjectiveProgramSort(enum.Enum):
    PROGRAM_ID = "program_id"


def _program_filters(program_id: strawberry.ID) -> dict[str, Any]:
    return {"program_id": an_id(program_id, "programId")}


def _check_in_filters(
    objective_id: strawberry.ID | None = None, key_result_id: strawberry.ID | None = None
) -> dict[str, Any]:
    return {
        "objective_id": uuid(objective_id, "objectiveId"),
        "key_result_id": uuid(key_result_id, "keyResultId"),
    }


def _link_filters(
    objective_id: strawberry.ID | None = None, program_id: strawberry.ID | None = None
) -> dict[str, Any]:
    return {
        "objective_id": uuid(objective_id, "objectiveId"),
        "program_id": uuid(program_id, "programId"),
    }


_objective = lookup(portfolios.get_objective, plain(ObjectiveType.of), _objective_id)
_objectives = listing(
    portfolios.list_objectives,
    plain(ObjectiveType.of),
    _objective_filters,
    ObjectiveSort.TITLE,
    descending=False,
)
_program_objectives = listing(
    portfolios.list_objective_programs,
    plain(lambda row, _at: ObjectiveProgramType.of(row)),
    _program_filters,
    ObjectiveProgramSort.PROGRAM_ID,
    descending=False,
)
_check_ins = listing(
    portfolios.list_check_ins,
    plain(lambda row, _at: CheckInType.of(row)),
    _check_in_filters,
    HistorySort.POSITION,
    descending=False,
)
_links = listing(
    portfolios.list_links,
    plain(lambda row, _at: ObjectiveLinkType.of(row)),
    _link_filters,
    HistorySort.POSITION,
    descending=False,
)


@strawberry.type
class ObjectiveQueries:
    objective: ObjectiveType | None = read_field(
        _objective, "One objective, its key results and programs." + AS_OF
    )
    objectives: Connection[ObjectiveType] = read_field(_objectives, "Objectives." + AS_OF)
    program_objectives: Connection[ObjectiveProgramType] = read_field(
        _program_objectives, "The objectives a program is linked to." + AS_OF
    )
    key_result_check_ins: Connection[CheckInType] = read_field(
        _check_ins,
        "Key-result check-ins of one objective or key result, oldest first." + AS_OF,
    )
    objective_links: Connection[ObjectiveLinkType] = read_field(
        _links, "Links and unlinks of objectives and programs, oldest first." + AS_OF
    )
