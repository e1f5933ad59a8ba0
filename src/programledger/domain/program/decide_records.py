"""``decide`` for a program's records: its decision log, budget and lessons. Split from
``decide.py`` only to keep each file readable; the program's lifecycle guard (nothing
changes on a completed or cancelled program, except lessons) has already run."""

from __future__ import annotations

from uuid import UUID

from programledger.domain._checks import KEY_MAX, Checks
from programledger.domain.errors import (
    AlreadyExists,
    BudgetExceeded,
    InvalidTransition,
    NotFound,
    ValidationError,
)
from programledger.domain.program.commands import (
    AllocateBudget,
    RecordDecision,
    RecordLesson,
    ReportActualSpend,
    ReviseBudgetAllocation,
    RevisePlannedBudget,
    SupersedeDecision,
)
from programledger.domain.program.decide_plan import require_workstream
from programledger.domain.program.events import (
    ActualSpendReported,
    BudgetAllocated,
    BudgetAllocationRevised,
    DecisionRecorded,
    LessonRecorded,
    PlannedBudgetRevised,
)
from programledger.domain.program.state import (
    BudgetAllocation,
    Decision,
    Program,
    allocated_budget,
    find,
    within,
)
from programledger.domain.values import Money

__all__ = [
    "MAX_ALTERNATIVES",
    "allocate_budget",
    "record_decision",
    "record_lesson",
    "report_spend",
    "revise_allocation",
    "revise_plan",
]

MAX_ALTERNATIVES = 20


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
        raise AlreadyExists("decision", c.decision_id, within=within(state))
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
        raise NotFound("decision", decision_id, within=within(state))
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
        require_workstream(state, c.workstream_id, "workstream_id")
    if _budget_allocation(state, c.budget_allocation_id) is not None:
        raise AlreadyExists("budget allocation", c.budget_allocation_id, within=within(state))
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
        raise NotFound("budget allocation", c.budget_allocation_id, within=within(state))
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
        raise AlreadyExists("lesson", c.lesson_id, within=within(state))
    return LessonRecorded(
        program_id=c.program_id,
        lesson_id=c.lesson_id,
        what_happened=c.what_happened,
        learned=c.learned,
        follow_up_action=c.follow_up_action,
    )
