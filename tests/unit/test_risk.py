"""Risk: the register entry's lifecycle and every refusal."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
import pytest

from programledger.domain import risk
from programledger.domain.errors import AlreadyExists, InvalidTransition, NotFound, ValidationError
from programledger.domain.issue import IssueSeverity, RaisedIssue
from programledger.domain.risk import (
    Acceptance,
    AcceptRisk,
    AssessRisk,
    ChangeRiskRoam,
    CloseRisk,
    EscalateRisk,
    Escalation,
    IdentifyRisk,
    ReopenRisk,
    ReportRiskMaterialised,
    ResponseStrategy,
    ReviewRisk,
    ReviseMitigationPlan,
    RiskAccepted,
    RiskAssessed,
    RiskCategory,
    RiskClosed,
    RiskDetailsUpdated,
    RiskEscalated,
    RiskMaterialised,
    RiskMitigationPlanRevised,
    RiskMitigationStarted,
    RiskReopened,
    RiskReviewed,
    RiskRoamChanged,
    RiskStatus,
    RoamStatus,
    SeverityBand,
    StartMitigation,
    UpdateRiskDetails,
)
from tests.unit.examples import ISSUE, MISSING, PROGRAM, RISK, WORKSTREAM, risk_identified
from tests.unit.scenario import given

R = RISK
IDS: dict[str, Any] = {"risk_id": R, "program_id": PROGRAM}

identified = [risk_identified()]
assessed = [*identified, RiskAssessed(**IDS, probability=4, impact=4, reason="Vendor silent")]
mitigation = RiskMitigationStarted(
    **IDS,
    response_strategy=ResponseStrategy.MITIGATE,
    mitigation_plan="Book a second test slot with a backup acquirer.",
    mitigation_due_on=date(2027, 3, 15),
    contingency_plan="Pilot on the backup acquirer.",
)
mitigating = [*assessed, mitigation]
acceptance = RiskAccepted(**IDS, rationale="Cheaper to absorb a slip", approved_by="Dana CFO")
accepted = [*assessed, acceptance]
materialisation = RiskMaterialised(
    **IDS,
    what_happened="Certification failed.",
    impact_description="Pilot moves four weeks.",
    occurred_on=date(2027, 4, 2),
)
materialised = [*mitigating, materialisation]
closed = [*mitigating, RiskClosed(**IDS, reason="Certified")]


def test_identify_gives_a_score_and_band_from_the_start() -> None:
    command = IdentifyRisk(
        risk_id=R,
        program_id=PROGRAM,
        workstream_id=WORKSTREAM,
        title="Acquirer certification slips",
        category=RiskCategory.VENDOR,
        probability=3,
        impact=4,
        owner="Priya",
        trigger="No test slot booked by March",
        next_review_on=date(2027, 3, 1),
    )
    state = given().when(command).then(risk_identified())
    assert state.status is RiskStatus.IDENTIFIED
    assert (state.score, state.band) == (12, SeverityBand.HIGH)


def test_identify_twice_is_refused() -> None:
    command = IdentifyRisk(
        risk_id=R,
        program_id=PROGRAM,
        title="t",
        category=RiskCategory.OTHER,
        probability=1,
        impact=1,
        owner="o",
    )
    given(*identified).when(command).raises(AlreadyExists)


def test_identify_checks_every_field() -> None:
    command = IdentifyRisk(
        risk_id=R,
        program_id=PROGRAM,
        title="",
        category="WEATHER",  # type: ignore[arg-type]
        probability=0,
        impact=6,
        owner="",
        trigger="\x00",
    )
    error = given().when(command).raises(ValidationError)
    paths = {i.path for i in error.issues}
    assert paths == {"title", "category", "probability", "impact", "owner", "trigger"}


def test_a_missing_risk_is_not_found() -> None:
    given().when(CloseRisk(risk_id=R, reason="r")).raises(NotFound)


def test_a_command_for_another_risk_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="wrong stream"):
        risk.decide(risk.fold(identified), CloseRisk(risk_id=MISSING, reason="r"))


def test_first_assessment_moves_to_assessed() -> None:
    command = AssessRisk(risk_id=R, probability=4, impact=4, reason="Vendor silent")
    state = given(*identified).when(command).then(assessed[-1])
    assert state.status is RiskStatus.ASSESSED
    assert state.band is SeverityBand.HIGH


def test_reassessment_keeps_the_status() -> None:
    command = AssessRisk(risk_id=R, probability=5, impact=4)
    state = given(*mitigating).when(command).then(RiskAssessed(**IDS, probability=5, impact=4))
    assert state.status is RiskStatus.MITIGATING
    assert state.band is SeverityBand.CRITICAL


def test_assessment_values_are_checked() -> None:
    command = AssessRisk(risk_id=R, probability=True, impact=3)
    given(*identified).when(command).raises(ValidationError)


def test_start_mitigation_from_assessed_or_accepted() -> None:
    command = StartMitigation(
        risk_id=R,
        response_strategy=ResponseStrategy.MITIGATE,
        mitigation_plan="Book a second test slot with a backup acquirer.",
        mitigation_due_on=date(2027, 3, 15),
        contingency_plan="Pilot on the backup acquirer.",
    )
    state = given(*assessed).when(command).then(mitigation)
    assert state.status is RiskStatus.MITIGATING
    assert state.response_strategy is ResponseStrategy.MITIGATE
    state = given(*accepted).when(command).then(mitigation)
    assert state.acceptance is None


def test_mitigation_needs_an_assessment_first() -> None:
    command = StartMitigation(
        risk_id=R,
        response_strategy=ResponseStrategy.AVOID,
        mitigation_plan="p",
        mitigation_due_on=date(2027, 3, 15),
    )
    error = given(*identified).when(command).raises(InvalidTransition)
    assert "assess the risk first" in str(error)
    given(*mitigating).when(command).raises(InvalidTransition)


def test_accept_is_not_a_mitigation_strategy() -> None:
    command = StartMitigation(
        risk_id=R,
        response_strategy=ResponseStrategy.ACCEPT,
        mitigation_plan="p",
        mitigation_due_on=date(2027, 3, 15),
    )
    error = given(*assessed).when(command).raises(ValidationError)
    assert error.issues[0].path == "response_strategy"


def test_start_mitigation_without_contingency_keeps_the_earlier_one() -> None:
    history = [risk_identified(contingency_plan="Delay the pilot"), *assessed[1:]]
    command = StartMitigation(
        risk_id=R,
        response_strategy=ResponseStrategy.TRANSFER,
        mitigation_plan="Insure it",
        mitigation_due_on=date(2027, 3, 1),
    )
    event = RiskMitigationStarted(
        **IDS,
        response_strategy=ResponseStrategy.TRANSFER,
        mitigation_plan="Insure it",
        mitigation_due_on=date(2027, 3, 1),
    )
    state = given(*history).when(command).then(event)
    assert state.contingency_plan == "Delay the pilot"


def test_revise_mitigation_plan() -> None:
    command = ReviseMitigationPlan(
        risk_id=R, mitigation_plan="Two backups", mitigation_due_on=date(2027, 4, 1), reason="r"
    )
    event = RiskMitigationPlanRevised(
        **IDS, mitigation_plan="Two backups", mitigation_due_on=date(2027, 4, 1), reason="r"
    )
    state = given(*mitigating).when(command).then(event)
    assert state.mitigation_due_on == date(2027, 4, 1)
    given(*materialised).when(command).then(event)
    given(*accepted).when(command).raises(InvalidTransition)
    no_reason = ReviseMitigationPlan(
        risk_id=R, mitigation_plan="p", mitigation_due_on=date(2027, 4, 1), reason=""
    )
    given(*mitigating).when(no_reason).raises(ValidationError)


@pytest.mark.parametrize("history", [assessed, mitigating], ids=["assessed", "mitigating"])
def test_accept_needs_rationale_and_approver(history: list[Any]) -> None:
    command = AcceptRisk(risk_id=R, rationale="Cheaper to absorb a slip", approved_by="Dana CFO")
    state = given(*history).when(command).then(acceptance)
    assert state.status is RiskStatus.ACCEPTED
    assert state.response_strategy is ResponseStrategy.ACCEPT
    assert state.acceptance == Acceptance(
        rationale="Cheaper to absorb a slip", approved_by="Dana CFO"
    )
    error = (
        given(*history)
        .when(AcceptRisk(risk_id=R, rationale="", approved_by=""))
        .raises(ValidationError)
    )
    assert {i.path for i in error.issues} == {"rationale", "approved_by"}


def test_accept_before_assessment_or_twice_is_refused() -> None:
    command = AcceptRisk(risk_id=R, rationale="r", approved_by="a")
    given(*identified).when(command).raises(InvalidTransition)
    given(*accepted).when(command).raises(InvalidTransition)


@pytest.mark.parametrize(
    "history",
    [identified, assessed, mitigating, accepted],
    ids=["identified", "assessed", "mitigating", "accepted"],
)
def test_any_open_risk_can_materialise(history: list[Any]) -> None:
    command = ReportRiskMaterialised(
        risk_id=R,
        what_happened="Certification failed.",
        impact_description="Pilot moves four weeks.",
        occurred_on=date(2027, 4, 2),
    )
    state = given(*history).when(command).then(materialisation)
    assert state.status is RiskStatus.MATERIALISED
    assert state.materialisation is not None


def test_materialise_refusals() -> None:
    command = ReportRiskMaterialised(
        risk_id=R, what_happened="w", impact_description="i", occurred_on=date(2027, 4, 2)
    )
    given(*materialised).when(command).raises(InvalidTransition)
    given(*closed).when(command).raises(InvalidTransition)
    empty = ReportRiskMaterialised(
        risk_id=R, what_happened="", impact_description="", occurred_on=date(2027, 4, 2)
    )
    given(*identified).when(empty).raises(ValidationError)


@pytest.mark.parametrize(
    "history",
    [identified, assessed, mitigating, accepted, materialised],
    ids=["identified", "assessed", "mitigating", "accepted", "materialised"],
)
def test_escalation_is_a_flag_that_keeps_the_status(history: list[Any]) -> None:
    before = risk.fold(history)
    assert before is not None
    command = EscalateRisk(risk_id=R, escalated_to="VP Engineering", reason="Needs budget")
    state = (
        given(*history)
        .when(command)
        .then(RiskEscalated(**IDS, escalated_to="VP Engineering", reason="Needs budget"))
    )
    assert state.status is before.status
    assert state.escalation == Escalation(escalated_to="VP Engineering", reason="Needs budget")


def test_escalation_refusals() -> None:
    command = EscalateRisk(risk_id=R, escalated_to="VP", reason="r")
    given(*closed).when(command).raises(InvalidTransition)
    given(*identified).when(EscalateRisk(risk_id=R, escalated_to="", reason="")).raises(
        ValidationError
    )


@pytest.mark.parametrize(
    "history", [mitigating, accepted, materialised], ids=["mitigating", "accepted", "materialised"]
)
def test_close(history: list[Any]) -> None:
    state = (
        given(*history)
        .when(CloseRisk(risk_id=R, reason="Certified"))
        .then(RiskClosed(**IDS, reason="Certified"))
    )
    assert state.status is RiskStatus.CLOSED
    assert state.closed_reason == "Certified"


@pytest.mark.parametrize("history", [identified, assessed], ids=["identified", "assessed"])
def test_a_risk_without_a_response_cannot_close(history: list[Any]) -> None:
    given(*history).when(CloseRisk(risk_id=R, reason="r")).raises(InvalidTransition)


def test_close_needs_a_reason_and_happens_once() -> None:
    given(*mitigating).when(CloseRisk(risk_id=R, reason="")).raises(ValidationError)
    error = given(*closed).when(CloseRisk(risk_id=R, reason="r")).raises(InvalidTransition)
    assert "reopen the risk first" in str(error)


def test_reopen_a_closed_risk_needs_a_fresh_response() -> None:
    history = [*materialised, RiskEscalated(**IDS, escalated_to="VP", reason="r")]
    history.append(RiskClosed(**IDS, reason="Done"))
    state = (
        given(*history)
        .when(ReopenRisk(risk_id=R, reason="Failed again"))
        .then(RiskReopened(**IDS, reason="Failed again"))
    )
    assert state.status is RiskStatus.ASSESSED
    assert state.response_strategy is None
    assert (state.acceptance, state.materialisation, state.escalation) == (None, None, None)
    assert state.mitigation_plan == mitigation.mitigation_plan


def test_only_a_closed_risk_reopens() -> None:
    given(*mitigating).when(ReopenRisk(risk_id=R, reason="r")).raises(InvalidTransition)
    error = given(*identified).when(ReopenRisk(risk_id=R, reason="r")).raises(InvalidTransition)
    assert error.hint == "allowed only when CLOSED"
    given(*closed).when(ReopenRisk(risk_id=R, reason="")).raises(ValidationError)


def test_update_details_records_only_changes() -> None:
    command = UpdateRiskDetails(
        risk_id=R,
        title="Acquirer certification slips",
        owner="Sam",
        workstream_id=None,
        category=RiskCategory.SCHEDULE,
    )
    event = RiskDetailsUpdated(
        **IDS, owner="Sam", workstream_id=None, category=RiskCategory.SCHEDULE
    )
    state = given(*mitigating).when(command).then(event)
    assert (state.owner, state.workstream_id, state.category) == (
        "Sam",
        None,
        RiskCategory.SCHEDULE,
    )
    given(*mitigating).when(UpdateRiskDetails(risk_id=R, owner="Priya")).then()


def test_update_details_refusals() -> None:
    given(*closed).when(UpdateRiskDetails(risk_id=R, owner="Sam")).raises(InvalidTransition)
    command = UpdateRiskDetails(risk_id=R, title="", description="", owner="a\nb")
    error = given(*identified).when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {"title", "description", "owner"}


def test_review_sets_the_next_review_date() -> None:
    command = ReviewRisk(
        risk_id=R, reviewed_on=date(2027, 3, 1), next_review_on=date(2027, 3, 15), note="Stable"
    )
    event = RiskReviewed(
        **IDS, reviewed_on=date(2027, 3, 1), next_review_on=date(2027, 3, 15), note="Stable"
    )
    state = given(*mitigating).when(command).then(event)
    assert (state.last_reviewed_on, state.next_review_on) == (date(2027, 3, 1), date(2027, 3, 15))


def test_review_refusals() -> None:
    backwards = ReviewRisk(risk_id=R, reviewed_on=date(2027, 3, 1), next_review_on=date(2027, 2, 1))
    error = given(*identified).when(backwards).raises(ValidationError)
    assert error.issues[0].path == "next_review_on"
    ok = ReviewRisk(risk_id=R, reviewed_on=date(2027, 3, 1), next_review_on=date(2027, 4, 1))
    given(*closed).when(ok).raises(InvalidTransition)


def test_roam_classifies_an_open_risk() -> None:
    command = ChangeRiskRoam(risk_id=R, roam=RoamStatus.OWNED, reason="Priya owns it")
    state = (
        given(*mitigating)
        .when(command)
        .then(RiskRoamChanged(**IDS, roam=RoamStatus.OWNED, reason="Priya owns it"))
    )
    assert state.roam is RoamStatus.OWNED
    assert state.roam_reason == "Priya owns it"
    assert state.status is RiskStatus.MITIGATING, "ROAM and status are separate scales"


def test_roam_to_the_same_value_records_nothing() -> None:
    history = [*mitigating, RiskRoamChanged(**IDS, roam=RoamStatus.MITIGATED)]
    given(*history).when(ChangeRiskRoam(risk_id=R, roam=RoamStatus.MITIGATED)).then()


def test_roam_values_are_checked() -> None:
    command = ChangeRiskRoam(risk_id=R, roam="IGNORED", reason=" ")  # type: ignore[arg-type]
    error = given(*identified).when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {"roam", "reason"}


def test_roam_of_a_closed_risk_is_refused_and_reopening_clears_it() -> None:
    given(*closed).when(ChangeRiskRoam(risk_id=R, roam=RoamStatus.RESOLVED)).raises(
        InvalidTransition
    )
    history: list[Any] = [
        *mitigating,
        RiskRoamChanged(**IDS, roam=RoamStatus.RESOLVED),
        RiskClosed(**IDS, reason="Certified"),
        RiskReopened(**IDS, reason="r"),
    ]
    state = risk.fold(history)
    assert state is not None
    assert state.roam is None


RAISED = RaisedIssue(
    issue_id=ISSUE,
    title="Pilot moves four weeks",
    severity=IssueSeverity.HIGH,
    owner="Priya",
    due_on=date(2027, 4, 30),
)


def test_materialising_can_raise_its_issue_in_the_same_step() -> None:
    command = ReportRiskMaterialised(
        risk_id=R,
        what_happened="Certification failed.",
        impact_description="Pilot moves four weeks.",
        occurred_on=date(2027, 4, 2),
        raise_issue=RAISED,
    )
    expected = RiskMaterialised(
        **IDS,
        what_happened="Certification failed.",
        impact_description="Pilot moves four weeks.",
        occurred_on=date(2027, 4, 2),
        raised_issue=RAISED,
    )
    state = given(*mitigating).when(command).then(expected)
    assert state.materialisation is not None
    assert state.materialisation.issue_id == ISSUE


def test_the_issue_a_risk_raises_is_checked_with_the_materialisation() -> None:
    bad = RaisedIssue(issue_id=ISSUE, title="", severity=IssueSeverity.LOW, owner="o", due_on=None)  # type: ignore[arg-type]
    command = ReportRiskMaterialised(
        risk_id=R,
        what_happened="w",
        impact_description="i",
        occurred_on=date(2027, 4, 2),
        raise_issue=bad,
    )
    error = given(*mitigating).when(command).raises(ValidationError)
    assert {i.path for i in error.issues} == {"raise_issue.title", "raise_issue.due_on"}


def test_repeating_the_recorded_materialisation_records_nothing() -> None:
    history = [*mitigating, msgspec.structs.replace(materialisation, raised_issue=RAISED)]
    command = ReportRiskMaterialised(
        risk_id=R,
        what_happened="Certification failed.",
        impact_description="Pilot moves four weeks.",
        occurred_on=date(2027, 4, 2),
        raise_issue=RAISED,
    )
    given(*history).when(command).then()
    other = msgspec.structs.replace(command, what_happened="Something else")
    given(*history).when(other).raises(InvalidTransition)
