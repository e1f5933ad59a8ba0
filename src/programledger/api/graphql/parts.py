"""The parts of a program in GraphQL: ``workstreams``, ``stakeholders`` (with their RACI
role), ``budgetAllocations`` and ``spendReports``, over the ``programs`` read model's
part tables."""

from __future__ import annotations

import enum
from datetime import date
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from programledger.api.graphql.connections import Connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.links import linked, program_of
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    an_id,
    enum_argument,
    listing,
    plain,
    read_field,
    uuid,
    values,
)
from programledger.api.graphql.recorded import Recorded, recorded
from programledger.api.graphql.types import MoneyType, SafeInt
from programledger.domain.program import RaciRole
from programledger.domain.values import Department, PartyKind
from programledger.projections import programs
from programledger.projections.programs import (
    BudgetAllocationRow,
    SpendReportRow,
    StakeholderRow,
    WorkstreamRow,
)

if TYPE_CHECKING:
    from programledger.api.graphql.programs import ProgramType

__all__ = [
    "BudgetAllocationSort",
    "BudgetAllocationType",
    "PartQueries",
    "SpendReportSort",
    "SpendReportType",
    "StakeholderSort",
    "StakeholderType",
    "WorkstreamSort",
    "WorkstreamType",
    "parse_part_key",
    "part_id",
]


def part_id(type_name: str, program_id: UUID, item_id: UUID) -> strawberry.ID:
    """The global id of a part of a program: its ids are unique within the program."""
    return global_id(type_name, f"{program_id}/{item_id}")


def parse_part_key(key: str) -> tuple[UUID, UUID]:
    """The program and part ids in the key of a :func:`part_id`; ``ValueError`` if it is
    not one."""
    program_id, _, item_id = key.partition("/")
    return UUID(program_id), UUID(item_id)


def _id(value: object) -> strawberry.ID:
    return strawberry.ID(str(value))


def _optional_id(value: object | None) -> strawberry.ID | None:
    return None if value is None else _id(value)


def _program(
    root: strawberry.Parent[
        WorkstreamType | StakeholderType | BudgetAllocationType | SpendReportType
    ],
    info: ApiInfo,
) -> Any:
    return program_of(info, root.at, UUID(root.program_id))


_PROGRAM = Annotated["ProgramType", strawberry.lazy("programledger.api.graphql.programs")]


@strawberry.enum(description="Sort keys of workstreams.")
class WorkstreamSort(enum.Enum):
    NAME = "name"
    DEPARTMENT = "department"


@strawberry.type(name="Workstream", description="A project inside a program.")
class WorkstreamType(Node, Recorded):
    workstream_id: strawberry.ID
    program_id: strawberry.ID
    name: str
    lead: str
    department: str = strawberry.field(graphql_type=domain_enum(Department))
    description: str | None

    at: strawberry.Private[int | None]
    program: _PROGRAM = strawberry.field(resolver=_program, description=linked("The program"))

    @staticmethod
    def of(w: WorkstreamRow, at: int | None) -> WorkstreamType:
        return WorkstreamType(
            id=part_id("Workstream", w.program_id, w.workstream_id),
            workstream_id=_id(w.workstream_id),
            program_id=_id(w.program_id),
            name=w.name,
            lead=w.lead,
            department=w.department,
            description=w.description,
            **recorded(w),
            at=at,
        )


@strawberry.enum(description="Sort keys of stakeholders.")
class StakeholderSort(enum.Enum):
    NAME = "name"
    ROLE = "role"
    DEPARTMENT = "department"


@strawberry.type(
    name="Stakeholder",
    description="A person or team with a RACI role on a program. A removed one keeps its "
    "entry (removed: true); why is its lastChangeReason.",
)
class StakeholderType(Node, Recorded):
    stakeholder_id: strawberry.ID
    program_id: strawberry.ID
    name: str
    kind: str = strawberry.field(graphql_type=domain_enum(PartyKind))
    department: str = strawberry.field(graphql_type=domain_enum(Department))
    role: str = strawberry.field(
        graphql_type=domain_enum(RaciRole), description="The stakeholder's RACI role."
    )
    removed: bool = strawberry.field(description="Taken off the program (at updatedAt).")

    at: strawberry.Private[int | None]
    program: _PROGRAM = strawberry.field(resolver=_program, description=linked("The program"))

    @staticmethod
    def of(s: StakeholderRow, at: int | None) -> StakeholderType:
        return StakeholderType(
            id=part_id("Stakeholder", s.program_id, s.stakeholder_id),
            stakeholder_id=_id(s.stakeholder_id),
            program_id=_id(s.program_id),
            name=s.name,
            kind=s.kind,
            department=s.department,
            role=s.role,
            removed=s.removed,
            **recorded(s),
            at=at,
        )


@strawberry.enum(description="Sort keys of budget allocations.")
class BudgetAllocationSort(enum.Enum):
    AMOUNT = "amount"


@strawberry.type(
    name="BudgetAllocation",
    description="Part of a program's planned budget set aside for a workstream or a cost "
    "centre. A revision's reason is its lastChangeReason.",
)
class BudgetAllocationType(Node, Recorded):
    budget_allocation_id: strawberry.ID
    program_id: strawberry.ID
    workstream_id: strawberry.ID | None
    cost_centre: str | None
    amount: MoneyType
    purpose: str | None

    at: strawberry.Private[int | None]
    program: _PROGRAM = strawberry.field(resolver=_program, description=linked("The program"))

    @staticmethod
    def of(b: BudgetAllocationRow, at: int | None) -> BudgetAllocationType:
        return BudgetAllocationType(
            id=part_id("BudgetAllocation", b.program_id, b.budget_allocation_id),
            budget_allocation_id=_id(b.budget_allocation_id),
            program_id=_id(b.program_id),
            workstream_id=_optional_id(b.workstream_id),
            cost_centre=b.cost_centre,
            amount=MoneyType(amount_minor=SafeInt(b.amount), currency=b.currency),
            purpose=b.purpose,
            **recorded(b),
            at=at,
        )


@strawberry.enum(description="Sort keys of spend reports.")
class SpendReportSort(enum.Enum):
    REPORTED = "reported"
    AS_OF = "as_of"


@strawberry.type(
    name="SpendReport",
    description="One report of a program's actual spend to date (a running total).",
)
class SpendReportType(Recorded):
    program_id: strawberry.ID
    program_version: int = strawberry.field(
        description="The program's version the report was recorded at: the reports' order."
    )
    amount: MoneyType = strawberry.field(description="Spend to date, not an increment.")
    as_of: date = strawberry.field(description="The day the total was made up to.")
    note: str | None

    at: strawberry.Private[int | None]
    program: _PROGRAM = strawberry.field(resolver=_program, description=linked("The program"))

    @staticmethod
    def of(r: SpendReportRow, at: int | None) -> SpendReportType:
        return SpendReportType(
            program_id=_id(r.program_id),
            program_version=r.stream_version,
            amount=MoneyType(amount_minor=SafeInt(r.amount), currency=r.currency),
            as_of=r.as_of,
            note=r.note,
            **recorded(r),
            at=at,
        )


def _workstream_filters(
    program_id: strawberry.ID | None = None,
    department: Annotated[list[Enum] | None, enum_argument(Department)] = None,
) -> dict[str, Any]:
    return {"program_id": uuid(program_id, "programId"), "department": values(department)}


def _stakeholder_filters(
    program_id: strawberry.ID | None = None,
    role: Annotated[list[Enum] | None, enum_argument(RaciRole)] = None,
    department: Annotated[list[Enum] | None, enum_argument(Department)] = None,
    include_removed: bool = False,
) -> dict[str, Any]:
    return {
        "program_id": uuid(program_id, "programId"),
        "role": values(role),
        "department": values(department),
        "include_removed": include_removed,
    }


def _budget_allocation_filters(
    program_id: strawberry.ID | None = None, workstream_id: strawberry.ID | None = None
) -> dict[str, Any]:
    return {
        "program_id": uuid(program_id, "programId"),
        "workstream_id": uuid(workstream_id, "workstreamId"),
    }


def _spend_report_filters(program_id: strawberry.ID) -> dict[str, Any]:
    return {"program_id": an_id(program_id, "programId")}


_workstreams = listing(
    programs.list_workstreams,
    plain(WorkstreamType.of),
    _workstream_filters,
    WorkstreamSort.NAME,
    descending=False,
)


_stakeholders = listing(
    programs.list_stakeholders,
    plain(StakeholderType.of),
    _stakeholder_filters,
    StakeholderSort.NAME,
    descending=False,
)


_budget_allocations = listing(
    programs.list_budget_allocations,
    plain(BudgetAllocationType.of),
    _budget_allocation_filters,
    BudgetAllocationSort.AMOUNT,
    descending=True,
)


_spend_reports = listing(
    programs.list_spend_reports,
    plain(SpendReportType.of),
    _spend_report_filters,
    SpendReportSort.REPORTED,
    descending=True,
)


@strawberry.type
class PartQueries:
    workstreams: Connection[WorkstreamType] = read_field(
        _workstreams, "The projects inside programs, one program's or all." + AS_OF
    )
    stakeholders: Connection[StakeholderType] = read_field(
        _stakeholders,
        "Who is Responsible, Accountable, Consulted or Informed, one program's or all; "
        "removed ones with includeRemoved." + AS_OF,
    )
    budget_allocations: Connection[BudgetAllocationType] = read_field(
        _budget_allocations, "Budget set aside for workstreams and cost centres." + AS_OF
    )
    spend_reports: Connection[SpendReportType] = read_field(
        _spend_reports,
        "A program's spend reports, the latest first: actual spend over time." + AS_OF,
    )
