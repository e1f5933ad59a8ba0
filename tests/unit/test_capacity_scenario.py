"""Capacity scenarios: changes added and removed while OPEN, commit and discard as final
statuses, and the real commands a commit sends."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from hypothesis import given as for_all
from hypothesis import strategies as st

from programledger.domain import scenario
from programledger.domain.errors import AlreadyExists, InvalidTransition, NotFound, ValidationError
from programledger.domain.resource import ChangeCapacity, ConfirmAllocation, ProposeAllocation
from programledger.domain.scenario import (
    AddScenarioAllocation,
    AddScenarioCapacityChange,
    CommitOutcome,
    CommitScenario,
    CreateScenario,
    DiscardScenario,
    HypotheticalAllocation,
    HypotheticalCapacity,
    RemoveScenarioChange,
    ScenarioAllocationAdded,
    ScenarioCapacityChangeAdded,
    ScenarioChangeRemoved,
    ScenarioCommitted,
    ScenarioCreated,
    ScenarioDiscarded,
    ScenarioStatus,
    commit_plan,
)
from tests.unit.examples import ALICE, PROGRAM
from tests.unit.scenario import given

S = UUID("00000000-0000-4000-8000-00000000a001")
C1 = UUID("00000000-0000-4000-8000-00000000c001")
C2 = UUID("00000000-0000-4000-8000-00000000c002")

created = ScenarioCreated(scenario_id=S, name="Q2 hiring plan")
add_work = AddScenarioAllocation(
    scenario_id=S,
    change_id=C1,
    resource_key=ALICE,
    program_id=PROGRAM,
    start_date=date(2027, 4, 1),
    end_date=date(2027, 6, 30),
    percentage=60,
)
work = HypotheticalAllocation(
    change_id=C1,
    resource_key=ALICE,
    program_id=PROGRAM,
    start_date=date(2027, 4, 1),
    end_date=date(2027, 6, 30),
    percentage=60,
)
work_added = ScenarioAllocationAdded(
    scenario_id=S,
    change_id=C1,
    resource_key=ALICE,
    program_id=PROGRAM,
    start_date=date(2027, 4, 1),
    end_date=date(2027, 6, 30),
    percentage=60,
)
more = HypotheticalCapacity(
    change_id=C2,
    resource_key=ALICE,
    capacity=80,
    reason="part time",
    effective_from=date(2027, 5, 1),
)
more_added = ScenarioCapacityChangeAdded(scenario_id=S, change=more)


def test_create_a_scenario() -> None:
    state = given().when(CreateScenario(scenario_id=S, name="Q2 hiring plan")).then(created)
    assert state.status is ScenarioStatus.OPEN
    given(created).when(CreateScenario(scenario_id=S, name="again")).raises(AlreadyExists)
    given().when(CreateScenario(scenario_id=S, name=" ")).raises(ValidationError)


def test_add_hypothetical_work_and_capacity() -> None:
    state = given(created).when(add_work).then(work_added)
    assert state.allocations == (work,)
    capacity = AddScenarioCapacityChange(
        scenario_id=S,
        change_id=C2,
        resource_key=ALICE,
        capacity=80,
        reason="part time",
        effective_from=date(2027, 5, 1),
    )
    state = given(created, work_added).when(capacity).then(more_added)
    assert state.capacity_changes == (more,)


def test_change_ids_are_unique_within_a_scenario() -> None:
    given(created, work_added).when(add_work).raises(AlreadyExists)


def test_a_change_is_checked_like_the_real_command() -> None:
    bad = AddScenarioAllocation(
        scenario_id=S,
        change_id=C1,
        resource_key="Alice Martin",
        program_id=PROGRAM,
        start_date=date(2027, 6, 1),
        end_date=date(2027, 5, 1),
        percentage=0,
    )
    error = given(created).when(bad).raises(ValidationError)
    assert {i.path for i in error.issues} == {"resource_key", "end_date", "percentage"}


def test_remove_a_change() -> None:
    state = (
        given(created, work_added)
        .when(RemoveScenarioChange(scenario_id=S, change_id=C1))
        .then(ScenarioChangeRemoved(scenario_id=S, change_id=C1))
    )
    assert state.allocations == ()
    given(created).when(RemoveScenarioChange(scenario_id=S, change_id=C1)).raises(NotFound)


def test_commit_records_what_each_real_command_did() -> None:
    outcomes = (CommitOutcome(change_id=C1, command="ProposeAllocation", accepted=True),)
    state = (
        given(created, work_added)
        .when(CommitScenario(scenario_id=S, outcomes=outcomes))
        .then(ScenarioCommitted(scenario_id=S, outcomes=outcomes))
    )
    assert state.status is ScenarioStatus.COMMITTED


def test_an_empty_scenario_has_nothing_to_commit() -> None:
    given(created).when(CommitScenario(scenario_id=S)).raises(ValidationError)


def test_committed_and_discarded_are_final() -> None:
    committed = ScenarioCommitted(scenario_id=S, outcomes=())
    discarded = ScenarioDiscarded(scenario_id=S, reason="budget cut")
    given(created).when(DiscardScenario(scenario_id=S, reason="budget cut")).then(discarded)
    for final in (committed, discarded):
        error = given(created, work_added, final).when(add_work).raises(InvalidTransition)
        assert error.hint == "allowed only when OPEN"
        given(created, work_added, final).when(CommitScenario(scenario_id=S)).raises(
            InvalidTransition
        )


def test_the_commit_plan_changes_capacity_first_then_proposes_and_confirms() -> None:
    state = scenario.fold([created, work_added, more_added])
    assert state is not None
    plan = [command for _, command in commit_plan(state, "agreed with Alice")]
    assert plan == [
        ChangeCapacity(
            resource_key=ALICE,
            capacity=80,
            reason="part time",
            effective_from=date(2027, 5, 1),
            override_reason="agreed with Alice",
        ),
        ProposeAllocation(
            resource_key=ALICE,
            allocation_id=C1,
            program_id=PROGRAM,
            start_date=date(2027, 4, 1),
            end_date=date(2027, 6, 30),
            percentage=60,
            note="from scenario Q2 hiring plan",
        ),
        ConfirmAllocation(
            resource_key=ALICE, allocation_id=C1, override_reason="agreed with Alice"
        ),
    ]


_ids = st.sampled_from([C1, C2, UUID(int=3)])
_steps = st.one_of(
    st.builds(lambda i: ("add", i), _ids),
    st.builds(lambda i: ("remove", i), _ids),
    st.just(("commit", None)),
    st.just(("discard", None)),
)


@for_all(st.lists(_steps, max_size=15))
def test_a_scenario_changes_only_while_open(steps: list[tuple[str, UUID | None]]) -> None:
    """Any sequence of commands: changes are unique, and nothing changes once final."""
    state = scenario.fold([created])
    for kind, change_id in steps:
        assert state is not None
        command: object
        if kind == "add":
            assert change_id is not None
            command = AddScenarioAllocation(
                scenario_id=S,
                change_id=change_id,
                resource_key=ALICE,
                program_id=PROGRAM,
                start_date=date(2027, 1, 4),
                end_date=date(2027, 1, 8),
                percentage=50,
            )
        elif kind == "remove":
            assert change_id is not None
            command = RemoveScenarioChange(scenario_id=S, change_id=change_id)
        elif kind == "commit":
            command = CommitScenario(scenario_id=S)
        else:
            command = DiscardScenario(scenario_id=S, reason="no")
        try:
            events = scenario.decide(state, command)
        except (InvalidTransition, AlreadyExists, NotFound, ValidationError):
            continue
        final = state.status is not ScenarioStatus.OPEN
        assert not final
        for event in events:
            state = scenario.evolve(state, event)
        ids = [a.change_id for a in state.allocations]
        assert len(ids) == len(set(ids))
