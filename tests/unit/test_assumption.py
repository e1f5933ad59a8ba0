"""Assumption: the log entry's lifecycle, the invalidation that raises a risk or an issue,
and every refusal."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from programledger.domain import assumption, issue, risk
from programledger.domain.assumption import (
    AssumptionDetailsUpdated,
    AssumptionInvalidated,
    AssumptionStatus,
    AssumptionValidated,
    Confidence,
    InvalidateAssumption,
    RecordAssumption,
    UpdateAssumptionDetails,
    ValidateAssumption,
    Verdict,
)
from programledger.domain.errors import AlreadyExists, InvalidTransition, NotFound, ValidationError
from programledger.domain.issue import IssueSeverity, RaisedIssue, raise_from
from programledger.domain.risk import RaisedRisk, RiskCategory, identify_from
from tests.unit.examples import (
    ASSUMPTION,
    ISSUE,
    MISSING,
    PROGRAM,
    RISK,
    WORKSTREAM,
    assumption_recorded,
    issue_raised,
    risk_identified,
)
from tests.unit.scenario import given

A = ASSUMPTION
IDS: dict[str, Any] = {"assumption_id": A, "program_id": PROGRAM}

recorded = [assumption_recorded()]
validation = AssumptionValidated(
    **IDS, evidence="Sandbox run 14 passed every challenge", validated_on=date(2027, 2, 1)
)
validated = [*recorded, validation]
RAISED_RISK = RaisedRisk(
    risk_id=RISK,
    title="Certification slips without a 2.2 sandbox",
    category=RiskCategory.VENDOR,
    probability=4,
    impact=4,
    owner="Priya",
)
RAISED_ISSUE = RaisedIssue(
    issue_id=ISSUE,
    title="Sandbox rejects 3-D Secure 2.2 challenges",
    severity=IssueSeverity.HIGH,
    owner="Priya",
    due_on=date(2027, 3, 1),
)


def invalidate(**changes: Any) -> InvalidateAssumption:
    fields: dict[str, Any] = {
        "assumption_id": A,
        "evidence": "Sandbox run 15 failed the challenge flow",
        "invalidated_on": date(2027, 2, 10),
    }
    return InvalidateAssumption(**{**fields, **changes})


def invalidated_event(**changes: Any) -> AssumptionInvalidated:
    fields: dict[str, Any] = {
        **IDS,
        "evidence": "Sandbox run 15 failed the challenge flow",
        "invalidated_on": date(2027, 2, 10),
    }
    return AssumptionInvalidated(**{**fields, **changes})


def test_record_opens_the_assumption_with_owner_confidence_and_deadline() -> None:
    command = RecordAssumption(
        assumption_id=A,
        program_id=PROGRAM,
        statement="The acquirer's sandbox supports 3-D Secure 2.2",
        owner="Priya",
        confidence=Confidence.MEDIUM,
        validate_by=date(2027, 2, 15),
        workstream_id=WORKSTREAM,
    )
    state = given().when(command).then(assumption_recorded())
    assert state.status is AssumptionStatus.OPEN
    assert (state.owner, state.confidence) == ("Priya", Confidence.MEDIUM)


def test_record_twice_is_refused() -> None:
    command = RecordAssumption(
        assumption_id=A,
        program_id=PROGRAM,
        statement="s",
        owner="o",
        confidence=Confidence.LOW,
        validate_by=date(2027, 1, 1),
    )
    given(*recorded).when(command).raises(AlreadyExists)


def test_record_checks_every_field() -> None:
    command = RecordAssumption(
        assumption_id=A,
        program_id=PROGRAM,
        statement="two\nlines",
        owner="",
        confidence="CERTAIN",  # type: ignore[arg-type]
        validate_by="soon",  # type: ignore[arg-type]
        description=" ",
    )
    error = given().when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {
        "statement",
        "owner",
        "confidence",
        "validate_by",
        "description",
    }


def test_a_missing_assumption_is_not_found() -> None:
    given().when(
        ValidateAssumption(assumption_id=A, evidence="e", validated_on=date(2027, 1, 1))
    ).raises(NotFound)


def test_a_command_for_another_assumption_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="wrong stream"):
        assumption.decide(
            assumption.fold(recorded),
            ValidateAssumption(assumption_id=MISSING, evidence="e", validated_on=date(2027, 1, 1)),
        )


def test_details_update_records_only_what_changed() -> None:
    command = UpdateAssumptionDetails(
        assumption_id=A, owner="Priya", confidence=Confidence.LOW, description=None
    )
    state = (
        given(*recorded)
        .when(command)
        .then(AssumptionDetailsUpdated(**IDS, confidence=Confidence.LOW))
    )
    assert state.confidence is Confidence.LOW


def test_details_update_that_changes_nothing_records_nothing() -> None:
    given(*recorded).when(UpdateAssumptionDetails(assumption_id=A, owner="Priya")).then()


def test_details_change_only_while_open() -> None:
    error = (
        given(*validated)
        .when(UpdateAssumptionDetails(assumption_id=A, owner="Sam"))
        .raises(InvalidTransition)
    )
    assert error.hint == "allowed only when OPEN"


def test_validate_records_the_evidence() -> None:
    command = ValidateAssumption(
        assumption_id=A,
        evidence="Sandbox run 14 passed every challenge",
        validated_on=date(2027, 2, 1),
    )
    state = given(*recorded).when(command).then(validation)
    assert state.status is AssumptionStatus.VALIDATED
    assert state.validation == Verdict(evidence=validation.evidence, on=date(2027, 2, 1))


def test_validate_needs_evidence_and_a_day() -> None:
    command = ValidateAssumption(assumption_id=A, evidence=" ", validated_on=None)  # type: ignore[arg-type]
    error = given(*recorded).when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {"evidence", "validated_on"}


def test_validate_twice_is_refused() -> None:
    command = ValidateAssumption(assumption_id=A, evidence="again", validated_on=date(2027, 2, 2))
    given(*validated).when(command).raises(InvalidTransition)


def test_invalidate_an_open_assumption_without_raising_anything() -> None:
    state = given(*recorded).when(invalidate()).then(invalidated_event())
    assert state.status is AssumptionStatus.INVALIDATED
    assert (state.raised_risk_id, state.raised_issue_id) == (None, None)


def test_a_validated_assumption_can_still_be_found_false_and_keeps_its_validation() -> None:
    state = given(*validated).when(invalidate()).then(invalidated_event())
    assert state.validation is not None
    assert state.invalidation == Verdict(
        evidence="Sandbox run 15 failed the challenge flow", on=date(2027, 2, 10)
    )


def test_invalidation_raising_a_risk_records_the_risk_whole() -> None:
    state = (
        given(*recorded)
        .when(invalidate(raise_risk=RAISED_RISK))
        .then(invalidated_event(raised_risk=RAISED_RISK))
    )
    assert state.raised_risk_id == RISK


def test_invalidation_raising_an_issue_records_the_issue_whole() -> None:
    state = (
        given(*recorded)
        .when(invalidate(raise_issue=RAISED_ISSUE))
        .then(invalidated_event(raised_issue=RAISED_ISSUE))
    )
    assert state.raised_issue_id == ISSUE


def test_invalidation_raises_a_risk_or_an_issue_not_both() -> None:
    command = invalidate(raise_risk=RAISED_RISK, raise_issue=RAISED_ISSUE)
    error = given(*recorded).when(command).raises(ValidationError)
    assert [i.path for i in error.issues] == ["raise_issue"]


def test_the_raised_item_is_checked_with_the_invalidation() -> None:
    bad_risk = RaisedRisk(
        risk_id=RISK, title="", category=RiskCategory.VENDOR, probability=6, impact=1, owner="o"
    )
    error = given(*recorded).when(invalidate(raise_risk=bad_risk)).raises(ValidationError)
    assert {i.path for i in error.issues} == {"raise_risk.title", "raise_risk.probability"}
    bad_issue = RaisedIssue(
        issue_id=ISSUE,
        title="t",
        severity="URGENT",  # type: ignore[arg-type]
        owner="",
        due_on=date(2027, 1, 1),
    )
    error = given(*recorded).when(invalidate(raise_issue=bad_issue)).raises(ValidationError)
    assert {i.path for i in error.issues} == {"raise_issue.severity", "raise_issue.owner"}


def test_an_invalidated_assumption_is_final() -> None:
    history = [*recorded, invalidated_event()]
    given(*history).when(
        ValidateAssumption(assumption_id=A, evidence="e", validated_on=date(2027, 3, 1))
    ).raises(InvalidTransition)
    given(*history).when(invalidate(evidence="other evidence")).raises(InvalidTransition)


def test_repeating_the_recorded_invalidation_records_nothing() -> None:
    history = [*recorded, invalidated_event(raised_issue=RAISED_ISSUE)]
    given(*history).when(invalidate(raise_issue=RAISED_ISSUE)).then()


def test_the_raised_risk_is_made_from_the_invalidation_alone_and_only_once() -> None:
    events = identify_from(None, PROGRAM, RAISED_RISK, assumption_id=A)
    assert events == [
        risk_identified(
            title=RAISED_RISK.title,
            probability=4,
            workstream_id=None,
            trigger=None,
            next_review_on=None,
            assumption_id=A,
        )
    ]
    state = risk.fold(events)
    assert identify_from(state, PROGRAM, RAISED_RISK, assumption_id=A) == []
    with pytest.raises(AlreadyExists):
        identify_from(state, PROGRAM, RAISED_RISK, assumption_id=MISSING)


def test_the_raised_issue_is_made_from_the_invalidation_alone_and_only_once() -> None:
    events = raise_from(None, PROGRAM, RAISED_ISSUE, assumption_id=A)
    assert events == [issue_raised(assumption_id=A)]
    state = issue.fold(events)
    assert raise_from(state, PROGRAM, RAISED_ISSUE, assumption_id=A) == []
    with pytest.raises(AlreadyExists):
        raise_from(state, PROGRAM, RAISED_ISSUE, risk_id=RISK)
