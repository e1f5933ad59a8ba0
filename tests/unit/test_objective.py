"""Objectives: key results with baseline, target, current value and confidence, their
check-ins, the programs linked to an objective, and closing it."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from hypothesis import given as for_all
from hypothesis import strategies as st

from programledger.domain.errors import AlreadyExists, InvalidTransition, NotFound, ValidationError
from programledger.domain.objective import (
    AddKeyResult,
    CheckInKeyResult,
    CloseObjective,
    DefineObjective,
    KeyResult,
    KeyResultAdded,
    KeyResultCheckedIn,
    LinkObjectiveToProgram,
    ObjectiveClosed,
    ObjectiveDefined,
    ObjectiveLinkedToProgram,
    ObjectiveStatus,
    ObjectiveUnlinkedFromProgram,
    UnlinkObjectiveFromProgram,
    key_result_progress,
)
from tests.unit.examples import PROGRAM
from tests.unit.scenario import given

OKR = UUID("00000000-0000-4000-8000-0000000000f1")
KR = UUID("00000000-0000-4000-8000-0000000000f2")
OTHER_KR = UUID("00000000-0000-4000-8000-0000000000f3")

defined = ObjectiveDefined(
    objective_id=OKR,
    title="Halve payment failures",
    owner="Dana CFO",
    starts_on=date(2027, 1, 1),
    ends_on=date(2027, 12, 31),
    key="OKR-2027-03",
)
kr_added = KeyResultAdded(
    objective_id=OKR,
    key_result_id=KR,
    name="Card payment failure rate",
    unit="basis points",
    baseline=400,
    target=200,
    confidence=60,
)
checked = KeyResultCheckedIn(
    objective_id=OKR, key_result_id=KR, value=300, confidence=70, checked_on=date(2027, 4, 1)
)


def test_an_objective_is_defined_active_with_its_key() -> None:
    state = (
        given()
        .when(
            DefineObjective(
                objective_id=OKR,
                title="Halve payment failures",
                owner="Dana CFO",
                starts_on=date(2027, 1, 1),
                ends_on=date(2027, 12, 31),
                key="OKR-2027-03",
            )
        )
        .then(defined)
    )
    assert state.status is ObjectiveStatus.ACTIVE
    assert state.key == "OKR-2027-03"


def test_an_objective_ends_on_or_after_its_start_and_is_defined_once() -> None:
    command = DefineObjective(
        objective_id=OKR, title="T", owner="O", starts_on=date(2027, 2, 1), ends_on=date(2027, 1, 1)
    )
    error = given().when(command).raises(ValidationError)
    assert [issue.path for issue in error.issues] == ["ends_on"]
    ok = DefineObjective(
        objective_id=OKR, title="T", owner="O", starts_on=date(2027, 1, 1), ends_on=date(2027, 1, 1)
    )
    given(defined).when(ok).raises(AlreadyExists)


def test_a_key_result_starts_at_its_baseline() -> None:
    command = AddKeyResult(
        objective_id=OKR,
        key_result_id=KR,
        name="Card payment failure rate",
        unit="basis points",
        baseline=400,
        target=200,
        confidence=60,
    )
    state = given(defined).when(command).then(kr_added)
    (kr,) = state.key_results
    assert (kr.current, kr.checked_on) == (400, None)
    given(defined, kr_added).when(command).raises(AlreadyExists)


def test_a_key_result_needs_a_target_apart_from_its_baseline_and_a_confidence_in_percent() -> None:
    command = AddKeyResult(
        objective_id=OKR, key_result_id=KR, name="X", unit="u", baseline=5, target=5, confidence=101
    )
    error = given(defined).when(command).raises(ValidationError)
    assert {issue.path for issue in error.issues} == {"target", "confidence"}


def test_an_objective_holds_at_most_ten_key_results() -> None:
    added = [
        KeyResultAdded(
            objective_id=OKR,
            key_result_id=UUID(int=i + 1),
            name=f"KR {i}",
            unit="u",
            baseline=0,
            target=10,
            confidence=50,
        )
        for i in range(10)
    ]
    command = AddKeyResult(
        objective_id=OKR,
        key_result_id=KR,
        name="One more",
        unit="u",
        baseline=0,
        target=1,
        confidence=5,
    )
    given(defined, *added).when(command).raises(ValidationError)


def test_a_check_in_records_the_value_and_confidence_and_moves_forward_in_time() -> None:
    command = CheckInKeyResult(
        objective_id=OKR, key_result_id=KR, value=300, confidence=70, checked_on=date(2027, 4, 1)
    )
    state = given(defined, kr_added).when(command).then(checked)
    (kr,) = state.key_results
    assert (kr.current, kr.confidence, kr.checked_on) == (300, 70, date(2027, 4, 1))
    earlier = CheckInKeyResult(
        objective_id=OKR, key_result_id=KR, value=280, confidence=70, checked_on=date(2027, 3, 1)
    )
    given(defined, kr_added, checked).when(earlier).raises(ValidationError)


def test_a_check_in_of_an_unknown_key_result_is_not_found() -> None:
    command = CheckInKeyResult(
        objective_id=OKR, key_result_id=OTHER_KR, value=1, confidence=1, checked_on=date(2027, 1, 2)
    )
    given(defined, kr_added).when(command).raises(NotFound)


def test_programs_are_linked_once_and_unlinked_with_a_reason() -> None:
    link = LinkObjectiveToProgram(objective_id=OKR, program_id=PROGRAM)
    linked = ObjectiveLinkedToProgram(objective_id=OKR, program_id=PROGRAM)
    state = given(defined).when(link).then(linked)
    assert state.program_ids == (PROGRAM,)
    given(defined, linked).when(link).then()
    unlink = UnlinkObjectiveFromProgram(objective_id=OKR, program_id=PROGRAM, reason="Descoped")
    state = (
        given(defined, linked)
        .when(unlink)
        .then(ObjectiveUnlinkedFromProgram(objective_id=OKR, program_id=PROGRAM, reason="Descoped"))
    )
    assert state.program_ids == ()
    given(defined).when(unlink).raises(NotFound)


def test_a_closed_objective_takes_no_more_check_ins() -> None:
    closed = ObjectiveClosed(objective_id=OKR, reason="Year over")
    state = (
        given(defined, kr_added)
        .when(CloseObjective(objective_id=OKR, reason="Year over"))
        .then(closed)
    )
    assert state.status is ObjectiveStatus.CLOSED
    check_in = CheckInKeyResult(
        objective_id=OKR, key_result_id=KR, value=1, confidence=1, checked_on=date(2027, 12, 1)
    )
    given(defined, kr_added, closed).when(check_in).raises(InvalidTransition)
    given().when(CloseObjective(objective_id=OKR, reason="x")).raises(NotFound)


def _kr(baseline: int, target: int, current: int) -> KeyResult:
    return KeyResult(
        key_result_id=KR,
        name="k",
        unit="u",
        baseline=baseline,
        target=target,
        current=current,
        confidence=50,
    )


def test_progress_is_the_share_of_the_way_from_baseline_to_target() -> None:
    assert key_result_progress(_kr(400, 200, 300)) == 50
    assert key_result_progress(_kr(0, 10, 3)) == 30
    assert key_result_progress(_kr(0, 10, 12)) == 100
    assert key_result_progress(_kr(0, 10, -4)) == 0
    assert key_result_progress(_kr(400, 200, 450)) == 0


@for_all(
    st.integers(-(10**12), 10**12), st.integers(-(10**12), 10**12), st.integers(-(10**12), 10**12)
)
def test_progress_is_always_a_whole_percent(baseline: int, target: int, current: int) -> None:
    if baseline != target:
        progress = key_result_progress(_kr(baseline, target, current))
        assert 0 <= progress <= 100
        if current == target:
            assert progress == 100
        if current == baseline:
            assert progress == 0
