"""Portfolios and objectives, with each portfolio's roll-up kept up to date.

One row per portfolio holds its details and its roll-up over the programs in it: how many
are GREEN / AMBER / RED / not yet reported, open risks per severity band and their total
score (exposure), milestones, how many slipped (forecast after baseline) and their slip
days, and the progress and confidence of the key results of the objectives its programs
serve, and budgets summed per currency (programs keep the currency they were proposed
in). Every row is versioned like every read model,
so a roll-up as of any position is one row read, never a scan of the programs.

How it stays cheap: each program's share of a roll-up (its *contribution*: health,
budget, open risks, slips, portfolio) is a state of its own, updated from the program's
and its risks' events; one state, ``rollups``, holds the figures of every portfolio and
which objectives each one's programs serve. An event changes its program's contribution
and moves the difference into the portfolio it is in, so a program outside every
portfolio writes no row. Moves, key-result check-ins and objective links are also kept
as history rows, one per event.

Tables: ``rm_portfolios`` (the budgets per currency in a ``jsonb`` column of the row),
``rm_portfolio_programs`` (which
portfolio each program is in), ``rm_objectives``, ``rm_key_results``,
``rm_objective_programs`` (versioned); ``rm_portfolio_moves``, ``rm_key_result_check_ins``,
``rm_objective_links`` (one row per event).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec
from msgspec.structs import replace

from programledger.domain import portfolio as portfolio_aggregate
from programledger.domain.objective import (
    OBJECTIVE_EVENT_TYPES,
    KeyResult,
    KeyResultCheckedIn,
    Objective,
    ObjectiveClosed,
    ObjectiveLinkedToProgram,
    ObjectiveUnlinkedFromProgram,
    key_result_progress,
)
from programledger.domain.portfolio import (
    PORTFOLIO_EVENT_TYPES,
    Portfolio,
    PortfolioArchived,
    PortfolioReopened,
)
from programledger.domain.program import (
    PROGRAM_EVENT_TYPES,
    Program,
    ProgramMovedToPortfolio,
    allocated_budget,
    slip_days,
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
    resolve_position,
    stamps_sql,
)
from programledger.projections.engine.tables import CURRENT, Column, Index, SortKey, Table

__all__ = [
    "CHECK_INS",
    "KEY_RESULTS",
    "LINKS",
    "MEMBERS",
    "MOVES",
    "OBJECTIVES",
    "OBJECTIVE_PROGRAMS",
    "PORTFOLIOS",
    "PROJECTION",
    "CheckInRow",
    "KeyResultRow",
    "LinkRow",
    "MemberRow",
    "MoveRow",
    "ObjectiveProgramRow",
    "ObjectiveRow",
    "PortfolioBudget",
    "PortfolioRow",
    "get_objective",
    "get_portfolio",
    "list_check_ins",
    "list_key_results",
    "list_links",
    "list_members",
    "list_moves",
    "list_objective_programs",
    "list_objectives",
    "list_portfolios",
    "member_of",
    "objectives_by_id",
    "portfolio_of",
    "portfolios_by_id",
]

_ROLLUP_COLUMNS = (
    Column("programs", "integer", True),
    Column("health", "text"),
    Column("programs_green", "integer", True),
    Column("programs_amber", "integer", True),
    Column("programs_red", "integer", True),
    Column("programs_unreported", "integer", True),
    Column("open_risks_low", "integer", True),
    Column("open_risks_medium", "integer", True),
    Column("open_risks_high", "integer", True),
    Column("open_risks_critical", "integer", True),
    Column("open_risks", "integer", True),
    Column("risk_exposure", "integer", True),
    Column("milestones", "integer", True),
    Column("milestones_slipped", "integer", True),
    Column("slip_days", "bigint", True),
    Column("objectives", "integer", True),
    Column("key_results", "integer", True),
    Column("key_result_progress", "integer"),
    Column("key_result_confidence", "integer"),
)

PORTFOLIOS = Table(
    "rm_portfolios",
    key=(Column("portfolio_id", "uuid", True),),
    columns=(
        Column("name", "text", True),
        Column("owner", "text", True),
        Column("description", "text"),
        Column("status", "text", True),
        Column("archived_reason", "text"),
        Column("reopened_reason", "text"),
        *_ROLLUP_COLUMNS,
        Column("budgets", "jsonb", True),
        Column("version", "bigint", True),
    ),
    sorts={
        "name": SortKey("name", "text"),
        "programs": SortKey("programs", "integer"),
        "risk_exposure": SortKey("risk_exposure", "integer"),
    },
)

MEMBERS = Table(
    "rm_portfolio_programs",
    key=(Column("program_id", "uuid", True),),
    columns=(Column("portfolio_id", "uuid", True), Column("reason", "text")),
    indexes=(
        Index("portfolio", "(portfolio_id, program_id)", CURRENT),
        Index("portfolio_history", "(portfolio_id, valid_from_pos)"),
    ),
    sorts={"program_id": SortKey("program_id", "uuid")},
)

MOVES = Table(
    "rm_portfolio_moves",
    key=(Column("position", "bigint", True),),
    columns=(
        Column("program_id", "uuid", True),
        Column("from_portfolio_id", "uuid"),
        Column("to_portfolio_id", "uuid"),
        Column("reason", "text"),
        Column("actor", "text", True),
        Column("recorded_at", "timestamptz", True),
    ),
    indexes=(
        Index("program", "(program_id, position)"),
        Index("from_portfolio", "(from_portfolio_id, position)"),
        Index("to_portfolio", "(to_portfolio_id, position)"),
    ),
    versioned=False,
    position_column="position",
    sorts={"position": SortKey("position", "bigint")},
)

OBJECTIVES = Table(
    "rm_objectives",
    key=(Column("objective_id", "uuid", True),),
    columns=(
        Column("title", "text", True),
        Column("owner", "text", True),
        Column("key", "text"),
        Column("description", "text"),
        Column("starts_on", "date", True),
        Column("ends_on", "date", True),
        Column("status", "text", True),
        Column("closed_reason", "text"),
        Column("key_results", "integer", True),
        Column("progress", "integer"),
        Column("confidence", "integer"),
        Column("programs", "integer", True),
        Column("version", "bigint", True),
    ),
    sorts={
        "title": SortKey("title", "text"),
        "ends_on": SortKey("ends_on", "date"),
        "progress": SortKey("coalesce(progress, -1)", "integer"),
    },
)

KEY_RESULTS = Table(
    "rm_key_results",
    key=(Column("key_result_id", "uuid", True),),
    columns=(
        Column("objective_id", "uuid", True),
        Column("name", "text", True),
        Column("unit", "text", True),
        Column("baseline", "bigint", True),
        Column("target", "bigint", True),
        Column("current", "bigint", True),
        Column("confidence", "integer", True),
        Column("progress", "integer", True),
        Column("checked_on", "date"),
    ),
    indexes=(Index("objective_history", "(objective_id, valid_from_pos)"),),
    sorts={"name": SortKey("name", "text")},
)

OBJECTIVE_PROGRAMS = Table(
    "rm_objective_programs",
    key=(Column("objective_id", "uuid", True), Column("program_id", "uuid", True)),
    columns=(Column("linked", "boolean", True),),
    indexes=(
        Index("program", "(program_id, objective_id)", CURRENT),
        Index("objective_history", "(objective_id, valid_from_pos)"),
        Index("program_history", "(program_id, valid_from_pos)"),
    ),
    sorts={"program_id": SortKey("program_id", "uuid")},
)

CHECK_INS = Table(
    "rm_key_result_check_ins",
    key=(Column("position", "bigint", True),),
    columns=(
        Column("objective_id", "uuid", True),
        Column("key_result_id", "uuid", True),
        Column("value", "bigint", True),
        Column("confidence", "integer", True),
        Column("checked_on", "date", True),
        Column("note", "text"),
        Column("actor", "text", True),
        Column("recorded_at", "timestamptz", True),
    ),
    indexes=(Index("key_result", "(key_result_id, position)"),),
    versioned=False,
    position_column="position",
    sorts={"position": SortKey("position", "bigint")},
)

LINKS = Table(
    "rm_objective_links",
    key=(Column("position", "bigint", True),),
    columns=(
        Column("objective_id", "uuid", True),
        Column("program_id", "uuid", True),
        Column("linked", "boolean", True),
        Column("reason", "text"),
        Column("actor", "text", True),
        Column("recorded_at", "timestamptz", True),
    ),
    indexes=(
        Index("objective", "(objective_id, position)"),
        Index("program", "(program_id, position)"),
    ),
    versioned=False,
    position_column="position",
    sorts={"position": SortKey("position", "bigint")},
)


# States


class Contribution(msgspec.Struct, frozen=True, kw_only=True):
    """One program's share of its portfolio's roll-up."""

    portfolio_id: UUID | None = None
    reported: bool = False
    """Whether the program exists yet (its risks can be seen first in a split replay)."""
    health: str | None = None
    currency: str = ""
    planned: int = 0
    allocated: int = 0
    actual: int = 0
    low: int = 0
    medium: int = 0
    high: int = 0
    critical: int = 0
    exposure: int = 0
    milestones: int = 0
    slipped: int = 0
    slip_days: int = 0


_NO_CONTRIBUTION = Contribution()


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    programs: int = 0
    planned: int = 0
    allocated: int = 0
    actual: int = 0


class Figures(msgspec.Struct, frozen=True, kw_only=True):
    """A portfolio: its details and the sums of its programs' contributions."""

    portfolio: Portfolio
    version: int
    archived_reason: str | None = None
    reopened_reason: str | None = None
    programs: int = 0
    green: int = 0
    amber: int = 0
    red: int = 0
    unreported: int = 0
    low: int = 0
    medium: int = 0
    high: int = 0
    critical: int = 0
    exposure: int = 0
    milestones: int = 0
    slipped: int = 0
    slip_days: int = 0
    budgets: dict[str, Budget] = msgspec.field(default_factory=dict)
    objectives: dict[UUID, int] = msgspec.field(default_factory=dict)
    """Objective -> how many of the portfolio's programs are linked to it."""


class Score(msgspec.Struct, frozen=True, kw_only=True):
    """An objective's key results summed: what a portfolio's roll-up adds up."""

    key_results: int = 0
    progress: int = 0
    confidence: int = 0


class Rollups(msgspec.Struct, frozen=True, kw_only=True):
    portfolios: dict[UUID, Figures] = msgspec.field(default_factory=dict)
    scores: dict[UUID, Score] = msgspec.field(default_factory=dict)
    program_objectives: dict[UUID, tuple[UUID, ...]] = msgspec.field(default_factory=dict)


_ROLLUPS = "rollups"
_NO_BUDGET = Budget()
_budgets_encoder = msgspec.json.Encoder()


def _contribution_key(program_id: UUID) -> str:
    return f"contribution-{program_id}"


def _program_share(p: Program, base: Contribution) -> Contribution:
    spend = p.actual_spend
    slips = [slip_days(m) for m in p.milestones]
    return replace(
        base,
        portfolio_id=p.portfolio_id,
        reported=True,
        health=None if p.health is None else p.health.value,
        currency=p.planned_budget.currency,
        planned=p.planned_budget.amount_minor,
        allocated=allocated_budget(p),
        actual=0 if spend is None else spend.amount.amount_minor,
        milestones=len(slips),
        slipped=sum(1 for s in slips if s > 0),
        slip_days=sum(s for s in slips if s > 0),
    )


def _risk_share(risk: Risk | None) -> tuple[str | None, int]:
    if risk is None or risk.status is RiskStatus.CLOSED:
        return None, 0
    return risk.band.value.lower(), risk.score


def _with_risk(c: Contribution, before: Risk | None, after: Risk | None) -> Contribution:
    (was, old_score), (now, new_score) = _risk_share(before), _risk_share(after)
    counts = {band: getattr(c, band) for band in ("low", "medium", "high", "critical")}
    if was is not None:
        counts[was] -= 1
    if now is not None:
        counts[now] += 1
    return replace(c, exposure=c.exposure - old_score + new_score, **counts)


def _add(f: Figures, c: Contribution, sign: int) -> Figures:
    """``f`` with ``c`` added (``sign`` 1) or taken out (-1). Written out field by field:
    it runs for nearly every event of a program in a portfolio."""
    if not c.reported:
        return f
    health = c.health
    budgets = dict(f.budgets)
    b = budgets.get(c.currency, _NO_BUDGET)
    b = Budget(
        programs=b.programs + sign,
        planned=b.planned + sign * c.planned,
        allocated=b.allocated + sign * c.allocated,
        actual=b.actual + sign * c.actual,
    )
    if b.programs:
        budgets[c.currency] = b
    else:
        budgets.pop(c.currency, None)
    return replace(
        f,
        programs=f.programs + sign,
        green=f.green + sign if health == "GREEN" else f.green,
        amber=f.amber + sign if health == "AMBER" else f.amber,
        red=f.red + sign if health == "RED" else f.red,
        unreported=f.unreported + sign if health is None else f.unreported,
        low=f.low + sign * c.low,
        medium=f.medium + sign * c.medium,
        high=f.high + sign * c.high,
        critical=f.critical + sign * c.critical,
        exposure=f.exposure + sign * c.exposure,
        milestones=f.milestones + sign * c.milestones,
        slipped=f.slipped + sign * c.slipped,
        slip_days=f.slip_days + sign * c.slip_days,
        budgets=budgets,
    )


def _count_objectives(f: Figures, objectives: Iterable[UUID], sign: int) -> Figures:
    counts = dict(f.objectives)
    for o in objectives:
        n = counts.get(o, 0) + sign
        if n:
            counts[o] = n
        else:
            counts.pop(o, None)
    return replace(f, objectives=counts)


def _score(o: Objective) -> Score:
    return Score(
        key_results=len(o.key_results),
        progress=sum(key_result_progress(k) for k in o.key_results),
        confidence=sum(k.confidence for k in o.key_results),
    )


# Rows


def _worst(f: Figures) -> str | None:
    for health, n in (("RED", f.red), ("AMBER", f.amber), ("GREEN", f.green)):
        if n:
            return health
    return None


def _portfolio_row(portfolio_id: UUID, r: Rollups) -> tuple[Any, ...] | None:
    f = r.portfolios.get(portfolio_id)
    if f is None:
        return None
    scores = [r.scores.get(o, Score()) for o in f.objectives]
    krs = sum(s.key_results for s in scores)
    p = f.portfolio
    return (
        p.name,
        p.owner,
        p.description,
        p.status.value,
        f.archived_reason,
        f.reopened_reason,
        f.programs,
        _worst(f),
        f.green,
        f.amber,
        f.red,
        f.unreported,
        f.low,
        f.medium,
        f.high,
        f.critical,
        f.low + f.medium + f.high + f.critical,
        f.exposure,
        f.milestones,
        f.slipped,
        f.slip_days,
        len(f.objectives),
        krs,
        sum(s.progress for s in scores) // krs if krs else None,
        sum(s.confidence for s in scores) // krs if krs else None,
        _budgets_encoder.encode(f.budgets),
        f.version,
    )


def _emit(
    ctx: Context,
    before: Rollups,
    after: Rollups,
    portfolios: Iterable[UUID | None],
    *,
    exact: bool = False,
) -> None:
    """Writes the roll-up rows of ``portfolios`` that ``before -> after`` changed.

    A program's changed contribution, or a portfolio's own event, always changes the row of
    a portfolio that had one (a sum, a count or the stream version moves), so the row is
    replaced without building the old one, which would cost as much again. An objective's
    change may leave a row as it was (a second link to the same objective, a mean that
    rounds the same): ``exact`` compares with the old row first."""
    ctx.set_state(_ROLLUPS, after)
    for pid in {p for p in portfolios if p is not None}:
        row = _portfolio_row(pid, after)
        if exact or pid not in before.portfolios or row is None:
            ctx.change(PORTFOLIOS, (pid,), _portfolio_row(pid, before), row)
        else:
            ctx.replace(PORTFOLIOS, (pid,), row)


def _move(r: Rollups, program_id: UUID, old: Contribution, new: Contribution) -> Rollups:
    """``r`` with the program's contribution ``old`` replaced by ``new`` (possibly in
    another portfolio, taking the objectives it serves along)."""
    portfolios = dict(r.portfolios)
    served = r.program_objectives.get(program_id, ())
    if old.portfolio_id in portfolios:
        f = _add(portfolios[old.portfolio_id], old, -1)
        if old.portfolio_id != new.portfolio_id:
            f = _count_objectives(f, served, -1)
        portfolios[old.portfolio_id] = f
    if new.portfolio_id in portfolios:
        f = _add(portfolios[new.portfolio_id], new, 1)
        if old.portfolio_id != new.portfolio_id:
            f = _count_objectives(f, served, 1)
        portfolios[new.portfolio_id] = f
    return replace(r, portfolios=portfolios)


def _rollups(ctx: Context) -> Rollups:
    found: Rollups | None = ctx.state(_ROLLUPS)
    return found or Rollups()


def _contribute(ctx: Context, program_id: UUID, new: Contribution) -> None:
    key = _contribution_key(program_id)
    old: Contribution = ctx.state(key) or _NO_CONTRIBUTION
    if old == new:
        return
    ctx.set_state(key, new)
    if old.portfolio_id is None and new.portfolio_id is None:
        return  # outside every portfolio: no roll-up to change
    before = _rollups(ctx)
    _emit(ctx, before, _move(before, program_id, old, new), (old.portfolio_id, new.portfolio_id))


def _on_program(ctx: Context, event: ProjectedEvent) -> None:
    _, after = fold(ctx, event)
    p: Program = after
    key = _contribution_key(p.program_id)
    base: Contribution = ctx.state(key) or _NO_CONTRIBUTION
    _contribute(ctx, p.program_id, _program_share(p, base))
    e = event.event
    if isinstance(e, ProgramMovedToPortfolio):
        # The row leaving holds the reason of the move that made it, which the event does
        # not carry: a move out of a portfolio ends or replaces it without rebuilding it.
        member = (p.program_id,)
        if e.to_portfolio_id is None:
            ctx.end(MEMBERS, member)
        elif e.from_portfolio_id is None:
            ctx.change(MEMBERS, member, None, (e.to_portfolio_id, e.reason))
        else:
            ctx.replace(MEMBERS, member, (e.to_portfolio_id, e.reason))
        ctx.add(
            MOVES,
            (
                event.position,
                p.program_id,
                e.from_portfolio_id,
                e.to_portfolio_id,
                e.reason,
                event.actor,
                event.recorded_at,
            ),
        )


def _on_risk(ctx: Context, event: ProjectedEvent) -> None:
    before, after = fold(ctx, event)
    program_id: UUID = after.program_id
    base: Contribution = ctx.state(_contribution_key(program_id)) or _NO_CONTRIBUTION
    _contribute(ctx, program_id, _with_risk(base, before, after))


def _on_portfolio(ctx: Context, event: ProjectedEvent) -> None:
    before = _rollups(ctx)
    e = event.event
    old = before.portfolios.get(e.portfolio_id)  # type: ignore[attr-defined]
    state = portfolio_aggregate.evolve(None if old is None else old.portfolio, e)  # type: ignore[arg-type]
    if old is None:
        f = Figures(portfolio=state, version=event.version)
    else:
        f = replace(old, portfolio=state, version=event.version)
    if isinstance(e, PortfolioArchived):
        f = replace(f, archived_reason=e.reason)
    elif isinstance(e, PortfolioReopened):
        f = replace(f, reopened_reason=e.reason)
    after = replace(before, portfolios={**before.portfolios, state.portfolio_id: f})
    _emit(ctx, before, after, (state.portfolio_id,))


def _objective_row(o: Objective, version: int, closed_reason: str | None) -> tuple[Any, ...]:
    s = _score(o)
    n = s.key_results
    return (
        o.title,
        o.owner,
        o.key,
        o.description,
        o.starts_on,
        o.ends_on,
        o.status.value,
        closed_reason,
        n,
        s.progress // n if n else None,
        s.confidence // n if n else None,
        len(o.program_ids),
        version,
    )


def _key_result_row(objective_id: UUID, k: KeyResult) -> tuple[Any, ...]:
    return (
        objective_id,
        k.name,
        k.unit,
        k.baseline,
        k.target,
        k.current,
        k.confidence,
        key_result_progress(k),
        k.checked_on,
    )


def _on_objective(ctx: Context, event: ProjectedEvent) -> None:
    before_state, after_state = fold(ctx, event)
    o: Objective = after_state
    e = event.event
    closed = e.reason if isinstance(e, ObjectiveClosed) else None
    row = _objective_row(o, event.version, closed)
    if before_state is None:
        ctx.change(OBJECTIVES, (o.objective_id,), None, row)
    else:
        ctx.replace(OBJECTIVES, (o.objective_id,), row)
    old_krs = {} if before_state is None else {k.key_result_id: k for k in before_state.key_results}
    for k in o.key_results:
        was = old_krs.get(k.key_result_id)
        if was != k:
            ctx.change(
                KEY_RESULTS,
                (k.key_result_id,),
                None if was is None else _key_result_row(o.objective_id, was),
                _key_result_row(o.objective_id, k),
            )
    before = _rollups(ctx)
    after = before
    touched: list[UUID] = []
    match e:
        case KeyResultCheckedIn():
            ctx.add(
                CHECK_INS,
                (
                    event.position,
                    o.objective_id,
                    e.key_result_id,
                    e.value,
                    e.confidence,
                    e.checked_on,
                    e.note,
                    event.actor,
                    event.recorded_at,
                ),
            )
        case ObjectiveLinkedToProgram() | ObjectiveUnlinkedFromProgram():
            linked = isinstance(e, ObjectiveLinkedToProgram)
            reason = None if linked else e.reason  # type: ignore[union-attr]
            ctx.add(
                LINKS,
                (
                    event.position,
                    o.objective_id,
                    e.program_id,
                    linked,
                    reason,
                    event.actor,
                    event.recorded_at,
                ),
            )
            key = (o.objective_id, e.program_id)
            ctx.change(
                OBJECTIVE_PROGRAMS, key, None if linked else (True,), (True,) if linked else None
            )
            after, touched = _link(ctx, before, o.objective_id, e.program_id, 1 if linked else -1)
    score = _score(o)
    if before.scores.get(o.objective_id) != score:
        after = replace(after, scores={**after.scores, o.objective_id: score})
        touched += [pid for pid, f in after.portfolios.items() if o.objective_id in f.objectives]
    if after is not before:
        _emit(ctx, before, after, touched, exact=True)


def _link(
    ctx: Context, r: Rollups, objective_id: UUID, program_id: UUID, sign: int
) -> tuple[Rollups, list[UUID]]:
    served = r.program_objectives.get(program_id, ())
    served = (*served, objective_id) if sign > 0 else tuple(o for o in served if o != objective_id)
    program_objectives = {**r.program_objectives, program_id: served}
    if not served:
        del program_objectives[program_id]
    c: Contribution = ctx.state(_contribution_key(program_id)) or _NO_CONTRIBUTION
    portfolios = r.portfolios
    touched = []
    if c.portfolio_id in portfolios:
        f = _count_objectives(portfolios[c.portfolio_id], (objective_id,), sign)
        portfolios = {**portfolios, c.portfolio_id: f}
        touched.append(c.portfolio_id)
    return replace(r, program_objectives=program_objectives, portfolios=portfolios), touched


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    match event.stream_type:
        case "program":
            _on_program(ctx, event)
        case "risk":
            _on_risk(ctx, event)
        case "portfolio":
            _on_portfolio(ctx, event)
        case "objective":
            _on_objective(ctx, event)


def _state_keys(event: ProjectedEvent) -> tuple[str, ...]:
    if event.stream_type == "portfolio":
        return (_ROLLUPS,)  # a portfolio's own state is kept in the roll-ups
    program_id = getattr(event.event, "program_id", None)
    if isinstance(program_id, UUID):
        return (event.stream_id, _contribution_key(program_id), _ROLLUPS)
    return (event.stream_id, _ROLLUPS)


PROJECTION = Projection(
    name="portfolios",
    description="portfolios and their roll-ups (health, budget, risk exposure, slips, "
    "key results); objectives, key results and their check-ins",
    handles=frozenset(
        t.event_type
        for t in (
            *PROGRAM_EVENT_TYPES,
            *RISK_EVENT_TYPES,
            *PORTFOLIO_EVENT_TYPES,
            *OBJECTIVE_EVENT_TYPES,
        )
    ),
    tables=(
        PORTFOLIOS,
        MEMBERS,
        MOVES,
        OBJECTIVES,
        KEY_RESULTS,
        OBJECTIVE_PROGRAMS,
        CHECK_INS,
        LINKS,
    ),
    states={
        "program": Tracked[Program],
        "risk": Tracked[Risk],
        "objective": Tracked[Objective],
        "contribution": Contribution,
        _ROLLUPS: Rollups,
    },
    handle=_handle,
    state_keys=_state_keys,
)


# Queries


class PortfolioBudget(msgspec.Struct, frozen=True, kw_only=True):
    """The budgets of a portfolio's programs planned in one currency, summed (minor
    units)."""

    currency: str
    programs: int
    planned: int
    allocated: int
    actual: int


class PortfolioRow(VersionedRow, frozen=True, kw_only=True):
    portfolio_id: UUID
    name: str
    owner: str
    description: str | None
    status: str
    archived_reason: str | None
    reopened_reason: str | None
    programs: int
    health: str | None
    """The worst health among its programs (RED, then AMBER, then GREEN); ``None`` when
    none has reported one."""
    programs_green: int
    programs_amber: int
    programs_red: int
    programs_unreported: int
    open_risks_low: int
    open_risks_medium: int
    open_risks_high: int
    open_risks_critical: int
    open_risks: int
    risk_exposure: int
    """The scores (probability x impact) of its programs' open risks, summed."""
    milestones: int
    milestones_slipped: int
    """Milestones whose forecast (or actual) date is after their baseline."""
    slip_days: int
    """Days those milestones slipped, summed: the portfolio's schedule variance."""
    objectives: int
    key_results: int
    key_result_progress: int | None
    """Mean progress of the key results of the objectives its programs serve, whole
    percent; ``None`` without key results."""
    key_result_confidence: int | None
    budgets: list[PortfolioBudget]
    """One entry per currency its programs are planned in, by currency."""
    version: int
    """The portfolio stream's version: the expected version for its next command."""


class MemberRow(VersionedRow, frozen=True, kw_only=True):
    program_id: UUID
    portfolio_id: UUID
    reason: str | None


class MoveRow(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    program_id: UUID
    from_portfolio_id: UUID | None
    to_portfolio_id: UUID | None
    reason: str | None
    actor: str
    recorded_at: datetime


class ObjectiveRow(VersionedRow, frozen=True, kw_only=True):
    objective_id: UUID
    title: str
    owner: str
    key: str | None
    description: str | None
    starts_on: date
    ends_on: date
    status: str
    closed_reason: str | None
    key_results: int
    progress: int | None
    confidence: int | None
    programs: int
    version: int


class KeyResultRow(VersionedRow, frozen=True, kw_only=True):
    key_result_id: UUID
    objective_id: UUID
    name: str
    unit: str
    baseline: int
    target: int
    current: int
    confidence: int
    progress: int
    checked_on: date | None


class ObjectiveProgramRow(VersionedRow, frozen=True, kw_only=True):
    """A link current at the position read (who made it: ``rm_objective_links``)."""

    objective_id: UUID
    program_id: UUID
    linked: bool


class CheckInRow(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    objective_id: UUID
    key_result_id: UUID
    value: int
    confidence: int
    checked_on: date
    note: str | None
    actor: str
    recorded_at: datetime


class LinkRow(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    objective_id: UUID
    program_id: UUID
    linked: bool
    """``True`` for a link, ``False`` for an unlink (with its reason)."""
    reason: str | None
    actor: str
    recorded_at: datetime


def _portfolio(data: dict[str, Any]) -> PortfolioRow:
    by_currency = _budgets_decoder.decode(data["budgets"])
    budgets = [
        PortfolioBudget(
            currency=currency,
            programs=b.programs,
            planned=b.planned,
            allocated=b.allocated,
            actual=b.actual,
        )
        for currency, b in sorted(by_currency.items())
    ]
    return PortfolioRow(**{**data, "budgets": budgets})


_budgets_decoder = msgspec.json.Decoder(dict[str, Budget])
"""The column holds the portfolio's ``Budget`` per currency as a JSON object."""
_PORTFOLIO_LIST = ListSpec(table=PORTFOLIOS, convert=_portfolio)
_MEMBER_LIST = ListSpec(table=MEMBERS, convert=lambda d: MemberRow(**d))
_MOVE_LIST = ListSpec(table=MOVES, convert=lambda d: MoveRow(**d))
_OBJECTIVE_LIST = ListSpec(table=OBJECTIVES, convert=lambda d: ObjectiveRow(**d))
_KEY_RESULT_LIST = ListSpec(table=KEY_RESULTS, convert=lambda d: KeyResultRow(**d))
_OBJECTIVE_PROGRAM_LIST = ListSpec(
    table=OBJECTIVE_PROGRAMS, convert=lambda d: ObjectiveProgramRow(**d)
)
_CHECK_IN_LIST = ListSpec(table=CHECK_INS, convert=lambda d: CheckInRow(**d))
_LINK_LIST = ListSpec(table=LINKS, convert=lambda d: LinkRow(**d))


async def _page(pool: Reader, spec: ListSpec[Any], filters: Filters, paging: Any) -> Page[Any]:
    """One page of ``spec`` with the list arguments every list takes (``sort``,
    ``descending``, ``first``, ``after``, ``last``, ``before``, ``as_of``, ``count``)."""
    return await fetch_page(pool, spec, filters, **{**_DEFAULT_PAGE, **paging})


_DEFAULT_PAGE: dict[str, Any] = {"descending": False, "first": 50, "after": None, "as_of": None}


async def _matching(pool: Reader, spec: ListSpec[Any], paging: Any, **equal: Any) -> Page[Any]:
    """One page of the rows whose columns equal the given values (``None``: any)."""
    filters = Filters()
    for column, value in equal.items():
        filters.equals(column, value)
    return await _page(pool, spec, filters, paging)


async def list_portfolios(
    pool: Reader,
    *,
    status: Sequence[str] | None = None,
    owner: str | None = None,
    **paging: Any,
) -> Page[PortfolioRow]:
    filters = Filters()
    filters.any_of("status", status, "text")
    filters.equals("owner", owner)
    return await _page(pool, _PORTFOLIO_LIST, filters, paging)


def _as_of_one() -> str:
    """The version of a portfolio current at a position: the last one opened at or before
    it (one step down the ``history`` index however many versions the roll-up has had),
    with its stamps when this read wants them."""
    return (
        f"SELECT {', '.join(PORTFOLIOS.column_names)}{stamps_sql(PORTFOLIOS)} "
        f"FROM {PORTFOLIOS.name} WHERE portfolio_id = $1 AND valid_from_pos <= $2 "
        "ORDER BY valid_from_pos DESC LIMIT 1"
    )


async def get_portfolio(
    pool: Reader, portfolio_id: UUID, *, as_of: AsOf = None
) -> PortfolioRow | None:
    """One portfolio and its roll-up, now or as of ``as_of``: one row version read."""
    if as_of is None:
        return await fetch_one(pool, PORTFOLIOS, _portfolio, (portfolio_id,), None)
    async with pool.acquire() as conn:
        position = await resolve_position(conn, as_of)
        row = await conn.fetchrow(_as_of_one(), portfolio_id, position)
    if row is None or (row["valid_to_pos"] is not None and row["valid_to_pos"] <= position):
        return None
    return _portfolio(dict(row))


async def portfolios_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, PortfolioRow]:
    return await fetch_by_key(pool, _PORTFOLIO_LIST, ids, as_of=as_of)


async def list_members(pool: Reader, portfolio_id: UUID, **paging: Any) -> Page[MemberRow]:
    """The programs in a portfolio."""
    return await _matching(pool, _MEMBER_LIST, paging, portfolio_id=portfolio_id)


async def member_of(pool: Reader, program_id: UUID, *, as_of: AsOf = None) -> MemberRow | None:
    """The portfolio a program is in, now or as of ``as_of``."""
    return await fetch_one(pool, MEMBERS, _MEMBER_LIST.convert, (program_id,), as_of)


async def portfolio_of(
    pool: Reader, program_id: UUID, *, as_of: AsOf = None
) -> PortfolioRow | None:
    """The portfolio a program is in, now or as of ``as_of``; ``None`` when in none."""
    member = await member_of(pool, program_id, as_of=as_of)
    return None if member is None else await get_portfolio(pool, member.portfolio_id, as_of=as_of)


async def list_moves(
    pool: Reader,
    *,
    program_id: UUID | None = None,
    portfolio_id: UUID | None = None,
    **paging: Any,
) -> Page[MoveRow]:
    """Moves of programs between portfolios, of one program or into and out of one
    portfolio."""
    filters = Filters()
    filters.equals("program_id", program_id)
    if portfolio_id is not None:
        filters.where("(from_portfolio_id = {0} OR to_portfolio_id = {0})", portfolio_id)
    return await _page(pool, _MOVE_LIST, filters, paging)


async def list_objectives(
    pool: Reader,
    *,
    status: Sequence[str] | None = None,
    owner: str | None = None,
    key: str | None = None,
    **paging: Any,
) -> Page[ObjectiveRow]:
    filters = Filters()
    filters.any_of("status", status, "text")
    filters.equals("owner", owner)
    filters.equals("key", key)
    return await _page(pool, _OBJECTIVE_LIST, filters, paging)


async def get_objective(
    pool: Reader, objective_id: UUID, *, as_of: AsOf = None
) -> ObjectiveRow | None:
    return await fetch_one(pool, OBJECTIVES, _OBJECTIVE_LIST.convert, (objective_id,), as_of)


async def objectives_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, ObjectiveRow]:
    return await fetch_by_key(pool, _OBJECTIVE_LIST, ids, as_of=as_of)


async def list_key_results(pool: Reader, objective_id: UUID, **paging: Any) -> Page[KeyResultRow]:
    return await _matching(pool, _KEY_RESULT_LIST, paging, objective_id=objective_id)


async def list_objective_programs(
    pool: Reader,
    *,
    objective_id: UUID | None = None,
    program_id: UUID | None = None,
    **paging: Any,
) -> Page[ObjectiveProgramRow]:
    """Which programs serve which objectives (of one objective, or of one program)."""
    return await _matching(
        pool, _OBJECTIVE_PROGRAM_LIST, paging, objective_id=objective_id, program_id=program_id
    )


async def list_check_ins(
    pool: Reader,
    *,
    objective_id: UUID | None = None,
    key_result_id: UUID | None = None,
    **paging: Any,
) -> Page[CheckInRow]:
    return await _matching(
        pool, _CHECK_IN_LIST, paging, objective_id=objective_id, key_result_id=key_result_id
    )


async def list_links(
    pool: Reader,
    *,
    objective_id: UUID | None = None,
    program_id: UUID | None = None,
    **paging: Any,
) -> Page[LinkRow]:
    """Links and unlinks of objectives and programs, in the order they were recorded."""
    return await _matching(
        pool, _LINK_LIST, paging, objective_id=objective_id, program_id=program_id
    )
