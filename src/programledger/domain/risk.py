"""The Risk aggregate (stream ``risk-<uuid>``): one entry of a program's risk register.

Each risk has its own stream because many people raise and work risks at once; one stream
per risk keeps their commands from conflicting. Every event carries ``program_id`` so the
register of a program, and its subscribers, can be built from events alone.

Lifecycle (see ``RISK_LIFECYCLE``)::

    IDENTIFIED -> ASSESSED -> MITIGATING | ACCEPTED -> CLOSED -> (reopened) ASSESSED
    any open status -> MATERIALISED -> CLOSED

Escalation is a flag, not a status: an escalated risk keeps its status (it may be escalated
while mitigating, or after it materialised), so escalating never hides where it stands.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date
from typing import ClassVar, get_args
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import asdict, replace

from programledger.domain._checks import Checks, changed, given
from programledger.domain.errors import (
    AlreadyExists,
    InconsistentHistory,
    InvalidTransition,
    NotFound,
)
from programledger.domain.events import DomainEvent

__all__ = [
    "RISK_EVENT_TYPES",
    "RISK_LIFECYCLE",
    "AcceptRisk",
    "Acceptance",
    "AssessRisk",
    "CloseRisk",
    "EscalateRisk",
    "Escalation",
    "IdentifyRisk",
    "Materialisation",
    "ReopenRisk",
    "ReportRiskMaterialised",
    "ResponseStrategy",
    "ReviewRisk",
    "ReviseMitigationPlan",
    "Risk",
    "RiskAccepted",
    "RiskAssessed",
    "RiskCategory",
    "RiskClosed",
    "RiskCommand",
    "RiskDetailsUpdated",
    "RiskEscalated",
    "RiskEvent",
    "RiskIdentified",
    "RiskMaterialised",
    "RiskMitigationPlanRevised",
    "RiskMitigationStarted",
    "RiskReopened",
    "RiskReviewed",
    "RiskStatus",
    "SeverityBand",
    "StartMitigation",
    "UpdateRiskDetails",
    "decide",
    "evolve",
    "fold",
    "risk_score",
    "risk_stream_id",
    "severity_band",
]


class RiskStatus(enum.StrEnum):
    IDENTIFIED = "IDENTIFIED"
    ASSESSED = "ASSESSED"
    MITIGATING = "MITIGATING"
    ACCEPTED = "ACCEPTED"
    MATERIALISED = "MATERIALISED"
    """It happened: the risk is now an issue, worked until it is closed."""
    CLOSED = "CLOSED"


class RiskCategory(enum.StrEnum):
    TECHNICAL = "TECHNICAL"
    SCHEDULE = "SCHEDULE"
    RESOURCE = "RESOURCE"
    BUDGET = "BUDGET"
    VENDOR = "VENDOR"
    COMPLIANCE = "COMPLIANCE"
    SECURITY = "SECURITY"
    OTHER = "OTHER"


class ResponseStrategy(enum.StrEnum):
    AVOID = "AVOID"
    MITIGATE = "MITIGATE"
    TRANSFER = "TRANSFER"
    ACCEPT = "ACCEPT"


class SeverityBand(enum.StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


def risk_score(probability: int, impact: int) -> int:
    """Probability x impact, each 1 to 5, so 1 to 25."""
    if not (1 <= probability <= 5 and 1 <= impact <= 5):
        raise ValueError(f"probability and impact must be 1 to 5, got {probability}, {impact}")
    return probability * impact


def severity_band(score: int) -> SeverityBand:
    """LOW 1-4, MEDIUM 5-9, HIGH 10-16, CRITICAL 17-25."""
    if not 1 <= score <= 25:
        raise ValueError(f"a risk score is 1 to 25, got {score}")
    if score <= 4:
        return SeverityBand.LOW
    if score <= 9:
        return SeverityBand.MEDIUM
    if score <= 16:
        return SeverityBand.HIGH
    return SeverityBand.CRITICAL


def risk_stream_id(risk_id: UUID) -> str:
    return f"risk-{risk_id}"


# State


class Acceptance(msgspec.Struct, frozen=True, kw_only=True):
    rationale: str
    approved_by: str


class Materialisation(msgspec.Struct, frozen=True, kw_only=True):
    what_happened: str
    impact_description: str
    occurred_on: date


class Escalation(msgspec.Struct, frozen=True, kw_only=True):
    escalated_to: str
    reason: str


class Risk(msgspec.Struct, frozen=True, kw_only=True):
    risk_id: UUID
    program_id: UUID
    title: str
    category: RiskCategory
    probability: int
    impact: int
    owner: str
    workstream_id: UUID | None = None
    description: str | None = None
    trigger: str | None = None
    """The early-warning sign that the risk is about to happen."""
    status: RiskStatus = RiskStatus.IDENTIFIED
    response_strategy: ResponseStrategy | None = None
    mitigation_plan: str | None = None
    mitigation_due_on: date | None = None
    contingency_plan: str | None = None
    next_review_on: date | None = None
    last_reviewed_on: date | None = None
    acceptance: Acceptance | None = None
    materialisation: Materialisation | None = None
    escalation: Escalation | None = None
    """The latest escalation; cleared when the risk is reopened."""
    closed_reason: str | None = None

    @property
    def score(self) -> int:
        return risk_score(self.probability, self.impact)

    @property
    def band(self) -> SeverityBand:
        return severity_band(self.score)


# Commands


class _RiskCommand(msgspec.Struct, frozen=True, kw_only=True):
    risk_id: UUID


class IdentifyRisk(_RiskCommand, frozen=True, kw_only=True):
    """Opens the risk with a first estimate of probability and impact, so it has a score
    and a place in the register from the start."""

    program_id: UUID
    title: str
    category: RiskCategory
    probability: int
    impact: int
    owner: str
    workstream_id: UUID | None = None
    description: str | None = None
    trigger: str | None = None
    contingency_plan: str | None = None
    next_review_on: date | None = None


class AssessRisk(_RiskCommand, frozen=True, kw_only=True):
    """Sets probability and impact; the first assessment moves IDENTIFIED to ASSESSED,
    later ones re-score the risk and keep its status."""

    probability: int
    impact: int
    reason: str | None = None


class StartMitigation(_RiskCommand, frozen=True, kw_only=True):
    response_strategy: ResponseStrategy
    """AVOID, MITIGATE or TRANSFER; accepting is ``AcceptRisk``."""
    mitigation_plan: str
    mitigation_due_on: date
    contingency_plan: str | None = None


class ReviseMitigationPlan(_RiskCommand, frozen=True, kw_only=True):
    mitigation_plan: str
    mitigation_due_on: date
    reason: str


class AcceptRisk(_RiskCommand, frozen=True, kw_only=True):
    rationale: str
    approved_by: str


class ReportRiskMaterialised(_RiskCommand, frozen=True, kw_only=True):
    what_happened: str
    impact_description: str
    occurred_on: date


class EscalateRisk(_RiskCommand, frozen=True, kw_only=True):
    escalated_to: str
    reason: str


class CloseRisk(_RiskCommand, frozen=True, kw_only=True):
    reason: str


class ReopenRisk(_RiskCommand, frozen=True, kw_only=True):
    reason: str


class UpdateRiskDetails(_RiskCommand, frozen=True, kw_only=True):
    """``UNSET`` leaves a field unchanged, ``None`` clears an optional one."""

    title: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    category: RiskCategory | UnsetType = UNSET
    owner: str | UnsetType = UNSET
    trigger: str | UnsetType | None = UNSET
    workstream_id: UUID | UnsetType | None = UNSET
    contingency_plan: str | UnsetType | None = UNSET


class ReviewRisk(_RiskCommand, frozen=True, kw_only=True):
    reviewed_on: date
    next_review_on: date
    note: str | None = None


RiskCommand = (
    IdentifyRisk
    | AssessRisk
    | StartMitigation
    | ReviseMitigationPlan
    | AcceptRisk
    | ReportRiskMaterialised
    | EscalateRisk
    | CloseRisk
    | ReopenRisk
    | UpdateRiskDetails
    | ReviewRisk
)


# Events


class _RiskEvent(DomainEvent, frozen=True, kw_only=True):
    risk_id: UUID
    program_id: UUID


class RiskIdentified(_RiskEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "RiskIdentified"
    schema_version: ClassVar[int] = 1
    title: str
    category: RiskCategory
    probability: int
    impact: int
    owner: str
    workstream_id: UUID | None
    description: str | None
    trigger: str | None
    contingency_plan: str | None
    next_review_on: date | None


class RiskAssessed(_RiskEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "RiskAssessed"
    schema_version: ClassVar[int] = 1
    probability: int
    impact: int
    reason: str | None = None


class RiskMitigationStarted(_RiskEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "RiskMitigationStarted"
    schema_version: ClassVar[int] = 1
    response_strategy: ResponseStrategy
    mitigation_plan: str
    mitigation_due_on: date
    contingency_plan: str | None = None
    """``null`` when the command gave none: the risk keeps the one it had."""


class RiskMitigationPlanRevised(_RiskEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "RiskMitigationPlanRevised"
    schema_version: ClassVar[int] = 1
    mitigation_plan: str
    mitigation_due_on: date
    reason: str


class RiskAccepted(_RiskEvent, frozen=True, kw_only=True):
    """The response strategy becomes ACCEPT."""

    event_type: ClassVar[str] = "RiskAccepted"
    schema_version: ClassVar[int] = 1
    rationale: str
    approved_by: str


class RiskMaterialised(_RiskEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "RiskMaterialised"
    schema_version: ClassVar[int] = 1
    what_happened: str
    impact_description: str
    occurred_on: date


class RiskEscalated(_RiskEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "RiskEscalated"
    schema_version: ClassVar[int] = 1
    escalated_to: str
    reason: str


class RiskClosed(_RiskEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "RiskClosed"
    schema_version: ClassVar[int] = 1
    reason: str


class RiskReopened(_RiskEvent, frozen=True, kw_only=True):
    """Back to ASSESSED with no response, acceptance, materialisation or escalation: a
    reopened risk needs a fresh response."""

    event_type: ClassVar[str] = "RiskReopened"
    schema_version: ClassVar[int] = 1
    reason: str


class RiskDetailsUpdated(_RiskEvent, frozen=True, kw_only=True):
    """Only the fields that changed are present; ``null`` clears an optional field."""

    event_type: ClassVar[str] = "RiskDetailsUpdated"
    schema_version: ClassVar[int] = 1
    title: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    category: RiskCategory | UnsetType = UNSET
    owner: str | UnsetType = UNSET
    trigger: str | UnsetType | None = UNSET
    workstream_id: UUID | UnsetType | None = UNSET
    contingency_plan: str | UnsetType | None = UNSET


class RiskReviewed(_RiskEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "RiskReviewed"
    schema_version: ClassVar[int] = 1
    reviewed_on: date
    next_review_on: date
    note: str | None = None


RiskEvent = (
    RiskIdentified
    | RiskAssessed
    | RiskMitigationStarted
    | RiskMitigationPlanRevised
    | RiskAccepted
    | RiskMaterialised
    | RiskEscalated
    | RiskClosed
    | RiskReopened
    | RiskDetailsUpdated
    | RiskReviewed
)

RISK_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(RiskEvent)


# Decide

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


# Evolve


def evolve(state: Risk | None, event: RiskEvent) -> Risk:
    """The risk after ``event``. Raises :class:`InconsistentHistory` only for histories
    ``decide`` cannot have produced."""
    if isinstance(event, RiskIdentified):
        if state is not None:
            raise InconsistentHistory(f"risk {event.risk_id} was identified twice")
        return Risk(**asdict(event))
    if state is None:
        raise InconsistentHistory(
            f"{event.event_type} for risk {event.risk_id} before RiskIdentified"
        )
    match event:
        case RiskAssessed():
            status = _S.ASSESSED if state.status is _S.IDENTIFIED else state.status
            return replace(state, probability=event.probability, impact=event.impact, status=status)
        case RiskMitigationStarted():
            contingency = event.contingency_plan or state.contingency_plan
            return replace(
                state,
                status=_S.MITIGATING,
                response_strategy=event.response_strategy,
                mitigation_plan=event.mitigation_plan,
                mitigation_due_on=event.mitigation_due_on,
                contingency_plan=contingency,
                acceptance=None,
            )
        case RiskMitigationPlanRevised():
            return replace(
                state,
                mitigation_plan=event.mitigation_plan,
                mitigation_due_on=event.mitigation_due_on,
            )
        case RiskAccepted():
            acceptance = Acceptance(rationale=event.rationale, approved_by=event.approved_by)
            return replace(
                state,
                status=_S.ACCEPTED,
                response_strategy=ResponseStrategy.ACCEPT,
                acceptance=acceptance,
            )
        case RiskMaterialised():
            materialisation = Materialisation(
                what_happened=event.what_happened,
                impact_description=event.impact_description,
                occurred_on=event.occurred_on,
            )
            return replace(state, status=_S.MATERIALISED, materialisation=materialisation)
        case RiskEscalated():
            escalation = Escalation(escalated_to=event.escalated_to, reason=event.reason)
            return replace(state, escalation=escalation)
        case RiskClosed():
            return replace(state, status=_S.CLOSED, closed_reason=event.reason)
        case RiskReopened():
            return replace(
                state,
                status=_S.ASSESSED,
                response_strategy=None,
                acceptance=None,
                materialisation=None,
                escalation=None,
                closed_reason=None,
            )
        case RiskDetailsUpdated():
            changes = {
                name: value
                for name, value in asdict(event).items()
                if name not in ("risk_id", "program_id") and not isinstance(value, UnsetType)
            }
            return replace(state, **changes)
        case RiskReviewed():
            return replace(
                state, last_reviewed_on=event.reviewed_on, next_review_on=event.next_review_on
            )


def fold(events: Iterable[RiskEvent]) -> Risk | None:
    """The risk after all of ``events`` in order; ``None`` for an empty history."""
    state: Risk | None = None
    for event in events:
        state = evolve(state, event)
    return state
