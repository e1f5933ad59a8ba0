"""The risk register in GraphQL: ``risks`` (filtered, sorted, paged) and ``riskHeatmap``,
over the ``risks`` read model."""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from datetime import date, datetime
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
from programledger.domain.risk import (
    ResponseStrategy,
    RiskCategory,
    RiskStatus,
    RoamStatus,
    SeverityBand,
)
from programledger.projections import risks
from programledger.projections.risks import HeatMap, RiskRow

if TYPE_CHECKING:
    from programledger.api.graphql.programs import ProgramType

__all__ = ["HeatMapType", "RiskFilter", "RiskQueries", "RiskSort", "RiskType"]


@strawberry.enum(description="Sort keys of risks.")
class RiskSort(enum.Enum):
    SCORE = "score"
    NEXT_REVIEW_ON = "next_review_on"
    TITLE = "title"
    STATUS = "status"


@strawberry.input
class RiskFilter:
    program_id: strawberry.ID | None = None
    status: list[Enum] | None = enum_filter(RiskStatus)
    band: list[Enum] | None = enum_filter(SeverityBand)
    category: list[Enum] | None = enum_filter(RiskCategory)
    min_score: int | None = strawberry.field(default=None, description="Score at least this.")
    owner: str | None = None
    open_only: bool = False
    review_overdue: bool | None = strawberry.field(
        default=None, description="Open risks whose next review is before today (or asOf)."
    )
    needs_response: bool | None = None


def _risk_program(root: strawberry.Parent[RiskType], info: ApiInfo) -> Awaitable[Any]:
    return program_of(info, root.at, UUID(root.program_id))


@strawberry.type(name="Risk")
class RiskType(Node):
    risk_id: strawberry.ID
    program_id: strawberry.ID
    workstream_id: strawberry.ID | None
    title: str
    description: str | None
    category: str = strawberry.field(graphql_type=domain_enum(RiskCategory))
    probability: int
    impact: int
    score: int
    band: str = strawberry.field(graphql_type=domain_enum(SeverityBand))
    status: str = strawberry.field(graphql_type=domain_enum(RiskStatus))
    is_open: bool
    needs_response: bool
    owner: str
    trigger: str | None = strawberry.field(description="What would show the risk happening.")
    response_strategy: str | None = strawberry.field(
        graphql_type=domain_enum(ResponseStrategy) | None
    )
    mitigation_plan: str | None
    mitigation_due_on: date | None
    contingency_plan: str | None = strawberry.field(description="What to do if it happens anyway.")
    next_review_on: date | None
    last_reviewed_on: date | None
    escalated_to: str | None
    escalation_reason: str | None
    acceptance_rationale: str | None = strawberry.field(
        description="Why the risk was accepted (status ACCEPTED), and by whom: acceptedBy."
    )
    accepted_by: str | None
    materialised_on: date | None = strawberry.field(
        description="The day it happened (status MATERIALISED)."
    )
    what_happened: str | None
    impact_description: str | None
    closed_reason: str | None
    roam: str | None = strawberry.field(
        graphql_type=domain_enum(RoamStatus) | None,
        description="The ROAM classification (Resolved, Owned, Accepted, Mitigated), if any.",
    )
    roam_reason: str | None = strawberry.field(description="Why the latest ROAM class.")
    assumption_id: strawberry.ID | None = strawberry.field(
        description="The assumption whose invalidation raised the risk."
    )
    materialised_issue_id: strawberry.ID | None = strawberry.field(
        description="The issue raised when the risk materialised."
    )
    version: int
    review_overdue: bool = strawberry.field(
        description="Open, and its next review date lies before today (or the as-of day)."
    )
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )
    at: strawberry.Private[int | None]
    program: Annotated[ProgramType, strawberry.lazy("programledger.api.graphql.programs")] = (
        strawberry.field(resolver=_risk_program, description=linked("The program"))
    )

    @staticmethod
    def of(r: RiskRow, at: int | None) -> RiskType:
        return RiskType(
            id=global_id("Risk", r.risk_id),
            risk_id=strawberry.ID(str(r.risk_id)),
            program_id=strawberry.ID(str(r.program_id)),
            workstream_id=None if r.workstream_id is None else strawberry.ID(str(r.workstream_id)),
            title=r.title,
            description=r.description,
            category=r.category,
            probability=r.probability,
            impact=r.impact,
            score=r.score,
            band=r.band,
            status=r.status,
            is_open=r.is_open,
            needs_response=r.needs_response,
            owner=r.owner,
            trigger=r.trigger,
            response_strategy=r.response_strategy,
            mitigation_plan=r.mitigation_plan,
            mitigation_due_on=r.mitigation_due_on,
            contingency_plan=r.contingency_plan,
            next_review_on=r.next_review_on,
            last_reviewed_on=r.last_reviewed_on,
            escalated_to=r.escalated_to,
            escalation_reason=r.escalation_reason,
            acceptance_rationale=r.acceptance_rationale,
            accepted_by=r.accepted_by,
            materialised_on=r.materialised_on,
            what_happened=r.what_happened,
            impact_description=r.impact_description,
            closed_reason=r.closed_reason,
            roam=r.roam,
            roam_reason=r.roam_reason,
            assumption_id=None if r.assumption_id is None else strawberry.ID(str(r.assumption_id)),
            materialised_issue_id=(
                None
                if r.materialised_issue_id is None
                else strawberry.ID(str(r.materialised_issue_id))
            ),
            version=r.version,
            review_overdue=r.overdue,
            updated_at=r.valid_from_time,
            at=at,
        )


@strawberry.type(name="HeatMapCell")
class HeatMapCellType:
    probability: int
    impact: int
    count: int


@strawberry.type(name="HeatMap", description="Open risks per probability x impact; 25 cells.")
class HeatMapType:
    cells: list[HeatMapCellType]
    total: int
    as_of_position: SafeInt | None

    @staticmethod
    def of(h: HeatMap) -> HeatMapType:
        return HeatMapType(
            cells=[
                HeatMapCellType(probability=c.probability, impact=c.impact, count=c.count)
                for c in h.cells
            ],
            total=h.total,
            as_of_position=None if h.as_of_position is None else SafeInt(h.as_of_position),
        )


def _risk_filters(filter: RiskFilter | None = None) -> dict[str, Any]:
    f = filter or RiskFilter()
    return {
        "program_id": uuid(f.program_id, "programId"),
        "status": values(f.status),
        "band": values(f.band),
        "category": values(f.category),
        "owner": f.owner,
        "min_score": f.min_score,
        "open_only": f.open_only,
        "overdue": f.review_overdue,
        "needs_response": f.needs_response,
    }


async def _risk_heatmap(
    info: ApiInfo,
    program_id: strawberry.ID | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> HeatMapType:
    when = moment(as_of, as_of_position)
    pool = info.context.services.pool
    heat = await read(risks.heat_map(pool, program_id=uuid(program_id, "programId"), as_of=when))
    return HeatMapType.of(heat)


def _risk_id(id: strawberry.ID) -> UUID:
    return an_id(id, "id")


_risk = lookup(risks.get_risk, plain(RiskType.of), _risk_id)


_risks = listing(
    risks.list_risks, plain(RiskType.of), _risk_filters, RiskSort.SCORE, descending=True
)


@strawberry.type
class RiskQueries:
    risk: RiskType | None = read_field(_risk, "One risk." + AS_OF)
    risks: Connection[RiskType] = read_field(_risks, "The risk register." + AS_OF)
    risk_heatmap: HeatMapType = read_field(
        _risk_heatmap, "Open risks by probability x impact, one program or all." + AS_OF
    )
