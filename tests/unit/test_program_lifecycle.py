"""Program: proposing, the lifecycle, details and health."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from programledger.domain import program
from programledger.domain.errors import (
    AlreadyExists,
    InvalidTransition,
    NotFound,
    TerminalState,
    ValidationError,
)
from programledger.domain.program import (
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
    Health,
    ItemKind,
    ItemRef,
    MarkMilestoneMissed,
    PlanMilestone,
    ProgramActivated,
    ProgramCancelled,
    ProgramCommand,
    ProgramCompleted,
    ProgramDetailsUpdated,
    ProgramHealthReported,
    ProgramItemTarget,
    ProgramPutOnHold,
    ProgramResumed,
    ProgramStatus,
    PutProgramOnHold,
    RaciRole,
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
from programledger.domain.values import Department, Money, PartyKind
from tests.unit.examples import (
    MILESTONE,
    MISSING,
    OTHER_PROGRAM,
    PROGRAM,
    WORKSTREAM,
    active_program,
    eur,
    program_proposed,
    propose_program,
)
from tests.unit.scenario import given

P = PROGRAM
proposed = [program_proposed()]
active = active_program()
on_hold = [*active, ProgramPutOnHold(program_id=P, reason="Vendor contract renegotiation")]


def test_propose_records_every_initial_field() -> None:
    state = given().when(propose_program()).then(program_proposed())
    assert state.status is ProgramStatus.PROPOSED
    assert state.health is None
    assert state.planned_budget == eur(100_000_00)


def test_propose_twice_is_refused() -> None:
    given(*proposed).when(propose_program()).raises(AlreadyExists)


def test_propose_reports_every_invalid_field_at_once() -> None:
    command = propose_program(
        code="pay_2027",
        name="  ",
        description="bad\x00byte",
        priority=6,
        start_date=date(2027, 6, 1),
        target_end_date=date(2027, 5, 31),
        planned_budget=Money(amount_minor=-1, currency="eur"),
    )
    error = given().when(command).raises(ValidationError)
    assert {issue.path for issue in error.issues} == {
        "code",
        "name",
        "description",
        "priority",
        "target_end_date",
        "planned_budget.amount_minor",
        "planned_budget.currency",
    }
    assert "PAY-2027" in str(error)


@pytest.mark.parametrize("code", ["PAY-2027", "AB", "PLATFORM10-Q3-X1", "A1-B2"])
def test_valid_codes(code: str) -> None:
    given().when(propose_program(code=code)).then(program_proposed(code=code))


@pytest.mark.parametrize(
    "code", ["P", "pay-2027", "PAY_2027", "-PAY", "PAY-", "1PAY", "ABCDEFGHIJK", "PAY 2027"]
)
def test_invalid_codes(code: str) -> None:
    error = given().when(propose_program(code=code)).raises(ValidationError)
    assert error.issues[0].path == "code"


def test_name_length_and_single_line() -> None:
    given().when(propose_program(name="x" * 201)).raises(ValidationError)
    given().when(propose_program(name="two\nlines")).raises(ValidationError)
    given().when(propose_program(name="x" * 200)).then(program_proposed(name="x" * 200))


def test_amount_beyond_what_javascript_reads_exactly_is_refused() -> None:
    given().when(propose_program(planned_budget=eur(2**53))).raises(ValidationError)


def test_commands_on_a_missing_program_are_not_found() -> None:
    error = given().when(ActivateProgram(program_id=P)).raises(NotFound)
    assert str(P) in str(error)


def test_a_command_for_another_program_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="wrong stream"):
        program.decide(program.fold(proposed), ActivateProgram(program_id=OTHER_PROGRAM))


def test_activate_a_proposal() -> None:
    state = (
        given(*proposed)
        .when(ActivateProgram(program_id=P, reason="Approved by the board"))
        .then(ProgramActivated(program_id=P, reason="Approved by the board"))
    )
    assert state.status is ProgramStatus.ACTIVE


def test_activate_twice_is_refused() -> None:
    error = given(*active).when(ActivateProgram(program_id=P)).raises(InvalidTransition)
    assert error.from_status == "ACTIVE"
    assert "PROPOSED" in str(error)


def test_put_on_hold_and_resume() -> None:
    reason = "Vendor contract renegotiation"
    state = (
        given(*active)
        .when(PutProgramOnHold(program_id=P, reason=reason))
        .then(ProgramPutOnHold(program_id=P, reason=reason))
    )
    assert state.status is ProgramStatus.ON_HOLD
    state = (
        given(*on_hold)
        .when(ResumeProgram(program_id=P))
        .then(ProgramResumed(program_id=P, reason=None))
    )
    assert state.status is ProgramStatus.ACTIVE


def test_hold_needs_a_reason() -> None:
    error = given(*active).when(PutProgramOnHold(program_id=P, reason="")).raises(ValidationError)
    assert error.issues[0].path == "reason"


def test_a_proposal_cannot_be_put_on_hold() -> None:
    given(*proposed).when(PutProgramOnHold(program_id=P, reason="wait")).raises(InvalidTransition)


def test_only_a_held_program_resumes() -> None:
    given(*active).when(ResumeProgram(program_id=P)).raises(InvalidTransition)


@pytest.mark.parametrize("history", [active, on_hold], ids=["active", "on hold"])
def test_complete(history: list[Any]) -> None:
    state = (
        given(*history)
        .when(CompleteProgram(program_id=P, reason="All acquirers migrated"))
        .then(ProgramCompleted(program_id=P, reason="All acquirers migrated"))
    )
    assert state.status is ProgramStatus.COMPLETED


def test_a_proposal_cannot_be_completed() -> None:
    given(*proposed).when(CompleteProgram(program_id=P, reason="done")).raises(InvalidTransition)


def test_complete_needs_a_reason() -> None:
    given(*active).when(CompleteProgram(program_id=P, reason=" ")).raises(ValidationError)


@pytest.mark.parametrize("history", [proposed, active, on_hold], ids=["proposed", "active", "hold"])
def test_cancel(history: list[Any]) -> None:
    state = (
        given(*history)
        .when(CancelProgram(program_id=P, reason="Superseded by PAY-2028"))
        .then(ProgramCancelled(program_id=P, reason="Superseded by PAY-2028"))
    )
    assert state.status is ProgramStatus.CANCELLED


def test_cancel_needs_a_reason() -> None:
    given(*active).when(CancelProgram(program_id=P, reason="")).raises(ValidationError)


def _one_of_each_command() -> list[ProgramCommand]:
    item = ItemRef(kind=ItemKind.WORKSTREAM, item_id=WORKSTREAM)
    target = ProgramItemTarget(program_id=P, kind=ItemKind.MILESTONE, item_id=MILESTONE)
    return [
        propose_program(),
        ActivateProgram(program_id=P),
        PutProgramOnHold(program_id=P, reason="r"),
        ResumeProgram(program_id=P),
        CompleteProgram(program_id=P, reason="r"),
        CancelProgram(program_id=P, reason="r"),
        UpdateProgramDetails(program_id=P, name="New"),
        ReportProgramHealth(program_id=P, health=Health.RED, summary="s"),
        AddStakeholder(
            program_id=P,
            stakeholder_id=MISSING,
            name="n",
            kind=PartyKind.PERSON,
            department=Department.LEGAL,
            role=RaciRole.INFORMED,
        ),
        RemoveStakeholder(program_id=P, stakeholder_id=MISSING),
        AddWorkstream(
            program_id=P, workstream_id=MISSING, name="n", lead="l", department=Department.SALES
        ),
        UpdateWorkstream(program_id=P, workstream_id=WORKSTREAM, name="n"),
        PlanMilestone(program_id=P, milestone_id=MISSING, name="n", due_date=date(2027, 1, 1)),
        RescheduleMilestone(
            program_id=P, milestone_id=MILESTONE, forecast_date=date(2027, 1, 2), reason="r"
        ),
        FlagMilestoneAtRisk(program_id=P, milestone_id=MILESTONE, reason="r"),
        ClearMilestoneRisk(program_id=P, milestone_id=MILESTONE),
        CompleteMilestone(program_id=P, milestone_id=MILESTONE, actual_date=date(2027, 1, 1)),
        MarkMilestoneMissed(program_id=P, milestone_id=MILESTONE, reason="r"),
        RegisterDependency(
            program_id=P,
            dependency_id=MISSING,
            title="t",
            dependent=item,
            depends_on=target,
            needed_by=date(2027, 1, 1),
        ),
        ChangeDependencyNeededBy(
            program_id=P, dependency_id=MISSING, needed_by=date(2027, 1, 1), reason="r"
        ),
        FlagDependencyAtRisk(program_id=P, dependency_id=MISSING, reason="r"),
        ClearDependencyRisk(program_id=P, dependency_id=MISSING),
        ResolveDependency(program_id=P, dependency_id=MISSING, resolution="r"),
        ReopenDependency(program_id=P, dependency_id=MISSING, reason="r"),
        RecordDecision(
            program_id=P,
            decision_id=MISSING,
            title="t",
            context="c",
            outcome="o",
            decided_by="d",
            decided_on=date(2027, 1, 1),
        ),
        SupersedeDecision(
            program_id=P,
            decision_id=MISSING,
            title="t",
            context="c",
            outcome="o",
            decided_by="d",
            decided_on=date(2027, 1, 1),
            supersedes=MISSING,
        ),
        RevisePlannedBudget(program_id=P, planned_budget=eur(1), reason="r"),
        AllocateBudget(program_id=P, budget_allocation_id=MISSING, amount=eur(1), cost_centre="c"),
        ReviseBudgetAllocation(
            program_id=P, budget_allocation_id=MISSING, amount=eur(1), reason="r"
        ),
        ReportActualSpend(program_id=P, amount=eur(1), as_of=date(2027, 1, 1)),
        RecordLesson(program_id=P, lesson_id=MISSING, what_happened="w", learned="l"),
        program.SetMilestoneDuration(program_id=P, milestone_id=MILESTONE, duration_days=3),
        program.RaiseChangeRequest(
            program_id=P,
            change_request_id=MISSING,
            title="t",
            description="d",
            raised_by="r",
            scope_added=("s",),
        ),
        program.AssessChangeRequest(
            program_id=P, change_request_id=MISSING, assessed_by="a", assessment="a"
        ),
        program.ApproveChangeRequest(
            program_id=P, change_request_id=MISSING, decided_by="d", reason="r", baseline_name="b"
        ),
        program.RejectChangeRequest(
            program_id=P, change_request_id=MISSING, decided_by="d", reason="r"
        ),
        program.MoveProgramToPortfolio(program_id=P, portfolio_id=MISSING),
    ]


def test_there_is_one_example_of_each_command() -> None:
    from typing import get_args

    assert {type(c) for c in _one_of_each_command()} == set(get_args(ProgramCommand))


@pytest.mark.parametrize(
    "final",
    [
        ProgramCompleted(program_id=P, reason="done"),
        ProgramCancelled(program_id=P, reason="stopped"),
    ],
    ids=["completed", "cancelled"],
)
@pytest.mark.parametrize(
    "command",
    [
        c
        for c in _one_of_each_command()
        if type(c).__name__ not in ("ProposeProgram", "RecordLesson")
    ],
    ids=lambda c: type(c).__name__,
)
def test_a_finished_program_refuses_every_command(final: Any, command: ProgramCommand) -> None:
    error = given(*active, final).when(command).raises(TerminalState)
    assert isinstance(error, InvalidTransition)
    assert "final" in str(error)
    assert type(command).__name__ in str(error)


@pytest.mark.parametrize(
    "final",
    [
        ProgramCompleted(program_id=P, reason="done"),
        ProgramCancelled(program_id=P, reason="stopped"),
    ],
    ids=["completed", "cancelled"],
)
def test_a_finished_program_still_takes_lessons(final: Any) -> None:
    """The retrospective comes after the close."""
    command = RecordLesson(program_id=P, lesson_id=MISSING, what_happened="w", learned="l")
    given(*active, final).when(command).accepted()


def test_update_details_records_only_what_changed() -> None:
    command = UpdateProgramDetails(
        program_id=P, name="Payments 2027", owner="Tom TPM", objective_key=None, priority=2
    )
    state = (
        given(*active)
        .when(command)
        .then(
            ProgramDetailsUpdated(
                program_id=P, name="Payments 2027", objective_key=None, priority=2
            )
        )
    )
    assert (state.name, state.objective_key, state.priority) == ("Payments 2027", None, 2)


def test_update_that_changes_nothing_records_nothing() -> None:
    given(*active).when(UpdateProgramDetails(program_id=P, owner="Tom TPM")).then()
    given(*active).when(UpdateProgramDetails(program_id=P)).then()


def test_update_keeps_dates_in_order() -> None:
    error = (
        given(*active)
        .when(UpdateProgramDetails(program_id=P, target_end_date=date(2026, 12, 31)))
        .raises(ValidationError)
    )
    assert error.issues[0].path == "target_end_date"
    error = (
        given(*active)
        .when(UpdateProgramDetails(program_id=P, start_date=date(2028, 1, 1)))
        .raises(ValidationError)
    )
    assert error.issues[0].path == "start_date"


def test_update_checks_each_field_sent() -> None:
    command = UpdateProgramDetails(program_id=P, name="", sponsor="a\tb", priority=0, objective="")
    error = given(*active).when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {"name", "sponsor", "priority", "objective"}


def test_details_can_change_while_proposed_and_on_hold() -> None:
    for history in (proposed, on_hold):
        given(*history).when(UpdateProgramDetails(program_id=P, priority=3)).then(
            ProgramDetailsUpdated(program_id=P, priority=3)
        )


def test_report_health() -> None:
    state = (
        given(*active)
        .when(ReportProgramHealth(program_id=P, health=Health.AMBER, summary="Acquirer late"))
        .then(ProgramHealthReported(program_id=P, health=Health.AMBER, summary="Acquirer late"))
    )
    assert (state.health, state.health_summary) == (Health.AMBER, "Acquirer late")


def test_health_summary_is_one_line() -> None:
    command = ReportProgramHealth(program_id=P, health=Health.RED, summary="a\nb")
    given(*active).when(command).raises(ValidationError)


def test_health_must_be_a_known_colour() -> None:
    command = ReportProgramHealth(program_id=P, health="BLUE", summary="s")  # type: ignore[arg-type]
    error = given(*active).when(command).raises(ValidationError)
    assert "GREEN" in str(error)
