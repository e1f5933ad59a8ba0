"""The Assumption aggregate's state (stream ``assumption-<uuid>``): something the plan
takes to be true without proof, with who answers for it, how sure they are and by when
it must be checked.

An assumption ends validated or invalidated, each with its evidence. One found false is
often the start of trouble: invalidating it can raise a risk or an issue in the same
step, and the invalidation event carries that item whole.
"""

from __future__ import annotations

import enum
from datetime import date
from uuid import UUID

import msgspec

__all__ = [
    "Assumption",
    "AssumptionStatus",
    "Confidence",
    "Verdict",
    "assumption_stream_id",
]


class AssumptionStatus(enum.StrEnum):
    OPEN = "OPEN"
    VALIDATED = "VALIDATED"
    INVALIDATED = "INVALIDATED"
    """Final: a false assumption is not made true again; record a new one."""


class Confidence(enum.StrEnum):
    """How sure the owner is that the assumption holds."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


def assumption_stream_id(assumption_id: UUID) -> str:
    return f"assumption-{assumption_id}"


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """Why the assumption was found true or false, and on which day."""

    evidence: str
    on: date


class Assumption(msgspec.Struct, frozen=True, kw_only=True):
    assumption_id: UUID
    program_id: UUID
    statement: str
    owner: str
    confidence: Confidence
    validate_by: date
    """The day by which it must be validated or invalidated."""
    description: str | None = None
    workstream_id: UUID | None = None
    status: AssumptionStatus = AssumptionStatus.OPEN
    validation: Verdict | None = None
    """Kept when a validated assumption is later found false."""
    invalidation: Verdict | None = None
    raised_risk_id: UUID | None = None
    raised_issue_id: UUID | None = None
