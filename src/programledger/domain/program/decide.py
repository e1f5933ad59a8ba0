"""``decide`` for the Program aggregate (stream ``program-<uuid>``): checks a command
against the program as it is and returns the events to record, or raises a
:class:`~programledger.domain.errors.DomainError`. Pure: no clock, no ids drawn, no I/O, so
the same history always yields the same decisions.

This module decides for the program itself and its stakeholders, and routes the rest: the
decisions on the program's items are split by item (``decide_plan``: workstreams and
milestones; ``decide_dependencies``; ``decide_records``: decisions, budget, lessons) only
because one file for all of them would be over 800 lines.
"""

from __future__ import annotations

import re

from programledger.domain._checks import KEY_MAX, Checks, changed, given
from programledger.domain.errors import AlreadyExists, InvalidTransition, NotFound, TerminalState
from programledger.domain.program.commands import (
    ActivateProgram,
    AddStakeholder,
    AddWorkstream,
    AllocateBudget,
    ApproveChangeRequest,
    AssessChangeRequest,
    CancelProgram,
    ChangeDependencyNeededBy,
    ClearDependencyRisk,
    ClearMilestoneRisk,
    CompleteMilestone,
    CompleteProgram,
    FlagDependencyAtRisk,
    FlagMilestoneAtRisk,
    MarkMilestoneMissed,
    MoveProgramToPortfolio,
    PlanMilestone,
    ProgramCommand,
    ProposeProgram,
    PutProgramOnHold,
    RaiseChangeRequest,
    RecordDecision,
    RecordLesson,
    RegisterDependency,
    RejectChangeRequest,
    RemoveStakeholder,
    ReopenDependency,
    ReportActualSpend,
    ReportProgramHealth,
    RescheduleMilestone,
    ResolveDependency,
    ResumeProgram,
    ReviseBudgetAllocation,
    RevisePlannedBudget,
    SetMilestoneDuration,
    SupersedeDecision,
    UpdateProgramDetails,
    UpdateWorkstream,
)
from programledger.domain.program.decide_changes import (
    approve_change,
    assess_change,
    raise_change,
    reject_change,
)
from programledger.domain.program.decide_dependencies import (
    change_needed_by,
    clear_dependency_risk,
    flag_dependency,
    register_dependency,
    reopen_dependency,
    resolve_dependency,
)
from programledger.domain.program.decide_plan import (
    add_workstream,
    clear_milestone_risk,
    complete_milestone,
    flag_milestone,
    miss_milestone,
    plan_milestone,
    reschedule_milestone,
    set_duration,
    update_workstream,
)
from programledger.domain.program.decide_records import (
    allocate_budget,
    record_decision,
    record_lesson,
    report_spend,
    revise_allocation,
    revise_plan,
)
from programledger.domain.program.events import (
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
)
from programledger.domain.program.state import (
    TERMINAL_PROGRAM_STATUSES,
    Health,
    Program,
    ProgramStatus,
    RaciRole,
    find,
    within,
)
from programledger.domain.values import Department, PartyKind

__all__ = ["CODE_PATTERN", "PROGRAM_LIFECYCLE", "decide"]

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
            return [add_stakeholder(state, command)]
        case RemoveStakeholder():
            return [remove_stakeholder(state, command)]
        case AddWorkstream():
            return [add_workstream(state, command)]
        case UpdateWorkstream():
            return update_workstream(state, command)
        case PlanMilestone():
            return [plan_milestone(state, command)]
        case RescheduleMilestone():
            return [reschedule_milestone(state, command)]
        case FlagMilestoneAtRisk():
            return [flag_milestone(state, command)]
        case ClearMilestoneRisk():
            return [clear_milestone_risk(state, command)]
        case CompleteMilestone():
            return [complete_milestone(state, command)]
        case MarkMilestoneMissed():
            return [miss_milestone(state, command)]
        case RegisterDependency():
            return [register_dependency(state, command)]
        case ChangeDependencyNeededBy():
            return [change_needed_by(state, command)]
        case FlagDependencyAtRisk():
            return [flag_dependency(state, command)]
        case ClearDependencyRisk():
            return [clear_dependency_risk(state, command)]
        case ResolveDependency():
            return [resolve_dependency(state, command)]
        case ReopenDependency():
            return [reopen_dependency(state, command)]
        case RecordDecision() | SupersedeDecision():
            return [record_decision(state, command)]
        case RevisePlannedBudget():
            return [revise_plan(state, command)]
        case AllocateBudget():
            return [allocate_budget(state, command)]
        case ReviseBudgetAllocation():
            return [revise_allocation(state, command)]
        case ReportActualSpend():
            return [report_spend(state, command)]
        case RecordLesson():
            return [record_lesson(state, command)]
        case SetMilestoneDuration():
            return set_duration(state, command)
        case RaiseChangeRequest():
            return [raise_change(state, command)]
        case AssessChangeRequest():
            return [assess_change(state, command)]
        case ApproveChangeRequest():
            return [approve_change(state, command)]
        case RejectChangeRequest():
            return [reject_change(state, command)]
        case MoveProgramToPortfolio():
            return _move(state, command)


def _move(state: Program, c: MoveProgramToPortfolio) -> list[ProgramEvent]:
    """A move to the portfolio the program is already in changes nothing, so records
    nothing. Whether the portfolio exists and is open is checked by the application: it
    lives on another stream."""
    checks = Checks()
    checks.optional_text("reason", c.reason)
    checks.done()
    if c.portfolio_id == state.portfolio_id:
        return []
    return [
        ProgramMovedToPortfolio(
            program_id=state.program_id,
            from_portfolio_id=state.portfolio_id,
            to_portfolio_id=c.portfolio_id,
            reason=c.reason,
        )
    ]


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


def add_stakeholder(state: Program, c: AddStakeholder) -> StakeholderAdded:
    checks = Checks()
    checks.line("name", c.name)
    checks.member("kind", c.kind, PartyKind)
    checks.member("department", c.department, Department)
    checks.member("role", c.role, RaciRole)
    checks.done()
    if find(state.stakeholders, lambda s: s.stakeholder_id, c.stakeholder_id) is not None:
        raise AlreadyExists("stakeholder", c.stakeholder_id, within=within(state))
    if any(s.name == c.name and s.role == c.role for s in state.stakeholders):
        raise AlreadyExists("stakeholder", f"{c.name!r} as {c.role.value}", within=within(state))
    return StakeholderAdded(
        program_id=c.program_id,
        stakeholder_id=c.stakeholder_id,
        name=c.name,
        kind=c.kind,
        department=c.department,
        role=c.role,
    )


def remove_stakeholder(state: Program, c: RemoveStakeholder) -> StakeholderRemoved:
    checks = Checks()
    checks.optional_text("reason", c.reason)
    checks.done()
    if find(state.stakeholders, lambda s: s.stakeholder_id, c.stakeholder_id) is None:
        raise NotFound("stakeholder", c.stakeholder_id, within=within(state))
    return StakeholderRemoved(
        program_id=c.program_id, stakeholder_id=c.stakeholder_id, reason=c.reason
    )
