"""The Risk aggregate's state (stream ``risk-<uuid>``): one entry of a program's risk
register, and how a risk is scored.

Each risk has its own stream because many people raise and work risks at once; one stream
per risk keeps their commands from conflicting. Every event carries ``program_id`` so the
register of a program, and its subscribers, can be built from events alone.

Escalation is a flag, not a status: an escalated risk keeps its status (it may be escalated
while mitigating, or after it materialised), so escalating never hides where it stands.
"""

from __future__ import annotations

import enum
from datetime import date
from uuid import UUID

import msgspec

__all__ = [
    "Acceptance",
    "Escalation",
    "Materialisation",
    "RaisedRisk",
    "ResponseStrategy",
    "Risk",
    "RiskCategory",
    "RiskStatus",
    "RoamStatus",
    "SeverityBand",
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


class RoamStatus(enum.StrEnum):
    """How the program treats the risk, after Jira Align's ROAM board: independent of the
    lifecycle status, which says where the risk's own work stands."""

    RESOLVED = "RESOLVED"
    """No longer a risk: it cannot happen any more."""
    OWNED = "OWNED"
    """Someone has taken it on and will act on it."""
    ACCEPTED = "ACCEPTED"
    """It may happen and nothing will be done about it."""
    MITIGATED = "MITIGATED"
    """Action taken has lowered its probability or impact enough."""


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


class Acceptance(msgspec.Struct, frozen=True, kw_only=True):
    rationale: str
    approved_by: str


class Materialisation(msgspec.Struct, frozen=True, kw_only=True):
    what_happened: str
    impact_description: str
    occurred_on: date
    issue_id: UUID | None = None
    """The issue raised in the same step, if any."""


class RaisedRisk(msgspec.Struct, frozen=True, kw_only=True):
    """The risk another item raises in the same step (an assumption found false): its id,
    chosen by the caller, and its first estimate. The raising event carries it whole, so
    the risk is a function of that recorded event."""

    risk_id: UUID
    title: str
    category: RiskCategory
    probability: int
    impact: int
    owner: str
    description: str | None = None


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
    roam: RoamStatus | None = None
    """Unset until first classified; cleared when the risk is reopened."""
    roam_reason: str | None = None
    """Why the latest ROAM classification was made, if given."""
    assumption_id: UUID | None = None
    """The assumption whose invalidation raised this risk."""

    @property
    def score(self) -> int:
        return risk_score(self.probability, self.impact)

    @property
    def band(self) -> SeverityBand:
        return severity_band(self.score)
