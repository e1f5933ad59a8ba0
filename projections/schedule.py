"""The schedule network and change control: what the schedule arithmetic is fed.

Rows hold only recorded facts: each milestone's own estimate (its forecast, or its actual
date once done), duration and current baseline; each link; every baseline version with
its dates; every change request. Forecasts moved by predecessors, float and the critical
path are not stored: they are computed by ``domain.scheduling`` from the rows current at
the position asked for, so a slip is visible as soon as the one event that caused it is
applied, and "as of" any position is exactly the computation over the events up to it.

An unlinked link keeps its row, marked ``removed`` (the arithmetic reads the others), so
who removed it and why stay readable; a link id used again after its unlink replaces
that row, which a small state per link (``link-<id>``: a row exists) tells the handler.

Tables (all versioned): ``rm_schedule_milestones`` (key ``milestone_id``),
``rm_schedule_links`` (``link_id``), ``rm_schedule_baselines`` (``program_id, version``),
``rm_schedule_baseline_dates`` (``program_id, version, milestone_id``),
``rm_change_requests`` (``change_request_id``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

import msgspec

from programledger.domain.program import (
    PROGRAM_EVENT_TYPES,
    Baseline,
    ChangeRequest,
    ChangeRequestApproved,
    Milestone,
    MilestoneStatus,
    Program,
)
from programledger.domain.schedule import (
    SCHEDULE_EVENT_TYPES,
    MilestonesLinked,
    MilestonesUnlinked,
    ScheduleLink,
)
from programledger.domain.scheduling import Activity, Edge, LinkType, Network
from programledger.projections.engine.core import (
    Connection,
    Context,
    ProjectedEvent,
    Projection,
    Tracked,
    fold,
)
from programledger.projections.engine.queries import (
    AsOf,
    Filters,
    Reader,
    VersionedRow,
    resolve_position,
    stamps_sql,
    version_clause,
)
from programledger.projections.engine.tables import CURRENT, Column, Index, Table

__all__ = [
    "BASELINES",
    "BASELINE_DATES",
    "CHANGE_REQUESTS",
    "LINKS",
    "MILESTONES",
    "PROJECTION",
    "BaselineRow",
    "ChangeRequestRow",
    "DateMove",
    "ScheduleLinkRow",
    "ScheduleMilestoneRow",
    "ScheduleRead",
    "baselines",
    "change_requests",
    "date_moves",
    "read_schedule",
    "schedule_links",
]

MILESTONES = Table(
    "rm_schedule_milestones",
    key=(Column("milestone_id", "uuid", True),),
    columns=(
        Column("program_id", "uuid", True),
        Column("program_code", "text", True),
        Column("name", "text", True),
        Column("own_date", "date", True),
        Column("baseline_date", "date", True),
        Column("duration_days", "integer", True),
        Column("done", "boolean", True),
        Column("status", "text", True),
    ),
    indexes=(Index("program_history", "(program_id, valid_from_pos)"),),
)

LINKS = Table(
    "rm_schedule_links",
    key=(Column("link_id", "uuid", True),),
    columns=(
        Column("predecessor_program_id", "uuid", True),
        Column("predecessor_id", "uuid", True),
        Column("successor_program_id", "uuid", True),
        Column("successor_id", "uuid", True),
        Column("link_type", "text", True),
        Column("lag_days", "integer", True),
        Column("removed", "boolean", True),
    ),
    indexes=(
        Index("predecessor_program", "(predecessor_program_id)", CURRENT),
        Index("successor_program", "(successor_program_id)", CURRENT),
    ),
)

BASELINES = Table(
    "rm_schedule_baselines",
    key=(Column("program_id", "uuid", True), Column("version", "integer", True)),
    columns=(
        Column("name", "text", True),
        Column("change_request_id", "uuid"),
        Column("budget_minor", "bigint", True),
        Column("currency", "text", True),
        Column("scope", "text[]", True),
    ),
)

BASELINE_DATES = Table(
    "rm_schedule_baseline_dates",
    key=(
        Column("program_id", "uuid", True),
        Column("version", "integer", True),
        Column("milestone_id", "uuid", True),
    ),
    columns=(Column("baseline_date", "date", True),),
)

CHANGE_REQUESTS = Table(
    "rm_change_requests",
    key=(Column("change_request_id", "uuid", True),),
    columns=(
        Column("program_id", "uuid", True),
        Column("title", "text", True),
        Column("description", "text", True),
        Column("raised_by", "text", True),
        Column("status", "text", True),
        Column("impact_milestone_ids", "uuid[]", True),
        Column("impact_dates", "date[]", True),
        Column("budget_impact_minor", "bigint"),
        Column("budget_impact_currency", "text"),
        Column("scope_added", "text[]", True),
        Column("scope_removed", "text[]", True),
        Column("assessed_by", "text"),
        Column("assessment", "text"),
        Column("decided_by", "text"),
        Column("decision_reason", "text"),
        Column("baseline_version", "integer"),
    ),
    indexes=(Index("program_history", "(program_id, valid_from_pos)"),),
)


def _milestone(program: Program, m: Milestone) -> tuple[Any, ...]:
    return (
        program.program_id,
        program.code,
        m.name,
        m.forecast_date,
        m.baseline_date,
        m.duration_days,
        m.status is MilestoneStatus.DONE,
        m.status.value,
    )


def _link(link: ScheduleLink, removed: bool = False) -> tuple[Any, ...]:
    return (
        link.predecessor.program_id,
        link.predecessor.milestone_id,
        link.successor.program_id,
        link.successor.milestone_id,
        link.type.value,
        link.lag_days,
        removed,
    )


def _change_request(program_id: UUID, r: ChangeRequest) -> tuple[Any, ...]:
    budget = r.budget_impact
    return (
        program_id,
        r.title,
        r.description,
        r.raised_by,
        r.status.value,
        [d.milestone_id for d in r.schedule_impact],
        [d.day for d in r.schedule_impact],
        None if budget is None else budget.amount_minor,
        None if budget is None else budget.currency,
        list(r.scope_added),
        list(r.scope_removed),
        r.assessed_by,
        r.assessment,
        r.decided_by,
        r.decision_reason,
        r.baseline_version,
    )


Item = TypeVar("Item")


def _by_id(items: Iterable[Item], key: Callable[[Item], UUID]) -> dict[UUID, Item]:
    return {key(item): item for item in items}


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    data = event.event
    if isinstance(data, MilestonesLinked):
        for link in data.links:
            key = f"link-{link.link_id}"
            if ctx.state(key):  # the row of an earlier link of this id, removed
                ctx.replace(LINKS, (link.link_id,), _link(link))
            else:
                ctx.change(LINKS, (link.link_id,), None, _link(link))
            ctx.set_state(key, True)
        return
    if isinstance(data, MilestonesUnlinked):
        for link in data.links:
            ctx.change(LINKS, (link.link_id,), _link(link), _link(link, removed=True))
        return
    before, after = fold(ctx, event)
    milestone_id = getattr(data, "milestone_id", None)
    if isinstance(milestone_id, UUID) or isinstance(data, ChangeRequestApproved):
        was = {} if before is None else _by_id(before.milestones, lambda m: m.milestone_id)
        for m in after.milestones:
            if milestone_id is None or m.milestone_id == milestone_id:
                ctx.change_item(
                    MILESTONES,
                    (m.milestone_id,),
                    was.get(m.milestone_id),
                    m,
                    lambda item: _milestone(after, item),
                )
    request_id = getattr(data, "change_request_id", None)
    if isinstance(request_id, UUID):
        old = None if before is None else _by_id(before.change_requests, _request_id)
        new = _by_id(after.change_requests, _request_id)
        ctx.change_item(
            CHANGE_REQUESTS,
            (request_id,),
            None if old is None else old.get(request_id),
            new.get(request_id),
            lambda item: _change_request(after.program_id, item),
        )
    if isinstance(data, ChangeRequestApproved):
        known = 0 if before is None else len(before.baselines)
        for baseline in after.baselines[known:]:
            _add_baseline(ctx, after.program_id, baseline)


def _request_id(r: ChangeRequest) -> UUID:
    return r.change_request_id


def _add_baseline(ctx: Context, program_id: UUID, b: Baseline) -> None:
    ctx.change(
        BASELINES,
        (program_id, b.version),
        None,
        (b.name, b.change_request_id, b.budget.amount_minor, b.budget.currency, list(b.scope)),
    )
    for d in b.milestone_dates:
        ctx.change(BASELINE_DATES, (program_id, b.version, d.milestone_id), None, (d.day,))


def _state_keys(event: ProjectedEvent) -> tuple[str, ...]:
    if event.stream_type == "program":
        return (event.stream_id,)
    if isinstance(event.event, MilestonesLinked):
        return tuple(f"link-{link.link_id}" for link in event.event.links)
    return ()


PROJECTION = Projection(
    name="schedule",
    description="schedule network (milestone estimates, links), baselines, change requests",
    handles=frozenset(t.event_type for t in (*PROGRAM_EVENT_TYPES, *SCHEDULE_EVENT_TYPES)),
    tables=(MILESTONES, LINKS, BASELINES, BASELINE_DATES, CHANGE_REQUESTS),
    states={"program": Tracked[Program], "link": bool},
    handle=_handle,
    state_keys=_state_keys,
)


# Queries


class ScheduleMilestoneRow(msgspec.Struct, frozen=True, kw_only=True):
    milestone_id: UUID
    program_id: UUID
    program_code: str
    name: str
    own_date: date
    """The forecast its program set (the actual date once done)."""
    baseline_date: date
    duration_days: int
    done: bool
    status: str


class ScheduleRead(NamedTuple):
    """The network current at one position, ready for ``domain.scheduling``."""

    position: int | None
    """``None``: read now (in one snapshot)."""
    milestones: dict[UUID, ScheduleMilestoneRow]
    network: Network[UUID]


_LINK_TYPES = {t.value: t for t in LinkType}


async def read_schedule(pool: Reader, as_of: AsOf = None) -> ScheduleRead:
    """Every milestone and link current now or at ``as_of``, read in one snapshot (links
    with just what the arithmetic needs: 20,000 of them are most of the read)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        position = await resolve_position(conn, as_of)
        rows = await _rows(conn, MILESTONES, position)
        filters = Filters()
        filters.where("NOT removed")
        version_clause(filters, position, LINKS)
        links = await conn.fetch(
            f"SELECT predecessor_id, successor_id, link_type, lag_days FROM {LINKS.name} "
            f"WHERE {filters.sql()}",
            *filters.args,
        )
    milestones = {r["milestone_id"]: ScheduleMilestoneRow(**_columns(r, MILESTONES)) for r in rows}
    network = Network.build(
        (
            Activity(m.milestone_id, m.program_id, m.own_date, m.duration_days, m.done)
            for m in milestones.values()
        ),
        (Edge(p, s, _LINK_TYPES[t], lag) for p, s, t, lag in links),
    )
    return ScheduleRead(position, milestones, network)


def _columns(record: Any, table: Table) -> dict[str, Any]:
    return {name: record[name] for name in (*table.key_names, *(c.name for c in table.columns))}


async def _rows(
    conn: Connection, table: Table, position: int | None, filters: Filters | None = None
) -> list[Any]:
    filters = filters or Filters()
    version_clause(filters, position, table)
    names = ", ".join((*table.key_names, *(c.name for c in table.columns)))
    return list(
        await conn.fetch(f"SELECT {names} FROM {table.name} WHERE {filters.sql()}", *filters.args)
    )


class BaselineRow(msgspec.Struct, frozen=True, kw_only=True):
    program_id: UUID
    version: int
    name: str
    change_request_id: UUID | None
    budget_minor: int
    currency: str
    scope: list[str]
    dates: dict[UUID, date]


async def baselines(pool: Reader, program_id: UUID, as_of: AsOf = None) -> list[BaselineRow]:
    """A program's approved baselines in version order (none before its first approved
    change request: then its milestones' baseline dates are version 0)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        position = await resolve_position(conn, as_of)
        filters = Filters()
        filters.equals("program_id", program_id)
        heads = await _rows(conn, BASELINES, position, filters.copy())
        dates = await _rows(conn, BASELINE_DATES, position, filters)
    by_version: dict[int, dict[UUID, date]] = {}
    for d in dates:
        by_version.setdefault(d["version"], {})[d["milestone_id"]] = d["baseline_date"]
    return sorted(
        (
            BaselineRow(**_columns(h, BASELINES), dates=by_version.get(h["version"], {}))
            for h in heads
        ),
        key=lambda b: b.version,
    )


class ChangeRequestRow(VersionedRow, frozen=True, kw_only=True):
    change_request_id: UUID
    program_id: UUID
    title: str
    description: str
    raised_by: str
    status: str
    impact_milestone_ids: list[UUID]
    impact_dates: list[date]
    budget_impact_minor: int | None
    budget_impact_currency: str | None
    scope_added: list[str]
    scope_removed: list[str]
    assessed_by: str | None
    assessment: str | None
    decided_by: str | None
    decision_reason: str | None
    baseline_version: int | None


async def change_requests(
    pool: Reader, program_id: UUID, as_of: AsOf = None
) -> list[ChangeRequestRow]:
    """A program's change requests, in the order they were raised."""
    async with pool.acquire() as conn:
        position = await resolve_position(conn, as_of)
        filters = Filters()
        filters.equals("program_id", program_id)
        version_clause(filters, position, CHANGE_REQUESTS, whole_list=False)
        table = CHANGE_REQUESTS.name
        names = ", ".join(CHANGE_REQUESTS.column_names)
        rows = await conn.fetch(
            f"SELECT {names}{stamps_sql(CHANGE_REQUESTS)}, (SELECT min(valid_from_pos) "
            f"FROM {table} f WHERE f.change_request_id = {table}.change_request_id) "
            f"AS raised_at__ FROM {table} WHERE {filters.sql()} "
            "ORDER BY raised_at__, change_request_id",
            *filters.args,
        )
    return [ChangeRequestRow(**{k: v for k, v in r.items() if k != "raised_at__"}) for r in rows]


class DateMove(msgspec.Struct, frozen=True, kw_only=True):
    """The recorded event that last set a milestone's own date: who moved it and why."""

    milestone_id: UUID
    event_type: str
    position: int
    recorded_at: datetime
    actor: str
    reason: str | None


_MOVES = ("MilestonePlanned", "MilestoneRescheduled", "MilestoneCompleted")


async def date_moves(
    pool: Reader, milestones: Sequence[tuple[UUID, UUID]], position: int | None
) -> dict[UUID, DateMove]:
    """For each ``(program_id, milestone_id)``, the last event up to ``position`` that set
    its own date, read from the event store itself (the record auditors trust); the
    reason is the event's own, else the command's."""
    if not milestones:
        return {}
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT DISTINCT ON (e.data->>'milestone_id') e.data->>'milestone_id' AS milestone, "
            "e.event_type, e.position, e.recorded_at, e.metadata->>'actor' AS actor, "
            "coalesce(e.data->>'reason', e.metadata->>'reason') AS reason "
            "FROM events e JOIN unnest($1::text[], $2::text[]) AS m(stream_id, milestone) "
            "ON e.stream_id = m.stream_id AND e.data->>'milestone_id' = m.milestone "
            "WHERE e.event_type = any($3::text[]) AND ($4::bigint IS NULL OR e.position <= $4) "
            "ORDER BY e.data->>'milestone_id', e.position DESC",
            [f"program-{p}" for p, _ in milestones],
            [str(m) for _, m in milestones],
            list(_MOVES),
            position,
        )
    return {
        UUID(r["milestone"]): DateMove(
            milestone_id=UUID(r["milestone"]),
            event_type=r["event_type"],
            position=r["position"],
            recorded_at=r["recorded_at"],
            actor=r["actor"],
            reason=r["reason"],
        )
        for r in rows
    }


class ScheduleLinkRow(VersionedRow, frozen=True, kw_only=True):
    link_id: UUID
    predecessor_program_id: UUID
    predecessor_id: UUID
    successor_program_id: UUID
    successor_id: UUID
    link_type: str
    lag_days: int
    removed: bool
    """Unlinked; the unlink's reason is the row's ``change_reason``."""


async def schedule_links(
    pool: Reader, program_id: UUID, *, include_removed: bool = False, as_of: AsOf = None
) -> list[ScheduleLinkRow]:
    """The links from or to a milestone of ``program_id``, in the order they were made
    (unlinked ones only with ``include_removed``)."""
    async with pool.acquire() as conn:
        position = await resolve_position(conn, as_of)
        filters = Filters()
        filters.where("(predecessor_program_id = {0} OR successor_program_id = {0})", program_id)
        if not include_removed:
            filters.where("NOT removed")
        version_clause(filters, position, LINKS)
        rows = await conn.fetch(
            f"SELECT {', '.join(LINKS.column_names)}{stamps_sql(LINKS)} FROM {LINKS.name} "
            f"WHERE {filters.sql()} ORDER BY (SELECT min(h.valid_from_pos) FROM {LINKS.name} h "
            f"WHERE h.link_id = {LINKS.name}.link_id), link_id",
            *filters.args,
        )
    return [ScheduleLinkRow(**dict(r)) for r in rows]
