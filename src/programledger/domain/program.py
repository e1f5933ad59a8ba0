"""The Program aggregate (stream ``program-<uuid>``): ``decide`` and ``evolve``.

``decide(state, command)`` checks a command against the program as it is and returns the
events to record, or raises a :class:`~programledger.domain.errors.DomainError`.
``evolve(state, event)`` applies one recorded event. Both are pure: no clock, no ids drawn,
no I/O, so the same history always yields the same program.

The aggregate's commands, events and state live beside it in ``program_commands``,
``program_events`` and ``program_model`` (all re-exported by ``programledger.domain``); the
rules for the items a program holds are in ``_program_items``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from uuid import UUID

from msgspec import Struct, UnsetType
from msgspec.structs import asdict, replace

from programledger.domain import _program_items as items
from programledger.domain._checks import KEY_MAX, Checks, changed, given
from programledger.domain.errors import (
    AlreadyExists,
    InconsistentHistory,
    InvalidTransition,
    NotFound,
    TerminalState,
)
from programledger.domain.program_commands import (
    ActivateProgram,
    AddStakeholder,
    AddWorkstream,
    AllocateBudget,
    CancelProgram,
    ChangeDependencyNeededBy,
    ClearDependencyRisk,
    ClearMilestoneRisk,
    CompleteMilestone,
    CompleteProgram,
    FlagDependencyAtRisk,
    FlagMilestoneAtRisk,
    MarkMilestoneMissed,
    PlanMilestone,
    ProgramCommand,
    ProposeProgram,
    PutProgramOnHold,
    RecordDecision,
    RecordLesson,
    RegisterDependency,
    RemoveStakeholder,
    ReopenDependency,
    ReportActualSpend,
    ReportProgramHealth,
    RescheduleMilestone,
    ResolveDependency,
    ResumeProgram,
    ReviseBudgetAllocation,
    RevisePlannedBudget,
    SupersedeDecision,
    UpdateProgramDetails,
    UpdateWorkstream,
)
from programledger.domain.program_events import (
    ActualSpendReported,
    BudgetAllocated,
    BudgetAllocationRevised,
    DecisionRecorded,
    DependencyFlaggedAtRisk,
    DependencyNeededByChanged,
    DependencyRegistered,
    DependencyReopened,
    DependencyResolved,
    DependencyRiskCleared,
    LessonRecorded,
    MilestoneCompleted,
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
    ProgramProposed,
    ProgramPutOnHold,
    ProgramResumed,
    StakeholderAdded,
    StakeholderRemoved,
    WorkstreamAdded,
    WorkstreamUpdated,
)
from programledger.domain.program_model import (
    TERMINAL_PROGRAM_STATUSES,
    BudgetAllocation,
    Decision,
    Dependency,
    DependencyStatus,
    Health,
    Lesson,
    Milestone,
    MilestoneStatus,
    Program,
    ProgramStatus,
    SpendReport,
    Stakeholder,
    Workstream,
)

__all__ = [
    "CODE_PATTERN",
    "PROGRAM_LIFECYCLE",
    "decide",
    "evolve",
    "fold",
    "program_stream_id",
]

CODE_PATTERN = re.compile(r"[A-Z][A-Z0-9]{1,9}(-[A-Z0-9]{1,10})*")
"""A program's short code, e.g. ``PAY-2027``. Uniqueness across programs is checked by the
application layer: no single stream can see every program."""
_CODE_MAX = 40

_S = ProgramStatus
PROGRAM_LIFECYCLE: dict[type[ProgramCommand], frozenset[ProgramStatus]] = {
    ActivateProgram: frozenset({_S.PROPOSED}),
    PutProgramOnHold: frozenset({_S.ACTIVE}),
    ResumeProgram: frozenset({_S.ON_HOLD}),
    CompleteProgram: frozenset({_S.ACTIVE, _S.ON_HOLD}),
    CancelProgram: frozenset({_S.PROPOSED, _S.ACTIVE, _S.ON_HOLD}),
}
"""Status-changing command -> the statuses it is allowed from.

Cancelling a proposal is how a proposal is turned down. Every other command is allowed in
any status that is not final."""


def program_stream_id(program_id: UUID) -> str:
    return f"program-{program_id}"


def decide(state: Program | None, command: ProgramCommand) -> list[ProgramEvent]:
    """The events ``command`` causes on ``state`` (``None``: no such program yet).

    Returns an empty list when an update would change nothing.
    """
    if isinstance(command, ProposeProgram):
        if state is not None:
            raise AlreadyExists("program", command.program_id)
        return [_propose(command)]
    if state is None:
        raise NotFound("program", command.program_id)
    if command.program_id != state.program_id:
        raise ValueError(
            f"{type(command).__name__} for program {command.program_id} was decided "
            f"against program {state.program_id}: the caller loaded the wrong stream"
        )
    # Lessons are what a retrospective records, and retrospectives follow the close.
    if state.status in TERMINAL_PROGRAM_STATUSES and not isinstance(command, RecordLesson):
        raise TerminalState("program", state.program_id, state.status.value, type(command).__name__)
    match command:
        case (
            ActivateProgram()
            | PutProgramOnHold()
            | ResumeProgram()
            | CompleteProgram()
            | CancelProgram()
        ):
            return [_transition(state, command)]
        case UpdateProgramDetails():
            return _update_details(state, command)
        case ReportProgramHealth():
            return [_report_health(command)]
        case AddStakeholder():
            return [items.add_stakeholder(state, command)]
        case RemoveStakeholder():
            return [items.remove_stakeholder(state, command)]
        case AddWorkstream():
            return [items.add_workstream(state, command)]
        case UpdateWorkstream():
            return items.update_workstream(state, command)
        case PlanMilestone():
            return [items.plan_milestone(state, command)]
        case RescheduleMilestone():
            return [items.reschedule_milestone(state, command)]
        case FlagMilestoneAtRisk():
            return [items.flag_milestone(state, command)]
        case ClearMilestoneRisk():
            return [items.clear_milestone_risk(state, command)]
        case CompleteMilestone():
            return [items.complete_milestone(state, command)]
        case MarkMilestoneMissed():
            return [items.miss_milestone(state, command)]
        case RegisterDependency():
            return [items.register_dependency(state, command)]
        case ChangeDependencyNeededBy():
            return [items.change_needed_by(state, command)]
        case FlagDependencyAtRisk():
            return [items.flag_dependency(state, command)]
        case ClearDependencyRisk():
            return [items.clear_dependency_risk(state, command)]
        case ResolveDependency():
            return [items.resolve_dependency(state, command)]
        case ReopenDependency():
            return [items.reopen_dependency(state, command)]
        case RecordDecision() | SupersedeDecision():
            return [items.record_decision(state, command)]
        case RevisePlannedBudget():
            return [items.revise_plan(state, command)]
        case AllocateBudget():
            return [items.allocate_budget(state, command)]
        case ReviseBudgetAllocation():
            return [items.revise_allocation(state, command)]
        case ReportActualSpend():
            return [items.report_spend(state, command)]
        case RecordLesson():
            return [items.record_lesson(state, command)]


def _propose(c: ProposeProgram) -> ProgramProposed:
    checks = Checks()
    checks.pattern("code", c.code, CODE_PATTERN, "PAY-2027 (capitals, digits and dashes)")
    if isinstance(c.code, str) and len(c.code) > _CODE_MAX:
        checks.fail("code", f"must be at most {_CODE_MAX} characters")
    checks.line("name", c.name)
    checks.optional_text("description", c.description)
    checks.text("objective", c.objective)
    checks.optional_line("objective_key", c.objective_key, max_len=KEY_MAX)
    checks.line("sponsor", c.sponsor)
    checks.line("owner", c.owner)
    checks.integer("priority", c.priority, 1, 5)
    checks.day("start_date", c.start_date)
    checks.day("target_end_date", c.target_end_date)
    checks.not_before("target_end_date", c.target_end_date, c.start_date, "the start date")
    checks.money("planned_budget", c.planned_budget)
    checks.done()
    return ProgramProposed(
        program_id=c.program_id,
        code=c.code,
        name=c.name,
        description=c.description,
        objective=c.objective,
        objective_key=c.objective_key,
        sponsor=c.sponsor,
        owner=c.owner,
        priority=c.priority,
        start_date=c.start_date,
        target_end_date=c.target_end_date,
        planned_budget=c.planned_budget,
    )


def _transition(
    state: Program,
    c: ActivateProgram | PutProgramOnHold | ResumeProgram | CompleteProgram | CancelProgram,
) -> ProgramEvent:
    checks = Checks()
    if isinstance(c, ActivateProgram | ResumeProgram):
        checks.optional_text("reason", c.reason)
    else:
        checks.text("reason", c.reason)
    checks.done()
    allowed = PROGRAM_LIFECYCLE[type(c)]
    if state.status not in allowed:
        raise InvalidTransition(
            "program",
            state.program_id,
            state.status.value,
            type(c).__name__,
            hint=f"allowed only from {' or '.join(sorted(s.value for s in allowed))}",
        )
    match c:
        case ActivateProgram():
            return ProgramActivated(program_id=c.program_id, reason=c.reason)
        case PutProgramOnHold():
            return ProgramPutOnHold(program_id=c.program_id, reason=c.reason)
        case ResumeProgram():
            return ProgramResumed(program_id=c.program_id, reason=c.reason)
        case CompleteProgram():
            return ProgramCompleted(program_id=c.program_id, reason=c.reason)
        case CancelProgram():
            return ProgramCancelled(program_id=c.program_id, reason=c.reason)


def _update_details(state: Program, c: UpdateProgramDetails) -> list[ProgramEvent]:
    checks = Checks()
    if given(c.name):
        checks.line("name", c.name)
    if given(c.description):
        checks.optional_text("description", c.description)
    if given(c.objective):
        checks.text("objective", c.objective)
    if given(c.objective_key):
        checks.optional_line("objective_key", c.objective_key, max_len=KEY_MAX)
    if given(c.sponsor):
        checks.line("sponsor", c.sponsor)
    if given(c.owner):
        checks.line("owner", c.owner)
    if given(c.priority):
        checks.integer("priority", c.priority, 1, 5)
    start = c.start_date if given(c.start_date) else state.start_date
    end = c.target_end_date if given(c.target_end_date) else state.target_end_date
    if checks.day("start_date", start) and checks.day("target_end_date", end):
        path = "target_end_date" if given(c.target_end_date) else "start_date"
        checks.not_before(path, end, start, "the start date")
    checks.done()
    update = ProgramDetailsUpdated(
        program_id=c.program_id,
        name=changed(c.name, state.name),
        description=changed(c.description, state.description),
        objective=changed(c.objective, state.objective),
        objective_key=changed(c.objective_key, state.objective_key),
        sponsor=changed(c.sponsor, state.sponsor),
        owner=changed(c.owner, state.owner),
        priority=changed(c.priority, state.priority),
        start_date=changed(c.start_date, state.start_date),
        target_end_date=changed(c.target_end_date, state.target_end_date),
    )
    if update == ProgramDetailsUpdated(program_id=c.program_id):
        return []
    return [update]


def _report_health(c: ReportProgramHealth) -> ProgramHealthReported:
    checks = Checks()
    checks.member("health", c.health, Health)
    checks.line("summary", c.summary)
    checks.done()
    return ProgramHealthReported(program_id=c.program_id, health=c.health, summary=c.summary)


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


def fold(events: Iterable[ProgramEvent]) -> Program | None:
    """The program after all of ``events`` in order; ``None`` for an empty history."""
    state: Program | None = None
    for event in events:
        state = evolve(state, event)
    return state


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
    | MilestoneMissed,
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
