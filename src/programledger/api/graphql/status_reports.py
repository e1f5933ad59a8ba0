"""Weekly status reports in GraphQL: ``statusReport`` (one program's week, with every
revision), ``statusReports`` (a connection), ``statusReportTrend`` (what was published,
week by week, over any span) and ``statusReportDraft`` (the RAGs and reasons a draft
starts from, proposed from the read models), over the ``status_reports`` read model.

Every field of the report events is here: the content on ``StatusReport`` and each
``StatusReportRevision``, who published and when, what a correction corrects and why.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from datetime import date, datetime, timedelta
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
    bad_input,
    enum_filter,
    list_page,
    moment,
    one_connection,
    paging,
    read,
    reader,
    uuid,
    values,
)
from programledger.api.graphql.recorded import Recorded, recorded
from programledger.api.graphql.types import SafeInt
from programledger.domain.program import ChangeRequestStatus
from programledger.domain.report import (
    DIMENSIONS,
    Dimension,
    Rag,
    ReportContent,
    ReportFacts,
    ReportStatus,
    period_days,
    propose,
)
from programledger.projections import allocations, milestones, programs, risks, schedule
from programledger.projections import status_reports as reports
from programledger.projections.engine.queries import AsOf, Page, Reader
from programledger.projections.status_reports import ReportRevisionRow, StatusReportRow

__all__ = [
    "DimensionRatingType",
    "ReportFactsType",
    "StatusReportDraftType",
    "StatusReportFilter",
    "StatusReportQueries",
    "StatusReportRevisionType",
    "StatusReportSort",
    "StatusReportType",
    "parse_report_key",
    "report_id",
]

_RAG = domain_enum(Rag)
_DIMENSION = domain_enum(Dimension)
_STATUS = domain_enum(ReportStatus)


@strawberry.enum(description="Sort keys of status reports.")
class StatusReportSort(enum.Enum):
    WEEK_START = "week_start"
    OVERALL = "overall"


@strawberry.input
class StatusReportFilter:
    program_id: strawberry.ID | None = None
    status: list[Enum] | None = enum_filter(ReportStatus)
    week_from: date | None = strawberry.field(
        default=None, description="Reports of weeks whose Monday is on or after this day."
    )
    week_to: date | None = strawberry.field(
        default=None, description="Reports of weeks whose Monday is on or before this day."
    )


@strawberry.type(name="DimensionRating", description="One dimension's RAG and why.")
class DimensionRatingType:
    dimension: str = strawberry.field(graphql_type=_DIMENSION)
    rag: str = strawberry.field(graphql_type=_RAG)
    reason: str


def _ratings(row: StatusReportRow | ReportRevisionRow) -> list[DimensionRatingType]:
    return [
        DimensionRatingType(
            dimension=d.value,
            rag=getattr(row, f"{d.value.lower()}_rag"),
            reason=getattr(row, f"{d.value.lower()}_reason"),
        )
        for d in DIMENSIONS
    ]


@strawberry.type(name="StatusReportRevision", description="One revision of a report.")
class StatusReportRevisionType(Recorded):
    program_id: strawberry.ID
    period: str = strawberry.field(description="The ISO week, e.g. 2027-W14.")
    week_start: date
    revision: int
    status: str = strawberry.field(graphql_type=_STATUS)
    overall: str = strawberry.field(graphql_type=_RAG)
    overall_reason: str
    dimensions: list[DimensionRatingType]
    highlights: list[str]
    lowlights: list[str]
    asks: list[str]
    next_steps: list[str]
    published_by: str | None
    published_at: datetime | None
    corrects: int | None = strawberry.field(description="The revision this one corrects.")
    correction_reason: str | None

    @staticmethod
    def of(r: ReportRevisionRow) -> StatusReportRevisionType:
        return StatusReportRevisionType(
            program_id=strawberry.ID(str(r.program_id)),
            period=r.period,
            week_start=r.week_start,
            revision=r.revision,
            status=r.status,
            overall=r.overall,
            overall_reason=r.overall_reason,
            dimensions=_ratings(r),
            highlights=r.highlights,
            lowlights=r.lowlights,
            asks=r.asks,
            next_steps=r.next_steps,
            published_by=r.published_by,
            published_at=r.published_at,
            corrects=r.corrects,
            correction_reason=r.correction_reason,
            **recorded(r),
        )


def report_id(program_id: UUID, period: str) -> strawberry.ID:
    """The global id of a report: a program has one per ISO week."""
    return global_id("StatusReport", f"{program_id}/{period}")


def parse_report_key(key: str) -> tuple[UUID, str]:
    """The program id and ISO week in the key of a :func:`report_id`; ``ValueError`` if
    it is not one, so a made-up week is refused before it reaches a statement."""
    program_id, _, period = key.partition("/")
    if period_days(period) is None:
        raise ValueError(f"not an ISO week: {period!r}")
    return UUID(program_id), period


async def _revisions(
    root: strawberry.Parent[StatusReportType], info: ApiInfo
) -> list[StatusReportRevisionType]:
    rows = await reports.revisions_of(
        info.context.services.pool,
        an_id(root.program_id, "programId"),
        root.period,
        as_of=root.as_of,
    )
    return [StatusReportRevisionType.of(r) for r in rows]


@strawberry.type(
    name="StatusReport",
    description="A program's report for one week as it stands: the draft being written, "
    "or the last revision published.",
)
class StatusReportType(Node, Recorded):
    program_id: strawberry.ID
    period: str = strawberry.field(description="The ISO week, e.g. 2027-W14.")
    week_start: date
    revision: int
    status: str = strawberry.field(graphql_type=_STATUS)
    overall: str = strawberry.field(graphql_type=_RAG)
    overall_reason: str
    dimensions: list[DimensionRatingType]
    highlights: list[str]
    lowlights: list[str]
    asks: list[str]
    next_steps: list[str]
    published_revisions: int
    last_published_by: str | None
    correction_reason: str | None = strawberry.field(
        description="Why the draft being written corrects the published revision."
    )
    version: int = strawberry.field(description="The report stream's version.")
    as_of: strawberry.Private[AsOf]
    revisions: list[StatusReportRevisionType] = strawberry.field(
        resolver=_revisions, description="Every revision, first first (as of the same moment)."
    )

    @staticmethod
    def of(r: StatusReportRow, as_of: AsOf = None) -> StatusReportType:
        return StatusReportType(
            id=report_id(r.program_id, r.period),
            program_id=strawberry.ID(str(r.program_id)),
            period=r.period,
            week_start=r.week_start,
            revision=r.revision,
            status=r.status,
            overall=r.overall,
            overall_reason=r.overall_reason,
            dimensions=_ratings(r),
            highlights=r.highlights,
            lowlights=r.lowlights,
            asks=r.asks,
            next_steps=r.next_steps,
            published_revisions=r.published_revisions,
            last_published_by=r.last_published_by,
            correction_reason=r.correction_reason,
            version=r.version,
            **recorded(r),
            as_of=as_of,
        )


@strawberry.type(name="ReportFacts", description="The figures a draft's RAGs were proposed on.")
class ReportFactsType:
    milestones_open: int
    milestones_at_risk: int
    milestones_missed: int
    max_slip_days: int
    dependencies_at_risk: int
    dependencies_overdue: int
    change_requests_pending: int
    planned_budget_minor: SafeInt
    actual_spend_minor: SafeInt
    elapsed_percent: int
    over_allocated_resources: list[str]
    open_issues: int
    overdue_reviews: int
    unmitigated_high: int


@strawberry.type(
    name="StatusReportDraft",
    description="RAGs and reasons proposed from the read models (docs/domain.md, Status "
    "reports), to send as draftStatusReport's content once reviewed.",
)
class StatusReportDraftType:
    program_id: strawberry.ID
    period: str
    overall: str = strawberry.field(graphql_type=_RAG)
    overall_reason: str
    dimensions: list[DimensionRatingType]
    facts: ReportFactsType

    @staticmethod
    def of(program_id: str, period: str, c: ReportContent, f: ReportFacts) -> StatusReportDraftType:
        return StatusReportDraftType(
            program_id=strawberry.ID(program_id),
            period=period,
            overall=c.overall.value,
            overall_reason=c.overall_reason,
            dimensions=[
                DimensionRatingType(dimension=d.dimension.value, rag=d.rag.value, reason=d.reason)
                for d in c.dimensions
            ],
            facts=ReportFactsType(
                **{
                    name: getattr(f, name)
                    for name in f.__struct_fields__
                    if name != "over_allocated_resources"
                },
                over_allocated_resources=list(f.over_allocated_resources),
            ),
        )


def _week(period: str) -> tuple[date, date]:
    days = period_days(period)
    if days is None:
        raise bad_input(f"period must be an ISO week such as 2027-W14 (got {period!r})")
    return days


async def _total(page: Awaitable[Page[Any]]) -> int:
    return (await page).total_count or 0


async def gather_facts(pool: Reader, program_id: str, period: str) -> ReportFacts | None:
    """The facts of a program's week from the read models as they are now; ``None`` for
    a program they do not know."""
    pid = an_id(program_id, "programId")
    monday, sunday = _week(period)
    program = await programs.get_program(pool, pid)
    if program is None:
        return None
    pending = {ChangeRequestStatus.RAISED.value, ChangeRequestStatus.ASSESSED.value}
    planned = await milestones.milestones_of_programs(pool, [pid])
    requests = await schedule.change_requests(pool, pid)
    at_risk = await _total(
        milestones.list_dependencies(pool, program_id=pid, status=["AT_RISK"], first=1)
    )
    overdue_dependencies = await _total(
        milestones.list_dependencies(
            pool, program_id=pid, status=["OPEN", "AT_RISK"], needed_by_to=sunday, first=1
        )
    )
    issues = await _total(risks.list_risks(pool, program_id=pid, status=["MATERIALISED"], first=1))
    overdue_reviews = await _total(
        risks.list_risks(pool, program_id=pid, overdue=True, today=sunday, first=1)
    )
    unmitigated = await _total(
        risks.list_risks(pool, program_id=pid, open_only=True, needs_response=True, first=1)
    )
    loads = await allocations.utilisation(
        pool, start=monday, end=sunday, over_allocated_only=True, first=500, count=False
    )
    open_milestones = [m for m in planned.get(pid, []) if m.status != "DONE"]
    span = max((program.target_end_date - program.start_date).days, 1)
    elapsed = min(max((sunday - program.start_date).days, 0), span)
    return ReportFacts(
        milestones_open=len(open_milestones),
        milestones_at_risk=sum(1 for m in open_milestones if m.status == "AT_RISK"),
        milestones_missed=sum(1 for m in open_milestones if m.status == "MISSED"),
        max_slip_days=max((max(m.slip_days, 0) for m in open_milestones), default=0),
        dependencies_at_risk=at_risk,
        dependencies_overdue=overdue_dependencies,
        change_requests_pending=sum(1 for r in requests if r.status in pending),
        planned_budget_minor=program.budget_planned,
        actual_spend_minor=program.budget_actual or 0,
        elapsed_percent=elapsed * 100 // span,
        over_allocated_resources=tuple(
            sorted({w.resource_key for w in loads.items if pid in w.program_ids})
        ),
        open_issues=issues,
        overdue_reviews=overdue_reviews,
        unmitigated_high=unmitigated,
    )


async def _draft(
    info: ApiInfo, program_id: strawberry.ID, period: str
) -> StatusReportDraftType | None:
    async with one_connection(info.context.services.pool) as lent:
        facts = await read(gather_facts(lent, program_id, period))
    if facts is None:
        return None
    return StatusReportDraftType.of(str(program_id), period, propose(facts), facts)


async def _report(
    info: ApiInfo,
    program_id: strawberry.ID,
    period: str,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> StatusReportType | None:
    when = moment(as_of, as_of_position)
    pool = info.context.services.pool
    pid = an_id(program_id, "programId")
    row = await read(reports.get_status_report(pool, pid, period, as_of=when))
    if row is None:
        return None
    return StatusReportType.of(row, when)


async def _reports(
    info: ApiInfo,
    filter: StatusReportFilter | None = None,
    order_by: StatusReportSort = StatusReportSort.WEEK_START,
    descending: bool = True,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[StatusReportType]:
    when = moment(as_of, as_of_position)
    f = filter or StatusReportFilter()
    return await list_page(
        info,
        reports.list_status_reports,
        lambda row: StatusReportType.of(row, when),
        when,
        order_by,
        descending,
        paging(first, after, last, before),
        program_id=uuid(f.program_id, "programId"),
        status=values(f.status),
        week_from=f.week_from,
        week_to=f.week_to,
    )


async def _trend(
    info: ApiInfo,
    program_id: strawberry.ID,
    week_from: date,
    week_to: date,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> list[StatusReportRevisionType]:
    when = moment(as_of, as_of_position)
    if week_to < week_from:
        raise bad_input("weekTo must be on or after weekFrom")
    if week_to - week_from > timedelta(days=3 * 366):
        raise bad_input("a trend spans at most three years; ask for several spans")
    rows = await read(
        reports.trend(
            info.context.services.pool,
            an_id(program_id, "programId"),
            week_from - timedelta(days=week_from.weekday()),
            week_to,
            as_of=when,
        )
    )
    return [StatusReportRevisionType.of(r) for r in rows]


@strawberry.type
class StatusReportQueries:
    status_report: StatusReportType | None = strawberry.field(
        resolver=_report,
        extensions=reader(),
        description="One program's report for one ISO week, with its revisions." + AS_OF,
    )
    status_reports: Connection[StatusReportType] = strawberry.field(
        resolver=_reports,
        extensions=reader(),
        description="Status reports, latest week first by default." + AS_OF,
    )
    status_report_trend: list[StatusReportRevisionType] = strawberry.field(
        resolver=_trend,
        extensions=reader(),
        description="The latest published revision of each week in [weekFrom, weekTo] "
        "(by the week's Monday), week by week: the overall and per-dimension trend; "
        "weeks without a published report are absent." + AS_OF,
    )
    status_report_draft: StatusReportDraftType | None = strawberry.field(
        resolver=_draft,
        extensions=reader(),
        description="RAGs and reasons proposed for a program's week from the read models "
        "as they are now (null for an unknown program); nothing is recorded.",
    )
