"""``evolve`` for the Risk aggregate: applies one recorded event to the risk. Pure, so
the same history always yields the same risk."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec import UnsetType
from msgspec.structs import asdict, replace

from programledger.domain.errors import InconsistentHistory
from programledger.domain.events import replay
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
    Acceptance,
    Escalation,
    Materialisation,
    ResponseStrategy,
    Risk,
    RiskStatus,
)

__all__ = ["evolve", "fold"]

_S = RiskStatus


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
                issue_id=None if event.raised_issue is None else event.raised_issue.issue_id,
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
                roam=None,
                roam_reason=None,
            )
        case RiskDetailsUpdated():
            changes = {
                name: value
                for name, value in asdict(event).items()
                if name not in ("risk_id", "program_id") and not isinstance(value, UnsetType)
            }
            return replace(state, **changes)
        case RiskRoamChanged():
            return replace(state, roam=event.roam, roam_reason=event.reason)
        case RiskReviewed():
            return replace(
                state, last_reviewed_on=event.reviewed_on, next_review_on=event.next_review_on
            )


def fold(events: Iterable[RiskEvent]) -> Risk | None:
    """The risk after all of ``events`` in order; ``None`` for an empty history."""
    return replay(evolve, events)
