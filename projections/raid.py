"""The RAID log of every program: assumptions, issues, and one index over all four kinds
of item (risks, assumptions, issues, dependencies) that the RAID query pages through.

``rm_assumptions`` and ``rm_issues`` hold every field of their items. ``rm_raid_items``
holds, per item, what a RAID log is filtered and sorted on whatever its kind: program,
title, status, whether it is open, owner, severity, the next date it asks for, escalation
and (for risks) ROAM. The detail of a risk or a dependency stays in its own read model
(``risks``, ``milestones``): the query reads it from there, by id, at the same position.

Severity, across kinds, is a rank from 0 to 25: a risk's score; an issue's severity as
the top score of the matching band (LOW 4, MEDIUM 9, HIGH 16, CRITICAL 25), so a HIGH
issue ranks with the HIGH risks; an assumption's doubt (LOW confidence 9, MEDIUM 4, HIGH
1); a dependency at risk 9, else 0. The "due" date is the one the item waits on: a risk's
next review, an assumption's validate-by, an issue's due date, a dependency's needed-by.

Dependencies live on program streams; the index keeps a small state per dependency
(``dependency-<id>``) rather than folding whole programs, which the ``milestones`` read
model already does.

Tables: ``rm_assumptions`` (key ``assumption_id``), ``rm_issues`` (key ``issue_id``),
``rm_raid_items`` (key ``kind, item_id``), all versioned.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from uuid import UUID

import msgspec

from programledger.domain.assumption import (
    ASSUMPTION_EVENT_TYPES,
    Assumption,
    AssumptionStatus,
    Confidence,
)
from programledger.domain.events import DomainEvent
from programledger.domain.issue import ISSUE_EVENT_TYPES, Issue, IssueSeverity, IssueStatus
from programledger.domain.program import (
    DependencyFlaggedAtRisk,
    DependencyNeededByChanged,
    DependencyRegistered,
    DependencyReopened,
    DependencyResolved,
    DependencyRiskCleared,
    DependencyStatus,
)
from programledger.domain.risk import RISK_EVENT_TYPES, Risk, RiskStatus
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
    fetch_one,
    fetch_page,
)
from programledger.projections.engine.tables import CURRENT, Column, Index, SortKey, Table

__all__ = [
    "ASSUMPTIONS",
    "ISSUES",
    "PROJECTION",
    "RAID_ITEMS",
    "AssumptionRow",
    "IndexedDependency",
    "IssueRow",
    "RaidItemRow",
    "RaidKind",
    "RaidStatus",
    "assumptions_by_id",
    "dependency_after",
    "get_assumption",
    "get_issue",
    "issues_by_id",
    "list_raid",
]


class RaidKind(enum.StrEnum):
    RISK = "RISK"
    ASSUMPTION = "ASSUMPTION"
    ISSUE = "ISSUE"
    DEPENDENCY = "DEPENDENCY"


_STATUSES = {s.value for s in (*RiskStatus, *AssumptionStatus, *IssueStatus, *DependencyStatus)}
RaidStatus = enum.StrEnum(  # type: ignore[misc]
    "RaidStatus", {value: value for value in sorted(_STATUSES)}
)
RaidStatus.__doc__ = "Every status a RAID item can have, whatever its kind (some are shared)."

ASSUMPTIONS = Table(
    "rm_assumptions",
    key=(Column("assumption_id", "uuid", True),),
    columns=(
        Column("program_id", "uuid", True),
        Column("workstream_id", "uuid"),
        Column("statement", "text", True),
        Column("description", "text"),
        Column("owner", "text", True),
        Column("confidence", "text", True),
        Column("validate_by", "date", True),
        Column("status", "text", True),
        Column("validation_evidence", "text"),
        Column("validated_on", "date"),
        Column("invalidation_evidence", "text"),
        Column("invalidated_on", "date"),
        Column("raised_risk_id", "uuid"),
        Column("raised_issue_id", "uuid"),
        Column("version", "bigint", True),
    ),
    indexes=(Index("program_history", "(program_id, valid_from_pos)"),),
    sorts={"validate_by": SortKey("validate_by", "date")},
)

ISSUES = Table(
    "rm_issues",
    key=(Column("issue_id", "uuid", True),),
    columns=(
        Column("program_id", "uuid", True),
        Column("workstream_id", "uuid"),
        Column("title", "text", True),
        Column("description", "text"),
        Column("severity", "text", True),
        Column("owner", "text", True),
        Column("due_on", "date", True),
        Column("status", "text", True),
        Column("risk_id", "uuid"),
        Column("assumption_id", "uuid"),
        Column("resolution", "text"),
        Column("resolved_on", "date"),
        Column("escalated_to", "text"),
        Column("escalation_reason", "text"),
        Column("version", "bigint", True),
    ),
    indexes=(
        Index("program_history", "(program_id, valid_from_pos)"),
        Index("risk", "(risk_id)", f"{CURRENT} AND risk_id IS NOT NULL"),
    ),
    sorts={"due_on": SortKey("due_on", "date")},
)

RAID_ITEMS = Table(
    "rm_raid_items",
    key=(Column("kind", "text", True), Column("item_id", "uuid", True)),
    columns=(
        Column("program_id", "uuid", True),
        Column("title", "text", True),
        Column("status", "text", True),
        Column("is_open", "boolean", True),
        Column("owner", "text"),
        Column("severity", "integer", True),
        Column("due_on", "date"),
        Column("escalated", "boolean", True),
        Column("roam", "text"),
    ),
    indexes=(
        Index("program", "(program_id, severity DESC, kind, item_id)", CURRENT),
        Index("program_history", "(program_id, valid_from_pos)"),
    ),
    sorts={
        "severity": SortKey("severity", "integer"),
        "due_on": SortKey("coalesce(due_on, 'infinity'::date)", "date"),
        "title": SortKey("title", "text", indexed=False),
        "kind": SortKey("kind", "text", indexed=False),
    },
)

_ISSUE_RANK = {
    IssueSeverity.LOW: 4,
    IssueSeverity.MEDIUM: 9,
    IssueSeverity.HIGH: 16,
    IssueSeverity.CRITICAL: 25,
}
_DOUBT_RANK = {Confidence.LOW: 9, Confidence.MEDIUM: 4, Confidence.HIGH: 1}


class IndexedDependency(msgspec.Struct, frozen=True, kw_only=True):
    """What the index needs of a dependency, kept per dependency."""

    program_id: UUID
    title: str
    needed_by: date
    status: DependencyStatus


_DEPENDENCY_EVENTS = (
    DependencyRegistered,
    DependencyNeededByChanged,
    DependencyFlaggedAtRisk,
    DependencyRiskCleared,
    DependencyResolved,
    DependencyReopened,
)


_HANDLED: tuple[type[DomainEvent], ...] = (
    *RISK_EVENT_TYPES,
    *ASSUMPTION_EVENT_TYPES,
    *ISSUE_EVENT_TYPES,
    *_DEPENDENCY_EVENTS,
)


def _assumption(a: Assumption, version: int) -> tuple[Any, ...]:
    valid, invalid = a.validation, a.invalidation
    return (
        a.program_id,
        a.workstream_id,
        a.statement,
        a.description,
        a.owner,
        a.confidence.value,
        a.validate_by,
        a.status.value,
        None if valid is None else valid.evidence,
        None if valid is None else valid.on,
        None if invalid is None else invalid.evidence,
        None if invalid is None else invalid.on,
        a.raised_risk_id,
        a.raised_issue_id,
        version,
    )


def _issue(i: Issue, version: int) -> tuple[Any, ...]:
    escalated = i.escalation
    return (
        i.program_id,
        i.workstream_id,
        i.title,
        i.description,
        i.severity.value,
        i.owner,
        i.due_on,
        i.status.value,
        i.risk_id,
        i.assumption_id,
        i.resolution,
        i.resolved_on,
        None if escalated is None else escalated.escalated_to,
        None if escalated is None else escalated.reason,
        version,
    )


def _index(item: Risk | Assumption | Issue | IndexedDependency) -> tuple[Any, ...]:
    """The RAID index row: program, title, status, open, owner, severity rank, due date,
    escalated, ROAM."""
    match item:
        case Risk():
            return (
                item.program_id,
                item.title,
                item.status.value,
                item.status is not RiskStatus.CLOSED,
                item.owner,
                item.score,
                item.next_review_on,
                item.escalation is not None,
                None if item.roam is None else item.roam.value,
            )
        case Assumption():
            return (
                item.program_id,
                item.statement,
                item.status.value,
                item.status is AssumptionStatus.OPEN,
                item.owner,
                _DOUBT_RANK[item.confidence] if item.status is AssumptionStatus.OPEN else 0,
                item.validate_by,
                False,
                None,
            )
        case Issue():
            return (
                item.program_id,
                item.title,
                item.status.value,
                item.status is IssueStatus.OPEN,
                item.owner,
                _ISSUE_RANK[item.severity],
                item.due_on,
                item.escalation is not None,
                None,
            )
        case IndexedDependency():
            return (
                item.program_id,
                item.title,
                item.status.value,
                item.status is not DependencyStatus.RESOLVED,
                None,
                9 if item.status is DependencyStatus.AT_RISK else 0,
                item.needed_by,
                False,
                None,
            )


def dependency_after(before: IndexedDependency | None, event: Any) -> IndexedDependency:
    """The dependency after one of its events, as the Program aggregate's ``evolve``
    changes it (``tests/unit/test_properties.py`` holds them equal on random histories)."""
    match event:
        case DependencyRegistered():
            return IndexedDependency(
                program_id=event.program_id,
                title=event.title,
                needed_by=event.needed_by,
                status=DependencyStatus.OPEN,
            )
    assert before is not None, f"{event.event_type} before DependencyRegistered"
    match event:
        case DependencyNeededByChanged():
            return msgspec.structs.replace(before, needed_by=event.needed_by)
        case DependencyFlaggedAtRisk():
            return msgspec.structs.replace(before, status=DependencyStatus.AT_RISK)
        case DependencyResolved():
            return msgspec.structs.replace(before, status=DependencyStatus.RESOLVED)
    return msgspec.structs.replace(before, status=DependencyStatus.OPEN)


def _state_keys(event: ProjectedEvent) -> tuple[str, ...]:
    data = event.event
    if isinstance(data, _DEPENDENCY_EVENTS):
        return (f"dependency-{data.dependency_id}",)
    return (event.stream_id,)


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    data = event.event
    if isinstance(data, _DEPENDENCY_EVENTS):
        key = f"dependency-{data.dependency_id}"
        earlier: IndexedDependency | None = ctx.state(key)
        dependency = dependency_after(earlier, data)
        ctx.set_state(key, dependency)
        ctx.change(
            RAID_ITEMS,
            (RaidKind.DEPENDENCY.value, data.dependency_id),
            None if earlier is None else _index(earlier),
            _index(dependency),
        )
        return
    before, after = fold(ctx, event)
    match after:
        case Risk():
            kind, item_id = RaidKind.RISK, after.risk_id
        case Assumption():
            kind, item_id = RaidKind.ASSUMPTION, after.assumption_id
            _write(ctx, ASSUMPTIONS, item_id, before, _assumption(after, event.version))
        case Issue():
            kind, item_id = RaidKind.ISSUE, after.issue_id
            _write(ctx, ISSUES, item_id, before, _issue(after, event.version))
    old = None if before is None else _index(before)
    ctx.change(RAID_ITEMS, (kind.value, item_id), old, _index(after))


def _write(ctx: Context, table: Table, key: UUID, before: Any, row: tuple[Any, ...]) -> None:
    if before is None:
        ctx.change(table, (key,), None, row)
    else:
        ctx.replace(table, (key,), row)


PROJECTION = Projection(
    name="raid",
    description="the RAID log: assumptions, issues and one index of risks, assumptions, "
    "issues and dependencies",
    handles=frozenset(t.event_type for t in _HANDLED),
    tables=(ASSUMPTIONS, ISSUES, RAID_ITEMS),
    states={
        "risk": Tracked[Risk],
        "assumption": Tracked[Assumption],
        "issue": Tracked[Issue],
        "dependency": IndexedDependency,
    },
    handle=_handle,
    state_keys=_state_keys,
    share_key="stream",
)


# Queries


class AssumptionRow(VersionedRow, frozen=True, kw_only=True):
    assumption_id: UUID
    program_id: UUID
    workstream_id: UUID | None
    statement: str
    description: str | None
    owner: str
    confidence: str
    validate_by: date
    status: str
    validation_evidence: str | None
    validated_on: date | None
    invalidation_evidence: str | None
    invalidated_on: date | None
    raised_risk_id: UUID | None
    raised_issue_id: UUID | None
    version: int


class IssueRow(VersionedRow, frozen=True, kw_only=True):
    issue_id: UUID
    program_id: UUID
    workstream_id: UUID | None
    title: str
    description: str | None
    severity: str
    owner: str
    due_on: date
    status: str
    risk_id: UUID | None
    assumption_id: UUID | None
    resolution: str | None
    resolved_on: date | None
    escalated_to: str | None
    escalation_reason: str | None
    version: int


class RaidItemRow(VersionedRow, frozen=True, kw_only=True):
    kind: str
    item_id: UUID
    program_id: UUID
    title: str
    status: str
    is_open: bool
    owner: str | None
    severity: int
    due_on: date | None
    escalated: bool
    roam: str | None


def _assumption_row(data: dict[str, Any]) -> AssumptionRow:
    return AssumptionRow(**data)


def _issue_row(data: dict[str, Any]) -> IssueRow:
    return IssueRow(**data)


def _raid_row(data: dict[str, Any]) -> RaidItemRow:
    return RaidItemRow(**data)


ASSUMPTION_LIST = ListSpec(table=ASSUMPTIONS, convert=_assumption_row)
ISSUE_LIST = ListSpec(table=ISSUES, convert=_issue_row)
RAID_LIST = ListSpec(table=RAID_ITEMS, convert=_raid_row)


async def list_raid(
    pool: Reader,
    *,
    program_ids: Sequence[UUID] | None = None,
    kinds: Sequence[str] | None = None,
    status: Sequence[str] | None = None,
    owner: str | None = None,
    open_only: bool = False,
    escalated: bool | None = None,
    roam: Sequence[str] | None = None,
    min_severity: int | None = None,
    due_before: date | None = None,
    sort: str = "severity",
    descending: bool = True,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[RaidItemRow]:
    """The RAID log of ``program_ids`` (every program when ``None``), by default the most
    severe first. ``due_before`` keeps items whose due date lies before that day."""
    filters = Filters()
    filters.any_of("program_id", program_ids, "uuid")
    filters.any_of("kind", kinds, "text")
    filters.any_of("status", status, "text")
    filters.equals("owner", owner)
    filters.equals("escalated", escalated)
    filters.any_of("roam", roam, "text")
    if open_only:
        filters.where("is_open")
    if min_severity is not None:
        filters.where("severity >= {}", min_severity)
    if due_before is not None:
        filters.where("due_on < {}", due_before)
    return await fetch_page(
        pool,
        RAID_LIST,
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


async def get_assumption(
    pool: Reader, assumption_id: UUID, *, as_of: AsOf = None
) -> AssumptionRow | None:
    return await fetch_one(pool, ASSUMPTIONS, _assumption_row, (assumption_id,), as_of)


async def get_issue(pool: Reader, issue_id: UUID, *, as_of: AsOf = None) -> IssueRow | None:
    return await fetch_one(pool, ISSUES, _issue_row, (issue_id,), as_of)


async def assumptions_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, AssumptionRow]:
    return await fetch_by_key(pool, ASSUMPTION_LIST, ids, as_of=as_of)


async def issues_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, IssueRow]:
    return await fetch_by_key(pool, ISSUE_LIST, ids, as_of=as_of)
