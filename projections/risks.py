"""The risk register of every program, and its 5x5 heat map.

One row per risk: score (probability x impact), severity band, status, ROAM, owner,
response, review dates, escalation, acceptance, materialisation (and the issue it
raised). ``needs_response`` marks an open HIGH or CRITICAL risk with no response
strategy (a reopened risk lands there too).
Whether a review is overdue depends on the day you ask, so it is computed by the query
from ``next_review_on``, never stored: as of a past moment, overdue means overdue on that
day. The heat map counts open risks per probability x impact cell, from the same rows.

Tables: ``rm_risks`` (versioned, key ``risk_id``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import msgspec

from programledger.domain.risk import RISK_EVENT_TYPES, Risk, RiskStatus, SeverityBand
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
    fetch_by_key,
    fetch_grouped,
    fetch_one,
    fetch_page,
    resolve_position,
    version_clause,
)
from programledger.projections.engine.tables import CURRENT, Column, Index, SortKey, Table

__all__ = [
    "PROJECTION",
    "RISKS",
    "HeatMap",
    "HeatMapCell",
    "RiskRow",
    "get_risk",
    "heat_map",
    "list_risks",
    "risks_by_id",
    "risks_of_programs",
]

RISKS = Table(
    "rm_risks",
    key=(Column("risk_id", "uuid", True),),
    columns=(
        Column("program_id", "uuid", True),
        Column("workstream_id", "uuid"),
        Column("title", "text", True),
        Column("description", "text"),
        Column("category", "text", True),
        Column("probability", "integer", True),
        Column("impact", "integer", True),
        Column("score", "integer", True),
        Column("band", "text", True),
        Column("status", "text", True),
        Column("is_open", "boolean", True),
        Column("needs_response", "boolean", True),
        Column("owner", "text", True),
        Column("trigger", "text"),
        Column("response_strategy", "text"),
        Column("mitigation_plan", "text"),
        Column("mitigation_due_on", "date"),
        Column("contingency_plan", "text"),
        Column("next_review_on", "date"),
        Column("last_reviewed_on", "date"),
        Column("escalated_to", "text"),
        Column("escalation_reason", "text"),
        Column("acceptance_rationale", "text"),
        Column("accepted_by", "text"),
        Column("materialised_on", "date"),
        Column("what_happened", "text"),
        Column("impact_description", "text"),
        Column("closed_reason", "text"),
        Column("roam", "text"),
        Column("roam_reason", "text"),
        Column("assumption_id", "uuid"),
        Column("materialised_issue_id", "uuid"),
        Column("version", "bigint", True),
    ),
    indexes=(
        Index("program_score", "(program_id, score DESC, risk_id)", CURRENT),
        Index("program_history", "(program_id, valid_from_pos)"),
        Index("review", "(next_review_on, risk_id)", f"{CURRENT} AND is_open"),
    ),
    sorts={
        "score": SortKey("score", "integer"),
        "next_review_on": SortKey("coalesce(next_review_on, 'infinity'::date)", "date"),
        "title": SortKey("title", "text"),
        "status": SortKey("status", "text", indexed=False),
    },
)

_HIGH = (SeverityBand.HIGH, SeverityBand.CRITICAL)


def _row(r: Risk, version: int) -> tuple[Any, ...]:
    is_open = r.status is not RiskStatus.CLOSED
    band = r.band
    accepted, happened, escalated = r.acceptance, r.materialisation, r.escalation
    return (
        r.program_id,
        r.workstream_id,
        r.title,
        r.description,
        r.category.value,
        r.probability,
        r.impact,
        r.score,
        band.value,
        r.status.value,
        is_open,
        is_open and band in _HIGH and r.response_strategy is None,
        r.owner,
        r.trigger,
        None if r.response_strategy is None else r.response_strategy.value,
        r.mitigation_plan,
        r.mitigation_due_on,
        r.contingency_plan,
        r.next_review_on,
        r.last_reviewed_on,
        None if escalated is None else escalated.escalated_to,
        None if escalated is None else escalated.reason,
        None if accepted is None else accepted.rationale,
        None if accepted is None else accepted.approved_by,
        None if happened is None else happened.occurred_on,
        None if happened is None else happened.what_happened,
        None if happened is None else happened.impact_description,
        r.closed_reason,
        None if r.roam is None else r.roam.value,
        r.roam_reason,
        r.assumption_id,
        None if happened is None else happened.issue_id,
        version,
    )


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    before, after = fold(ctx, event)
    if before is None:
        ctx.change(RISKS, (after.risk_id,), None, _row(after, event.version))
    else:
        ctx.replace(RISKS, (after.risk_id,), _row(after, event.version))


PROJECTION = Projection(
    name="risks",
    description="the risk register (score, band, status, owner, reviews) and heat map",
    handles=frozenset(t.event_type for t in RISK_EVENT_TYPES),
    tables=(RISKS,),
    states={"risk": Tracked[Risk]},
    handle=_handle,
)


# Queries


class RiskRow(VersionedRow, frozen=True, kw_only=True):
    risk_id: UUID
    program_id: UUID
    workstream_id: UUID | None
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
    """Open, HIGH or CRITICAL, and no response strategy chosen."""
    owner: str
    trigger: str | None
    response_strategy: str | None
    mitigation_plan: str | None
    mitigation_due_on: date | None
    contingency_plan: str | None
    next_review_on: date | None
    last_reviewed_on: date | None
    escalated_to: str | None
    escalation_reason: str | None
    acceptance_rationale: str | None
    accepted_by: str | None
    materialised_on: date | None
    what_happened: str | None
    impact_description: str | None
    closed_reason: str | None
    roam: str | None
    """The ROAM classification (RESOLVED, OWNED, ACCEPTED, MITIGATED), if any."""
    roam_reason: str | None
    assumption_id: UUID | None
    """The assumption whose invalidation raised the risk."""
    materialised_issue_id: UUID | None
    """The issue raised when the risk materialised."""
    version: int
    overdue: bool
    """Open and its next review date lies before the reference day of the query."""


class HeatMapCell(msgspec.Struct, frozen=True, kw_only=True):
    probability: int
    impact: int
    count: int


class HeatMap(msgspec.Struct, frozen=True, kw_only=True):
    """Open risks per probability x impact cell; all 25 cells, zeros included."""

    cells: list[HeatMapCell]
    total: int
    as_of_position: int | None


def _risk(data: dict[str, Any]) -> RiskRow:
    return RiskRow(**data)


LIST = ListSpec(table=RISKS, convert=_risk)

_OVERDUE = "is_open AND coalesce(next_review_on < {}, false)"
"""Whether a risk's review is overdue on the day in ``{}``: the one definition that the
``overdue`` column and filter both use."""

_OVERDUE_COLUMN = f", ({_OVERDUE}) AS overdue"


def _reference_day(today: date | None, as_of: AsOf) -> date:
    """The day overdue reviews are judged on: given, or the as-of day, or today."""
    if today is not None:
        return today
    if isinstance(as_of, datetime):
        return as_of.astimezone(UTC).date()
    return datetime.now(UTC).date()


async def list_risks(
    pool: Reader,
    *,
    program_id: UUID | None = None,
    status: Sequence[str] | None = None,
    band: Sequence[str] | None = None,
    category: Sequence[str] | None = None,
    owner: str | None = None,
    min_score: int | None = None,
    open_only: bool = False,
    overdue: bool | None = None,
    needs_response: bool | None = None,
    today: date | None = None,
    sort: str = "score",
    descending: bool = True,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[RiskRow]:
    """The register, by default highest score first.

    ``overdue`` selects on reviews due before ``today`` (default: the day of a datetime
    ``as_of``, else the current UTC day); ``needs_response`` on open HIGH/CRITICAL risks
    without a response strategy; ``min_score`` keeps risks scoring at least that.
    """
    filters = Filters()
    day = _reference_day(today, as_of)
    filters.equals("program_id", program_id)
    filters.any_of("status", status, "text")
    filters.any_of("band", band, "text")
    filters.any_of("category", category, "text")
    filters.equals("owner", owner)
    if min_score is not None:
        filters.where("score >= {}", min_score)
    if open_only:
        filters.where("is_open")
    if overdue is not None:
        filters.where(_OVERDUE if overdue else f"NOT ({_OVERDUE})", day)
    filters.equals("needs_response", needs_response)
    return await fetch_page(
        pool,
        LIST,
        filters,
        sort=sort,
        descending=descending,
        first=first,
        after=after,
        last=last,
        before=before,
        as_of=as_of,
        extra_select=_OVERDUE_COLUMN,
        extra_args=(day,),
        count=count,
    )


async def get_risk(
    pool: Reader, risk_id: UUID, *, as_of: AsOf = None, today: date | None = None
) -> RiskRow | None:
    return await fetch_one(
        pool,
        RISKS,
        _risk,
        (risk_id,),
        as_of,
        extra_select=_OVERDUE_COLUMN,
        extra_args=(_reference_day(today, as_of),),
    )


async def risks_of_programs(
    pool: Reader, program_ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, list[RiskRow]]:
    """The risks of each of ``program_ids`` as of a position (or now), highest score
    first, overdue judged on today: a page of programs' nested registers in one
    statement (see :func:`fetch_grouped`)."""
    return await fetch_grouped(
        pool,
        LIST,
        "program_id",
        program_ids,
        sort="score",
        descending=True,
        as_of=as_of,
        extra_select=_OVERDUE_COLUMN,
        extra_args=(_reference_day(None, None),),
    )


async def heat_map(pool: Reader, *, program_id: UUID | None = None, as_of: AsOf = None) -> HeatMap:
    """Counts of open risks per (probability, impact), for one program or all."""
    filters = Filters()
    filters.equals("program_id", program_id)
    filters.where("is_open")
    async with pool.acquire() as conn:
        position = await resolve_position(conn, as_of)
        version_clause(filters, position, RISKS)
        rows = await conn.fetch(
            f"SELECT probability, impact, count(*) AS n FROM {RISKS.name} "
            f"WHERE {filters.sql()} GROUP BY probability, impact",
            *filters.args,
        )
    counts = {(r["probability"], r["impact"]): int(r["n"]) for r in rows}
    cells = [
        HeatMapCell(probability=p, impact=i, count=counts.get((p, i), 0))
        for p in range(1, 6)
        for i in range(1, 6)
    ]
    return HeatMap(cells=cells, total=sum(counts.values()), as_of_position=position)


async def risks_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, RiskRow]:
    """The risks of ``ids`` in one statement, overdue judged on today."""
    return await fetch_by_key(
        pool,
        LIST,
        ids,
        as_of=as_of,
        extra_select=_OVERDUE_COLUMN,
        extra_args=(_reference_day(None, None),),
    )
