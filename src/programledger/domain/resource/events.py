"""Events of the Resource aggregate: facts, in the past tense, stored forever.

Allocation events carry ``program_id`` (subjects are routed by program); the three events
about the resource itself (registration, details, capacity) concern no program.
``event_type`` is the stable stored name; never reuse or rename one.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, get_args
from uuid import UUID

from msgspec import UNSET, UnsetType

from programledger.domain.events import DomainEvent
from programledger.domain.values import Department, OverAllocationPeriod, PartyKind

__all__ = [
    "RESOURCE_EVENT_TYPES",
    "AllocationAdjusted",
    "AllocationConfirmed",
    "AllocationProposed",
    "AllocationReleased",
    "ResourceCapacityChanged",
    "ResourceDetailsUpdated",
    "ResourceEvent",
    "ResourceRegistered",
]


class _ResourceEvent(DomainEvent, frozen=True, kw_only=True):
    resource_key: str


class ResourceRegistered(_ResourceEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ResourceRegistered"
    schema_version: ClassVar[int] = 1
    name: str
    kind: PartyKind
    department: Department
    role: str
    capacity: int


class ResourceDetailsUpdated(_ResourceEvent, frozen=True, kw_only=True):
    """Only the fields that changed are present."""

    event_type: ClassVar[str] = "ResourceDetailsUpdated"
    schema_version: ClassVar[int] = 1
    name: str | UnsetType = UNSET
    department: Department | UnsetType = UNSET
    role: str | UnsetType = UNSET


class ResourceCapacityChanged(_ResourceEvent, frozen=True, kw_only=True):
    """``override_reason`` and ``over_allocation`` are set only when the change was accepted
    in spite of over-allocating confirmed work in those periods."""

    event_type: ClassVar[str] = "ResourceCapacityChanged"
    schema_version: ClassVar[int] = 1
    capacity: int
    effective_from: date | None
    reason: str
    override_reason: str | None = None
    over_allocation: tuple[OverAllocationPeriod, ...] = ()


class _AllocationEvent(_ResourceEvent, frozen=True, kw_only=True):
    """Every allocation event carries the allocation as it is after the event, so a
    subscriber (e.g. one program's staffing view) needs no other event to use it."""

    allocation_id: UUID
    program_id: UUID
    workstream_id: UUID | None
    start_date: date
    end_date: date
    percentage: int


class AllocationProposed(_AllocationEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "AllocationProposed"
    schema_version: ClassVar[int] = 1
    note: str | None = None


class AllocationConfirmed(_AllocationEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "AllocationConfirmed"
    schema_version: ClassVar[int] = 1
    override_reason: str | None = None
    over_allocation: tuple[OverAllocationPeriod, ...] = ()


class AllocationAdjusted(_AllocationEvent, frozen=True, kw_only=True):
    """Carries the new period and percentage (all of them, changed or not)."""

    event_type: ClassVar[str] = "AllocationAdjusted"
    schema_version: ClassVar[int] = 1
    reason: str
    override_reason: str | None = None
    over_allocation: tuple[OverAllocationPeriod, ...] = ()


class AllocationReleased(_AllocationEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "AllocationReleased"
    schema_version: ClassVar[int] = 1
    reason: str | None = None


ResourceEvent = (
    ResourceRegistered
    | ResourceDetailsUpdated
    | ResourceCapacityChanged
    | AllocationProposed
    | AllocationConfirmed
    | AllocationAdjusted
    | AllocationReleased
)

RESOURCE_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(ResourceEvent)
