"""Programs: one row per program with what a portfolio view shows at a glance, and the
parts a program is made of.

Current state (status, health, priority, dates, owner), budget planned / allocated /
actual, open risks per severity band, and the next milestone. The program's own fields
come from folding its stream with the domain's ``evolve``; the risk counts from folding
each risk stream of the program and moving the risk between bands as it changes
(a risk is open until it is CLOSED; a materialised risk is an issue, still open).

The parts, each a row that changes exactly when its item in the folded program does:
workstreams, stakeholders with their RACI role (a removed stakeholder keeps its row,
marked removed, so who was on the program and why they left stay readable), budget
allocations, and every spend report (a running total: one row per report, never changed,
so the history of what was reported when is a list).

Tables: ``rm_programs`` (key ``program_id``); keyed by ``program_id`` and the part's id
(ids are unique within a program): ``rm_workstreams`` (``workstream_id``),
``rm_stakeholders`` (``stakeholder_id``), ``rm_budget_allocations``
(``budget_allocation_id``), ``rm_spend_reports`` (the program stream's ``stream_version``
of the report); all versioned.

One module over 500 lines: the program row and its parts come from the same fold of the
program stream, in one handler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from uuid import UUID

import msgspec

from programledger.domain.program import (
    PROGRAM_EVENT_TYPES,
    ActualSpendReported,
    BudgetAllocated,
    BudgetAllocation,
    BudgetAllocationRevised,
    MilestoneStatus,
    Program,
    Stakeholder,
    StakeholderAdded,
    StakeholderRemoved,
    Workstream,
    WorkstreamAdded,
    WorkstreamUpdated,
    allocated_budget,
    find,
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
    fetch_grouped,
    fetch_one,
    fetch_page,
)
from programledger.projections.engine.tables import CURRENT, Column, Index, SortKey, Table

__all__ = [
    "BUDGET_ALLOCATIONS",
    "PROGRAMS",
    "PROJECTION",
    "SPEND_REPORTS",
    "STAKEHOLDERS",
    "WORKSTREAMS",
    "BudgetAllocationRow",
    "ProgramRow",
    "SpendReportRow",
    "StakeholderRow",
    "WorkstreamRow",
    "budget_allocations_by_id",
    "get_program",
    "get_program_by_code",
    "list_budget_allocations",
    "list_programs",
    "list_spend_reports",
    "list_stakeholders",
    "list_workstreams",
    "programs_by_id",
    "stakeholders_by_id",
    "workstreams_by_id",
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


def _part(name: str, key: str, columns: tuple[Column, ...], sorts: dict[str, SortKey]) -> Table:
    """A table of one kind of part of a program, listed per program in each of ``sorts``.
    Keyed by the program and the part's id: the domain checks ids within a program, so
    one person may be a stakeholder (with the same id) of several programs."""
    return Table(
        name,
        key=(Column("program_id", "uuid", True), Column(key, "uuid", True)),
        columns=columns,
        indexes=(
            Index("item", f"({key})", CURRENT),
            Index("program_history", "(program_id, valid_from_pos)"),
        ),
        sorts=sorts,
    )


WORKSTREAMS = _part(
    "rm_workstreams",
    "workstream_id",
    (
        Column("name", "text", True),
        Column("lead", "text", True),
        Column("department", "text", True),
        Column("description", "text"),
    ),
    {"name": SortKey("name", "text"), "department": SortKey("department", "text", False)},
)

STAKEHOLDERS = _part(
    "rm_stakeholders",
    "stakeholder_id",
    (
        Column("name", "text", True),
        Column("kind", "text", True),
        Column("department", "text", True),
        Column("role", "text", True),
        Column("removed", "boolean", True),
    ),
    {
        "name": SortKey("name", "text"),
        "role": SortKey("role", "text", False),
        "department": SortKey("department", "text", False),
    },
)

BUDGET_ALLOCATIONS = _part(
    "rm_budget_allocations",
    "budget_allocation_id",
    (
        Column("workstream_id", "uuid"),
        Column("cost_centre", "text"),
        Column("currency", "text", True),
        Column("amount", "bigint", True),
        Column("purpose", "text"),
    ),
    {"amount": SortKey("amount", "bigint")},
)

SPEND_REPORTS = Table(
    "rm_spend_reports",
    key=(Column("program_id", "uuid", True), Column("stream_version", "bigint", True)),
    columns=(
        Column("currency", "text", True),
        Column("amount", "bigint", True),
        Column("as_of", "date", True),
        Column("note", "text"),
    ),
    sorts={
        "reported": SortKey("stream_version", "bigint"),
        "as_of": SortKey("as_of", "date", False),
    },
)


def _workstream(w: Workstream) -> tuple[Any, ...]:
    return (w.name, w.lead, w.department.value, w.description)


def _stakeholder(s: Stakeholder, removed: bool) -> tuple[Any, ...]:
    return (s.name, s.kind.value, s.department.value, s.role.value, removed)


def _budget_allocation(b: BudgetAllocation) -> tuple[Any, ...]:
    return (
        b.workstream_id,
        b.cost_centre,
        b.amount.currency,
        b.amount.amount_minor,
        b.purpose,
    )


def _parts(ctx: Context, before: Program | None, after: Program, event: ProjectedEvent) -> None:
    """The part rows the program event changed (none for most events)."""
    program_id = after.program_id
    match event.event:
        case WorkstreamAdded(workstream_id=item) | WorkstreamUpdated(workstream_id=item):
            ctx.change_item(
                WORKSTREAMS,
                (program_id, item),
                None if before is None else find(before.workstreams, _workstream_id, item),
                find(after.workstreams, _workstream_id, item),
                _workstream,
            )
        case StakeholderAdded(stakeholder_id=item):
            added = find(after.stakeholders, _stakeholder_id, item)
            assert added is not None
            key = _stakeholder_key(program_id, item)
            if ctx.state(key):  # removed before, added again
                ctx.replace(STAKEHOLDERS, (program_id, item), _stakeholder(added, False))
            else:
                ctx.change(STAKEHOLDERS, (program_id, item), None, _stakeholder(added, False))
            ctx.set_state(key, True)
        case StakeholderRemoved(stakeholder_id=item):
            gone = None if before is None else find(before.stakeholders, _stakeholder_id, item)
            assert gone is not None
            ctx.change(
                STAKEHOLDERS,
                (program_id, item),
                _stakeholder(gone, False),
                _stakeholder(gone, True),
            )
        case (
            BudgetAllocated(budget_allocation_id=item)
            | BudgetAllocationRevised(budget_allocation_id=item)
        ):
            ctx.change_item(
                BUDGET_ALLOCATIONS,
                (program_id, item),
                None if before is None else find(before.budget_allocations, _budget_id, item),
                find(after.budget_allocations, _budget_id, item),
                _budget_allocation,
            )
        case ActualSpendReported(amount=amount, as_of=as_of, note=note):
            row = (amount.currency, amount.amount_minor, as_of, note)
            ctx.change(SPEND_REPORTS, (program_id, event.version), None, row)


def _stakeholder_key(program_id: UUID, stakeholder_id: UUID) -> str:
    """The state saying a stakeholder has a row: a removed one keeps it, and the program
    no longer knows the stakeholder."""
    return f"stakeholder-{program_id}-{stakeholder_id}"


def _workstream_id(w: Workstream) -> UUID:
    return w.workstream_id


def _stakeholder_id(s: Stakeholder) -> UUID:
    return s.stakeholder_id


def _budget_id(b: BudgetAllocation) -> UUID:
    return b.budget_allocation_id


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
        _parts(ctx, before, after, event)
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
        if isinstance(event.event, StakeholderAdded):
            return (
                event.stream_id,
                _risks_key(program_id),
                _stakeholder_key(program_id, event.event.stakeholder_id),
            )
        return (event.stream_id, _risks_key(program_id))
    return (event.stream_id, _risks_key(program_id), f"program-{program_id}")


PROJECTION = Projection(
    name="programs",
    description=(
        "one row per program: state, health, budget, open risks, next milestone; and its "
        "workstreams, stakeholders, budget allocations and spend reports"
    ),
    handles=frozenset(t.event_type for t in (*PROGRAM_EVENT_TYPES, *RISK_EVENT_TYPES)),
    tables=(PROGRAMS, WORKSTREAMS, STAKEHOLDERS, BUDGET_ALLOCATIONS, SPEND_REPORTS),
    states={
        "program": Tracked[Program],
        "risk": Tracked[Risk],
        "openrisks": OpenRisks,
        "stakeholder": bool,
    },
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


class WorkstreamRow(VersionedRow, frozen=True, kw_only=True):
    workstream_id: UUID
    program_id: UUID
    name: str
    lead: str
    department: str
    description: str | None


class StakeholderRow(VersionedRow, frozen=True, kw_only=True):
    stakeholder_id: UUID
    program_id: UUID
    name: str
    kind: str
    department: str
    role: str
    """The RACI role: RESPONSIBLE, ACCOUNTABLE, CONSULTED or INFORMED."""
    removed: bool
    """Taken off the program; the removal's reason is the row's ``change_reason``."""


class BudgetAllocationRow(VersionedRow, frozen=True, kw_only=True):
    budget_allocation_id: UUID
    program_id: UUID
    workstream_id: UUID | None
    cost_centre: str | None
    currency: str
    amount: int
    """Minor units of ``currency``."""
    purpose: str | None


class SpendReportRow(VersionedRow, frozen=True, kw_only=True):
    program_id: UUID
    stream_version: int
    """The program stream's version the report was recorded at: reports in this order are
    the history of the running total."""
    currency: str
    amount: int
    """Actual spend to date, minor units of ``currency``: a running total."""
    as_of: date
    note: str | None


WORKSTREAM_LIST = ListSpec(table=WORKSTREAMS, convert=lambda data: WorkstreamRow(**data))
STAKEHOLDER_LIST = ListSpec(table=STAKEHOLDERS, convert=lambda data: StakeholderRow(**data))
BUDGET_ALLOCATION_LIST = ListSpec(
    table=BUDGET_ALLOCATIONS, convert=lambda data: BudgetAllocationRow(**data)
)
SPEND_REPORT_LIST = ListSpec(table=SPEND_REPORTS, convert=lambda data: SpendReportRow(**data))


async def list_workstreams(
    pool: Reader,
    *,
    program_id: UUID | None = None,
    department: Sequence[str] | None = None,
    sort: str = "name",
    descending: bool = False,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[WorkstreamRow]:
    """The workstreams of one program or all, by department if asked."""
    filters = Filters()
    filters.equals("program_id", program_id)
    filters.any_of("department", department, "text")
    return await fetch_page(
        pool,
        WORKSTREAM_LIST,
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


async def list_stakeholders(
    pool: Reader,
    *,
    program_id: UUID | None = None,
    role: Sequence[str] | None = None,
    department: Sequence[str] | None = None,
    include_removed: bool = False,
    sort: str = "name",
    descending: bool = False,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[StakeholderRow]:
    """The stakeholders of one program or all, by RACI role and department; those removed
    only with ``include_removed``."""
    filters = Filters()
    filters.equals("program_id", program_id)
    filters.any_of("role", role, "text")
    filters.any_of("department", department, "text")
    if not include_removed:
        filters.where("NOT removed")
    return await fetch_page(
        pool,
        STAKEHOLDER_LIST,
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


async def list_budget_allocations(
    pool: Reader,
    *,
    program_id: UUID | None = None,
    workstream_id: UUID | None = None,
    sort: str = "amount",
    descending: bool = True,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[BudgetAllocationRow]:
    """The budget allocations of one program or all (or of one workstream), largest first."""
    filters = Filters()
    filters.equals("program_id", program_id)
    filters.equals("workstream_id", workstream_id)
    return await fetch_page(
        pool,
        BUDGET_ALLOCATION_LIST,
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


async def list_spend_reports(
    pool: Reader,
    *,
    program_id: UUID,
    sort: str = "reported",
    descending: bool = True,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[SpendReportRow]:
    """Every spend report of a program, the latest first: the history of actual spend."""
    filters = Filters()
    filters.equals("program_id", program_id)
    return await fetch_page(
        pool,
        SPEND_REPORT_LIST,
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


async def _parts_by_id(
    pool: Reader,
    spec: ListSpec[Any],
    column: str,
    ids: Sequence[tuple[UUID, UUID]],
    as_of: int | None,
) -> dict[tuple[UUID, UUID], Any]:
    """The parts of ``ids`` (program and part ids) in one statement."""
    wanted = set(ids)
    found = await fetch_grouped(
        pool,
        spec,
        column,
        sorted({part for _, part in wanted}, key=str),
        sort=next(iter(spec.table.sorts)),
        descending=False,
        as_of=as_of,
    )
    rows = (row for listed in found.values() for row in listed)
    return {key: row for row in rows if (key := (row.program_id, getattr(row, column))) in wanted}


async def workstreams_by_id(
    pool: Reader, ids: Sequence[tuple[UUID, UUID]], *, as_of: int | None = None
) -> Mapping[tuple[UUID, UUID], WorkstreamRow]:
    """The workstreams of ``ids`` (program and workstream ids) in one statement."""
    return await _parts_by_id(pool, WORKSTREAM_LIST, "workstream_id", ids, as_of)


async def stakeholders_by_id(
    pool: Reader, ids: Sequence[tuple[UUID, UUID]], *, as_of: int | None = None
) -> Mapping[tuple[UUID, UUID], StakeholderRow]:
    """The stakeholders of ``ids`` (program and stakeholder ids; removed ones too)."""
    return await _parts_by_id(pool, STAKEHOLDER_LIST, "stakeholder_id", ids, as_of)


async def budget_allocations_by_id(
    pool: Reader, ids: Sequence[tuple[UUID, UUID]], *, as_of: int | None = None
) -> Mapping[tuple[UUID, UUID], BudgetAllocationRow]:
    """The budget allocations of ``ids`` (program and allocation ids) in one statement."""
    return await _parts_by_id(pool, BUDGET_ALLOCATION_LIST, "budget_allocation_id", ids, as_of)
