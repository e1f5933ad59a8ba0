"""``evolve`` for the Program aggregate: applies one recorded event to the program. Pure,
so the same history always yields the same program."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from uuid import UUID

from msgspec import Struct, UnsetType
from msgspec.structs import asdict, replace

from programledger.domain.errors import InconsistentHistory
from programledger.domain.events import replay
from programledger.domain.program.events import (
    ActualSpendReported,
    BudgetAllocated,
    BudgetAllocationRevised,
    ChangeRequestApproved,
    ChangeRequestAssessed,
    ChangeRequestRaised,
    ChangeRequestRejected,
    DecisionRecorded,
    DependencyFlaggedAtRisk,
    DependencyNeededByChanged,
    DependencyRegistered,
    DependencyReopened,
    DependencyResolved,
    DependencyRiskCleared,
    LessonRecorded,
    MilestoneCompleted,
    MilestoneDurationSet,
    MilestoneFlaggedAtRisk,
    MilestoneMissed,
    MilestonePlanned,
    MilestoneRescheduled,
    MilestoneRiskCleared,
    PlannedBudgetRevised,
    ProgramActivated,
    ProgramCancelled,
    ProgramCompleted,
    ProgramDetailsUpdated,
    ProgramEvent,
    ProgramHealthReported,
    ProgramMovedToPortfolio,
    ProgramProposed,
    ProgramPutOnHold,
    ProgramResumed,
    StakeholderAdded,
    StakeholderRemoved,
    WorkstreamAdded,
    WorkstreamUpdated,
)
from programledger.domain.program.state import (
    BudgetAllocation,
    ChangeRequest,
    ChangeRequestStatus,
    Decision,
    Dependency,
    DependencyStatus,
    Lesson,
    Milestone,
    MilestoneStatus,
    Program,
    ProgramStatus,
    SpendReport,
    Stakeholder,
    Workstream,
    original_baseline,
)

__all__ = ["evolve", "fold"]


def evolve(state: Program | None, event: ProgramEvent) -> Program:
    """The program after ``event``. Raises :class:`InconsistentHistory` only for histories
    ``decide`` cannot have produced."""
    if isinstance(event, ProgramProposed):
        if state is not None:
            raise InconsistentHistory(f"program {event.program_id} was proposed twice")
        return Program(**_present(event))
    if state is None:
        raise InconsistentHistory(
            f"{event.event_type} for program {event.program_id} before ProgramProposed"
        )
    match event:
        case ProgramActivated() | ProgramResumed():
            return replace(state, status=ProgramStatus.ACTIVE)
        case ProgramPutOnHold():
            return replace(state, status=ProgramStatus.ON_HOLD)
        case ProgramCompleted():
            return replace(state, status=ProgramStatus.COMPLETED)
        case ProgramCancelled():
            return replace(state, status=ProgramStatus.CANCELLED)
        case ProgramDetailsUpdated():
            return replace(state, **_present(event, "program_id"))
        case ProgramHealthReported():
            return replace(state, health=event.health, health_summary=event.summary)
        case ProgramMovedToPortfolio():
            if event.from_portfolio_id != state.portfolio_id:
                raise InconsistentHistory(
                    f"program {event.program_id} moved from portfolio "
                    f"{event.from_portfolio_id} while in {state.portfolio_id}"
                )
            return replace(state, portfolio_id=event.to_portfolio_id)
        case StakeholderAdded():
            added = Stakeholder(**_present(event, "program_id"))
            return replace(state, stakeholders=(*state.stakeholders, added))
        case StakeholderRemoved():
            _must_hold(state.stakeholders, _stakeholder_id, event.stakeholder_id, event)
            kept = tuple(s for s in state.stakeholders if s.stakeholder_id != event.stakeholder_id)
            return replace(state, stakeholders=kept)
        case WorkstreamAdded():
            workstream = Workstream(**_present(event, "program_id"))
            return replace(state, workstreams=(*state.workstreams, workstream))
        case WorkstreamUpdated():
            changes = _present(event, "program_id", "workstream_id")
            workstreams = _update(
                state.workstreams, _workstream_id, event.workstream_id, event, **changes
            )
            return replace(state, workstreams=workstreams)
        case MilestonePlanned():
            milestone = Milestone(
                milestone_id=event.milestone_id,
                name=event.name,
                workstream_id=event.workstream_id,
                description=event.description,
                baseline_date=event.baseline_date,
                forecast_date=event.baseline_date,
                status=MilestoneStatus.PLANNED,
            )
            return replace(state, milestones=(*state.milestones, milestone))
        case MilestoneRescheduled():
            return _milestone(state, event, forecast_date=event.forecast_date)
        case MilestoneFlaggedAtRisk():
            return _milestone(state, event, status=MilestoneStatus.AT_RISK)
        case MilestoneRiskCleared():
            return _milestone(state, event, status=MilestoneStatus.PLANNED)
        case MilestoneCompleted():
            return _milestone(
                state,
                event,
                status=MilestoneStatus.DONE,
                actual_date=event.actual_date,
                forecast_date=event.actual_date,
            )
        case MilestoneMissed():
            return _milestone(state, event, status=MilestoneStatus.MISSED)
        case DependencyRegistered():
            dependency = Dependency(**_present(event, "program_id"), status=DependencyStatus.OPEN)
            return replace(state, dependencies=(*state.dependencies, dependency))
        case DependencyNeededByChanged():
            return _dependency(state, event, needed_by=event.needed_by)
        case DependencyFlaggedAtRisk():
            return _dependency(state, event, status=DependencyStatus.AT_RISK)
        case DependencyRiskCleared():
            return _dependency(state, event, status=DependencyStatus.OPEN)
        case DependencyResolved():
            return _dependency(
                state, event, status=DependencyStatus.RESOLVED, resolution=event.resolution
            )
        case DependencyReopened():
            return _dependency(state, event, status=DependencyStatus.OPEN, resolution=None)
        case DecisionRecorded():
            return _record_decision(state, event)
        case PlannedBudgetRevised():
            return replace(state, planned_budget=event.planned_budget)
        case BudgetAllocated():
            allocation = BudgetAllocation(**_present(event, "program_id"))
            return replace(state, budget_allocations=(*state.budget_allocations, allocation))
        case BudgetAllocationRevised():
            allocations = _update(
                state.budget_allocations,
                _budget_allocation_id,
                event.budget_allocation_id,
                event,
                amount=event.amount,
            )
            return replace(state, budget_allocations=allocations)
        case ActualSpendReported():
            return replace(state, actual_spend=SpendReport(amount=event.amount, as_of=event.as_of))
        case LessonRecorded():
            lesson = Lesson(**_present(event, "program_id"))
            return replace(state, lessons=(*state.lessons, lesson))
        case MilestoneDurationSet():
            return _milestone(state, event, duration_days=event.duration_days)
        case ChangeRequestRaised():
            request = ChangeRequest(**_present(event, "program_id"))
            return replace(state, change_requests=(*state.change_requests, request))
        case ChangeRequestAssessed():
            return _change_request(
                state,
                event,
                status=ChangeRequestStatus.ASSESSED,
                assessed_by=event.assessed_by,
                assessment=event.assessment,
            )
        case ChangeRequestRejected():
            return _change_request(
                state,
                event,
                status=ChangeRequestStatus.REJECTED,
                decided_by=event.decided_by,
                decision_reason=event.reason,
            )
        case ChangeRequestApproved():
            return _approve(state, event)


def fold(events: Iterable[ProgramEvent]) -> Program | None:
    """The program after all of ``events`` in order; ``None`` for an empty history."""
    return replay(evolve, events)


Item = TypeVar("Item", bound=Struct)


def _present(event: ProgramEvent, *leave_out: str) -> dict[str, Any]:
    """The event's fields as keyword arguments, leaving out those not sent (``UNSET``)."""
    return {
        name: value
        for name, value in asdict(event).items()
        if name not in leave_out and not isinstance(value, UnsetType)
    }


def _must_hold(
    items_: tuple[Item, ...], key: Callable[[Item], UUID], item_id: UUID, event: ProgramEvent
) -> None:
    if not any(key(item) == item_id for item in items_):
        raise InconsistentHistory(
            f"{event.event_type} on program {event.program_id} names {item_id}, "
            "which earlier events never created"
        )


def _update(
    items_: tuple[Item, ...],
    key: Callable[[Item], UUID],
    item_id: UUID,
    event: ProgramEvent,
    **changes: Any,
) -> tuple[Item, ...]:
    _must_hold(items_, key, item_id, event)
    return tuple(replace(item, **changes) if key(item) == item_id else item for item in items_)


def _milestone(
    state: Program,
    event: MilestoneRescheduled
    | MilestoneFlaggedAtRisk
    | MilestoneRiskCleared
    | MilestoneCompleted
    | MilestoneMissed
    | MilestoneDurationSet,
    **changes: Any,
) -> Program:
    milestones = _update(state.milestones, _milestone_id, event.milestone_id, event, **changes)
    return replace(state, milestones=milestones)


def _dependency(
    state: Program,
    event: DependencyNeededByChanged
    | DependencyFlaggedAtRisk
    | DependencyRiskCleared
    | DependencyResolved
    | DependencyReopened,
    **changes: Any,
) -> Program:
    dependencies = _update(
        state.dependencies, _dependency_id, event.dependency_id, event, **changes
    )
    return replace(state, dependencies=dependencies)


def _change_request(
    state: Program,
    event: ChangeRequestAssessed | ChangeRequestRejected | ChangeRequestApproved,
    **changes: Any,
) -> Program:
    requests = _update(
        state.change_requests, _change_request_id, event.change_request_id, event, **changes
    )
    return replace(state, change_requests=requests)


def _approve(state: Program, event: ChangeRequestApproved) -> Program:
    """The new baseline becomes each milestone's baseline date and the planned budget;
    the first approval keeps version 0 as the plan stood before it."""
    baseline = event.baseline
    kept = state.baselines or (original_baseline(state),)
    dates = {d.milestone_id: d.day for d in baseline.milestone_dates}
    milestones = tuple(
        replace(m, baseline_date=dates[m.milestone_id]) if m.milestone_id in dates else m
        for m in state.milestones
    )
    approved = _change_request(
        state,
        event,
        status=ChangeRequestStatus.APPROVED,
        decided_by=event.decided_by,
        decision_reason=event.reason,
        baseline_version=baseline.version,
    )
    return replace(
        approved,
        baselines=(*kept, baseline),
        milestones=milestones,
        planned_budget=baseline.budget,
    )


def _record_decision(state: Program, event: DecisionRecorded) -> Program:
    decisions = state.decisions
    if event.supersedes is not None:
        decisions = _update(
            decisions, _decision_id, event.supersedes, event, superseded_by=event.decision_id
        )
    decision = Decision(**_present(event, "program_id"))
    return replace(state, decisions=(*decisions, decision))


def _stakeholder_id(item: Stakeholder) -> UUID:
    return item.stakeholder_id


def _workstream_id(item: Workstream) -> UUID:
    return item.workstream_id


def _milestone_id(item: Milestone) -> UUID:
    return item.milestone_id


def _dependency_id(item: Dependency) -> UUID:
    return item.dependency_id


def _decision_id(item: Decision) -> UUID:
    return item.decision_id


def _budget_allocation_id(item: BudgetAllocation) -> UUID:
    return item.budget_allocation_id


def _change_request_id(item: ChangeRequest) -> UUID:
    return item.change_request_id
