"""Events of the Assumption aggregate: facts, in the past tense, stored forever.

Each carries ``assumption_id`` and ``program_id``. ``event_type`` is the stable stored
name; never reuse or rename one.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, get_args
from uuid import UUID

from msgspec import UNSET, UnsetType

from programledger.domain.assumption.state import Confidence
from programledger.domain.events import DomainEvent
from programledger.domain.issue.state import RaisedIssue
from programledger.domain.risk.state import RaisedRisk

__all__ = [
    "ASSUMPTION_EVENT_TYPES",
    "AssumptionDetailsUpdated",
    "AssumptionEvent",
    "AssumptionInvalidated",
    "AssumptionRecorded",
    "AssumptionValidated",
]


class _AssumptionEvent(DomainEvent, frozen=True, kw_only=True):
    assumption_id: UUID
    program_id: UUID


class AssumptionRecorded(_AssumptionEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "AssumptionRecorded"
    schema_version: ClassVar[int] = 1
    statement: str
    owner: str
    confidence: Confidence
    validate_by: date
    description: str | None = None
    workstream_id: UUID | None = None


class AssumptionDetailsUpdated(_AssumptionEvent, frozen=True, kw_only=True):
    """Only the fields that changed are present; ``null`` clears an optional field."""

    event_type: ClassVar[str] = "AssumptionDetailsUpdated"
    schema_version: ClassVar[int] = 1
    statement: str | UnsetType = UNSET
    owner: str | UnsetType = UNSET
    confidence: Confidence | UnsetType = UNSET
    validate_by: date | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    workstream_id: UUID | UnsetType | None = UNSET


class AssumptionValidated(_AssumptionEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "AssumptionValidated"
    schema_version: ClassVar[int] = 1
    evidence: str
    validated_on: date


class AssumptionInvalidated(_AssumptionEvent, frozen=True, kw_only=True):
    """Found false (final). ``raised_risk`` / ``raised_issue`` is the item opened in the
    same step, whole: its stream (``risk-<id>`` / ``issue-<id>``) starts with an event
    made from this one alone."""

    event_type: ClassVar[str] = "AssumptionInvalidated"
    schema_version: ClassVar[int] = 1
    evidence: str
    invalidated_on: date
    raised_risk: RaisedRisk | None = None
    raised_issue: RaisedIssue | None = None


AssumptionEvent = (
    AssumptionRecorded | AssumptionDetailsUpdated | AssumptionValidated | AssumptionInvalidated
)

ASSUMPTION_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(AssumptionEvent)
