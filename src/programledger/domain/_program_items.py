"""``decide`` for the items a program holds: stakeholders, workstreams, milestones,
dependencies, decisions, budget and lessons.

Split from ``program.py`` only to keep each file readable; the program's lifecycle guard
(nothing changes on a completed or cancelled program) has already run when these are
called.
"""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from programledger.domain._checks import KEY_MAX, Checks, changed, given
from programledger.domain.errors import (
    AlreadyExists,
    BudgetExceeded,
    InvalidTransition,
    NotFound,
    ValidationError,
)
from programledger.domain.program_commands import (
    AddStakeholder,
    AddWorkstream,
    AllocateBudget,
    ChangeDependencyNeededBy,
    ClearDependencyRisk,
    ClearMilestoneRisk,
    CompleteMilestone,
    FlagDependencyAtRisk,
    FlagMilestoneAtRisk,
    MarkMilestoneMissed,
    PlanMilestone,
    RecordDecision,
    RecordLesson,
    RegisterDependency,
    RemoveStakeholder,
    ReopenDependency,
    ReportActualSpend,
    RescheduleMilestone,
    ResolveDependency,
    ReviseBudgetAllocation,
    RevisePlannedBudget,
    SupersedeDecision,
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
    ProgramEvent,
    StakeholderAdded,
    StakeholderRemoved,
    WorkstreamAdded,
    WorkstreamUpdated,
)
from programledger.domain.program_model import (
    BudgetAllocation,
    Decision,
    Dependency,
    DependencyStatus,
    ExternalTarget,
    ItemKind,
    ItemRef,
    Milestone,
    MilestoneStatus,
    Program,
    ProgramItemTarget,
    RaciRole,
    allocated_budget,
    find,
)
from programledger.domain.values import Department, Money, PartyKind

MAX_ALTERNATIVES = 20

_MS = MilestoneStatus
_DS = DependencyStatus


def _where(state: Program) -> str:
    return f"program {state.code}"


# Stakeholders and workstreams


def add_stakeholder(state: Program, c: AddStakeholder) -> StakeholderAdded:
    checks = Checks()
    checks.line("name", c.name)
    checks.member("kind", c.kind, PartyKind)
    checks.member("department", c.department, Department)
    checks.member("role", c.role, RaciRole)
    checks.done()
    if find(state.stakeholders, lambda s: s.stakeholder_id, c.stakeholder_id) is not None:
        raise AlreadyExists("stakeholder", c.stakeholder_id, within=_where(state))
    if any(s.name == c.name and s.role == c.role for s in state.stakeholders):
        raise AlreadyExists("stakeholder", f"{c.name!r} as {c.role.value}", within=_where(state))
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
        raise NotFound("stakeholder", c.stakeholder_id, within=_where(state))
    return StakeholderRemoved(
        program_id=c.program_id, stakeholder_id=c.stakeholder_id, reason=c.reason
    )


def add_workstream(state: Program, c: AddWorkstream) -> WorkstreamAdded:
    checks = Checks()
    checks.line("name", c.name)
    checks.line("lead", c.lead)
    checks.member("department", c.department, Department)
    checks.optional_text("description", c.description)
    checks.done()
    if find(state.workstreams, lambda w: w.workstream_id, c.workstream_id) is not None:
        raise AlreadyExists("workstream", c.workstream_id, within=_where(state))
    _unique_workstream_name(state, c.name, c.workstream_id)
    return WorkstreamAdded(
        program_id=c.program_id,
        workstream_id=c.workstream_id,
        name=c.name,
        lead=c.lead,
        department=c.department,
        description=c.description,
    )


def update_workstream(state: Program, c: UpdateWorkstream) -> list[ProgramEvent]:
    """No event when nothing would change: repeating an update is harmless."""
    checks = Checks()
    if given(c.name):
        checks.line("name", c.name)
    if given(c.lead):
        checks.line("lead", c.lead)
    if given(c.department):
        checks.member("department", c.department, Department)
    if given(c.description):
        checks.optional_text("description", c.description)
    checks.done()
    current = find(state.workstreams, lambda w: w.workstream_id, c.workstream_id)
    if current is None:
        raise NotFound("workstream", c.workstream_id, within=_where(state))
    if given(c.name):
        _unique_workstream_name(state, c.name, c.workstream_id)
    update = WorkstreamUpdated(
        program_id=c.program_id,
        workstream_id=c.workstream_id,
        name=changed(c.name, current.name),
        lead=changed(c.lead, current.lead),
        department=changed(c.department, current.department),
        description=changed(c.description, current.description),
    )
    if update == WorkstreamUpdated(program_id=c.program_id, workstream_id=c.workstream_id):
        return []
    return [update]


def _unique_workstream_name(state: Program, name: str, workstream_id: UUID) -> None:
    if any(w.name == name and w.workstream_id != workstream_id for w in state.workstreams):
        raise ValidationError.single("name", f"another workstream is already called {name!r}")


def _require_workstream(state: Program, workstream_id: UUID, path: str) -> None:
    if find(state.workstreams, lambda w: w.workstream_id, workstream_id) is None:
        raise ValidationError.single(
            path, f"workstream {workstream_id} does not exist in {_where(state)}"
        )


# Milestones


def plan_milestone(state: Program, c: PlanMilestone) -> MilestonePlanned:
    checks = Checks()
    checks.line("name", c.name)
    checks.day("due_date", c.due_date)
    checks.optional_text("description", c.description)
    checks.done()
    if find(state.milestones, lambda m: m.milestone_id, c.milestone_id) is not None:
        raise AlreadyExists("milestone", c.milestone_id, within=_where(state))
    if c.workstream_id is not None:
        _require_workstream(state, c.workstream_id, "workstream_id")
    return MilestonePlanned(
        program_id=c.program_id,
        milestone_id=c.milestone_id,
        name=c.name,
        workstream_id=c.workstream_id,
        description=c.description,
        baseline_date=c.due_date,
    )


def _milestone(
    state: Program, milestone_id: UUID, attempted: str, allowed: Collection[MilestoneStatus]
) -> Milestone:
    milestone = find(state.milestones, lambda m: m.milestone_id, milestone_id)
    if milestone is None:
        raise NotFound("milestone", milestone_id, within=_where(state))
    if milestone.status not in allowed:
        raise InvalidTransition(
            "milestone",
            milestone_id,
            milestone.status.value,
            attempted,
            hint=f"allowed only when {_either(allowed)}",
        )
    return milestone


def reschedule_milestone(state: Program, c: RescheduleMilestone) -> MilestoneRescheduled:
    checks = Checks()
    checks.day("forecast_date", c.forecast_date)
    checks.text("reason", c.reason)
    checks.done()
    milestone = _milestone(
        state, c.milestone_id, "RescheduleMilestone", (_MS.PLANNED, _MS.AT_RISK, _MS.MISSED)
    )
    if milestone.forecast_date == c.forecast_date:
        raise ValidationError.single(
            "forecast_date", f"the milestone is already forecast for {c.forecast_date}"
        )
    return MilestoneRescheduled(
        program_id=c.program_id,
        milestone_id=c.milestone_id,
        forecast_date=c.forecast_date,
        reason=c.reason,
    )


def flag_milestone(state: Program, c: FlagMilestoneAtRisk) -> MilestoneFlaggedAtRisk:
    checks = Checks()
    checks.text("reason", c.reason)
    checks.done()
    _milestone(state, c.milestone_id, "FlagMilestoneAtRisk", (_MS.PLANNED,))
    return MilestoneFlaggedAtRisk(
        program_id=c.program_id, milestone_id=c.milestone_id, reason=c.reason
    )


def clear_milestone_risk(state: Program, c: ClearMilestoneRisk) -> MilestoneRiskCleared:
    checks = Checks()
    checks.optional_text("reason", c.reason)
    checks.done()
    _milestone(state, c.milestone_id, "ClearMilestoneRisk", (_MS.AT_RISK,))
    return MilestoneRiskCleared(
        program_id=c.program_id, milestone_id=c.milestone_id, reason=c.reason
    )


def complete_milestone(state: Program, c: CompleteMilestone) -> MilestoneCompleted:
    checks = Checks()
    checks.day("actual_date", c.actual_date)
    checks.done()
    _milestone(state, c.milestone_id, "CompleteMilestone", (_MS.PLANNED, _MS.AT_RISK, _MS.MISSED))
    return MilestoneCompleted(
        program_id=c.program_id, milestone_id=c.milestone_id, actual_date=c.actual_date
    )


def miss_milestone(state: Program, c: MarkMilestoneMissed) -> MilestoneMissed:
    checks = Checks()
    checks.text("reason", c.reason)
    checks.done()
    _milestone(state, c.milestone_id, "MarkMilestoneMissed", (_MS.PLANNED, _MS.AT_RISK))
    return MilestoneMissed(program_id=c.program_id, milestone_id=c.milestone_id, reason=c.reason)


# Dependencies


def register_dependency(state: Program, c: RegisterDependency) -> DependencyRegistered:
    checks = Checks()
    checks.line("title", c.title)
    checks.optional_text("description", c.description)
    checks.day("needed_by", c.needed_by)
    _require_item(state, c.dependent, "dependent", checks)
    match c.depends_on:
        case ExternalTarget(party=party, contact=contact):
            checks.line("depends_on.party", party)
            checks.optional_line("depends_on.contact", contact)
        case ProgramItemTarget(program_id=state.program_id, kind=kind, item_id=item_id):
            target = ItemRef(kind=kind, item_id=item_id)
            _require_item(state, target, "depends_on", checks)
            if target == c.dependent:
                checks.fail("depends_on", "an item cannot depend on itself")
    checks.done()
    if find(state.dependencies, lambda d: d.dependency_id, c.dependency_id) is not None:
        raise AlreadyExists("dependency", c.dependency_id, within=_where(state))
    return DependencyRegistered(
        program_id=c.program_id,
        dependency_id=c.dependency_id,
        title=c.title,
        description=c.description,
        dependent=c.dependent,
        depends_on=c.depends_on,
        needed_by=c.needed_by,
    )


def _require_item(state: Program, ref: ItemRef, path: str, checks: Checks) -> None:
    """Items of this program must exist; those of other programs live on other streams."""
    if ref.kind is ItemKind.WORKSTREAM:
        known = find(state.workstreams, lambda w: w.workstream_id, ref.item_id) is not None
    else:
        known = find(state.milestones, lambda m: m.milestone_id, ref.item_id) is not None
    if not known:
        checks.fail(
            f"{path}.item_id",
            f"{ref.kind.value.lower()} {ref.item_id} does not exist in {_where(state)}",
        )


def _dependency(
    state: Program, dependency_id: UUID, attempted: str, allowed: Collection[DependencyStatus]
) -> Dependency:
    dependency = find(state.dependencies, lambda d: d.dependency_id, dependency_id)
    if dependency is None:
        raise NotFound("dependency", dependency_id, within=_where(state))
    if dependency.status not in allowed:
        raise InvalidTransition(
            "dependency",
            dependency_id,
            dependency.status.value,
            attempted,
            hint=f"allowed only when {_either(allowed)}",
        )
    return dependency


def change_needed_by(state: Program, c: ChangeDependencyNeededBy) -> DependencyNeededByChanged:
    checks = Checks()
    checks.day("needed_by", c.needed_by)
    checks.text("reason", c.reason)
    checks.done()
    dependency = _dependency(
        state, c.dependency_id, "ChangeDependencyNeededBy", (_DS.OPEN, _DS.AT_RISK)
    )
    if dependency.needed_by == c.needed_by:
        raise ValidationError.single(
            "needed_by", f"the dependency is already needed by {c.needed_by}"
        )
    return DependencyNeededByChanged(
        program_id=c.program_id,
        dependency_id=c.dependency_id,
        needed_by=c.needed_by,
        reason=c.reason,
    )


def flag_dependency(state: Program, c: FlagDependencyAtRisk) -> DependencyFlaggedAtRisk:
    checks = Checks()
    checks.text("reason", c.reason)
    checks.done()
    _dependency(state, c.dependency_id, "FlagDependencyAtRisk", (_DS.OPEN,))
    return DependencyFlaggedAtRisk(
        program_id=c.program_id, dependency_id=c.dependency_id, reason=c.reason
    )


def clear_dependency_risk(state: Program, c: ClearDependencyRisk) -> DependencyRiskCleared:
    checks = Checks()
    checks.optional_text("reason", c.reason)
    checks.done()
    _dependency(state, c.dependency_id, "ClearDependencyRisk", (_DS.AT_RISK,))
    return DependencyRiskCleared(
        program_id=c.program_id, dependency_id=c.dependency_id, reason=c.reason
    )


def resolve_dependency(state: Program, c: ResolveDependency) -> DependencyResolved:
    checks = Checks()
    checks.text("resolution", c.resolution)
    checks.done()
    _dependency(state, c.dependency_id, "ResolveDependency", (_DS.OPEN, _DS.AT_RISK))
    return DependencyResolved(
        program_id=c.program_id, dependency_id=c.dependency_id, resolution=c.resolution
    )


def reopen_dependency(state: Program, c: ReopenDependency) -> DependencyReopened:
    checks = Checks()
    checks.text("reason", c.reason)
    checks.done()
    _dependency(state, c.dependency_id, "ReopenDependency", (_DS.RESOLVED,))
    return DependencyReopened(
        program_id=c.program_id, dependency_id=c.dependency_id, reason=c.reason
    )


# Decisions


def record_decision(state: Program, c: RecordDecision | SupersedeDecision) -> DecisionRecorded:
    checks = Checks()
    checks.line("title", c.title)
    checks.text("context", c.context)
    checks.text("outcome", c.outcome)
    checks.line("decided_by", c.decided_by)
    checks.day("decided_on", c.decided_on)
    if not isinstance(c.alternatives, tuple | list) or len(c.alternatives) > MAX_ALTERNATIVES:
        checks.fail("alternatives", f"must be a list of at most {MAX_ALTERNATIVES} texts")
    else:
        for index, alternative in enumerate(c.alternatives):
            checks.text(f"alternatives.{index}", alternative)
    checks.done()
    if find(state.decisions, lambda d: d.decision_id, c.decision_id) is not None:
        raise AlreadyExists("decision", c.decision_id, within=_where(state))
    supersedes = None
    if isinstance(c, SupersedeDecision):
        _supersedable(state, c.supersedes)
        supersedes = c.supersedes
    return DecisionRecorded(
        program_id=c.program_id,
        decision_id=c.decision_id,
        title=c.title,
        context=c.context,
        outcome=c.outcome,
        alternatives=tuple(c.alternatives),
        decided_by=c.decided_by,
        decided_on=c.decided_on,
        supersedes=supersedes,
    )


def _supersedable(state: Program, decision_id: UUID) -> Decision:
    earlier = find(state.decisions, lambda d: d.decision_id, decision_id)
    if earlier is None:
        raise NotFound("decision", decision_id, within=_where(state))
    if earlier.superseded_by is not None:
        raise InvalidTransition(
            "decision",
            decision_id,
            "SUPERSEDED",
            "SupersedeDecision",
            hint=f"supersede the decision that replaced it, {earlier.superseded_by}",
        )
    return earlier


# Budget


def revise_plan(state: Program, c: RevisePlannedBudget) -> PlannedBudgetRevised:
    checks = Checks()
    checks.money("planned_budget", c.planned_budget, currency=state.planned_budget.currency)
    checks.text("reason", c.reason)
    checks.done()
    if c.planned_budget == state.planned_budget:
        raise ValidationError.single("planned_budget.amount_minor", "is already the planned budget")
    allocated = allocated_budget(state)
    if c.planned_budget.amount_minor < allocated:
        raise BudgetExceeded(
            state.program_id, c.planned_budget, _in_plan_currency(state, allocated)
        )
    return PlannedBudgetRevised(
        program_id=c.program_id, planned_budget=c.planned_budget, reason=c.reason
    )


def allocate_budget(state: Program, c: AllocateBudget) -> BudgetAllocated:
    checks = Checks()
    checks.money("amount", c.amount, currency=state.planned_budget.currency, positive=True)
    checks.optional_line("cost_centre", c.cost_centre, max_len=KEY_MAX)
    checks.optional_text("purpose", c.purpose)
    if (c.workstream_id is None) == (c.cost_centre is None):
        checks.fail("workstream_id", "give exactly one of workstream_id or cost_centre")
    checks.done()
    if c.workstream_id is not None:
        _require_workstream(state, c.workstream_id, "workstream_id")
    if _budget_allocation(state, c.budget_allocation_id) is not None:
        raise AlreadyExists("budget allocation", c.budget_allocation_id, within=_where(state))
    _within_plan(state, allocated_budget(state) + c.amount.amount_minor)
    return BudgetAllocated(
        program_id=c.program_id,
        budget_allocation_id=c.budget_allocation_id,
        amount=c.amount,
        workstream_id=c.workstream_id,
        cost_centre=c.cost_centre,
        purpose=c.purpose,
    )


def revise_allocation(state: Program, c: ReviseBudgetAllocation) -> BudgetAllocationRevised:
    checks = Checks()
    checks.money("amount", c.amount, currency=state.planned_budget.currency)
    checks.text("reason", c.reason)
    checks.done()
    current = _budget_allocation(state, c.budget_allocation_id)
    if current is None:
        raise NotFound("budget allocation", c.budget_allocation_id, within=_where(state))
    if current.amount == c.amount:
        raise ValidationError.single("amount.amount_minor", "is already the allocated amount")
    total = allocated_budget(state) - current.amount.amount_minor + c.amount.amount_minor
    _within_plan(state, total)
    return BudgetAllocationRevised(
        program_id=c.program_id,
        budget_allocation_id=c.budget_allocation_id,
        amount=c.amount,
        reason=c.reason,
    )


def report_spend(state: Program, c: ReportActualSpend) -> ActualSpendReported:
    checks = Checks()
    checks.money("amount", c.amount, currency=state.planned_budget.currency)
    checks.day("as_of", c.as_of)
    checks.optional_text("note", c.note)
    if state.actual_spend is not None:
        checks.not_before("as_of", c.as_of, state.actual_spend.as_of, "the last spend report")
    checks.done()
    return ActualSpendReported(program_id=c.program_id, amount=c.amount, as_of=c.as_of, note=c.note)


def _budget_allocation(state: Program, budget_allocation_id: UUID) -> BudgetAllocation | None:
    return find(state.budget_allocations, lambda a: a.budget_allocation_id, budget_allocation_id)


def _in_plan_currency(state: Program, amount_minor: int) -> Money:
    return Money(amount_minor=amount_minor, currency=state.planned_budget.currency)


def _within_plan(state: Program, total_minor: int) -> None:
    if total_minor > state.planned_budget.amount_minor:
        raise BudgetExceeded(
            state.program_id, state.planned_budget, _in_plan_currency(state, total_minor)
        )


# Lessons


def record_lesson(state: Program, c: RecordLesson) -> LessonRecorded:
    checks = Checks()
    checks.text("what_happened", c.what_happened)
    checks.text("learned", c.learned)
    checks.optional_text("follow_up_action", c.follow_up_action)
    checks.done()
    if find(state.lessons, lambda lesson: lesson.lesson_id, c.lesson_id) is not None:
        raise AlreadyExists("lesson", c.lesson_id, within=_where(state))
    return LessonRecorded(
        program_id=c.program_id,
        lesson_id=c.lesson_id,
        what_happened=c.what_happened,
        learned=c.learned,
        follow_up_action=c.follow_up_action,
    )


def _either(statuses: Collection[MilestoneStatus] | Collection[DependencyStatus]) -> str:
    return " or ".join(status.value for status in statuses)
