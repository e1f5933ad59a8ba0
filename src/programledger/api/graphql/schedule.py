"""Schedule queries: forecasts that predecessors move, the critical path and float, "what
slips if", baselines, change requests and variance; every one current or as of a moment.

Each resolver reads the rows current at the position asked for from the ``schedule``
read model and hands them to ``domain.scheduling``: nothing derived is stored, so an
answer as of a position is the computation over the events up to it. The commands
(``linkMilestones``, ``raiseChangeRequest``, ...) are generated with every other
mutation from the domain's command Structs.
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import strawberry

from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.reads import AS_OF, reader
from programledger.api.graphql.reads import bad_input as _bad_input
from programledger.api.graphql.reads import moment as _when
from programledger.api.graphql.recorded import Recorded, recorded
from programledger.api.graphql.types import MoneyType, SafeInt
from programledger.domain.program import ChangeRequestStatus, MilestoneStatus
from programledger.domain.scheduling import (
    Analysis,
    LinkType,
    Timing,
    analyse,
    milestone_variance,
    what_if,
)
from programledger.projections import schedule

__all__ = ["ScheduleQueries"]

_NEAR_CRITICAL_DAYS = 5
_SLIP_LIMIT = 3650
"""Ten years either way, as for a link's lag: more is a typo, and dates end in 9999."""


def _safe(position: int | None) -> SafeInt | None:
    return None if position is None else SafeInt(position)


def _id(value: strawberry.ID, name: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise _bad_input(f"{name} is not a UUID: {value!r}") from None


@strawberry.type(
    name="DateMove",
    description="The recorded event that last set a milestone's own date: who moved it, "
    "when and why.",
)
class DateMoveType:
    milestone_id: strawberry.ID
    event_type: str
    position: SafeInt
    recorded_at: datetime
    actor: str
    reason: str | None


@strawberry.type(name="ScheduledMilestone")
class ScheduledMilestoneType:
    milestone_id: strawberry.ID
    program_id: strawberry.ID
    program_code: str
    name: str
    status: str = strawberry.field(graphql_type=domain_enum(MilestoneStatus))
    own_date: date = strawberry.field(
        description="The forecast its program recorded (the actual date once done)."
    )
    forecast_date: date = strawberry.field(
        description="The later of its own date and what its predecessors allow."
    )
    baseline_date: date
    duration_days: int
    driven_by: strawberry.ID | None = strawberry.field(
        description="The predecessor whose link sets the forecast; null: its own date does."
    )
    first_domino: strawberry.ID = strawberry.field(
        description="Where the chain of drivers starts: whose own date moved this one."
    )
    total_float: int | None = strawberry.field(
        description="Days it can slip without moving the end date (null outside the scope)."
    )
    free_float: int | None = strawberry.field(
        description="Days it can slip without moving any successor in scope."
    )
    critical: bool
    near_critical: bool

    @classmethod
    def of(
        cls, t: Timing[UUID], row: schedule.ScheduleMilestoneRow, near: int
    ) -> ScheduledMilestoneType:
        tf = t.total_float
        return cls(
            milestone_id=strawberry.ID(str(t.key)),
            program_id=strawberry.ID(str(row.program_id)),
            program_code=row.program_code,
            name=row.name,
            status=row.status,
            own_date=t.own,
            forecast_date=t.forecast,
            baseline_date=row.baseline_date,
            duration_days=row.duration_days,
            driven_by=None if t.driven_by is None else strawberry.ID(str(t.driven_by)),
            first_domino=strawberry.ID(str(t.first_domino)),
            total_float=tf,
            free_float=t.free_float,
            critical=tf is not None and tf <= 0,
            near_critical=tf is not None and 0 < tf <= near,
        )


@strawberry.type(name="ScheduleAnalysis")
class ScheduleAnalysisType:
    as_of_position: SafeInt | None
    end_milestone_id: strawberry.ID | None
    finish_date: date | None
    critical_path: list[ScheduledMilestoneType] = strawberry.field(
        description="From the first milestone of the driving chain to the end milestone."
    )
    milestones: list[ScheduledMilestoneType] = strawberry.field(
        description="The programs' milestones and every one upstream of them, in dependency order."
    )
    first_domino_moves: list[DateMoveType] = strawberry.field(
        description="For every first domino (a milestone whose own date moves others) and "
        "the critical path's first milestone: the recorded event that set its date."
    )


async def _analysis(
    info: ApiInfo,
    program_ids: list[strawberry.ID] | None = None,
    near_critical_days: int = _NEAR_CRITICAL_DAYS,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> ScheduleAnalysisType:
    when = _when(as_of, as_of_position)
    if near_critical_days < 0:
        raise _bad_input("nearCriticalDays must be 0 or more")
    groups = None if program_ids is None else [_id(p, "programIds") for p in program_ids]
    pool = info.context.services.pool
    read = await schedule.read_schedule(pool, when)
    result: Analysis[UUID] = analyse(read.network, groups)
    by_key = {t.key: t for t in result.timings}
    rows = read.milestones

    def typed(key: UUID) -> ScheduledMilestoneType:
        return ScheduledMilestoneType.of(by_key[key], rows[key], near_critical_days)

    # Every first domino that moved another milestone, and the critical path's first.
    dominoes = {t.first_domino for t in result.timings if t.driven_by is not None}
    dominoes.update(result.critical_path[:1])
    moves = await schedule.date_moves(
        pool, [(rows[k].program_id, k) for k in sorted(dominoes, key=str)], read.position
    )
    return ScheduleAnalysisType(
        as_of_position=_safe(read.position),
        end_milestone_id=None if result.end is None else strawberry.ID(str(result.end)),
        finish_date=result.finish,
        critical_path=[typed(k) for k in result.critical_path],
        milestones=[typed(t.key) for t in result.timings],
        first_domino_moves=[
            DateMoveType(
                milestone_id=strawberry.ID(str(m.milestone_id)),
                event_type=m.event_type,
                position=SafeInt(m.position),
                recorded_at=m.recorded_at,
                actor=m.actor,
                reason=m.reason,
            )
            for m in moves.values()
        ],
    )


@strawberry.type(name="SlipImpact")
class SlipImpactType:
    milestone_id: strawberry.ID
    program_id: strawberry.ID
    name: str
    forecast_before: date
    forecast_after: date
    slip_days: int


async def _what_if(
    info: ApiInfo,
    milestone_id: strawberry.ID,
    slip_days: int,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> list[SlipImpactType]:
    when = _when(as_of, as_of_position)
    key = _id(milestone_id, "milestoneId")
    if not -_SLIP_LIMIT <= slip_days <= _SLIP_LIMIT:
        raise _bad_input(f"slipDays must be between -{_SLIP_LIMIT} and {_SLIP_LIMIT}")
    read = await schedule.read_schedule(info.context.services.pool, when)
    if key not in read.milestones:
        raise _bad_input(f"milestone {key} is not in the schedule")
    if read.milestones[key].done:
        raise _bad_input(f"milestone {key} is done: its date is a fact and cannot slip")
    return [
        SlipImpactType(
            milestone_id=strawberry.ID(str(s.key)),
            program_id=strawberry.ID(str(read.milestones[s.key].program_id)),
            name=read.milestones[s.key].name,
            forecast_before=s.before,
            forecast_after=s.after,
            slip_days=s.days,
        )
        for s in what_if(read.network, key, slip_days)
    ]


@strawberry.type(name="BaselineDate")
class BaselineDateType:
    milestone_id: strawberry.ID
    day: date


@strawberry.type(name="Baseline")
class BaselineType:
    version: int
    name: str
    change_request_id: strawberry.ID | None
    budget: MoneyType
    scope: list[str]
    dates: list[BaselineDateType]

    @classmethod
    def of(cls, b: schedule.BaselineRow) -> BaselineType:
        return cls(
            version=b.version,
            name=b.name,
            change_request_id=None
            if b.change_request_id is None
            else strawberry.ID(str(b.change_request_id)),
            budget=MoneyType(amount_minor=SafeInt(b.budget_minor), currency=b.currency),
            scope=list(b.scope),
            dates=[
                BaselineDateType(milestone_id=strawberry.ID(str(k)), day=v)
                for k, v in b.dates.items()
            ],
        )


async def _baselines(
    info: ApiInfo,
    program_id: strawberry.ID,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> list[BaselineType]:
    when = _when(as_of, as_of_position)
    rows = await schedule.baselines(info.context.services.pool, _id(program_id, "programId"), when)
    return [BaselineType.of(b) for b in rows]


@strawberry.type(name="ChangeRequest")
class ChangeRequestType(Recorded):
    change_request_id: strawberry.ID
    program_id: strawberry.ID
    title: str
    description: str
    raised_by: str
    status: str = strawberry.field(graphql_type=domain_enum(ChangeRequestStatus))
    schedule_impact: list[BaselineDateType]
    budget_impact: MoneyType | None
    scope_added: list[str]
    scope_removed: list[str]
    assessed_by: str | None
    assessment: str | None
    decided_by: str | None
    decision_reason: str | None
    baseline_version: int | None

    @classmethod
    def of(cls, r: schedule.ChangeRequestRow) -> ChangeRequestType:
        budget = None
        if r.budget_impact_minor is not None and r.budget_impact_currency is not None:
            budget = MoneyType(
                amount_minor=SafeInt(r.budget_impact_minor), currency=r.budget_impact_currency
            )
        return cls(
            change_request_id=strawberry.ID(str(r.change_request_id)),
            program_id=strawberry.ID(str(r.program_id)),
            title=r.title,
            description=r.description,
            raised_by=r.raised_by,
            status=r.status,
            schedule_impact=[
                BaselineDateType(milestone_id=strawberry.ID(str(m)), day=d)
                for m, d in zip(r.impact_milestone_ids, r.impact_dates, strict=True)
            ],
            budget_impact=budget,
            scope_added=list(r.scope_added),
            scope_removed=list(r.scope_removed),
            assessed_by=r.assessed_by,
            assessment=r.assessment,
            decided_by=r.decided_by,
            decision_reason=r.decision_reason,
            baseline_version=r.baseline_version,
            **recorded(r),
        )


async def _change_requests(
    info: ApiInfo,
    program_id: strawberry.ID,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> list[ChangeRequestType]:
    when = _when(as_of, as_of_position)
    pool = info.context.services.pool
    rows = await schedule.change_requests(pool, _id(program_id, "programId"), when)
    return [ChangeRequestType.of(r) for r in rows]


@strawberry.type(
    name="ScheduleLink",
    description="A link of the schedule network: the successor cannot finish (or start) "
    "before the predecessor allows. An unlinked one keeps its entry (removed: true); why is "
    "its lastChangeReason.",
)
class ScheduleLinkType(Recorded):
    link_id: strawberry.ID
    predecessor_program_id: strawberry.ID
    predecessor_id: strawberry.ID
    successor_program_id: strawberry.ID
    successor_id: strawberry.ID
    type: str = strawberry.field(graphql_type=domain_enum(LinkType))
    lag_days: int = strawberry.field(description="Calendar days; negative for a lead.")
    removed: bool

    @staticmethod
    def of(r: schedule.ScheduleLinkRow) -> ScheduleLinkType:
        return ScheduleLinkType(
            link_id=strawberry.ID(str(r.link_id)),
            predecessor_program_id=strawberry.ID(str(r.predecessor_program_id)),
            predecessor_id=strawberry.ID(str(r.predecessor_id)),
            successor_program_id=strawberry.ID(str(r.successor_program_id)),
            successor_id=strawberry.ID(str(r.successor_id)),
            type=r.link_type,
            lag_days=r.lag_days,
            removed=r.removed,
            **recorded(r),
        )


async def _schedule_links(
    info: ApiInfo,
    program_id: strawberry.ID,
    include_removed: bool = False,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> list[ScheduleLinkType]:
    when = _when(as_of, as_of_position)
    rows = await schedule.schedule_links(
        info.context.services.pool,
        _id(program_id, "programId"),
        include_removed=include_removed,
        as_of=when,
    )
    return [ScheduleLinkType.of(r) for r in rows]


@strawberry.type(name="MilestoneVariance")
class MilestoneVarianceType:
    milestone_id: strawberry.ID
    name: str
    baseline_date: date | None = strawberry.field(
        description="Null: the milestone is not in this baseline."
    )
    compared_date: date | None = strawberry.field(
        description="The schedule forecast, or the date in the other baseline."
    )
    variance_days: int | None


@strawberry.type(name="ScheduleVariance")
class ScheduleVarianceType:
    program_id: strawberry.ID
    as_of_position: SafeInt | None
    baseline_version: int
    against_version: int | None = strawberry.field(
        description="Null: the plan (the schedule's forecasts) against the baseline."
    )
    milestones: list[MilestoneVarianceType]
    end_variance_days: int | None = strawberry.field(
        description="Of the milestone with the latest compared date."
    )
    max_variance_days: int | None
    late_count: int = strawberry.field(description="Milestones later than the baseline.")
    budget_variance: MoneyType | None = strawberry.field(
        description="Between two baselines; null against the plan."
    )
    scope_added: list[str]
    scope_removed: list[str]


async def _variance(
    info: ApiInfo,
    program_id: strawberry.ID,
    baseline_version: int | None = None,
    against_version: int | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> ScheduleVarianceType:
    when = _when(as_of, as_of_position)
    pid = _id(program_id, "programId")
    pool = info.context.services.pool
    read = await schedule.read_schedule(pool, when)
    at = when if read.position is None else read.position
    kept = {b.version: b for b in await schedule.baselines(pool, pid, at)}
    mine = {k: m for k, m in read.milestones.items() if m.program_id == pid}
    current = {k: m.baseline_date for k, m in mine.items()}
    latest = max(kept, default=0)

    def dates_of(version: int) -> dict[UUID, date]:
        if version == latest:
            return current  # the latest baseline, with milestones planned since
        if version not in kept:
            raise _bad_input(f"program {pid} has no baseline version {version}")
        return kept[version].dates

    base_version = latest if baseline_version is None else baseline_version
    base = dates_of(base_version)
    budget = None
    added: list[str] = []
    removed: list[str] = []
    if against_version is None:
        forecasts = {t.key: t.forecast for t in analyse(read.network, [pid]).timings}
        compared = {k: v for k, v in forecasts.items() if k in mine}
    else:
        compared = dates_of(against_version)
        first, second = kept.get(base_version), kept.get(against_version)
        if first is not None and second is not None:
            budget = MoneyType(
                amount_minor=SafeInt(second.budget_minor - first.budget_minor),
                currency=first.currency,
            )
            added = [s for s in second.scope if s not in first.scope]
            removed = [s for s in first.scope if s not in second.scope]
    rows = milestone_variance(base, compared)
    days = [r.days for r in rows if r.days is not None]
    dated = [r for r in rows if r.compared is not None and r.days is not None]
    end = max(dated, key=lambda r: (r.compared, str(r.key)), default=None)
    return ScheduleVarianceType(
        program_id=strawberry.ID(str(pid)),
        as_of_position=_safe(read.position),
        baseline_version=base_version,
        against_version=against_version,
        milestones=[
            MilestoneVarianceType(
                milestone_id=strawberry.ID(str(r.key)),
                name=mine[r.key].name if r.key in mine else "",
                baseline_date=r.baseline,
                compared_date=r.compared,
                variance_days=r.days,
            )
            for r in rows
        ],
        end_variance_days=None if end is None else end.days,
        max_variance_days=max(days, default=None),
        late_count=sum(1 for d in days if d > 0),
        budget_variance=budget,
        scope_added=added,
        scope_removed=removed,
    )


@strawberry.type
class ScheduleQueries:
    schedule_analysis: ScheduleAnalysisType = strawberry.field(
        resolver=_analysis,
        extensions=reader(),
        description="Forecasts, critical path and float of some programs (all when "
        "programIds is null), near-critical at most nearCriticalDays of float." + AS_OF,
    )
    schedule_what_if: list[SlipImpactType] = strawberry.field(
        resolver=_what_if,
        extensions=reader(),
        description="What would move if this milestone slipped slipDays; changes nothing." + AS_OF,
    )
    schedule_variance: ScheduleVarianceType = strawberry.field(
        resolver=_variance,
        extensions=reader(),
        description="A program's plan against a baseline (the latest when baselineVersion "
        "is null), or a baseline against another (againstVersion)." + AS_OF,
    )
    baselines: list[BaselineType] = strawberry.field(
        resolver=_baselines,
        extensions=reader(),
        description="A program's approved baselines, version 0 first (none before the "
        "first approved change request)." + AS_OF,
    )
    change_requests: list[ChangeRequestType] = strawberry.field(
        resolver=_change_requests,
        extensions=reader(),
        description="A program's change requests, in the order raised." + AS_OF,
    )
    schedule_links: list[ScheduleLinkType] = strawberry.field(
        resolver=_schedule_links,
        extensions=reader(),
        description="The links from or to a program's milestones, in the order made; "
        "unlinked ones with includeRemoved." + AS_OF,
    )
