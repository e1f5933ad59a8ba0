"""Issue: the log entry's lifecycle, its escalation, its link to a risk, and every
refusal."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from programledger.domain import issue
from programledger.domain.errors import AlreadyExists, InvalidTransition, NotFound, ValidationError
from programledger.domain.issue import (
    EscalateIssue,
    IssueDetailsUpdated,
    IssueEscalated,
    IssueEscalation,
    IssueReopened,
    IssueResolved,
    IssueSeverity,
    IssueStatus,
    RaiseIssue,
    ReopenIssue,
    ResolveIssue,
    UpdateIssueDetails,
)
from tests.unit.examples import ISSUE, MISSING, PROGRAM, RISK, issue_raised
from tests.unit.scenario import given

ISS = ISSUE
IDS: dict[str, Any] = {"issue_id": ISS, "program_id": PROGRAM}

raised = [issue_raised()]
escalation = IssueEscalated(**IDS, escalated_to="VP Payments", reason="Blocks the pilot")
escalated = [*raised, escalation]
resolution = IssueResolved(
    **IDS, resolution="Acquirer enabled 2.2 in the sandbox", resolved_on=date(2027, 2, 20)
)
resolved = [*escalated, resolution]


def test_raise_opens_the_issue_with_severity_owner_and_due_date() -> None:
    command = RaiseIssue(
        issue_id=ISS,
        program_id=PROGRAM,
        title="Sandbox rejects 3-D Secure 2.2 challenges",
        severity=IssueSeverity.HIGH,
        owner="Priya",
        due_on=date(2027, 3, 1),
    )
    state = given().when(command).then(issue_raised())
    assert state.status is IssueStatus.OPEN


def test_raise_links_the_risk_it_realises() -> None:
    command = RaiseIssue(
        issue_id=ISS,
        program_id=PROGRAM,
        title="Sandbox rejects 3-D Secure 2.2 challenges",
        severity=IssueSeverity.HIGH,
        owner="Priya",
        due_on=date(2027, 3, 1),
        risk_id=RISK,
    )
    state = given().when(command).then(issue_raised(risk_id=RISK))
    assert state.risk_id == RISK


def test_raise_twice_is_refused() -> None:
    command = RaiseIssue(
        issue_id=ISS,
        program_id=PROGRAM,
        title="t",
        severity=IssueSeverity.LOW,
        owner="o",
        due_on=date(2027, 1, 1),
    )
    given(*raised).when(command).raises(AlreadyExists)


def test_raise_checks_every_field() -> None:
    command = RaiseIssue(
        issue_id=ISS,
        program_id=PROGRAM,
        title="",
        severity="BLOCKER",  # type: ignore[arg-type]
        owner="a\nb",
        due_on=None,  # type: ignore[arg-type]
        description="\x00",
    )
    error = given().when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {
        "title",
        "severity",
        "owner",
        "due_on",
        "description",
    }


def test_a_missing_issue_is_not_found() -> None:
    given().when(ReopenIssue(issue_id=ISS, reason="r")).raises(NotFound)


def test_a_command_for_another_issue_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="wrong stream"):
        issue.decide(issue.fold(raised), ReopenIssue(issue_id=MISSING, reason="r"))


def test_details_update_records_only_what_changed() -> None:
    command = UpdateIssueDetails(
        issue_id=ISS, severity=IssueSeverity.CRITICAL, owner="Priya", due_on=date(2027, 2, 25)
    )
    expected = IssueDetailsUpdated(**IDS, severity=IssueSeverity.CRITICAL, due_on=date(2027, 2, 25))
    state = given(*raised).when(command).then(expected)
    assert state.severity is IssueSeverity.CRITICAL


def test_details_update_that_changes_nothing_records_nothing() -> None:
    given(*raised).when(UpdateIssueDetails(issue_id=ISS, owner="Priya")).then()


def test_escalation_is_a_flag_that_keeps_the_status() -> None:
    command = EscalateIssue(issue_id=ISS, escalated_to="VP Payments", reason="Blocks the pilot")
    state = given(*raised).when(command).then(escalation)
    assert state.status is IssueStatus.OPEN
    assert state.escalation == IssueEscalation(
        escalated_to="VP Payments", reason="Blocks the pilot"
    )


def test_escalation_needs_whom_and_why() -> None:
    error = (
        given(*raised)
        .when(EscalateIssue(issue_id=ISS, escalated_to="", reason=" "))
        .raises(ValidationError)
    )
    assert {i.path for i in error.issues} == {"escalated_to", "reason"}


def test_resolve_records_the_resolution() -> None:
    command = ResolveIssue(
        issue_id=ISS,
        resolution="Acquirer enabled 2.2 in the sandbox",
        resolved_on=date(2027, 2, 20),
    )
    state = given(*escalated).when(command).then(resolution)
    assert state.status is IssueStatus.RESOLVED
    assert state.resolved_on == date(2027, 2, 20)


def test_a_resolved_issue_changes_only_by_reopening() -> None:
    for command in (
        UpdateIssueDetails(issue_id=ISS, owner="Sam"),
        EscalateIssue(issue_id=ISS, escalated_to="CTO", reason="r"),
        ResolveIssue(issue_id=ISS, resolution="again", resolved_on=date(2027, 3, 1)),
    ):
        error = given(*resolved).when(command).raises(InvalidTransition)
        assert error.hint == "reopen the issue first"


def test_reopen_clears_the_resolution_and_escalation() -> None:
    state = (
        given(*resolved)
        .when(ReopenIssue(issue_id=ISS, reason="Fails again in production"))
        .then(IssueReopened(**IDS, reason="Fails again in production"))
    )
    assert state.status is IssueStatus.OPEN
    assert (state.resolution, state.resolved_on, state.escalation) == (None, None, None)


def test_only_a_resolved_issue_can_be_reopened() -> None:
    given(*raised).when(ReopenIssue(issue_id=ISS, reason="r")).raises(InvalidTransition)
