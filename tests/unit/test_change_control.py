"""Program: change requests and the baselines their approval sets; milestone durations."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from programledger.domain.errors import (
    AlreadyExists,
    BudgetExceeded,
    InvalidTransition,
    ValidationError,
)
from programledger.domain.program import (
    ApproveChangeRequest,
    AssessChangeRequest,
    Baseline,
    BudgetAllocated,
    ChangeRequestApproved,
    ChangeRequestAssessed,
    ChangeRequestRaised,
    ChangeRequestRejected,
    ChangeRequestStatus,
    MilestoneDate,
    MilestoneDurationSet,
    MilestonePlanned,
    RaiseChangeRequest,
    RejectChangeRequest,
    SetMilestoneDuration,
    current_baseline,
)
from tests.unit.examples import MILESTONE, MISSING, PROGRAM, WORKSTREAM, eur, with_milestone
from tests.unit.scenario import given

CR = UUID("00000000-0000-4000-8000-0000000000e1")
CR2 = UUID("00000000-0000-4000-8000-0000000000e2")
LATER = UUID("00000000-0000-4000-8000-0000000000b2")
SPONSOR = "Dana CFO"


def raise_cr(**changes: Any) -> RaiseChangeRequest:
    fields: dict[str, Any] = {
        "program_id": PROGRAM,
        "change_request_id": CR,
        "title": "Add 3-D Secure 2",
        "description": "The regulator moved the SCA deadline; the pilot waits for 3DS2.",
        "raised_by": "Tom TPM",
        "schedule_impact": (MilestoneDate(milestone_id=MILESTONE, day=date(2027, 8, 31)),),
        "budget_impact": eur(15_000_00),
        "scope_added": ("3-D Secure 2",),
    }
    return RaiseChangeRequest(**{**fields, **changes})


def raised(**changes: Any) -> ChangeRequestRaised:
    c = raise_cr(**changes)
    return ChangeRequestRaised(
        program_id=PROGRAM,
        change_request_id=c.change_request_id,
        title=c.title,
        description=c.description,
        raised_by=c.raised_by,
        schedule_impact=c.schedule_impact,
        budget_impact=c.budget_impact,
        scope_added=c.scope_added,
        scope_removed=c.scope_removed,
    )


ASSESSED = ChangeRequestAssessed(
    program_id=PROGRAM,
    change_request_id=CR,
    assessed_by="Priya",
    assessment="Two months on the pilot; the end date holds, the critical path does not move.",
)


def approve(**changes: Any) -> ApproveChangeRequest:
    fields: dict[str, Any] = {
        "program_id": PROGRAM,
        "change_request_id": CR,
        "decided_by": SPONSOR,
        "reason": "Regulatory; no alternative",
        "baseline_name": "Rebaseline after SCA",
    }
    return ApproveChangeRequest(**{**fields, **changes})


def test_a_change_request_is_raised_with_its_impact() -> None:
    state = given(*with_milestone()).when(raise_cr()).then(raised())
    assert state.change_requests[0].status is ChangeRequestStatus.RAISED
    assert state.baselines == ()  # nothing changes until it is approved


def test_impacts_must_name_existing_milestones_the_budget_currency_and_scope() -> None:
    error = (
        given(*with_milestone())
        .when(
            raise_cr(
                schedule_impact=(MilestoneDate(milestone_id=MISSING, day=date(2027, 9, 1)),),
                budget_impact=eur(1).__class__(amount_minor=5, currency="USD"),
                scope_removed=("never there",),
            )
        )
        .raises(ValidationError)
    )
    assert {i.path for i in error.issues} == {
        "schedule_impact[0].milestone_id",
        "budget_impact.currency",
        "scope_removed[0]",
    }
    error = (
        given(*with_milestone())
        .when(raise_cr(schedule_impact=(), budget_impact=None, scope_added=()))
        .raises(ValidationError)
    )
    assert "at least one" in error.message
    given(*with_milestone(), raised()).when(raise_cr()).raises(AlreadyExists)


def test_approval_needs_an_assessment_and_the_sponsor() -> None:
    given(*with_milestone(), raised()).when(approve()).raises(InvalidTransition)
    error = (
        given(*with_milestone(), raised(), ASSESSED)
        .when(approve(decided_by="Tom TPM"))
        .raises(ValidationError)
    )
    assert "sponsor (Dana CFO)" in error.message


def test_approval_sets_the_next_baseline_and_keeps_the_original() -> None:
    history = [*with_milestone(), raised(), ASSESSED]
    expected = Baseline(
        version=1,
        name="Rebaseline after SCA",
        change_request_id=CR,
        milestone_dates=(MilestoneDate(milestone_id=MILESTONE, day=date(2027, 8, 31)),),
        budget=eur(115_000_00),
        scope=("3-D Secure 2",),
    )
    state = (
        given(*history)
        .when(approve())
        .then(
            ChangeRequestApproved(
                program_id=PROGRAM,
                change_request_id=CR,
                decided_by=SPONSOR,
                reason="Regulatory; no alternative",
                baseline=expected,
            )
        )
    )
    original, first = state.baselines
    assert original.version == 0
    assert original.budget == eur(100_000_00)
    assert original.milestone_dates[0].day == date(2027, 6, 30)
    assert first == expected
    assert state.milestones[0].baseline_date == date(2027, 8, 31)
    assert state.milestones[0].forecast_date == date(2027, 6, 30)  # the forecast is not moved
    assert state.planned_budget == eur(115_000_00)
    assert state.change_requests[0].baseline_version == 1


def test_a_second_approval_keeps_every_earlier_baseline() -> None:
    first = given(*with_milestone(), raised(), ASSESSED).when(approve()).accepted()
    later = MilestonePlanned(
        program_id=PROGRAM,
        milestone_id=LATER,
        name="Rollout",
        workstream_id=None,
        description=None,
        baseline_date=date(2027, 11, 1),
    )
    history = [
        *with_milestone(),
        raised(),
        ASSESSED,
        *first,
        later,
        raised(
            change_request_id=CR2,
            schedule_impact=(),
            budget_impact=eur(-5_000_00),
            scope_added=(),
            scope_removed=("3-D Secure 2",),
        ),
        ChangeRequestAssessed(
            program_id=PROGRAM, change_request_id=CR2, assessed_by="Priya", assessment="ok"
        ),
    ]
    given(*history).when(approve(change_request_id=CR2)).raises(ValidationError)  # name taken
    event = given(*history).when(approve(change_request_id=CR2, baseline_name="v2")).accepted()
    state = given(*history, *event).when(raise_cr(change_request_id=MISSING)).history
    assert state  # the history folds
    baseline = event[0].baseline  # type: ignore[attr-defined]
    assert baseline.version == 2
    assert baseline.scope == ()
    assert baseline.budget == eur(110_000_00)
    assert [d.milestone_id for d in baseline.milestone_dates] == [MILESTONE, LATER]


def test_rejection_by_the_sponsor_is_final() -> None:
    rejected = ChangeRequestRejected(
        program_id=PROGRAM, change_request_id=CR, decided_by=SPONSOR, reason="Not now"
    )
    state = (
        given(*with_milestone(), raised())
        .when(
            RejectChangeRequest(
                program_id=PROGRAM, change_request_id=CR, decided_by=SPONSOR, reason="Not now"
            )
        )
        .then(rejected)
    )
    assert state.change_requests[0].status is ChangeRequestStatus.REJECTED
    assert current_baseline(state).version == 0
    given(*with_milestone(), raised(), rejected).when(approve()).raises(InvalidTransition)
    given(*with_milestone(), raised(), rejected).when(
        AssessChangeRequest(
            program_id=PROGRAM, change_request_id=CR, assessed_by="x", assessment="y"
        )
    ).raises(InvalidTransition)


def test_a_milestone_duration_is_set_once_and_repeating_it_records_nothing() -> None:
    command = SetMilestoneDuration(program_id=PROGRAM, milestone_id=MILESTONE, duration_days=10)
    set_ = MilestoneDurationSet(program_id=PROGRAM, milestone_id=MILESTONE, duration_days=10)
    state = given(*with_milestone()).when(command).then(set_)
    assert state.milestones[0].duration_days == 10
    given(*with_milestone(), set_).when(command).then()
    given(*with_milestone()).when(
        SetMilestoneDuration(program_id=PROGRAM, milestone_id=MILESTONE, duration_days=-1)
    ).raises(ValidationError)


def test_approval_below_the_allocated_budget_is_refused() -> None:
    allocated = BudgetAllocated(
        program_id=PROGRAM,
        budget_allocation_id=LATER,
        amount=eur(99_000_00),
        workstream_id=WORKSTREAM,
        cost_centre=None,
    )
    cut = raised(budget_impact=eur(-5_000_00))
    history = [*with_milestone(), allocated, cut, ASSESSED]
    error = given(*history).when(approve()).raises(BudgetExceeded)
    assert error.allocated == eur(99_000_00)
    assert error.planned == eur(95_000_00)
