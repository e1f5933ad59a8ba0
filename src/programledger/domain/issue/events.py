"""Events of the Issue aggregate: facts, in the past tense, stored forever.

Each carries ``issue_id`` and ``program_id``. ``event_type`` is the stable stored name;
never reuse or rename one.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, get_args
from uuid import UUID

from msgspec import UNSET, UnsetType

from programledger.domain.events import DomainEvent
from programledger.domain.issue.state import IssueSeverity

__all__ = [
    "ISSUE_EVENT_TYPES",
    "IssueDetailsUpdated",
    "IssueEscalated",
    "IssueEvent",
    "IssueRaised",
    "IssueReopened",
    "IssueResolved",
]


class _IssueEvent(DomainEvent, frozen=True, kw_only=True):
    issue_id: UUID
    program_id: UUID


class IssueRaised(_IssueEvent, frozen=True, kw_only=True):
    """Status OPEN. ``risk_id`` / ``assumption_id`` name the item that raised it, if any."""

    event_type: ClassVar[str] = "IssueRaised"
    schema_version: ClassVar[int] = 1
    title: str
    severity: IssueSeverity
    owner: str
    due_on: date
    description: str | None = None
    workstream_id: UUID | None = None
    risk_id: UUID | None = None
    assumption_id: UUID | None = None


class IssueDetailsUpdated(_IssueEvent, frozen=True, kw_only=True):
    """Only the fields that changed are present; ``null`` clears an optional field."""

    event_type: ClassVar[str] = "IssueDetailsUpdated"
    schema_version: ClassVar[int] = 1
    title: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    severity: IssueSeverity | UnsetType = UNSET
    owner: str | UnsetType = UNSET
    due_on: date | UnsetType = UNSET
    workstream_id: UUID | UnsetType | None = UNSET


class IssueEscalated(_IssueEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "IssueEscalated"
    schema_version: ClassVar[int] = 1
    escalated_to: str
    reason: str


class IssueResolved(_IssueEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "IssueResolved"
    schema_version: ClassVar[int] = 1
    resolution: str
    resolved_on: date


class IssueReopened(_IssueEvent, frozen=True, kw_only=True):
    """Back to OPEN with no resolution or escalation."""

    event_type: ClassVar[str] = "IssueReopened"
    schema_version: ClassVar[int] = 1
    reason: str


IssueEvent = IssueRaised | IssueDetailsUpdated | IssueEscalated | IssueResolved | IssueReopened

ISSUE_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(IssueEvent)
