"""Program: the decision log, the budget and lessons."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from programledger.domain.errors import (
    AlreadyExists,
    BudgetExceeded,
    InvalidTransition,
    NotFound,
    ValidationError,
)
from programledger.domain.program import (
    ActualSpendReported,
    AllocateBudget,
    BudgetAllocated,
    BudgetAllocationRevised,
    DecisionRecorded,
    LessonRecorded,
    PlannedBudgetRevised,
    RecordDecision,
    RecordLesson,
    ReportActualSpend,
    ReviseBudgetAllocation,
    RevisePlannedBudget,
    SupersedeDecision,
    allocated_budget,
)
from programledger.domain.values import Money
from tests.unit.examples import (
    MISSING,
    PROGRAM,
    WORKSTREAM,
    active_program,
    eur,
    with_workstream,
)
from tests.unit.scenario import given

P = PROGRAM
FIRST = UUID("00000000-0000-4000-8000-000000000101")
SECOND = UUID("00000000-0000-4000-8000-000000000102")
THIRD = UUID("00000000-0000-4000-8000-000000000103")

# Decisions

DECISION: dict[str, Any] = {
    "title": "Acquirer for the pilot",
    "context": "Two acquirers passed due diligence.",
    "outcome": "Go with Acme for the pilot.",
    "alternatives": ("Globex", "Build in-house"),
    "decided_by": "Steering committee",
    "decided_on": date(2027, 2, 1),
}


def recorded(decision_id: UUID = FIRST, supersedes: UUID | None = None) -> DecisionRecorded:
    return DecisionRecorded(
        program_id=P, decision_id=decision_id, supersedes=supersedes, **DECISION
    )


def test_record_decision() -> None:
    state = (
        given(*active_program())
        .when(RecordDecision(program_id=P, decision_id=FIRST, **DECISION))
        .then(recorded())
    )
    assert state.decisions[0].alternatives == ("Globex", "Build in-house")
    assert state.decisions[0].superseded_by is None


def test_decision_ids_are_unique() -> None:
    command = RecordDecision(program_id=P, decision_id=FIRST, **DECISION)
    given(*active_program(), recorded()).when(command).raises(AlreadyExists)


def test_decision_fields_are_checked() -> None:
    command = RecordDecision(
        program_id=P,
        decision_id=FIRST,
        **{**DECISION, "outcome": "", "decided_by": "", "alternatives": ("ok", "")},
    )
    error = given(*active_program()).when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {"outcome", "decided_by", "alternatives.1"}
    too_many = RecordDecision(
        program_id=P, decision_id=FIRST, **{**DECISION, "alternatives": ("a",) * 21}
    )
    given(*active_program()).when(too_many).raises(ValidationError)


def test_supersede_records_a_new_decision_and_keeps_the_old_one() -> None:
    command = SupersedeDecision(program_id=P, decision_id=SECOND, supersedes=FIRST, **DECISION)
    state = given(*active_program(), recorded()).when(command).then(recorded(SECOND, FIRST))
    first, second = state.decisions
    assert first.outcome == DECISION["outcome"]
    assert first.superseded_by == SECOND
    assert second.supersedes == FIRST


def test_supersede_unknown_decision() -> None:
    command = SupersedeDecision(program_id=P, decision_id=SECOND, supersedes=MISSING, **DECISION)
    given(*active_program(), recorded()).when(command).raises(NotFound)


def test_a_superseded_decision_cannot_be_superseded_again() -> None:
    command = SupersedeDecision(program_id=P, decision_id=THIRD, supersedes=FIRST, **DECISION)
    error = (
        given(*active_program(), recorded(), recorded(SECOND, FIRST))
        .when(command)
        .raises(InvalidTransition)
    )
    assert str(SECOND) in str(error)


# Budget

plan_raised = PlannedBudgetRevised(program_id=P, planned_budget=eur(150_000_00), reason="Scope+")
to_workstream = BudgetAllocated(
    program_id=P,
    budget_allocation_id=FIRST,
    amount=eur(60_000_00),
    workstream_id=WORKSTREAM,
    cost_centre=None,
    purpose="Acquirer integration",
)
to_cost_centre = BudgetAllocated(
    program_id=P,
    budget_allocation_id=SECOND,
    amount=eur(40_000_00),
    workstream_id=None,
    cost_centre="CC-4711",
)


def test_raise_and_lower_the_plan() -> None:
    command = RevisePlannedBudget(program_id=P, planned_budget=eur(150_000_00), reason="Scope+")
    state = given(*active_program()).when(command).then(plan_raised)
    assert state.planned_budget == eur(150_000_00)
    lower = RevisePlannedBudget(program_id=P, planned_budget=eur(60_000_00), reason="Cut")
    given(*with_workstream(), to_workstream).when(lower).then(
        PlannedBudgetRevised(program_id=P, planned_budget=eur(60_000_00), reason="Cut")
    )


def test_lowering_the_plan_below_what_is_allocated_is_refused() -> None:
    command = RevisePlannedBudget(program_id=P, planned_budget=eur(59_999_99), reason="Cut")
    error = given(*with_workstream(), to_workstream).when(command).raises(BudgetExceeded)
    assert error.allocated == eur(60_000_00)
    assert error.planned == eur(59_999_99)


def test_plan_revision_checks() -> None:
    other_currency = RevisePlannedBudget(
        program_id=P, planned_budget=Money(amount_minor=1, currency="USD"), reason="r"
    )
    error = given(*active_program()).when(other_currency).raises(ValidationError)
    assert error.issues[0].path == "planned_budget.currency"
    same = RevisePlannedBudget(program_id=P, planned_budget=eur(100_000_00), reason="r")
    given(*active_program()).when(same).raises(ValidationError)
    no_reason = RevisePlannedBudget(program_id=P, planned_budget=eur(1), reason="")
    given(*active_program()).when(no_reason).raises(ValidationError)


def test_allocate_to_a_workstream_and_a_cost_centre_up_to_the_plan() -> None:
    first = AllocateBudget(
        program_id=P,
        budget_allocation_id=FIRST,
        amount=eur(60_000_00),
        workstream_id=WORKSTREAM,
        purpose="Acquirer integration",
    )
    given(*with_workstream()).when(first).then(to_workstream)
    second = AllocateBudget(
        program_id=P, budget_allocation_id=SECOND, amount=eur(40_000_00), cost_centre="CC-4711"
    )
    state = given(*with_workstream(), to_workstream).when(second).then(to_cost_centre)
    assert allocated_budget(state) == state.planned_budget.amount_minor


def test_allocating_beyond_the_plan_is_refused_until_the_plan_is_raised() -> None:
    command = AllocateBudget(
        program_id=P, budget_allocation_id=THIRD, amount=eur(1), cost_centre="CC-1"
    )
    history = [*with_workstream(), to_workstream, to_cost_centre]
    error = given(*history).when(command).raises(BudgetExceeded)
    assert error.allocated == eur(100_000_01)
    assert "raise the planned budget first" in str(error)
    given(*history, plan_raised).when(command).then(
        BudgetAllocated(
            program_id=P,
            budget_allocation_id=THIRD,
            amount=eur(1),
            workstream_id=None,
            cost_centre="CC-1",
        )
    )


def test_allocation_targets_exactly_one_known_place() -> None:
    both = AllocateBudget(
        program_id=P,
        budget_allocation_id=THIRD,
        amount=eur(1),
        workstream_id=WORKSTREAM,
        cost_centre="CC-1",
    )
    given(*with_workstream()).when(both).raises(ValidationError)
    neither = AllocateBudget(program_id=P, budget_allocation_id=THIRD, amount=eur(1))
    given(*with_workstream()).when(neither).raises(ValidationError)
    unknown = AllocateBudget(
        program_id=P, budget_allocation_id=THIRD, amount=eur(1), workstream_id=MISSING
    )
    error = given(*with_workstream()).when(unknown).raises(ValidationError)
    assert error.issues[0].path == "workstream_id"


def test_allocation_amount_and_id_checks() -> None:
    zero = AllocateBudget(program_id=P, budget_allocation_id=THIRD, amount=eur(0), cost_centre="C")
    given(*with_workstream()).when(zero).raises(ValidationError)
    dollars = AllocateBudget(
        program_id=P,
        budget_allocation_id=THIRD,
        amount=Money(amount_minor=5, currency="USD"),
        cost_centre="C",
    )
    given(*with_workstream()).when(dollars).raises(ValidationError)
    duplicate = AllocateBudget(
        program_id=P, budget_allocation_id=FIRST, amount=eur(1), cost_centre="C"
    )
    given(*with_workstream(), to_workstream).when(duplicate).raises(AlreadyExists)


def test_revise_a_budget_allocation() -> None:
    history = [*with_workstream(), to_workstream, to_cost_centre]
    shrink = ReviseBudgetAllocation(
        program_id=P, budget_allocation_id=FIRST, amount=eur(0), reason="Descoped"
    )
    state = (
        given(*history)
        .when(shrink)
        .then(
            BudgetAllocationRevised(
                program_id=P, budget_allocation_id=FIRST, amount=eur(0), reason="Descoped"
            )
        )
    )
    assert allocated_budget(state) == 40_000_00
    grow = ReviseBudgetAllocation(
        program_id=P, budget_allocation_id=FIRST, amount=eur(60_000_01), reason="More"
    )
    given(*history).when(grow).raises(BudgetExceeded)
    unknown = ReviseBudgetAllocation(
        program_id=P, budget_allocation_id=MISSING, amount=eur(1), reason="r"
    )
    given(*history).when(unknown).raises(NotFound)
    unchanged = ReviseBudgetAllocation(
        program_id=P, budget_allocation_id=FIRST, amount=eur(60_000_00), reason="r"
    )
    given(*history).when(unchanged).raises(ValidationError)


def test_report_actual_spend_to_date() -> None:
    command = ReportActualSpend(
        program_id=P, amount=eur(12_345_67), as_of=date(2027, 3, 31), note="Q1 close"
    )
    event = ActualSpendReported(
        program_id=P, amount=eur(12_345_67), as_of=date(2027, 3, 31), note="Q1 close"
    )
    state = given(*active_program()).when(command).then(event)
    assert state.actual_spend is not None
    assert state.actual_spend.amount == eur(12_345_67)
    overspend = ReportActualSpend(program_id=P, amount=eur(200_000_00), as_of=date(2027, 6, 30))
    given(*active_program(), event).when(overspend).then(
        ActualSpendReported(program_id=P, amount=eur(200_000_00), as_of=date(2027, 6, 30))
    )


def test_spend_reports_move_forward_in_time() -> None:
    earlier = ActualSpendReported(program_id=P, amount=eur(5), as_of=date(2027, 3, 31))
    command = ReportActualSpend(program_id=P, amount=eur(4), as_of=date(2027, 3, 30))
    error = given(*active_program(), earlier).when(command).raises(ValidationError)
    assert error.issues[0].path == "as_of"
    dollars = ReportActualSpend(
        program_id=P, amount=Money(amount_minor=1, currency="USD"), as_of=date(2027, 4, 1)
    )
    given(*active_program()).when(dollars).raises(ValidationError)


# Lessons


def test_record_lesson() -> None:
    command = RecordLesson(
        program_id=P,
        lesson_id=FIRST,
        what_happened="Certification took six weeks, not two.",
        learned="Book acquirer test slots at kickoff.",
        follow_up_action="Add slot booking to the program template.",
    )
    event = LessonRecorded(
        program_id=P,
        lesson_id=FIRST,
        what_happened="Certification took six weeks, not two.",
        learned="Book acquirer test slots at kickoff.",
        follow_up_action="Add slot booking to the program template.",
    )
    state = given(*active_program()).when(command).then(event)
    assert state.lessons[0].learned == "Book acquirer test slots at kickoff."
    given(*active_program(), event).when(command).raises(AlreadyExists)


def test_lesson_needs_what_happened_and_what_was_learned() -> None:
    command = RecordLesson(program_id=P, lesson_id=FIRST, what_happened="", learned="x" * 10_001)
    error = given(*active_program()).when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {"what_happened", "learned"}
