"""Commands to the Risk aggregate: what a user asks for, in the imperative.

Every command names the risk it is for; ``IdentifyRisk`` also names the program the risk
belongs to, which never changes afterwards.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from programledger.domain.issue.state import RaisedIssue
from programledger.domain.risk.state import ResponseStrategy, RiskCategory, RoamStatus

__all__ = [
    "AcceptRisk",
    "AssessRisk",
    "ChangeRiskRoam",
    "CloseRisk",
    "EscalateRisk",
    "IdentifyRisk",
    "ReopenRisk",
    "ReportRiskMaterialised",
    "ReviewRisk",
    "ReviseMitigationPlan",
    "RiskCommand",
    "StartMitigation",
    "UpdateRiskDetails",
]


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
    """With ``raise_issue``, the issue the risk became is opened in the same step,
    linked to the risk."""

    what_happened: str
    impact_description: str
    occurred_on: date
    raise_issue: RaisedIssue | None = None


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


class ChangeRiskRoam(_RiskCommand, frozen=True, kw_only=True):
    """Classifies the risk on the ROAM board (Resolved, Owned, Accepted, Mitigated)."""

    roam: RoamStatus
    reason: str | None = None


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
    | ChangeRiskRoam
)
