"""Weekly status reports: each program's report per ISO week, every revision of it, and
the trend of what was published.

Tables, both versioned: ``rm_status_reports`` (key ``program_id, period``) holds the
report as it stands (the draft being written, or the last published revision) with the
stream version; ``rm_status_report_revisions`` (key ``program_id, period, revision``)
holds each revision, a published one never changing again. The trend reads the latest
published revision of each week in a span, so a correction replaces its week's point
from the moment it is published, and "as of" shows the points as they were known then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from programledger.domain.report import (
    DIMENSIONS,
    STATUS_REPORT_EVENT_TYPES,
    Rag,
    ReportContent,
    StatusReport,
    StatusReportCorrectionStarted,
    StatusReportDrafted,
    StatusReportPublished,
    period_days,
)
from programledger.projections.engine.core import (
    Context,
    ProjectedEvent,
    Projection,
    Tracked,
    fold,
)
from programledger.projections.engine.queries import (
    AsOf,
    Filters,
    ListSpec,
    Page,
    Reader,
    VersionedRow,
    fetch_one,
    fetch_page,
    resolve_position,
    stamps_sql,
    version_clause,
)
from programledger.projections.engine.tables import CURRENT, Column, Index, SortKey, Table

__all__ = [
    "PROJECTION",
    "REPORTS",
    "REVISIONS",
    "ReportRevisionRow",
    "StatusReportRow",
    "get_status_report",
    "list_status_reports",
    "revisions_of",
    "status_reports_by_key",
    "trend",
]

_CONTENT = (
    Column("overall", "text", True),
    Column("overall_reason", "text", True),
    *(
        column
        for d in DIMENSIONS
        for column in (
            Column(f"{d.value.lower()}_rag", "text", True),
            Column(f"{d.value.lower()}_reason", "text", True),
        )
    ),
    Column("highlights", "text[]", True),
    Column("lowlights", "text[]", True),
    Column("asks", "text[]", True),
    Column("next_steps", "text[]", True),
)

REPORTS = Table(
    "rm_status_reports",
    key=(Column("program_id", "uuid", True), Column("period", "text", True)),
    columns=(
        Column("week_start", "date", True),
        Column("revision", "integer", True),
        Column("status", "text", True),
        *_CONTENT,
        Column("published_revisions", "integer", True),
        Column("last_published_by", "text"),
        Column("correction_reason", "text"),
        Column("updated_by", "text", True),
        Column("version", "integer", True),
    ),
    indexes=(
        Index("program", "(program_id, week_start, period)", CURRENT),
        Index("program_history", "(program_id, valid_from_pos)"),
    ),
    # By overall RAG, pages are sorted by the query: a program has one report a week, and
    # the two indexes of an indexed order cost every version written and closed (each
    # event writes one and closes one), the bulk of the table's write cost.
    sorts={
        "week_start": SortKey("week_start", "date"),
        "overall": SortKey("overall", "text", indexed=False),
    },
)

REVISIONS = Table(
    "rm_status_report_revisions",
    key=(
        Column("program_id", "uuid", True),
        Column("period", "text", True),
        Column("revision", "integer", True),
    ),
    columns=(
        Column("week_start", "date", True),
        Column("status", "text", True),
        *_CONTENT,
        Column("updated_by", "text", True),
        Column("published_by", "text"),
        Column("published_at", "timestamptz"),
        Column("corrects", "integer"),
        Column("correction_reason", "text"),
    ),
    indexes=(
        Index("trend", "(program_id, week_start, revision)", CURRENT),
        Index("program_history", "(program_id, valid_from_pos)"),
    ),
)


_SLOT = {d: 2 * i for i, d in enumerate(DIMENSIONS)}
"""Where a dimension's RAG goes among the content columns (its reason follows it)."""
_RAG = {r: r.value for r in Rag}


def _content(c: ReportContent) -> tuple[Any, ...]:
    """The content columns, shared by a report's row and its revision's: built once per
    event, they were half of what the handler cost."""
    rated: list[Any] = [None] * (2 * len(DIMENSIONS))
    for d in c.dimensions:
        i = _SLOT[d.dimension]
        rated[i] = _RAG[d.rag]
        rated[i + 1] = d.reason
    return (
        _RAG[c.overall],
        c.overall_reason,
        *rated,
        list(c.highlights),
        list(c.lowlights),
        list(c.asks),
        list(c.next_steps),
    )


@lru_cache(maxsize=1024)
def _week_start(period: str) -> date:
    """The Monday of an ISO week; a handful of weeks are reported at a time, so each is
    parsed once."""
    days = period_days(period)
    assert days is not None  # decide refused any other period
    return days[0]


def _report(
    r: StatusReport, content: tuple[Any, ...], week: date, actor: str, version: int
) -> tuple[Any, ...]:
    return (
        week,
        r.revision,
        r.status.value,
        *content,
        len(r.published),
        r.published[-1].published_by if r.published else None,
        r.correction_reason,
        actor,
        version,
    )


def _revision(
    r: StatusReport, content: tuple[Any, ...], week: date, event: ProjectedEvent
) -> tuple[Any, ...]:
    published = event.event if isinstance(event.event, StatusReportPublished) else None
    return (
        week,
        r.status.value,
        *content,
        event.actor,
        None if published is None else published.published_by,
        None if published is None else event.recorded_at,
        r.revision - 1 if r.revision > 1 else None,
        r.correction_reason,
    )


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    before, after = fold(ctx, event)
    key = (after.program_id, after.period)
    content, week = _content(after.content), _week_start(after.period)
    row = _report(after, content, week, event.actor, event.version)
    if before is None:
        ctx.change(REPORTS, key, None, row)
    else:
        ctx.replace(REPORTS, key, row)
    revision_key = (*key, after.revision)
    revision = _revision(after, content, week, event)
    if isinstance(event.event, StatusReportDrafted | StatusReportCorrectionStarted):
        ctx.change(REVISIONS, revision_key, None, revision)
    else:
        ctx.replace(REVISIONS, revision_key, revision)


PROJECTION = Projection(
    name="status_reports",
    description="weekly status reports per program and week, their revisions and trend",
    handles=frozenset(t.event_type for t in STATUS_REPORT_EVENT_TYPES),
    tables=(REPORTS, REVISIONS),
    states={"status_report": Tracked[StatusReport]},
    handle=_handle,
)


# Queries


class _Content(VersionedRow, frozen=True, kw_only=True):
    program_id: UUID
    period: str
    week_start: date
    status: str
    overall: str
    overall_reason: str
    scope_rag: str
    scope_reason: str
    schedule_rag: str
    schedule_reason: str
    budget_rag: str
    budget_reason: str
    resources_rag: str
    resources_reason: str
    risks_rag: str
    risks_reason: str
    highlights: list[str]
    lowlights: list[str]
    asks: list[str]
    next_steps: list[str]
    updated_by: str
    """Who last changed it (drafted, edited, published)."""
    correction_reason: str | None


class StatusReportRow(_Content, frozen=True, kw_only=True):
    revision: int
    published_revisions: int
    last_published_by: str | None
    version: int
    """The report stream's version: the expected version for the next command."""


class ReportRevisionRow(_Content, frozen=True, kw_only=True):
    revision: int
    published_by: str | None
    published_at: datetime | None
    corrects: int | None


def _report_row(data: dict[str, Any]) -> StatusReportRow:
    return StatusReportRow(**data)


def _revision_row(data: dict[str, Any]) -> ReportRevisionRow:
    return ReportRevisionRow(**data)


REPORT_LIST = ListSpec(table=REPORTS, convert=_report_row)


async def get_status_report(
    pool: Reader, program_id: UUID, period: str, *, as_of: AsOf = None
) -> StatusReportRow | None:
    return await fetch_one(pool, REPORTS, _report_row, (program_id, period), as_of)


async def status_reports_by_key(
    pool: Reader, keys: Sequence[tuple[UUID, str]], *, as_of: int | None = None
) -> Mapping[tuple[UUID, str], StatusReportRow]:
    """The reports of ``keys`` (program ids and ISO weeks) now or as of a position, in one
    statement: the reports a list of global ids names, each found by its key's index."""
    wanted = sorted(set(keys), key=str)
    if not wanted:
        return {}
    filters = Filters()
    filters.where(
        "(program_id, period) IN (SELECT * FROM unnest({}::uuid[], {}::text[]))",
        [program_id for program_id, _ in wanted],
        [period for _, period in wanted],
    )
    table = REPORTS
    async with pool.acquire() as conn:
        version_clause(filters, await resolve_position(conn, as_of), table, whole_list=False)
        rows = await conn.fetch(
            f"SELECT {', '.join(table.column_names)}{stamps_sql(table)} FROM {table.name} "
            f"WHERE {filters.sql()}",
            *filters.args,
        )
    found = (_report_row(dict(row)) for row in rows)
    return {(r.program_id, r.period): r for r in found}


async def list_status_reports(
    pool: Reader,
    *,
    program_id: UUID | None = None,
    status: Sequence[str] | None = None,
    week_from: date | None = None,
    week_to: date | None = None,
    sort: str = "week_start",
    descending: bool = True,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[StatusReportRow]:
    """Reports, latest week first by default; ``week_from``/``week_to`` bound the Monday
    of the reported week."""
    filters = Filters()
    filters.equals("program_id", program_id)
    filters.any_of("status", status, "text")
    if week_from is not None:
        filters.where("week_start >= {}", week_from)
    if week_to is not None:
        filters.where("week_start <= {}", week_to)
    return await fetch_page(
        pool,
        REPORT_LIST,
        filters,
        sort=sort,
        descending=descending,
        first=first,
        after=after,
        last=last,
        before=before,
        as_of=as_of,
        count=count,
    )


async def _revisions(
    pool: Reader, filters: Filters, as_of: AsOf, *, latest_published: bool
) -> list[ReportRevisionRow]:
    table = REVISIONS
    columns = ", ".join(table.column_names) + stamps_sql(table)
    async with pool.acquire() as conn:
        version_clause(filters, await resolve_position(conn, as_of), table, whole_list=False)
        if latest_published:
            sql = (
                f"SELECT DISTINCT ON (week_start) {columns} FROM {table.name} "
                f"WHERE {filters.sql()} AND status = 'PUBLISHED' "
                "ORDER BY week_start, revision DESC"
            )
        else:
            sql = f"SELECT {columns} FROM {table.name} WHERE {filters.sql()} ORDER BY revision"
        rows = await conn.fetch(sql, *filters.args)
    return [_revision_row(dict(row)) for row in rows]


async def revisions_of(
    pool: Reader, program_id: UUID, period: str, *, as_of: AsOf = None
) -> list[ReportRevisionRow]:
    """Every revision of one report, first first: the published ones as they were
    published, the last one perhaps a draft."""
    filters = Filters()
    filters.equals("program_id", program_id)
    filters.equals("period", period)
    return await _revisions(pool, filters, as_of, latest_published=False)


async def trend(
    pool: Reader, program_id: UUID, week_from: date, week_to: date, *, as_of: AsOf = None
) -> list[ReportRevisionRow]:
    """The latest published revision of each reported week whose Monday lies in
    ``[week_from, week_to]``, in week order; weeks without a published report are absent."""
    filters = Filters()
    filters.equals("program_id", program_id)
    filters.where("week_start BETWEEN {} AND {}", week_from, week_to)
    return await _revisions(pool, filters, as_of, latest_published=True)
