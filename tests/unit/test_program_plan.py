"""Program: stakeholders, workstreams, milestones and dependencies."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest

from programledger.domain.errors import AlreadyExists, InvalidTransition, NotFound, ValidationError
from programledger.domain.events import DomainEvent
from programledger.domain.program import (
    AddStakeholder,
    AddWorkstream,
    ChangeDependencyNeededBy,
    ClearDependencyRisk,
    ClearMilestoneRisk,
    CompleteMilestone,
    DependencyFlaggedAtRisk,
    DependencyNeededByChanged,
    DependencyRegistered,
    DependencyReopened,
    DependencyResolved,
    DependencyRiskCleared,
    DependencyStatus,
    ExternalTarget,
    FlagDependencyAtRisk,
    FlagMilestoneAtRisk,
    ItemKind,
    ItemRef,
    MarkMilestoneMissed,
    MilestoneCompleted,
    MilestoneFlaggedAtRisk,
    MilestoneMissed,
    MilestoneRescheduled,
    MilestoneRiskCleared,
    MilestoneStatus,
    PlanMilestone,
    ProgramItemTarget,
    RaciRole,
    RegisterDependency,
    RemoveStakeholder,
    ReopenDependency,
    RescheduleMilestone,
    ResolveDependency,
    StakeholderAdded,
    StakeholderRemoved,
    UpdateWorkstream,
    WorkstreamUpdated,
    slip_days,
)
from programledger.domain.values import Department, PartyKind
from tests.unit.examples import (
    MILESTONE,
    MISSING,
    OTHER_PROGRAM,
    PROGRAM,
    WORKSTREAM,
    active_program,
    program_proposed,
    with_milestone,
    with_workstream,
)
from tests.unit.scenario import given

P = PROGRAM
STAKEHOLDER = UUID("00000000-0000-4000-8000-0000000000e1")
DEPENDENCY = UUID("00000000-0000-4000-8000-0000000000f1")
M = MILESTONE


# Stakeholders


def add_legal(
    stakeholder_id: UUID = STAKEHOLDER, role: RaciRole = RaciRole.CONSULTED
) -> AddStakeholder:
    return AddStakeholder(
        program_id=P,
        stakeholder_id=stakeholder_id,
        name="Legal team",
        kind=PartyKind.TEAM,
        department=Department.LEGAL,
        role=role,
    )


legal_added = StakeholderAdded(
    program_id=P,
    stakeholder_id=STAKEHOLDER,
    name="Legal team",
    kind=PartyKind.TEAM,
    department=Department.LEGAL,
    role=RaciRole.CONSULTED,
)


def test_add_stakeholder_while_proposed() -> None:
    state = given(program_proposed()).when(add_legal()).then(legal_added)
    assert state.stakeholders[0].role is RaciRole.CONSULTED


def test_the_same_stakeholder_id_twice_is_refused() -> None:
    given(*active_program(), legal_added).when(add_legal(role=RaciRole.INFORMED)).raises(
        AlreadyExists
    )


def test_the_same_party_in_the_same_role_twice_is_refused() -> None:
    given(*active_program(), legal_added).when(add_legal(MISSING)).raises(AlreadyExists)


def test_the_same_party_in_another_role_is_fine() -> None:
    command = add_legal(MISSING, RaciRole.INFORMED)
    given(*active_program(), legal_added).when(command).then(
        StakeholderAdded(
            program_id=P,
            stakeholder_id=MISSING,
            name="Legal team",
            kind=PartyKind.TEAM,
            department=Department.LEGAL,
            role=RaciRole.INFORMED,
        )
    )


def test_stakeholder_fields_are_checked() -> None:
    command = AddStakeholder(
        program_id=P,
        stakeholder_id=STAKEHOLDER,
        name="",
        kind="ROBOT",  # type: ignore[arg-type]
        department="HR",  # type: ignore[arg-type]
        role="R",  # type: ignore[arg-type]
    )
    error = given(*active_program()).when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {"name", "kind", "department", "role"}


def test_remove_stakeholder() -> None:
    command = RemoveStakeholder(program_id=P, stakeholder_id=STAKEHOLDER, reason="Left the org")
    state = (
        given(*active_program(), legal_added)
        .when(command)
        .then(StakeholderRemoved(program_id=P, stakeholder_id=STAKEHOLDER, reason="Left the org"))
    )
    assert state.stakeholders == ()


def test_remove_unknown_stakeholder() -> None:
    command = RemoveStakeholder(program_id=P, stakeholder_id=STAKEHOLDER)
    given(*active_program()).when(command).raises(NotFound)


# Workstreams


def test_add_workstream() -> None:
    command = AddWorkstream(
        program_id=P,
        workstream_id=WORKSTREAM,
        name="Card acquiring",
        lead="Priya",
        department=Department.ENGINEERING,
    )
    state = given(*active_program()).when(command).then(with_workstream()[-1])
    assert state.workstreams[0].lead == "Priya"


def test_workstream_ids_and_names_are_unique() -> None:
    same_id = AddWorkstream(
        program_id=P, workstream_id=WORKSTREAM, name="Other", lead="Bo", department=Department.SALES
    )
    given(*with_workstream()).when(same_id).raises(AlreadyExists)
    same_name = AddWorkstream(
        program_id=P,
        workstream_id=MISSING,
        name="Card acquiring",
        lead="Bo",
        department=Department.SALES,
    )
    error = given(*with_workstream()).when(same_name).raises(ValidationError)
    assert "already called" in str(error)


def test_update_workstream_records_only_changes() -> None:
    command = UpdateWorkstream(
        program_id=P, workstream_id=WORKSTREAM, name="Card acquiring", lead="Sam", description=None
    )
    state = (
        given(*with_workstream())
        .when(command)
        .then(WorkstreamUpdated(program_id=P, workstream_id=WORKSTREAM, lead="Sam"))
    )
    assert state.workstreams[0].lead == "Sam"
    given(*with_workstream()).when(UpdateWorkstream(program_id=P, workstream_id=WORKSTREAM)).then()


def test_update_unknown_workstream() -> None:
    command = UpdateWorkstream(program_id=P, workstream_id=MISSING, lead="Sam")
    given(*with_workstream()).when(command).raises(NotFound)


def test_update_workstream_checks_fields() -> None:
    command = UpdateWorkstream(program_id=P, workstream_id=WORKSTREAM, lead="", description="")
    error = given(*with_workstream()).when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {"lead", "description"}


# Milestones


def test_plan_milestone_sets_baseline_and_forecast() -> None:
    command = PlanMilestone(
        program_id=P,
        milestone_id=M,
        name="Pilot live",
        due_date=date(2027, 6, 30),
        workstream_id=WORKSTREAM,
    )
    state = given(*with_workstream()).when(command).then(with_milestone()[-1])
    milestone = state.milestones[0]
    assert milestone.baseline_date == milestone.forecast_date == date(2027, 6, 30)
    assert milestone.status is MilestoneStatus.PLANNED
    assert slip_days(milestone) == 0


def test_plan_milestone_refusals() -> None:
    duplicate = PlanMilestone(program_id=P, milestone_id=M, name="x", due_date=date(2027, 1, 1))
    given(*with_milestone()).when(duplicate).raises(AlreadyExists)
    unknown_workstream = PlanMilestone(
        program_id=P, milestone_id=MISSING, name="x", due_date=date(2027, 1, 1), workstream_id=M
    )
    error = given(*with_milestone()).when(unknown_workstream).raises(ValidationError)
    assert error.issues[0].path == "workstream_id"
    no_name = PlanMilestone(program_id=P, milestone_id=MISSING, name="", due_date=date(2027, 1, 1))
    given(*with_milestone()).when(no_name).raises(ValidationError)


reschedule = RescheduleMilestone(
    program_id=P, milestone_id=M, forecast_date=date(2027, 7, 14), reason="Acquirer late"
)
rescheduled = MilestoneRescheduled(
    program_id=P, milestone_id=M, forecast_date=date(2027, 7, 14), reason="Acquirer late"
)
flagged = MilestoneFlaggedAtRisk(program_id=P, milestone_id=M, reason="Test slot not booked")
missed = MilestoneMissed(program_id=P, milestone_id=M, reason="Certification failed")
done = MilestoneCompleted(program_id=P, milestone_id=M, actual_date=date(2027, 7, 20))


def test_reschedule_moves_the_forecast_not_the_baseline() -> None:
    state = given(*with_milestone()).when(reschedule).then(rescheduled)
    milestone = state.milestones[0]
    assert milestone.baseline_date == date(2027, 6, 30)
    assert milestone.forecast_date == date(2027, 7, 14)
    assert slip_days(milestone) == 14


def test_reschedule_needs_a_reason_and_a_new_date() -> None:
    no_reason = RescheduleMilestone(
        program_id=P, milestone_id=M, forecast_date=date(2027, 7, 1), reason=""
    )
    given(*with_milestone()).when(no_reason).raises(ValidationError)
    same_date = RescheduleMilestone(
        program_id=P, milestone_id=M, forecast_date=date(2027, 6, 30), reason="r"
    )
    given(*with_milestone()).when(same_date).raises(ValidationError)


def test_reschedule_a_done_milestone_is_refused() -> None:
    given(*with_milestone(), done).when(reschedule).raises(InvalidTransition)


def test_reschedule_a_missed_milestone_is_allowed() -> None:
    given(*with_milestone(), missed).when(reschedule).then(rescheduled)


def test_reschedule_unknown_milestone() -> None:
    command = RescheduleMilestone(
        program_id=P, milestone_id=MISSING, forecast_date=date(2027, 7, 1), reason="r"
    )
    given(*with_milestone()).when(command).raises(NotFound)


def test_flag_and_clear_milestone_risk() -> None:
    flag = FlagMilestoneAtRisk(program_id=P, milestone_id=M, reason="Test slot not booked")
    state = given(*with_milestone()).when(flag).then(flagged)
    assert state.milestones[0].status is MilestoneStatus.AT_RISK
    given(*with_milestone(), flagged).when(flag).raises(InvalidTransition)
    clear = ClearMilestoneRisk(program_id=P, milestone_id=M, reason="Slot booked")
    state = (
        given(*with_milestone(), flagged)
        .when(clear)
        .then(MilestoneRiskCleared(program_id=P, milestone_id=M, reason="Slot booked"))
    )
    assert state.milestones[0].status is MilestoneStatus.PLANNED
    given(*with_milestone()).when(clear).raises(InvalidTransition)


def test_flag_needs_a_reason() -> None:
    command = FlagMilestoneAtRisk(program_id=P, milestone_id=M, reason="")
    given(*with_milestone()).when(command).raises(ValidationError)


@pytest.mark.parametrize(
    "before", [[], [flagged], [missed]], ids=["planned", "at risk", "missed (late delivery)"]
)
def test_complete_milestone(before: list[DomainEvent]) -> None:
    command = CompleteMilestone(program_id=P, milestone_id=M, actual_date=date(2027, 7, 20))
    state = given(*with_milestone(), *before).when(command).then(done)
    milestone = state.milestones[0]
    assert milestone.status is MilestoneStatus.DONE
    assert milestone.actual_date == milestone.forecast_date == date(2027, 7, 20)
    assert slip_days(milestone) == 20


def test_complete_twice_is_refused() -> None:
    command = CompleteMilestone(program_id=P, milestone_id=M, actual_date=date(2027, 7, 21))
    error = given(*with_milestone(), done).when(command).raises(InvalidTransition)
    assert error.from_status == "DONE"
    assert error.hint == "allowed only when PLANNED or AT_RISK or MISSED"


def test_mark_missed() -> None:
    command = MarkMilestoneMissed(program_id=P, milestone_id=M, reason="Certification failed")
    state = given(*with_milestone(), flagged).when(command).then(missed)
    assert state.milestones[0].status is MilestoneStatus.MISSED
    given(*with_milestone(), done).when(command).raises(InvalidTransition)
    given(*with_milestone(), missed).when(command).raises(InvalidTransition)
    no_reason = MarkMilestoneMissed(program_id=P, milestone_id=M, reason="")
    given(*with_milestone()).when(no_reason).raises(ValidationError)


# Dependencies

ON_MILESTONE = ItemRef(kind=ItemKind.MILESTONE, item_id=M)
ON_WORKSTREAM = ItemRef(kind=ItemKind.WORKSTREAM, item_id=WORKSTREAM)
VENDOR = ExternalTarget(party="Acme Acquiring", contact="ops@acme.example")


def register(**changes: object) -> RegisterDependency:
    fields: dict[str, object] = {
        "program_id": P,
        "dependency_id": DEPENDENCY,
        "title": "Acquirer sandbox",
        "dependent": ON_MILESTONE,
        "depends_on": VENDOR,
        "needed_by": date(2027, 5, 1),
    }
    return RegisterDependency(**{**fields, **changes})  # type: ignore[arg-type]


registered = DependencyRegistered(
    program_id=P,
    dependency_id=DEPENDENCY,
    title="Acquirer sandbox",
    description=None,
    dependent=ON_MILESTONE,
    depends_on=VENDOR,
    needed_by=date(2027, 5, 1),
)
at_risk = DependencyFlaggedAtRisk(program_id=P, dependency_id=DEPENDENCY, reason="No reply")
resolved = DependencyResolved(program_id=P, dependency_id=DEPENDENCY, resolution="Delivered")


def test_register_dependency_on_an_external_party() -> None:
    state = given(*with_milestone()).when(register()).then(registered)
    assert state.dependencies[0].status is DependencyStatus.OPEN


def test_register_dependency_on_another_programs_item() -> None:
    target = ProgramItemTarget(program_id=OTHER_PROGRAM, kind=ItemKind.MILESTONE, item_id=MISSING)
    given(*with_milestone()).when(register(depends_on=target)).then(
        DependencyRegistered(
            program_id=P,
            dependency_id=DEPENDENCY,
            title="Acquirer sandbox",
            description=None,
            dependent=ON_MILESTONE,
            depends_on=target,
            needed_by=date(2027, 5, 1),
        )
    )


def test_register_dependency_between_items_of_this_program() -> None:
    target = ProgramItemTarget(program_id=P, kind=ItemKind.WORKSTREAM, item_id=WORKSTREAM)
    given(*with_milestone()).when(register(depends_on=target)).then(
        DependencyRegistered(
            program_id=P,
            dependency_id=DEPENDENCY,
            title="Acquirer sandbox",
            description=None,
            dependent=ON_MILESTONE,
            depends_on=target,
            needed_by=date(2027, 5, 1),
        )
    )


def test_dependency_endpoints_in_this_program_must_exist() -> None:
    unknown_from = register(dependent=ItemRef(kind=ItemKind.WORKSTREAM, item_id=MISSING))
    error = given(*with_milestone()).when(unknown_from).raises(ValidationError)
    assert error.issues[0].path == "dependent.item_id"
    target = ProgramItemTarget(program_id=P, kind=ItemKind.MILESTONE, item_id=MISSING)
    error = given(*with_milestone()).when(register(depends_on=target)).raises(ValidationError)
    assert error.issues[0].path == "depends_on.item_id"


def test_an_item_cannot_depend_on_itself() -> None:
    target = ProgramItemTarget(program_id=P, kind=ItemKind.MILESTONE, item_id=M)
    error = given(*with_milestone()).when(register(depends_on=target)).raises(ValidationError)
    assert "itself" in str(error)


def test_register_dependency_refusals() -> None:
    given(*with_milestone(), registered).when(register()).raises(AlreadyExists)
    nameless = register(depends_on=ExternalTarget(party=""), title="")
    error = given(*with_milestone()).when(nameless).raises(ValidationError)
    assert {i.path for i in error.issues} == {"title", "depends_on.party"}


def test_change_needed_by() -> None:
    command = ChangeDependencyNeededBy(
        program_id=P, dependency_id=DEPENDENCY, needed_by=date(2027, 4, 1), reason="Pilot earlier"
    )
    state = (
        given(*with_milestone(), registered)
        .when(command)
        .then(
            DependencyNeededByChanged(
                program_id=P,
                dependency_id=DEPENDENCY,
                needed_by=date(2027, 4, 1),
                reason="Pilot earlier",
            )
        )
    )
    assert state.dependencies[0].needed_by == date(2027, 4, 1)
    error = given(*with_milestone(), registered, resolved).when(command).raises(InvalidTransition)
    assert error.hint == "allowed only when OPEN or AT_RISK"
    same = ChangeDependencyNeededBy(
        program_id=P, dependency_id=DEPENDENCY, needed_by=date(2027, 5, 1), reason="r"
    )
    given(*with_milestone(), registered).when(same).raises(ValidationError)


def test_flag_and_clear_dependency_risk() -> None:
    flag = FlagDependencyAtRisk(program_id=P, dependency_id=DEPENDENCY, reason="No reply")
    state = given(*with_milestone(), registered).when(flag).then(at_risk)
    assert state.dependencies[0].status is DependencyStatus.AT_RISK
    given(*with_milestone(), registered, at_risk).when(flag).raises(InvalidTransition)
    clear = ClearDependencyRisk(program_id=P, dependency_id=DEPENDENCY)
    state = (
        given(*with_milestone(), registered, at_risk)
        .when(clear)
        .then(DependencyRiskCleared(program_id=P, dependency_id=DEPENDENCY))
    )
    assert state.dependencies[0].status is DependencyStatus.OPEN
    given(*with_milestone(), registered).when(clear).raises(InvalidTransition)


def test_resolve_and_reopen_dependency() -> None:
    resolve = ResolveDependency(program_id=P, dependency_id=DEPENDENCY, resolution="Delivered")
    state = given(*with_milestone(), registered, at_risk).when(resolve).then(resolved)
    assert state.dependencies[0].resolution == "Delivered"
    given(*with_milestone(), registered, resolved).when(resolve).raises(InvalidTransition)
    reopen = ReopenDependency(program_id=P, dependency_id=DEPENDENCY, reason="Sandbox broke")
    state = (
        given(*with_milestone(), registered, resolved)
        .when(reopen)
        .then(DependencyReopened(program_id=P, dependency_id=DEPENDENCY, reason="Sandbox broke"))
    )
    assert state.dependencies[0].status is DependencyStatus.OPEN
    assert state.dependencies[0].resolution is None
    given(*with_milestone(), registered).when(reopen).raises(InvalidTransition)


def test_dependency_commands_need_their_text() -> None:
    for command in (
        ResolveDependency(program_id=P, dependency_id=DEPENDENCY, resolution=""),
        ReopenDependency(program_id=P, dependency_id=DEPENDENCY, reason=""),
        FlagDependencyAtRisk(program_id=P, dependency_id=DEPENDENCY, reason=""),
    ):
        given(*with_milestone(), registered).when(command).raises(ValidationError)


def test_unknown_dependency() -> None:
    command = ResolveDependency(program_id=P, dependency_id=MISSING, resolution="r")
    given(*with_milestone(), registered).when(command).raises(NotFound)
