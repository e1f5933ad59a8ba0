"""``decide`` for the Risk aggregate: checks a command against the risk as it is and
returns the events to record, or raises a :class:`~programledger.domain.errors.DomainError`.
Pure: no clock, no ids drawn, no I/O.

Lifecycle (see ``RISK_LIFECYCLE``)::

    IDENTIFIED -> ASSESSED -> MITIGATING | ACCEPTED -> CLOSED -> (reopened) ASSESSED
    any open status -> MATERIALISED -> CLOSED
"""

from __future__ import annotations

from uuid import UUID

from programledger.domain._checks import Checks, changed, given
from programledger.domain.errors import AlreadyExists, InvalidTransition, NotFound
from programledger.domain.issue.decide import check_raised_issue
from programledger.domain.risk.commands import (
    AcceptRisk,
    AssessRisk,
    ChangeRiskRoam,
    CloseRisk,
    EscalateRisk,
    IdentifyRisk,
    ReopenRisk,
    ReportRiskMaterialised,
    ReviewRisk,
    ReviseMitigationPlan,
    RiskCommand,
    StartMitigation,
    UpdateRiskDetails,
)
from programledger.domain.risk.events import (
    RiskAccepted,
    RiskAssessed,
    RiskClosed,
    RiskDetailsUpdated,
    RiskEscalated,
    RiskEvent,
    RiskIdentified,
    RiskMaterialised,
    RiskMitigationPlanRevised,
    RiskMitigationStarted,
    RiskReopened,
    RiskReviewed,
    RiskRoamChanged,
)
from programledger.domain.risk.state import (
    Materialisation,
    RaisedRisk,
    ResponseStrategy,
    Risk,
    RiskCategory,
    RiskStatus,
    RoamStatus,
)

__all__ = ["RISK_LIFECYCLE", "check_raised_risk", "decide", "identify_from"]

_S = RiskStatus
_OPEN = frozenset(set(RiskStatus) - {_S.CLOSED})

RISK_LIFECYCLE: dict[type[RiskCommand], frozenset[RiskStatus]] = {
    AssessRisk: _OPEN,
    StartMitigation: frozenset({_S.ASSESSED, _S.ACCEPTED}),
    ReviseMitigationPlan: frozenset({_S.MITIGATING, _S.MATERIALISED}),
    AcceptRisk: frozenset({_S.ASSESSED, _S.MITIGATING}),
    ReportRiskMaterialised: frozenset({_S.IDENTIFIED, _S.ASSESSED, _S.MITIGATING, _S.ACCEPTED}),
    EscalateRisk: _OPEN,
    CloseRisk: frozenset({_S.MITIGATING, _S.ACCEPTED, _S.MATERIALISED}),
    ReopenRisk: frozenset({_S.CLOSED}),
    UpdateRiskDetails: _OPEN,
    ReviewRisk: _OPEN,
    ChangeRiskRoam: _OPEN,
}
"""Command -> the statuses it is allowed in. A risk leaves IDENTIFIED only by being
assessed, and is closed only once it has a response (mitigation or acceptance) or has
materialised."""


_MITIGATIONS = (ResponseStrategy.AVOID, ResponseStrategy.MITIGATE, ResponseStrategy.TRANSFER)


def decide(state: Risk | None, command: RiskCommand) -> list[RiskEvent]:
    """The events ``command`` causes on ``state`` (``None``: no such risk yet).

    Returns an empty list when an update would change nothing.
    """
    if isinstance(command, IdentifyRisk):
        if state is not None:
            raise AlreadyExists("risk", command.risk_id)
        return [_identify(command)]
    if state is None:
        raise NotFound("risk", command.risk_id)
    if command.risk_id != state.risk_id:
        raise ValueError(
            f"{type(command).__name__} for risk {command.risk_id} was decided against risk "
            f"{state.risk_id}: the caller loaded the wrong stream"
        )
    _check(command)
    if isinstance(command, ReportRiskMaterialised) and _repeats(state, command):
        return []
    allowed = RISK_LIFECYCLE[type(command)]
    if state.status not in allowed:
        raise InvalidTransition(
            "risk",
            state.risk_id,
            state.status.value,
            type(command).__name__,
            hint=_hint(state.status, allowed),
        )
    rid, pid = state.risk_id, state.program_id
    match command:
        case AssessRisk(probability=p, impact=i, reason=reason):
            return [
                RiskAssessed(risk_id=rid, program_id=pid, probability=p, impact=i, reason=reason)
            ]
        case StartMitigation():
            return [
                RiskMitigationStarted(
                    risk_id=rid,
                    program_id=pid,
                    response_strategy=command.response_strategy,
                    mitigation_plan=command.mitigation_plan,
                    mitigation_due_on=command.mitigation_due_on,
                    contingency_plan=command.contingency_plan,
                )
            ]
        case ReviseMitigationPlan():
            return [
                RiskMitigationPlanRevised(
                    risk_id=rid,
                    program_id=pid,
                    mitigation_plan=command.mitigation_plan,
                    mitigation_due_on=command.mitigation_due_on,
                    reason=command.reason,
                )
            ]
        case AcceptRisk(rationale=rationale, approved_by=approver):
            return [
                RiskAccepted(risk_id=rid, program_id=pid, rationale=rationale, approved_by=approver)
            ]
        case ReportRiskMaterialised():
            return [
                RiskMaterialised(
                    risk_id=rid,
                    program_id=pid,
                    what_happened=command.what_happened,
                    impact_description=command.impact_description,
                    occurred_on=command.occurred_on,
                    raised_issue=command.raise_issue,
                )
            ]
        case EscalateRisk(escalated_to=to, reason=reason):
            return [RiskEscalated(risk_id=rid, program_id=pid, escalated_to=to, reason=reason)]
        case CloseRisk(reason=reason):
            return [RiskClosed(risk_id=rid, program_id=pid, reason=reason)]
        case ReopenRisk(reason=reason):
            return [RiskReopened(risk_id=rid, program_id=pid, reason=reason)]
        case UpdateRiskDetails():
            return _update_details(state, command)
        case ChangeRiskRoam(roam=roam, reason=reason):
            if roam is state.roam:
                return []
            return [RiskRoamChanged(risk_id=rid, program_id=pid, roam=roam, reason=reason)]
        case ReviewRisk():
            return [
                RiskReviewed(
                    risk_id=rid,
                    program_id=pid,
                    reviewed_on=command.reviewed_on,
                    next_review_on=command.next_review_on,
                    note=command.note,
                )
            ]


def _repeats(state: Risk, c: ReportRiskMaterialised) -> bool:
    """Whether ``c`` is the materialisation already recorded: recording nothing lets the
    application complete the step it began (the raised issue), which a crash may have cut
    short."""
    raised = None if c.raise_issue is None else c.raise_issue.issue_id
    return state.status is _S.MATERIALISED and state.materialisation == Materialisation(
        what_happened=c.what_happened,
        impact_description=c.impact_description,
        occurred_on=c.occurred_on,
        issue_id=raised,
    )


def _hint(status: RiskStatus, allowed: frozenset[RiskStatus]) -> str:
    if status is _S.CLOSED:
        return "reopen the risk first"
    if status is _S.IDENTIFIED and _S.ASSESSED in allowed:
        return "assess the risk first"
    return f"allowed only when {' or '.join(s.value for s in RiskStatus if s in allowed)}"


def _identify(c: IdentifyRisk) -> RiskIdentified:
    checks = Checks()
    checks.line("title", c.title)
    checks.member("category", c.category, RiskCategory)
    checks.integer("probability", c.probability, 1, 5)
    checks.integer("impact", c.impact, 1, 5)
    checks.line("owner", c.owner)
    checks.optional_text("description", c.description)
    checks.optional_text("trigger", c.trigger)
    checks.optional_text("contingency_plan", c.contingency_plan)
    checks.optional_day("next_review_on", c.next_review_on)
    checks.done()
    return RiskIdentified(
        risk_id=c.risk_id,
        program_id=c.program_id,
        title=c.title,
        category=c.category,
        probability=c.probability,
        impact=c.impact,
        owner=c.owner,
        workstream_id=c.workstream_id,
        description=c.description,
        trigger=c.trigger,
        contingency_plan=c.contingency_plan,
        next_review_on=c.next_review_on,
    )


def check_raised_risk(checks: Checks, path: str, raised: RaisedRisk) -> None:
    """The fields of a risk raised by another item, reported under ``path``: the raising
    command is refused whole, before anything is recorded, if its risk could not open."""
    checks.line(f"{path}.title", raised.title)
    checks.member(f"{path}.category", raised.category, RiskCategory)
    checks.integer(f"{path}.probability", raised.probability, 1, 5)
    checks.integer(f"{path}.impact", raised.impact, 1, 5)
    checks.line(f"{path}.owner", raised.owner)
    checks.optional_text(f"{path}.description", raised.description)


def identify_from(
    state: Risk | None, program_id: UUID, raised: RaisedRisk, *, assumption_id: UUID
) -> list[RiskEvent]:
    """The risk an assumption's invalidation raised.

    Idempotent, since it completes a step that may be retried: a risk already identified
    from the same assumption records nothing; one identified otherwise under that id is
    :class:`AlreadyExists`.
    """
    if state is not None:
        if (state.program_id, state.assumption_id) == (program_id, assumption_id):
            return []
        raise AlreadyExists("risk", raised.risk_id)
    return [
        RiskIdentified(
            risk_id=raised.risk_id,
            program_id=program_id,
            title=raised.title,
            category=raised.category,
            probability=raised.probability,
            impact=raised.impact,
            owner=raised.owner,
            workstream_id=None,
            description=raised.description,
            trigger=None,
            contingency_plan=None,
            next_review_on=None,
            assumption_id=assumption_id,
        )
    ]


def _check(command: RiskCommand) -> None:
    """The command's own data, checked before its status so a form's mistakes are
    reported even when the status would refuse it too."""
    checks = Checks()
    match command:
        case AssessRisk():
            checks.integer("probability", command.probability, 1, 5)
            checks.integer("impact", command.impact, 1, 5)
            checks.optional_text("reason", command.reason)
        case StartMitigation():
            checks.member(
                "response_strategy", command.response_strategy, ResponseStrategy, _MITIGATIONS
            )
            checks.text("mitigation_plan", command.mitigation_plan)
            checks.day("mitigation_due_on", command.mitigation_due_on)
            checks.optional_text("contingency_plan", command.contingency_plan)
        case ReviseMitigationPlan():
            checks.text("mitigation_plan", command.mitigation_plan)
            checks.day("mitigation_due_on", command.mitigation_due_on)
            checks.text("reason", command.reason)
        case AcceptRisk():
            checks.text("rationale", command.rationale)
            checks.line("approved_by", command.approved_by)
        case ReportRiskMaterialised():
            checks.text("what_happened", command.what_happened)
            checks.text("impact_description", command.impact_description)
            checks.day("occurred_on", command.occurred_on)
            if command.raise_issue is not None:
                check_raised_issue(checks, "raise_issue", command.raise_issue)
        case ChangeRiskRoam():
            checks.member("roam", command.roam, RoamStatus)
            checks.optional_text("reason", command.reason)
        case EscalateRisk():
            checks.line("escalated_to", command.escalated_to)
            checks.text("reason", command.reason)
        case CloseRisk() | ReopenRisk():
            checks.text("reason", command.reason)
        case UpdateRiskDetails():
            if given(command.title):
                checks.line("title", command.title)
            if given(command.description):
                checks.optional_text("description", command.description)
            if given(command.category):
                checks.member("category", command.category, RiskCategory)
            if given(command.owner):
                checks.line("owner", command.owner)
            if given(command.trigger):
                checks.optional_text("trigger", command.trigger)
            if given(command.contingency_plan):
                checks.optional_text("contingency_plan", command.contingency_plan)
        case ReviewRisk():
            if checks.day("reviewed_on", command.reviewed_on) and checks.day(
                "next_review_on", command.next_review_on
            ):
                checks.not_before(
                    "next_review_on",
                    command.next_review_on,
                    command.reviewed_on,
                    "the review date",
                )
            checks.optional_text("note", command.note)
    checks.done()


def _update_details(state: Risk, c: UpdateRiskDetails) -> list[RiskEvent]:
    update = RiskDetailsUpdated(
        risk_id=state.risk_id,
        program_id=state.program_id,
        title=changed(c.title, state.title),
        description=changed(c.description, state.description),
        category=changed(c.category, state.category),
        owner=changed(c.owner, state.owner),
        trigger=changed(c.trigger, state.trigger),
        workstream_id=changed(c.workstream_id, state.workstream_id),
        contingency_plan=changed(c.contingency_plan, state.contingency_plan),
    )
    if update == RiskDetailsUpdated(risk_id=state.risk_id, program_id=state.program_id):
        return []
    return [update]
