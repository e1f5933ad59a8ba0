"""The Issue aggregate's state (stream ``issue-<uuid>``): something that is going wrong
now, as opposed to a risk, which might.

An issue is raised directly, by a risk that materialised (it names that risk), or by an
assumption found false (it names that assumption). Its own stream keeps it independent of
both: the people working an issue are seldom those who watched the risk.

Escalation is a flag, as on risks: an escalated issue keeps its status.
"""

from __future__ import annotations

import enum
from datetime import date
from uuid import UUID

import msgspec

__all__ = [
    "Issue",
    "IssueEscalation",
    "IssueSeverity",
    "IssueStatus",
    "RaisedIssue",
    "issue_stream_id",
]


class IssueStatus(enum.StrEnum):
    OPEN = "OPEN"
    RESOLVED = "RESOLVED"


class IssueSeverity(enum.StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


def issue_stream_id(issue_id: UUID) -> str:
    return f"issue-{issue_id}"


class RaisedIssue(msgspec.Struct, frozen=True, kw_only=True):
    """The issue another item raises in the same step (a risk materialising, an
    assumption found false): its id, chosen by the caller, and what it opens with. The
    raising event carries it whole, so the issue is a function of that recorded event."""

    issue_id: UUID
    title: str
    severity: IssueSeverity
    owner: str
    due_on: date
    description: str | None = None


class IssueEscalation(msgspec.Struct, frozen=True, kw_only=True):
    escalated_to: str
    reason: str


class Issue(msgspec.Struct, frozen=True, kw_only=True):
    issue_id: UUID
    program_id: UUID
    title: str
    severity: IssueSeverity
    owner: str
    due_on: date
    description: str | None = None
    workstream_id: UUID | None = None
    risk_id: UUID | None = None
    """The risk whose materialisation this issue is."""
    assumption_id: UUID | None = None
    """The assumption whose invalidation raised this issue."""
    status: IssueStatus = IssueStatus.OPEN
    resolution: str | None = None
    resolved_on: date | None = None
    escalation: IssueEscalation | None = None
    """The latest escalation; cleared when the issue is reopened."""
