"""Output types of the read side: the read models' rows as GraphQL objects, Relay
connections over their pages, and the auditor's views (trail, history, integrity).

Rows are converted field by field rather than exposed as they are, so that a column added
to a read model does not become API contract until it is chosen here. Nested lists of a
program (risks, milestones, allocations) are read with the program, by :mod:`nested`, at
the same position as the program itself.

One module over 500 lines: it only declares the GraphQL read types, one for each read-model
row with its ``of`` conversion, and the connection they share; declarations that the schema
lists together.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec
import strawberry
from strawberry.scalars import JSON

from programledger.api.graphql.nested import NestedRows
from programledger.api.graphql.types import MoneyType, SafeInt
from programledger.projections.allocations import AllocationRow, ResourceRow, UtilisationWeek
from programledger.projections.audit import AuditEntry
from programledger.projections.decisions import DecisionRow
from programledger.projections.engine.queries import Page
from programledger.projections.engine.status import ProjectionStatus
from programledger.projections.milestones import DependencyRow, MilestoneRow
from programledger.projections.programs import ProgramRow
from programledger.projections.risks import HeatMap, RiskRow

__all__ = [
    "AllocationSort",
    "AllocationType",
    "AuditEntryType",
    "Connection",
    "DecisionSort",
    "DecisionType",
    "DependencySort",
    "DependencyType",
    "FieldChangeType",
    "HeatMapType",
    "HistoryEntryType",
    "IntegrityReport",
    "MilestoneSort",
    "MilestoneType",
    "ProgramSort",
    "ProgramType",
    "ProjectionStatusType",
    "ResourceSort",
    "ResourceType",
    "RiskSort",
    "RiskType",
    "StreamIntegrity",
    "UtilisationType",
    "UtilisationWeekType",
    "connection",
    "plain",
]

N = TypeVar("N")
R = TypeVar("R")


def plain(value: Any) -> Any:
    """``value`` as JSON-ready builtins (UUIDs, dates and structs as the API writes them)."""
    return msgspec.to_builtins(value)


# Sorts: the enum values are the read models' sort keys.


@strawberry.enum(description="Sort keys of programs.")
class ProgramSort(enum.Enum):
    CODE = "code"
    NAME = "name"
    PRIORITY = "priority"
    STATUS = "status"
    TARGET_END_DATE = "target_end_date"
    OPEN_RISKS = "open_risks"
    BUDGET_PLANNED = "budget_planned"


@strawberry.enum(description="Sort keys of risks.")
class RiskSort(enum.Enum):
    SCORE = "score"
    NEXT_REVIEW_ON = "next_review_on"
    TITLE = "title"
    STATUS = "status"


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


@strawberry.enum(description="Sort keys of decisions.")
class DecisionSort(enum.Enum):
    DECIDED_ON = "decided_on"
    TITLE = "title"


@strawberry.enum(description="Sort keys of resources.")
class ResourceSort(enum.Enum):
    RESOURCE_KEY = "resource_key"
    NAME = "name"


@strawberry.enum(description="Sort keys of allocations.")
class AllocationSort(enum.Enum):
    START_DATE = "start_date"
    END_DATE = "end_date"
    PERCENTAGE = "percentage"


# Connections


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None = strawberry.field(
        description="Pass as ``after`` for the next page; bound to the sort it came from."
    )


def _edge_cursor(root: strawberry.Parent[Any]) -> str:
    cursor: str = root.page.cursor(root.index)
    return cursor


@strawberry.type
class Edge(Generic[N]):
    cursor: str = strawberry.field(
        resolver=_edge_cursor,
        description="Pass as ``after`` to resume after this item; bound to its sort.",
    )
    node: N
    page: strawberry.Private[Page[Any]]
    index: strawberry.Private[int]


def _total_count(root: strawberry.Parent[Any]) -> int:
    """The count read with the page: lists are counted only when the operation selects
    ``totalCount`` (see ``query.counts``), so a missing count here is a bug to report."""
    counted: int | None = root.counted
    if counted is None:
        raise RuntimeError("the list was read without its count")
    return counted


@strawberry.type(description="A page of a list (Relay connection), and the list's size.")
class Connection(Generic[N]):
    edges: list[Edge[N]]
    nodes: list[N]
    page_info: PageInfo
    total_count: int = strawberry.field(
        resolver=_total_count, description="Every row matching the filter."
    )
    as_of_position: SafeInt | None = strawberry.field(
        description="The global position the list was read at; null for current rows."
    )
    counted: strawberry.Private[int | None]
    """The list's size, read only when the operation selects ``totalCount``."""


def connection(page: Page[Any], convert: Any) -> Connection[Any]:
    """A connection over ``page``, each item converted; an edge's cursor is encoded only
    when the operation selects it."""
    nodes = [convert(item) for item in page.items]
    return Connection(
        edges=[Edge(node=n, page=page, index=i) for i, n in enumerate(nodes)],
        nodes=nodes,
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        counted=page.total_count,
        as_of_position=None if page.as_of_position is None else SafeInt(page.as_of_position),
    )


# Rows


@strawberry.type(name="Risk")
class RiskType:
    risk_id: strawberry.ID
    program_id: strawberry.ID
    workstream_id: strawberry.ID | None
    title: str
    description: str | None
    category: str
    probability: int
    impact: int
    score: int
    band: str
    status: str
    is_open: bool
    needs_response: bool
    owner: str
    response_strategy: str | None
    mitigation_plan: str | None
    next_review_on: date | None
    last_reviewed_on: date | None
    escalated_to: str | None
    version: int
    review_overdue: bool = strawberry.field(
        description="Open, and its next review date lies before today (or the as-of day)."
    )

    @staticmethod
    def of(r: RiskRow) -> RiskType:
        return RiskType(
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
            response_strategy=r.response_strategy,
            mitigation_plan=r.mitigation_plan,
            next_review_on=r.next_review_on,
            last_reviewed_on=r.last_reviewed_on,
            escalated_to=r.escalated_to,
            version=r.version,
            review_overdue=r.overdue,
        )


@strawberry.type(name="Milestone")
class MilestoneType:
    milestone_id: strawberry.ID
    program_id: strawberry.ID
    workstream_id: strawberry.ID | None
    name: str
    description: str | None
    baseline_date: date
    forecast_date: date
    actual_date: date | None
    slip_days: int = strawberry.field(description="Forecast minus baseline; negative if ahead.")
    status: str

    @staticmethod
    def of(m: MilestoneRow) -> MilestoneType:
        return MilestoneType(
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
        )


@strawberry.type(name="Dependency")
class DependencyType:
    dependency_id: strawberry.ID
    program_id: strawberry.ID
    title: str
    description: str | None
    dependent_kind: str
    dependent_id: strawberry.ID
    target_type: str = strawberry.field(description="PROGRAM_ITEM or EXTERNAL.")
    target_program_id: strawberry.ID | None
    target_item_id: strawberry.ID | None
    external_party: str | None
    needed_by: date
    status: str
    resolution: str | None

    @staticmethod
    def of(d: DependencyRow) -> DependencyType:
        def opt(value: object) -> strawberry.ID | None:
            return None if value is None else strawberry.ID(str(value))

        return DependencyType(
            dependency_id=strawberry.ID(str(d.dependency_id)),
            program_id=strawberry.ID(str(d.program_id)),
            title=d.title,
            description=d.description,
            dependent_kind=d.dependent_kind,
            dependent_id=strawberry.ID(str(d.dependent_id)),
            target_type=d.target_type,
            target_program_id=opt(d.target_program_id),
            target_item_id=opt(d.target_item_id),
            external_party=d.external_party,
            needed_by=d.needed_by,
            status=d.status,
            resolution=d.resolution,
        )


@strawberry.type(name="Decision")
class DecisionType:
    decision_id: strawberry.ID
    program_id: strawberry.ID
    title: str
    context: str
    outcome: str
    alternatives: list[str]
    decided_by: str
    decided_on: date
    supersedes: strawberry.ID | None
    superseded_by: strawberry.ID | None

    @staticmethod
    def of(d: DecisionRow) -> DecisionType:
        return DecisionType(
            decision_id=strawberry.ID(str(d.decision_id)),
            program_id=strawberry.ID(str(d.program_id)),
            title=d.title,
            context=d.context,
            outcome=d.outcome,
            alternatives=list(d.alternatives),
            decided_by=d.decided_by,
            decided_on=d.decided_on,
            supersedes=None if d.supersedes is None else strawberry.ID(str(d.supersedes)),
            superseded_by=None if d.superseded_by is None else strawberry.ID(str(d.superseded_by)),
        )


@strawberry.type(name="CapacityStep")
class CapacityStepType:
    effective_from: date | None
    capacity: int


@strawberry.type(name="Resource")
class ResourceType:
    resource_key: str
    name: str
    kind: str
    department: str
    role: str
    capacity_schedule: list[CapacityStepType]
    version: int

    @staticmethod
    def of(r: ResourceRow) -> ResourceType:
        return ResourceType(
            resource_key=r.resource_key,
            name=r.name,
            kind=r.kind,
            department=r.department,
            role=r.role,
            version=r.version,
            capacity_schedule=[
                CapacityStepType(effective_from=s.effective_from, capacity=s.capacity)
                for s in r.capacity_schedule
            ],
        )


@strawberry.type(name="Allocation")
class AllocationType:
    allocation_id: strawberry.ID
    resource_key: str
    program_id: strawberry.ID
    workstream_id: strawberry.ID | None
    start_date: date
    end_date: date
    percentage: int
    status: str
    note: str | None

    @staticmethod
    def of(a: AllocationRow) -> AllocationType:
        return AllocationType(
            allocation_id=strawberry.ID(str(a.allocation_id)),
            resource_key=a.resource_key,
            program_id=strawberry.ID(str(a.program_id)),
            workstream_id=None if a.workstream_id is None else strawberry.ID(str(a.workstream_id)),
            start_date=a.start_date,
            end_date=a.end_date,
            percentage=a.percentage,
            status=a.status,
            note=a.note,
        )


def _nested(rows: Mapping[UUID, list[R]] | None, root: ProgramType) -> list[R]:
    if rows is None:
        # The field returning programs reads the nested lists its selection names; one
        # missing here means the selection was misread: fail rather than answer "none".
        raise RuntimeError("a nested list was selected but not read")
    return rows.get(root.key, [])


def _program_risks(root: strawberry.Parent[ProgramType]) -> list[RiskType]:
    return [RiskType.of(r) for r in _nested(root.nested.risks, root)]


def _program_milestones(root: strawberry.Parent[ProgramType]) -> list[MilestoneType]:
    return [MilestoneType.of(m) for m in _nested(root.nested.milestones, root)]


def _program_allocations(root: strawberry.Parent[ProgramType]) -> list[AllocationType]:
    return [AllocationType.of(a) for a in _nested(root.nested.allocations, root)]


@strawberry.type(name="Program")
class ProgramType:
    program_id: strawberry.ID
    code: str
    name: str
    description: str | None
    objective: str
    sponsor: str
    owner: str
    priority: int
    start_date: date
    target_end_date: date
    status: str
    health: str | None
    health_summary: str | None
    budget_planned: MoneyType
    budget_allocated: MoneyType
    budget_actual: MoneyType | None
    open_risks: int
    open_risks_critical: int
    open_risks_high: int
    next_milestone_name: str | None
    next_milestone_date: date | None
    version: int = strawberry.field(description="The expectedVersion for the next command.")
    key: strawberry.Private[UUID]
    nested: strawberry.Private[NestedRows]

    risks: list[RiskType] = strawberry.field(
        resolver=_program_risks,
        description="The program's risks, highest score first (at most 500).",
    )
    milestones: list[MilestoneType] = strawberry.field(
        resolver=_program_milestones,
        description="The program's milestones by forecast date (at most 500).",
    )
    allocations: list[AllocationType] = strawberry.field(
        resolver=_program_allocations,
        description="People's time on the program by start date (at most 500).",
    )

    @staticmethod
    def of(p: ProgramRow, nested: NestedRows) -> ProgramType:
        def money(amount: int) -> MoneyType:
            return MoneyType(amount_minor=SafeInt(amount), currency=p.currency)

        return ProgramType(
            program_id=strawberry.ID(str(p.program_id)),
            code=p.code,
            name=p.name,
            description=p.description,
            objective=p.objective,
            sponsor=p.sponsor,
            owner=p.owner,
            priority=p.priority,
            start_date=p.start_date,
            target_end_date=p.target_end_date,
            status=p.status,
            health=p.health,
            health_summary=p.health_summary,
            budget_planned=money(p.budget_planned),
            budget_allocated=money(p.budget_allocated),
            budget_actual=None if p.budget_actual is None else money(p.budget_actual),
            open_risks=p.open_risks,
            open_risks_critical=p.open_risks_critical,
            open_risks_high=p.open_risks_high,
            next_milestone_name=p.next_milestone_name,
            next_milestone_date=p.next_milestone_date,
            version=p.version,
            key=p.program_id,
            nested=nested,
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


@strawberry.type(name="FieldChange", description="One field of the entity, before and after.")
class FieldChangeType:
    path: str = strawberry.field(description='Dotted path, e.g. "milestones[m-1].forecastDate".')
    before: JSON | None
    after: JSON | None


@strawberry.type(name="AuditEntry", description="One event: who changed what, when and why.")
class AuditEntryType:
    position: SafeInt
    event_id: strawberry.ID
    stream_id: str
    entity_id: strawberry.ID
    program_id: strawberry.ID | None
    version: int
    event_type: str
    actor: str
    reason: str | None
    correlation_id: strawberry.ID | None
    recorded_at: datetime
    changes: list[FieldChangeType]

    @staticmethod
    def of(e: AuditEntry) -> AuditEntryType:
        return AuditEntryType(
            position=SafeInt(e.position),
            event_id=strawberry.ID(str(e.event_id)),
            stream_id=e.stream_id,
            entity_id=strawberry.ID(e.entity_id),
            program_id=None if e.program_id is None else strawberry.ID(str(e.program_id)),
            version=e.version,
            event_type=e.event_type,
            actor=e.actor,
            reason=e.reason,
            correlation_id=None
            if e.correlation_id is None
            else strawberry.ID(str(e.correlation_id)),
            recorded_at=e.recorded_at,
            changes=[
                FieldChangeType(path=c.path, before=plain(c.before), after=plain(c.after))
                for c in e.changes
            ],
        )


@strawberry.type(name="HistoryEntry", description="One event and the entity right after it.")
class HistoryEntryType:
    position: SafeInt
    version: int
    event_type: str
    event_id: strawberry.ID
    actor: str | None
    recorded_at: datetime
    data: JSON = strawberry.field(description="The event's content.")
    state: JSON | None = strawberry.field(
        description="The whole entity after the event: what the next decision was made on."
    )


@strawberry.type(description="One stream's hash chain.")
class StreamIntegrity:
    stream_id: str
    ok: bool
    events_checked: int
    broken_at_version: int | None
    problem: str | None


@strawberry.type(description="Hash chains walked: all streams, or the one asked for.")
class IntegrityReport:
    ok: bool
    streams: int
    events: int
    broken: list[StreamIntegrity] = strawberry.field(
        description="Each broken stream's first broken link; empty when all is well."
    )
    next_after_stream_id: str | None = strawberry.field(
        default=None,
        description="More streams remain: pass this as afterStreamId. Null when done.",
    )


@strawberry.type(name="ProjectionStatus", description="A read model's progress and health.")
class ProjectionStatusType:
    name: str
    state: str = strawberry.field(description="idle, running, stopped or failed.")
    position: SafeInt
    head_position: SafeInt
    lag_positions: SafeInt
    lag_seconds: float
    events_applied: SafeInt
    error: str | None
    failed_position: SafeInt | None
    failed_event_type: str | None
    updated_at: datetime | None

    @staticmethod
    def of(s: ProjectionStatus) -> ProjectionStatusType:
        return ProjectionStatusType(
            name=s.name,
            state=s.state,
            position=SafeInt(s.position),
            head_position=SafeInt(s.head_position),
            lag_positions=SafeInt(s.lag_positions),
            lag_seconds=s.lag_seconds,
            events_applied=SafeInt(s.events_applied),
            error=s.error,
            failed_position=None if s.failed_position is None else SafeInt(s.failed_position),
            failed_event_type=s.failed_event_type,
            updated_at=s.updated_at,
        )
