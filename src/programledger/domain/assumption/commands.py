"""Commands to the Assumption aggregate: what a user asks for, in the imperative."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from programledger.domain.assumption.state import Confidence
from programledger.domain.issue.state import RaisedIssue
from programledger.domain.risk.state import RaisedRisk

__all__ = [
    "AssumptionCommand",
    "InvalidateAssumption",
    "RecordAssumption",
    "UpdateAssumptionDetails",
    "ValidateAssumption",
]


class _AssumptionCommand(msgspec.Struct, frozen=True, kw_only=True):
    assumption_id: UUID


class RecordAssumption(_AssumptionCommand, frozen=True, kw_only=True):
    program_id: UUID
    statement: str
    owner: str
    confidence: Confidence
    validate_by: date
    description: str | None = None
    workstream_id: UUID | None = None


class UpdateAssumptionDetails(_AssumptionCommand, frozen=True, kw_only=True):
    """``UNSET`` leaves a field unchanged, ``None`` clears an optional one."""

    statement: str | UnsetType = UNSET
    owner: str | UnsetType = UNSET
    confidence: Confidence | UnsetType = UNSET
    validate_by: date | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    workstream_id: UUID | UnsetType | None = UNSET


class ValidateAssumption(_AssumptionCommand, frozen=True, kw_only=True):
    evidence: str
    validated_on: date


class InvalidateAssumption(_AssumptionCommand, frozen=True, kw_only=True):
    """Found false, with the evidence; ``raise_risk`` or ``raise_issue`` (not both) opens
    the risk or issue it leads to in the same step."""

    evidence: str
    invalidated_on: date
    raise_risk: RaisedRisk | None = None
    raise_issue: RaisedIssue | None = None


AssumptionCommand = (
    RecordAssumption | UpdateAssumptionDetails | ValidateAssumption | InvalidateAssumption
)
