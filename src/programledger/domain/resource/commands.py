"""Commands to the Resource aggregate: registering a person or team, its capacity, and its
allocations to programs. Every command names the resource by its key.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from programledger.domain.values import Department, PartyKind

__all__ = [
    "AdjustAllocation",
    "ChangeCapacity",
    "ConfirmAllocation",
    "ProposeAllocation",
    "RegisterResource",
    "ReleaseAllocation",
    "ResourceCommand",
    "UpdateResourceDetails",
]


class _ResourceCommand(msgspec.Struct, frozen=True, kw_only=True):
    resource_key: str


class RegisterResource(_ResourceCommand, frozen=True, kw_only=True):
    name: str
    kind: PartyKind
    department: Department
    role: str
    capacity: int
    """Percent of one FTE: up to 100 for a person, N x 100 for a team of N."""


class UpdateResourceDetails(_ResourceCommand, frozen=True, kw_only=True):
    name: str | UnsetType = UNSET
    department: Department | UnsetType = UNSET
    role: str | UnsetType = UNSET


class ChangeCapacity(_ResourceCommand, frozen=True, kw_only=True):
    capacity: int
    reason: str
    effective_from: date | None = None
    """From this day on until the next scheduled change; ``None`` replaces the whole
    schedule."""
    override_reason: str | None = None


class ProposeAllocation(_ResourceCommand, frozen=True, kw_only=True):
    allocation_id: UUID
    program_id: UUID
    start_date: date
    end_date: date
    percentage: int
    workstream_id: UUID | None = None
    note: str | None = None


class ConfirmAllocation(_ResourceCommand, frozen=True, kw_only=True):
    allocation_id: UUID
    override_reason: str | None = None


class AdjustAllocation(_ResourceCommand, frozen=True, kw_only=True):
    allocation_id: UUID
    reason: str
    percentage: int | UnsetType = UNSET
    start_date: date | UnsetType = UNSET
    end_date: date | UnsetType = UNSET
    override_reason: str | None = None


class ReleaseAllocation(_ResourceCommand, frozen=True, kw_only=True):
    allocation_id: UUID
    reason: str | None = None


ResourceCommand = (
    RegisterResource
    | UpdateResourceDetails
    | ChangeCapacity
    | ProposeAllocation
    | ConfirmAllocation
    | AdjustAllocation
    | ReleaseAllocation
)
