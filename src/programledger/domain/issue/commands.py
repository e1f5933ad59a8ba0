"""Commands to the Issue aggregate: what a user asks for, in the imperative."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from programledger.domain.issue.state import IssueSeverity

__all__ = [
    "EscalateIssue",
    "IssueCommand",
    "RaiseIssue",
    "ReopenIssue",
    "ResolveIssue",
    "UpdateIssueDetails",
]


class _IssueCommand(msgspec.Struct, frozen=True, kw_only=True):
    issue_id: UUID


class RaiseIssue(_IssueCommand, frozen=True, kw_only=True):
    """Opens an issue. ``risk_id`` links the risk it realises (the risk must be of the
    same program); a risk reported as materialised can raise its issue itself."""

    program_id: UUID
    title: str
    severity: IssueSeverity
    owner: str
    due_on: date
    description: str | None = None
    workstream_id: UUID | None = None
    risk_id: UUID | None = None


class UpdateIssueDetails(_IssueCommand, frozen=True, kw_only=True):
    """``UNSET`` leaves a field unchanged, ``None`` clears an optional one."""

    title: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    severity: IssueSeverity | UnsetType = UNSET
    owner: str | UnsetType = UNSET
    due_on: date | UnsetType = UNSET
    workstream_id: UUID | UnsetType | None = UNSET


class EscalateIssue(_IssueCommand, frozen=True, kw_only=True):
    escalated_to: str
    reason: str


class ResolveIssue(_IssueCommand, frozen=True, kw_only=True):
    resolution: str
    resolved_on: date


class ReopenIssue(_IssueCommand, frozen=True, kw_only=True):
    reason: str


IssueCommand = RaiseIssue | UpdateIssueDetails | EscalateIssue | ResolveIssue | ReopenIssue
