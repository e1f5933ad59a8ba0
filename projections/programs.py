"""Programs: one row per program with what a portfolio view shows at a glance.

Current state (status, health, priority, dates, owner), budget planned / allocated /
actual, open risks per severity band, and the next milestone. The program's own fields
come from folding its stream with the domain's ``evolve``; the risk counts from folding
each risk stream of the program and moving the risk between bands as it changes
(a risk is open until it is CLOSED; a materialised risk is an issue, still open).

Tables: ``rm_programs`` (versioned, key ``program_id``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from uuid import UUID

import msgspec

from programledger.domain.program import (
    PROGRAM_EVENT_TYPES,
    MilestoneStatus,
    Program,
    allocated_budget,
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
from programledger.projections.engine.tables import Column, SortKey, Table

__all__ = [
    "PROGRAMS",
    "PROJECTION",
    "ProgramRow",
    "get_program",
    "get_program_by_code",
    "list_programs",
    "programs_by_id",
]

PROGRAMS = Table(
    "rm_programs",
    key=(Column("program_id", "uuid", True),),
    columns=(
        Column("code", "text", True),
        Column("name", "text", True),
        Column("description", "text"),
        Column("objective", "text", True),
        Column("objective_key", "text"),
        Column("sponsor", "text", True),
        Column("owner", "text", True),
        Column("priority", "integer", True),
        Column("start_date", "date", True),
        Column("target_end_date", "date", True),
        Column("status", "text", True),
        Column("health", "text"),
        Column("health_summary", "text"),
        Column("currency", "text", True),
        Column("budget_planned", "bigint", True),
        Column("budget_allocated", "bigint", True),
        Column("budget_actual", "bigint"),
        Column("actual_spend_as_of", "date"),
        Column("open_risks_low", "integer", True),
        Column("open_risks_medium", "integer", True),
        Column("open_risks_high", "integer", True),
        Column("open_risks_critical", "integer", True),
        Column("open_risks", "integer", True),
        Column("next_milestone_id", "uuid"),
        Column("next_milestone_name", "text"),
        Column("next_milestone_date", "date"),
        Column("version", "bigint", True),
    ),
    sorts={
        "code": SortKey("code", "text"),
        "name": SortKey("name", "text"),
        "priority": SortKey("priority", "integer"),
        "target_end_date": SortKey("target_end_date", "date"),
        "open_risks": SortKey("open_risks", "integer"),
        "status": SortKey("status", "text"),
        "budget_planned": SortKey("budget_planned", "bigint"),
    },
)


class OpenRisks(msgspec.Struct, frozen=True):
    """How many open risks a program has in each band."""

    low: int = 0
    medium: int = 0
    high: int = 0
    critical: int = 0

    def moved(self, before: str | None, after: str | None) -> OpenRisks:
        counts = msgspec.structs.asdict(self)
        if before is not None:
            counts[before] -= 1
        if after is not None:
            counts[after] += 1
        return OpenRisks(**counts)


_NO_RISKS = OpenRisks()


def _risks_key(program_id: UUID) -> str:
    return f"openrisks-{program_id}"


def _bucket(risk: Risk | None) -> str | None:
    if risk is None or risk.status is RiskStatus.CLOSED:
        return None
    return risk.band.value.lower()


def _row(p: Program, risks: OpenRisks, version: int) -> tuple[Any, ...]:
    upcoming = [m for m in p.milestones if m.status is not MilestoneStatus.DONE]
    following = min(upcoming, key=lambda m: (m.forecast_date, m.milestone_id), default=None)
    spend = p.actual_spend
    return (
        p.code,
        p.name,
        p.description,
        p.objective,
        p.objective_key,
        p.sponsor,
        p.owner,
        p.priority,
        p.start_date,
        p.target_end_date,
        p.status.value,
        None if p.health is None else p.health.value,
        p.health_summary,
        p.planned_budget.currency,
        p.planned_budget.amount_minor,
        allocated_budget(p),
        None if spend is None else spend.amount.amount_minor,
        None if spend is None else spend.as_of,
        risks.low,
        risks.medium,
        risks.high,
        risks.critical,
        risks.low + risks.medium + risks.high + risks.critical,
        None if following is None else following.milestone_id,
        None if following is None else following.name,
        None if following is None else following.forecast_date,
        version,
    )


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    if event.stream_type == "program":
        before, after = fold(ctx, event)
        counts: OpenRisks = ctx.state(_risks_key(after.program_id)) or _NO_RISKS
        row = _row(after, counts, event.version)
        if before is None:
            ctx.change(PROGRAMS, (after.program_id,), None, row)
        else:
            ctx.replace(PROGRAMS, (after.program_id,), row)
        return
    was, now = (_bucket(r) for r in fold(ctx, event))
    if was == now:
        return
    program_id = event.event.program_id  # type: ignore[attr-defined]
    key = _risks_key(program_id)
    risks: OpenRisks = ctx.state(key) or _NO_RISKS
    moved = risks.moved(was, now)
    ctx.set_state(key, moved)
    tracked: Tracked[Program] | None = ctx.state(f"program-{program_id}")
    if tracked is not None:
        p, version = tracked.state, tracked.version
        ctx.replace(PROGRAMS, (program_id,), _row(p, moved, version))


def _state_keys(event: ProjectedEvent) -> tuple[str, ...]:
    program_id = event.event.program_id  # type: ignore[attr-defined]
    if event.stream_type == "program":
        return (event.stream_id, _risks_key(program_id))
    return (event.stream_id, _risks_key(program_id), f"program-{program_id}")


PROJECTION = Projection(
    name="programs",
    description="one row per program: state, health, budget, open risks, next milestone",
    handles=frozenset(t.event_type for t in (*PROGRAM_EVENT_TYPES, *RISK_EVENT_TYPES)),
    tables=(PROGRAMS,),
    states={"program": Tracked[Program], "risk": Tracked[Risk], "openrisks": OpenRisks},
    handle=_handle,
    state_keys=_state_keys,
    share_key="program",
)


# Queries


class ProgramRow(VersionedRow, frozen=True, kw_only=True):
    program_id: UUID
    code: str
    name: str
    description: str | None
    objective: str
    objective_key: str | None
    sponsor: str
    owner: str
    priority: int
    start_date: date
    target_end_date: date
    status: str
    health: str | None
    health_summary: str | None
    currency: str
    budget_planned: int
    """Minor units of ``currency``, like every amount here."""
    budget_allocated: int
    budget_actual: int | None
    actual_spend_as_of: date | None
    open_risks_low: int
    open_risks_medium: int
    open_risks_high: int
    open_risks_critical: int
    open_risks: int
    next_milestone_id: UUID | None
    next_milestone_name: str | None
    next_milestone_date: date | None
    """The earliest forecast among milestones not done (missed ones included)."""
    version: int
    """The program stream's version: the expected version for the next command."""


def _program(data: dict[str, Any]) -> ProgramRow:
    return ProgramRow(**data)


LIST = ListSpec(table=PROGRAMS, convert=_program)


async def list_programs(
    pool: Reader,
    *,
    status: Sequence[str] | None = None,
    health: Sequence[str] | None = None,
    priority: Sequence[int] | None = None,
    owner: str | None = None,
    sort: str = "code",
    descending: bool = False,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[ProgramRow]:
    """Programs, current or as of a position or time, filtered and sorted."""
    filters = Filters()
    filters.any_of("status", status, "text")
    filters.any_of("health", health, "text")
    filters.any_of("priority", priority, "integer")
    filters.equals("owner", owner)
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
        count=count,
    )


async def get_program(pool: Reader, program_id: UUID, *, as_of: AsOf = None) -> ProgramRow | None:
    return await fetch_one(pool, PROGRAMS, _program, (program_id,), as_of)


async def get_program_by_code(pool: Reader, code: str, *, as_of: AsOf = None) -> ProgramRow | None:
    """The program with ``code`` (unique among programs) now or as of ``as_of``."""
    filters = Filters()
    filters.equals("code", code)
    page = await fetch_page(
        pool,
        LIST,
        filters,
        sort="code",
        descending=False,
        first=1,
        after=None,
        as_of=as_of,
        count=False,
    )
    return page.items[0] if page.items else None


async def programs_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, ProgramRow]:
    """The programs of ``ids`` in one statement."""
    return await fetch_by_key(pool, LIST, ids, as_of=as_of)
