"""The RAID log in GraphQL: ``raid`` (risks, assumptions, issues and dependencies in one
connection, filtered, sorted, paged, per program or across programs, as of any moment),
``assumption`` and ``issue``, over the ``raid`` read model.

Each ``RaidItem`` carries what every kind shares (title, status, owner, severity rank,
due date, escalation, ROAM) and its detail in the one field of its kind (``risk``,
``assumption``, ``issue``, ``dependency``), read by id at the page's own position: a page
of 50 items costs at most one statement per kind, and none when no detail is selected.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from programledger.api.graphql.connections import Connection, connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.links import linked, program_of
from programledger.api.graphql.milestones import DependencyType
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    an_id,
    counts,
    enum_filter,
    lookup,
    moment,
    one_connection,
    paging,
    plain,
    read,
    read_field,
    reader,
    selected,
    values,
)
from programledger.api.graphql.risks import RiskType
from programledger.api.graphql.types import SafeInt
from programledger.domain.assumption import AssumptionStatus, Confidence
from programledger.domain.issue import IssueSeverity, IssueStatus
from programledger.domain.risk import RoamStatus
from programledger.projections import milestones, raid, risks
from programledger.projections.engine.queries import Reader
from programledger.projections.raid import (
    AssumptionRow,
    IssueRow,
    RaidItemRow,
    RaidKind,
    RaidStatus,
)

if TYPE_CHECKING:
    from programledger.api.graphql.programs import ProgramType

__all__ = ["AssumptionType", "IssueType", "RaidFilter", "RaidItemType", "RaidQueries", "RaidSort"]


def _id(value: UUID | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


def _assumption_program(root: strawberry.Parent[AssumptionType], info: ApiInfo) -> Awaitable[Any]:
    return program_of(info, root.at, UUID(root.program_id))


@strawberry.type(name="Assumption")
class AssumptionType(Node):
    assumption_id: strawberry.ID
    program_id: strawberry.ID
    workstream_id: strawberry.ID | None
    statement: str = strawberry.field(description="What the plan takes to be true.")
    description: str | None
    owner: str
    confidence: str = strawberry.field(graphql_type=domain_enum(Confidence))
    validate_by: date = strawberry.field(description="The day by which it must be checked.")
    status: str = strawberry.field(graphql_type=domain_enum(AssumptionStatus))
    validation_evidence: str | None
    validated_on: date | None
    invalidation_evidence: str | None
    invalidated_on: date | None
    raised_risk_id: strawberry.ID | None = strawberry.field(
        description="The risk its invalidation raised."
    )
    raised_issue_id: strawberry.ID | None = strawberry.field(
        description="The issue its invalidation raised."
    )
    version: int
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )

    at: strawberry.Private[int | None]
    program: Annotated[ProgramType, strawberry.lazy("programledger.api.graphql.programs")] = (
        strawberry.field(resolver=_assumption_program, description=linked("The program"))
    )

    @staticmethod
    def of(a: AssumptionRow, at: int | None) -> AssumptionType:
        return AssumptionType(
            id=global_id("Assumption", a.assumption_id),
            assumption_id=strawberry.ID(str(a.assumption_id)),
            program_id=strawberry.ID(str(a.program_id)),
            workstream_id=_id(a.workstream_id),
            statement=a.statement,
            description=a.description,
            owner=a.owner,
            confidence=a.confidence,
            validate_by=a.validate_by,
            status=a.status,
            validation_evidence=a.validation_evidence,
            validated_on=a.validated_on,
            invalidation_evidence=a.invalidation_evidence,
            invalidated_on=a.invalidated_on,
            raised_risk_id=_id(a.raised_risk_id),
            raised_issue_id=_id(a.raised_issue_id),
            version=a.version,
            updated_at=a.valid_from_time,
            at=at,
        )


def _issue_program(root: strawberry.Parent[IssueType], info: ApiInfo) -> Awaitable[Any]:
    return program_of(info, root.at, UUID(root.program_id))


@strawberry.type(name="Issue")
class IssueType(Node):
    issue_id: strawberry.ID
    program_id: strawberry.ID
    workstream_id: strawberry.ID | None
    title: str
    description: str | None
    severity: str = strawberry.field(graphql_type=domain_enum(IssueSeverity))
    owner: str
    due_on: date
    status: str = strawberry.field(graphql_type=domain_enum(IssueStatus))
    risk_id: strawberry.ID | None = strawberry.field(
        description="The risk whose materialisation this issue is."
    )
    assumption_id: strawberry.ID | None = strawberry.field(
        description="The assumption whose invalidation raised it."
    )
    resolution: str | None
    resolved_on: date | None
    escalated_to: str | None
    escalation_reason: str | None
    version: int
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )

    at: strawberry.Private[int | None]
    program: Annotated[ProgramType, strawberry.lazy("programledger.api.graphql.programs")] = (
        strawberry.field(resolver=_issue_program, description=linked("The program"))
    )

    @staticmethod
    def of(i: IssueRow, at: int | None) -> IssueType:
        return IssueType(
            id=global_id("Issue", i.issue_id),
            issue_id=strawberry.ID(str(i.issue_id)),
            program_id=strawberry.ID(str(i.program_id)),
            workstream_id=_id(i.workstream_id),
            title=i.title,
            description=i.description,
            severity=i.severity,
            owner=i.owner,
            due_on=i.due_on,
            status=i.status,
            risk_id=_id(i.risk_id),
            assumption_id=_id(i.assumption_id),
            resolution=i.resolution,
            resolved_on=i.resolved_on,
            escalated_to=i.escalated_to,
            escalation_reason=i.escalation_reason,
            version=i.version,
            updated_at=i.valid_from_time,
            at=at,
        )


@strawberry.type(
    name="RaidItem",
    description="One entry of a RAID log, whatever its kind; its detail is in the field "
    "of its kind, the others are null.",
)
class RaidItemType:
    kind: str = strawberry.field(graphql_type=domain_enum(RaidKind))
    item_id: strawberry.ID
    program_id: strawberry.ID
    title: str = strawberry.field(description="An assumption's statement, else the title.")
    status: str = strawberry.field(graphql_type=domain_enum(RaidStatus))
    is_open: bool
    owner: str | None = strawberry.field(description="Null for a dependency.")
    severity: int = strawberry.field(
        description="0-25 across kinds: a risk's score; an issue's severity as its band's "
        "top score (LOW 4, MEDIUM 9, HIGH 16, CRITICAL 25); an open assumption's doubt "
        "(confidence LOW 9, MEDIUM 4, HIGH 1); a dependency at risk 9; else 0."
    )
    due_on: date | None = strawberry.field(
        description="What the item waits on: a risk's next review, an assumption's "
        "validate-by, an issue's due date, a dependency's needed-by."
    )
    escalated: bool
    roam: str | None = strawberry.field(graphql_type=domain_enum(RoamStatus) | None)
    updated_at: datetime
    risk: RiskType | None = None
    assumption: AssumptionType | None = None
    issue: IssueType | None = None
    dependency: DependencyType | None = None

    @staticmethod
    def of(r: RaidItemRow, details: Mapping[tuple[str, UUID], Any]) -> RaidItemType:
        detail = details.get((r.kind, r.item_id))
        return RaidItemType(
            kind=r.kind,
            item_id=strawberry.ID(str(r.item_id)),
            program_id=strawberry.ID(str(r.program_id)),
            title=r.title,
            status=r.status,
            is_open=r.is_open,
            owner=r.owner,
            severity=r.severity,
            due_on=r.due_on,
            escalated=r.escalated,
            roam=r.roam,
            updated_at=r.valid_from_time,
            risk=detail if isinstance(detail, RiskType) else None,
            assumption=detail if isinstance(detail, AssumptionType) else None,
            issue=detail if isinstance(detail, IssueType) else None,
            dependency=detail if isinstance(detail, DependencyType) else None,
        )


@strawberry.enum(description="Sort keys of RAID items.")
class RaidSort(enum.Enum):
    SEVERITY = "severity"
    DUE_ON = "due_on"
    TITLE = "title"
    KIND = "kind"


@strawberry.input
class RaidFilter:
    program_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="These programs; every program when null."
    )
    kind: list[Enum] | None = enum_filter(RaidKind)
    status: list[Enum] | None = enum_filter(RaidStatus)
    roam: list[Enum] | None = enum_filter(RoamStatus)
    owner: str | None = None
    open_only: bool = False
    escalated: bool | None = None
    min_severity: int | None = strawberry.field(default=None, description="Severity at least.")
    due_before: date | None = strawberry.field(
        default=None, description="Items whose due date lies before this day."
    )


_DETAILS: Mapping[str, tuple[Any, Any]] = {
    RaidKind.RISK.value: (risks.risks_by_id, RiskType.of),
    RaidKind.ASSUMPTION.value: (raid.assumptions_by_id, AssumptionType.of),
    RaidKind.ISSUE.value: (raid.issues_by_id, IssueType.of),
    RaidKind.DEPENDENCY.value: (milestones.dependencies_by_id, DependencyType.of),
}
"""Each kind's field: the read model's ``*_by_id`` and the row's GraphQL type."""


async def _details(
    reads: Reader, rows: Sequence[RaidItemRow], kinds: set[str], position: int | None
) -> dict[tuple[str, UUID], Any]:
    """The detail of each row whose kind's field is selected, at the page's position."""
    found: dict[tuple[str, UUID], Any] = {}
    for kind, (by_id, convert) in _DETAILS.items():
        ids = [r.item_id for r in rows if r.kind == kind]
        if kind not in kinds or not ids:
            continue
        for key, row in (await by_id(reads, ids, as_of=position)).items():
            found[(kind, key)] = convert(row, position)
    return found


async def _raid(
    info: ApiInfo,
    filter: RaidFilter | None = None,
    order_by: RaidSort = RaidSort.SEVERITY,
    descending: bool = True,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[RaidItemType]:
    when = moment(as_of, as_of_position)
    f = filter or RaidFilter()
    program_ids = None
    if f.program_ids is not None:
        program_ids = [an_id(p, "filter.programIds") for p in f.program_ids]
    fields = selected(info, ("nodes",)) | selected(info, ("edges", "node"))
    wanted = {kind.value for kind in RaidKind if kind.value.lower() in fields}
    async with one_connection(info.context.services.pool) as reads:
        page = await read(
            raid.list_raid(
                reads,
                program_ids=program_ids,
                kinds=values(f.kind),
                status=values(f.status),
                roam=values(f.roam),
                owner=f.owner,
                open_only=f.open_only,
                escalated=f.escalated,
                min_severity=f.min_severity,
                due_before=f.due_before,
                sort=order_by.value,
                descending=descending,
                **paging(first, after, last, before),
                as_of=when,
                count=counts(info),
            )
        )
        found = await _details(reads, page.items, wanted, page.as_of_position)
    return connection(page, lambda row: RaidItemType.of(row, found))


def _item_id(id: strawberry.ID) -> UUID:
    return an_id(id, "id")


_assumption = lookup(raid.get_assumption, plain(AssumptionType.of), _item_id)
_issue = lookup(raid.get_issue, plain(IssueType.of), _item_id)


@strawberry.type
class RaidQueries:
    raid: Connection[RaidItemType] = strawberry.field(
        resolver=_raid,
        extensions=reader(),
        description="The RAID log (risks, assumptions, issues, dependencies) of some "
        "programs or all, most severe first by default." + AS_OF,
    )
    assumption: AssumptionType | None = read_field(_assumption, "One assumption." + AS_OF)
    issue: IssueType | None = read_field(_issue, "One issue." + AS_OF)
