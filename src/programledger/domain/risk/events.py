"""Events of the Risk aggregate: facts, in the past tense, stored forever.

Each carries ``risk_id`` and ``program_id``, so a program's register and its subscribers
can be built from events alone. ``event_type`` is the stable stored name; never reuse or
rename one.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, get_args
from uuid import UUID

from msgspec import UNSET, UnsetType

from programledger.domain.events import DomainEvent
from programledger.domain.issue.state import RaisedIssue
from programledger.domain.risk.state import ResponseStrategy, RiskCategory, RoamStatus

__all__ = [
    "RISK_EVENT_TYPES",
    "RiskAccepted",
    "RiskAssessed",
    "RiskClosed",
    "RiskDetailsUpdated",
    "RiskEscalated",
    "RiskEvent",
    "RiskIdentified",
    "RiskMaterialised",
    "RiskMitigationPlanRevised",
    "RiskMitigationStarted",
    "RiskReopened",
    "RiskReviewed",
    "RiskRoamChanged",
]


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
    assumption_id: UUID | None = None
    """The assumption whose invalidation raised the risk, if any."""


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
    raised_issue: RaisedIssue | None = None
    """The issue opened in the same step (stream ``issue-<issue_id>``), linked to the
    risk."""


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


class RiskRoamChanged(_RiskEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "RiskRoamChanged"
    schema_version: ClassVar[int] = 1
    roam: RoamStatus
    reason: str | None = None


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
    | RiskRoamChanged
)

RISK_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(RiskEvent)
