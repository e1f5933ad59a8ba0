"""Resource: registration, capacity and allocations, with the over-allocation rule."""

from __future__ import annotations

from datetime import date

import pytest

from programledger.domain import resource
from programledger.domain.capacity import AllocationStatus, CapacityStep, capacity_on
from programledger.domain.errors import (
    AlreadyExists,
    InvalidTransition,
    NotFound,
    OverAllocation,
    ValidationError,
)
from programledger.domain.resource import (
    AdjustAllocation,
    AllocationAdjusted,
    AllocationConfirmed,
    AllocationReleased,
    ChangeCapacity,
    ConfirmAllocation,
    ProposeAllocation,
    RegisterResource,
    ReleaseAllocation,
    ResourceCapacityChanged,
    ResourceDetailsUpdated,
    UpdateResourceDetails,
)
from programledger.domain.values import Department, OverAllocationPeriod, PartyKind
from tests.unit.examples import (
    ALICE,
    ALLOCATION,
    MISSING,
    OTHER_ALLOCATION,
    OTHER_PROGRAM,
    PROGRAM,
    alice_registered,
    allocation_event,
    confirmed,
    proposed_allocation,
)
from tests.unit.scenario import given

A = ALLOCATION
B = OTHER_ALLOCATION
alice = [alice_registered()]
proposal = proposed_allocation()
other = proposed_allocation(B, program_id=OTHER_PROGRAM, start=date(2027, 4, 16), percentage=50)
booked = [*alice, proposal, confirmed(proposal)]
both_booked = [*booked, other, confirmed(other)]


def test_register_a_person() -> None:
    command = RegisterResource(
        resource_key=ALICE,
        name="Alice Martin",
        kind=PartyKind.PERSON,
        department=Department.ENGINEERING,
        role="Backend engineer",
        capacity=100,
    )
    state = given().when(command).then(alice_registered())
    assert capacity_on(state.capacity_schedule, date(2027, 1, 1)) == 100


def test_register_a_team_of_three() -> None:
    command = RegisterResource(
        resource_key="team-payments",
        name="Payments team",
        kind=PartyKind.TEAM,
        department=Department.ENGINEERING,
        role="Delivery team",
        capacity=300,
    )
    state = (
        given()
        .when(command)
        .then(
            resource.ResourceRegistered(
                resource_key="team-payments",
                name="Payments team",
                kind=PartyKind.TEAM,
                department=Department.ENGINEERING,
                role="Delivery team",
                capacity=300,
            )
        )
    )
    assert state.capacity_schedule == (CapacityStep(effective_from=None, capacity=300),)


def test_register_refusals() -> None:
    command = RegisterResource(
        resource_key="Alice Martin",
        name="",
        kind=PartyKind.PERSON,
        department=Department.ENGINEERING,
        role="",
        capacity=150,
    )
    error = given().when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {"resource_key", "name", "role", "capacity"}
    again = RegisterResource(
        resource_key=ALICE,
        name="Alice",
        kind=PartyKind.PERSON,
        department=Department.ENGINEERING,
        role="r",
        capacity=100,
    )
    given(*alice).when(again).raises(AlreadyExists)


def test_commands_on_a_missing_resource() -> None:
    given().when(ConfirmAllocation(resource_key=ALICE, allocation_id=A)).raises(NotFound)


def test_a_command_for_another_resource_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="wrong stream"):
        resource.decide(
            resource.fold(alice), ConfirmAllocation(resource_key="bob", allocation_id=A)
        )


def test_update_details() -> None:
    command = UpdateResourceDetails(resource_key=ALICE, role="Staff engineer", name="Alice Martin")
    state = (
        given(*alice)
        .when(command)
        .then(ResourceDetailsUpdated(resource_key=ALICE, role="Staff engineer"))
    )
    assert state.role == "Staff engineer"
    given(*alice).when(UpdateResourceDetails(resource_key=ALICE, role="Backend engineer")).then()
    given(*alice).when(UpdateResourceDetails(resource_key=ALICE, name="")).raises(ValidationError)


def test_propose_allocation() -> None:
    command = ProposeAllocation(
        resource_key=ALICE,
        allocation_id=A,
        program_id=PROGRAM,
        start_date=date(2027, 4, 1),
        end_date=date(2027, 4, 30),
        percentage=60,
    )
    state = given(*alice).when(command).then(proposal)
    assert state.allocations[0].status is AllocationStatus.PROPOSED


def test_proposals_do_not_count_against_capacity() -> None:
    command = ProposeAllocation(
        resource_key=ALICE,
        allocation_id=B,
        program_id=OTHER_PROGRAM,
        start_date=date(2027, 4, 1),
        end_date=date(2027, 4, 30),
        percentage=100,
    )
    given(*booked).when(command).then(
        proposed_allocation(B, program_id=OTHER_PROGRAM, percentage=100)
    )


@pytest.mark.parametrize(
    ("start", "end", "percentage", "paths"),
    [
        (date(2027, 5, 1), date(2027, 4, 1), 50, {"end_date"}),
        (date(2027, 4, 1), date(2027, 4, 30), 0, {"percentage"}),
        (date(2027, 4, 1), date(2027, 4, 30), 101, {"percentage"}),
    ],
)
def test_propose_refusals(start: date, end: date, percentage: int, paths: set[str]) -> None:
    command = ProposeAllocation(
        resource_key=ALICE,
        allocation_id=B,
        program_id=PROGRAM,
        start_date=start,
        end_date=end,
        percentage=percentage,
    )
    error = given(*alice).when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == paths


def test_propose_with_a_taken_id() -> None:
    command = ProposeAllocation(
        resource_key=ALICE,
        allocation_id=A,
        program_id=PROGRAM,
        start_date=date(2027, 4, 1),
        end_date=date(2027, 4, 30),
        percentage=10,
    )
    given(*alice, proposal).when(command).raises(AlreadyExists)


def test_confirm_within_capacity() -> None:
    state = (
        given(*alice, proposal)
        .when(ConfirmAllocation(resource_key=ALICE, allocation_id=A))
        .then(confirmed(proposal))
    )
    assert state.allocations[0].status is AllocationStatus.CONFIRMED


def test_confirm_over_capacity_names_periods_programs_and_total() -> None:
    error = (
        given(*booked, other)
        .when(ConfirmAllocation(resource_key=ALICE, allocation_id=B))
        .raises(OverAllocation)
    )
    conflict = OverAllocationPeriod(
        start=date(2027, 4, 16),
        end=date(2027, 4, 30),
        total_percentage=110,
        capacity=100,
        program_ids=tuple(sorted([PROGRAM, OTHER_PROGRAM])),
        allocation_ids=(A, B),
    )
    assert error.conflicts == (conflict,)
    assert error.resource_key == ALICE
    message = str(error)
    assert "2027-04-16..2027-04-30 at 110% of 100%" in message
    assert str(OTHER_PROGRAM) in message
    assert "override_reason" in message


def test_confirm_over_capacity_with_an_override_records_it() -> None:
    command = ConfirmAllocation(resource_key=ALICE, allocation_id=B, override_reason="Crunch week")
    conflict = OverAllocationPeriod(
        start=date(2027, 4, 16),
        end=date(2027, 4, 30),
        total_percentage=110,
        capacity=100,
        program_ids=tuple(sorted([PROGRAM, OTHER_PROGRAM])),
        allocation_ids=(A, B),
    )
    event = AllocationConfirmed(
        resource_key=ALICE,
        allocation_id=B,
        program_id=OTHER_PROGRAM,
        workstream_id=None,
        start_date=date(2027, 4, 16),
        end_date=date(2027, 4, 30),
        percentage=50,
        override_reason="Crunch week",
        over_allocation=(conflict,),
    )
    given(*booked, other).when(command).then(event)


def test_an_unneeded_override_is_not_recorded() -> None:
    command = ConfirmAllocation(resource_key=ALICE, allocation_id=A, override_reason="Just in case")
    given(*alice, proposal).when(command).then(confirmed(proposal))


def test_an_override_reason_must_say_something() -> None:
    command = ConfirmAllocation(resource_key=ALICE, allocation_id=B, override_reason=" ")
    given(*booked, other).when(command).raises(ValidationError)


def test_confirm_refusals() -> None:
    command = ConfirmAllocation(resource_key=ALICE, allocation_id=A)
    error = given(*booked).when(command).raises(InvalidTransition)
    assert (error.from_status, error.hint) == ("CONFIRMED", "allowed only when PROPOSED")
    given(*alice).when(command).raises(NotFound)
    released = allocation_event(AllocationReleased, proposal, reason=None)
    given(*alice, proposal, released).when(command).raises(InvalidTransition)


def test_allocations_that_only_touch_do_not_conflict() -> None:
    may = proposed_allocation(
        B, start=date(2027, 5, 1), end=date(2027, 5, 31), percentage=100, program_id=OTHER_PROGRAM
    )
    given(*booked, may).when(ConfirmAllocation(resource_key=ALICE, allocation_id=B)).then(
        confirmed(may)
    )


def test_adjust_a_proposal_needs_no_capacity() -> None:
    command = AdjustAllocation(resource_key=ALICE, allocation_id=B, percentage=100, reason="More")
    event = allocation_event(AllocationAdjusted, other, percentage=100, reason="More")
    given(*booked, other).when(command).then(event)


def test_adjust_a_confirmed_allocation_within_capacity() -> None:
    command = AdjustAllocation(
        resource_key=ALICE, allocation_id=A, end_date=date(2027, 4, 15), reason="Handover early"
    )
    event = allocation_event(
        AllocationAdjusted,
        proposal,
        end_date=date(2027, 4, 15),
        reason="Handover early",
    )
    state = given(*booked).when(command).then(event)
    assert state.allocations[0].end_date == date(2027, 4, 15)


def test_adjusting_into_over_allocation_is_refused_unless_overridden() -> None:
    command = AdjustAllocation(resource_key=ALICE, allocation_id=A, percentage=70, reason="More")
    error = given(*both_booked[:-2], other, confirmed(other)).when(command).raises(OverAllocation)
    assert [c.total_percentage for c in error.conflicts] == [120]
    overridden = AdjustAllocation(
        resource_key=ALICE, allocation_id=A, percentage=70, reason="More", override_reason="Launch"
    )
    event = allocation_event(
        AllocationAdjusted,
        proposal,
        percentage=70,
        reason="More",
        override_reason="Launch",
        over_allocation=error.conflicts,
    )
    given(*both_booked).when(overridden).then(event)


def test_an_accepted_over_allocation_does_not_block_a_change_that_does_not_worsen_it() -> None:
    overridden = allocation_event(
        AllocationConfirmed,
        other,
        override_reason="Crunch",
        over_allocation=(),
    )
    history = [*booked, other, overridden]
    less = AdjustAllocation(resource_key=ALICE, allocation_id=A, percentage=55, reason="Less")
    given(*history).when(less).then(
        allocation_event(AllocationAdjusted, proposal, percentage=55, reason="Less")
    )
    elsewhere = proposed_allocation(
        MISSING, start=date(2027, 6, 1), end=date(2027, 6, 30), percentage=100
    )
    given(*history, elsewhere).when(
        ConfirmAllocation(resource_key=ALICE, allocation_id=MISSING)
    ).then(confirmed(elsewhere))
    more = AdjustAllocation(resource_key=ALICE, allocation_id=A, percentage=61, reason="More")
    given(*history).when(more).raises(OverAllocation)


def test_adjust_refusals() -> None:
    nothing = AdjustAllocation(resource_key=ALICE, allocation_id=A, reason="r")
    given(*booked).when(nothing).raises(ValidationError)
    no_reason = AdjustAllocation(resource_key=ALICE, allocation_id=A, percentage=10, reason="")
    given(*booked).when(no_reason).raises(ValidationError)
    backwards = AdjustAllocation(
        resource_key=ALICE, allocation_id=A, start_date=date(2027, 5, 1), reason="r"
    )
    error = given(*booked).when(backwards).raises(ValidationError)
    assert error.issues[0].path == "start_date"
    released = allocation_event(AllocationReleased, proposal, reason=None)
    ok = AdjustAllocation(resource_key=ALICE, allocation_id=A, percentage=10, reason="r")
    given(*booked, released).when(ok).raises(InvalidTransition)
    unknown = AdjustAllocation(resource_key=ALICE, allocation_id=MISSING, percentage=10, reason="r")
    given(*booked).when(unknown).raises(NotFound)


def test_adjust_to_the_same_values_records_nothing() -> None:
    same = AdjustAllocation(resource_key=ALICE, allocation_id=A, percentage=60, reason="r")
    given(*booked).when(same).then()


def test_release_a_confirmed_or_proposed_allocation() -> None:
    command = ReleaseAllocation(resource_key=ALICE, allocation_id=A, reason="Moved to PAY-2028")
    event = allocation_event(AllocationReleased, proposal, reason="Moved to PAY-2028")
    state = given(*booked).when(command).then(event)
    assert state.allocations[0].status is AllocationStatus.RELEASED
    given(*alice, proposal).when(command).then(event)
    given(*booked, event).when(command).raises(InvalidTransition)
    given(*booked).when(ReleaseAllocation(resource_key=ALICE, allocation_id=MISSING)).raises(
        NotFound
    )


def test_released_allocations_free_capacity() -> None:
    released = allocation_event(AllocationReleased, proposal)
    given(*booked, released, other).when(
        ConfirmAllocation(resource_key=ALICE, allocation_id=B)
    ).then(confirmed(other))


def test_capacity_change_from_a_date() -> None:
    command = ChangeCapacity(
        resource_key=ALICE, capacity=40, effective_from=date(2027, 5, 1), reason="Part time"
    )
    event = ResourceCapacityChanged(
        resource_key=ALICE, capacity=40, effective_from=date(2027, 5, 1), reason="Part time"
    )
    state = given(*booked).when(command).then(event)
    assert capacity_on(state.capacity_schedule, date(2027, 4, 30)) == 100
    assert capacity_on(state.capacity_schedule, date(2027, 5, 1)) == 40


def test_capacity_reduction_that_over_allocates_is_refused_unless_overridden() -> None:
    command = ChangeCapacity(
        resource_key=ALICE, capacity=50, effective_from=date(2027, 4, 20), reason="Part time"
    )
    error = given(*booked).when(command).raises(OverAllocation)
    assert error.conflicts == (
        OverAllocationPeriod(
            start=date(2027, 4, 20),
            end=date(2027, 4, 30),
            total_percentage=60,
            capacity=50,
            program_ids=(PROGRAM,),
            allocation_ids=(A,),
        ),
    )
    overridden = ChangeCapacity(
        resource_key=ALICE,
        capacity=50,
        effective_from=date(2027, 4, 20),
        reason="Part time",
        override_reason="Alice agreed",
    )
    given(*booked).when(overridden).then(
        ResourceCapacityChanged(
            resource_key=ALICE,
            capacity=50,
            effective_from=date(2027, 4, 20),
            reason="Part time",
            override_reason="Alice agreed",
            over_allocation=error.conflicts,
        )
    )


def test_capacity_for_all_time_replaces_the_schedule() -> None:
    later = ResourceCapacityChanged(
        resource_key=ALICE, capacity=40, effective_from=date(2027, 5, 1), reason="Part time"
    )
    command = ChangeCapacity(resource_key=ALICE, capacity=80, reason="Contract changed")
    state = (
        given(*alice, later)
        .when(command)
        .then(
            ResourceCapacityChanged(
                resource_key=ALICE, capacity=80, effective_from=None, reason="Contract changed"
            )
        )
    )
    assert state.capacity_schedule == (
        CapacityStep(effective_from=None, capacity=80, reason="Contract changed"),
    )


def test_restating_the_same_capacity_records_nothing() -> None:
    given(*alice).when(ChangeCapacity(resource_key=ALICE, capacity=100, reason="Same")).then()


def test_capacity_change_refusals() -> None:
    given(*alice).when(ChangeCapacity(resource_key=ALICE, capacity=120, reason="r")).raises(
        ValidationError
    )
    given(*alice).when(ChangeCapacity(resource_key=ALICE, capacity=90, reason="")).raises(
        ValidationError
    )


def test_percentage_may_use_the_highest_capacity_in_the_period() -> None:
    team = RegisterResource(
        resource_key="team-x",
        name="Team X",
        kind=PartyKind.TEAM,
        department=Department.OPERATIONS,
        role="Ops",
        capacity=200,
    )
    history = [
        *given().when(team).accepted(),
        ResourceCapacityChanged(
            resource_key="team-x", capacity=400, effective_from=date(2027, 6, 1), reason="Hiring"
        ),
    ]
    command = ProposeAllocation(
        resource_key="team-x",
        allocation_id=A,
        program_id=PROGRAM,
        start_date=date(2027, 5, 1),
        end_date=date(2027, 6, 30),
        percentage=300,
    )
    given(*history).when(command).accepted()
    too_early = ProposeAllocation(
        resource_key="team-x",
        allocation_id=A,
        program_id=PROGRAM,
        start_date=date(2027, 5, 1),
        end_date=date(2027, 5, 31),
        percentage=300,
    )
    given(*history).when(too_early).raises(ValidationError)
