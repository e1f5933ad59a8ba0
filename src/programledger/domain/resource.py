"""The Resource aggregate (stream ``resource-<key>``): a person or a team, its capacity and
**all** of its allocations to programs.

Allocations of one resource to different programs share this one stream on purpose: the
rule "confirmed allocations never exceed capacity on any day" spans programs, and only one
stream's optimistic concurrency can enforce it without races.

Capacity is an integer percentage of one FTE (a person 1-100, a team of three 300) and may
change over time: each change applies from a date (or from the start, without one), so a
person going part-time from June does not turn last year's full-time work into an
over-allocation.

A change that would push confirmed load over capacity on some day, or raise load on a day
already over it, is refused with :class:`OverAllocation`, unless it carries an
``override_reason``; the accepted event then records the reason and the periods overridden.
Over-allocation already accepted that a change does not worsen does not block it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import ClassVar, TypedDict, get_args
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import replace

from programledger.domain._checks import Checks, changed, given
from programledger.domain.capacity import (
    Allocation,
    AllocationStatus,
    CapacityStep,
    capacity_at_ordinal,
    capacity_on,
    over_allocated_periods,
    with_step,
    worsened_periods,
)
from programledger.domain.errors import (
    AlreadyExists,
    InconsistentHistory,
    InvalidTransition,
    NotFound,
    OverAllocation,
)
from programledger.domain.events import DomainEvent
from programledger.domain.values import Department, OverAllocationPeriod, PartyKind

__all__ = [
    "MAX_PERSON_CAPACITY",
    "MAX_TEAM_CAPACITY",
    "RESOURCE_EVENT_TYPES",
    "RESOURCE_KEY_PATTERN",
    "AdjustAllocation",
    "Allocation",
    "AllocationAdjusted",
    "AllocationConfirmed",
    "AllocationProposed",
    "AllocationReleased",
    "AllocationStatus",
    "CapacityStep",
    "ChangeCapacity",
    "ConfirmAllocation",
    "ProposeAllocation",
    "RegisterResource",
    "ReleaseAllocation",
    "Resource",
    "ResourceCapacityChanged",
    "ResourceCommand",
    "ResourceDetailsUpdated",
    "ResourceEvent",
    "ResourceRegistered",
    "UpdateResourceDetails",
    "capacity_on",
    "decide",
    "evolve",
    "fold",
    "over_allocated_periods",
    "resource_stream_id",
]

RESOURCE_KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{0,99}")
"""Lower-case, stable, readable keys (``alice.martin``, ``team-payments``): part of a
stream id, so never renamed."""
MAX_PERSON_CAPACITY = 100
MAX_TEAM_CAPACITY = 100_000


def resource_stream_id(key: str) -> str:
    return f"resource-{key}"


class Resource(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    name: str
    kind: PartyKind
    department: Department
    role: str
    capacity_schedule: tuple[CapacityStep, ...]
    allocations: tuple[Allocation, ...] = ()


# Commands


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


# Events


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


# Decide


def decide(state: Resource | None, command: ResourceCommand) -> list[ResourceEvent]:
    """The events ``command`` causes on ``state`` (``None``: no such resource yet).

    Returns an empty list when an update or adjustment would change nothing.
    """
    if isinstance(command, RegisterResource):
        if state is not None:
            raise AlreadyExists("resource", command.resource_key)
        return [_register(command)]
    if state is None:
        raise NotFound("resource", command.resource_key)
    if command.resource_key != state.key:
        raise ValueError(
            f"{type(command).__name__} for resource {command.resource_key!r} was decided "
            f"against resource {state.key!r}: the caller loaded the wrong stream"
        )
    match command:
        case UpdateResourceDetails():
            return _update_details(state, command)
        case ChangeCapacity():
            return _change_capacity(state, command)
        case ProposeAllocation():
            return [_propose(state, command)]
        case ConfirmAllocation():
            return [_confirm(state, command)]
        case AdjustAllocation():
            return _adjust(state, command)
        case ReleaseAllocation():
            return [_release(state, command)]


def _check_capacity(checks: Checks, kind: object, capacity: object) -> None:
    top = MAX_PERSON_CAPACITY if kind is PartyKind.PERSON else MAX_TEAM_CAPACITY
    checks.integer("capacity", capacity, 1, top)


def _register(c: RegisterResource) -> ResourceRegistered:
    checks = Checks()
    checks.pattern("resource_key", c.resource_key, RESOURCE_KEY_PATTERN, "alice.martin")
    checks.line("name", c.name)
    checks.member("kind", c.kind, PartyKind)
    checks.member("department", c.department, Department)
    checks.line("role", c.role)
    _check_capacity(checks, c.kind, c.capacity)
    checks.done()
    return ResourceRegistered(
        resource_key=c.resource_key,
        name=c.name,
        kind=c.kind,
        department=c.department,
        role=c.role,
        capacity=c.capacity,
    )


def _update_details(state: Resource, c: UpdateResourceDetails) -> list[ResourceEvent]:
    checks = Checks()
    if given(c.name):
        checks.line("name", c.name)
    if given(c.department):
        checks.member("department", c.department, Department)
    if given(c.role):
        checks.line("role", c.role)
    checks.done()
    update = ResourceDetailsUpdated(
        resource_key=state.key,
        name=changed(c.name, state.name),
        department=changed(c.department, state.department),
        role=changed(c.role, state.role),
    )
    return [] if update == ResourceDetailsUpdated(resource_key=state.key) else [update]


def _change_capacity(state: Resource, c: ChangeCapacity) -> list[ResourceEvent]:
    checks = Checks()
    _check_capacity(checks, state.kind, c.capacity)
    checks.text("reason", c.reason)
    checks.optional_day("effective_from", c.effective_from)
    checks.optional_text("override_reason", c.override_reason)
    checks.done()
    schedule = with_step(state.capacity_schedule, c.effective_from, c.capacity)
    if schedule == state.capacity_schedule:
        return []
    conflicts = worsened_periods(
        state.allocations, state.capacity_schedule, state.allocations, schedule
    )
    override = _override(state, conflicts, c.override_reason)
    return [
        ResourceCapacityChanged(
            resource_key=state.key,
            capacity=c.capacity,
            effective_from=c.effective_from,
            reason=c.reason,
            override_reason=override,
            over_allocation=tuple(conflicts),
        )
    ]


def _propose(state: Resource, c: ProposeAllocation) -> AllocationProposed:
    checks = Checks()
    if checks.day("start_date", c.start_date) and checks.day("end_date", c.end_date):
        checks.not_before("end_date", c.end_date, c.start_date, "the start date")
        _check_percentage(checks, state, c.percentage, c.start_date, c.end_date)
    checks.optional_text("note", c.note)
    checks.done()
    if _find(state, c.allocation_id) is not None:
        raise AlreadyExists("allocation", c.allocation_id, within=f"resource {state.key}")
    return AllocationProposed(
        resource_key=state.key,
        allocation_id=c.allocation_id,
        program_id=c.program_id,
        workstream_id=c.workstream_id,
        start_date=c.start_date,
        end_date=c.end_date,
        percentage=c.percentage,
        note=c.note,
    )


def _check_percentage(
    checks: Checks, state: Resource, percentage: object, start: date, end: date
) -> None:
    """At most the highest capacity the resource has during the period: catches typos
    (1000 for 100) early; whether it fits beside other work is checked on confirmation."""
    if start > end:
        return
    first, last = start.toordinal(), end.toordinal()
    peak = max(
        [capacity_at_ordinal(state.capacity_schedule, first)]
        + [
            s.capacity
            for s in state.capacity_schedule
            if s.effective_from and first <= s.effective_from.toordinal() <= last
        ]
    )
    checks.integer("percentage", percentage, 1, peak)


def _allocation(state: Resource, allocation_id: UUID) -> Allocation:
    allocation = _find(state, allocation_id)
    if allocation is None:
        raise NotFound("allocation", allocation_id, within=f"resource {state.key}")
    return allocation


def _require(allocation: Allocation, attempted: str, *allowed: AllocationStatus) -> None:
    if allocation.status not in allowed:
        raise InvalidTransition(
            "allocation",
            allocation.allocation_id,
            allocation.status.value,
            attempted,
            hint=f"allowed only when {' or '.join(s.value for s in allowed)}",
        )


def _confirm(state: Resource, c: ConfirmAllocation) -> AllocationConfirmed:
    checks = Checks()
    checks.optional_text("override_reason", c.override_reason)
    checks.done()
    allocation = _allocation(state, c.allocation_id)
    _require(allocation, "ConfirmAllocation", AllocationStatus.PROPOSED)
    confirmed = replace(allocation, status=AllocationStatus.CONFIRMED)
    conflicts = worsened_periods(
        state.allocations,
        state.capacity_schedule,
        _replacing(state.allocations, confirmed),
        state.capacity_schedule,
    )
    override = _override(state, conflicts, c.override_reason)
    return AllocationConfirmed(
        resource_key=state.key,
        **_allocation_fields(allocation),
        override_reason=override,
        over_allocation=tuple(conflicts),
    )


def _adjust(state: Resource, c: AdjustAllocation) -> list[ResourceEvent]:
    allocation = _allocation(state, c.allocation_id)
    start = c.start_date if given(c.start_date) else allocation.start_date
    end = c.end_date if given(c.end_date) else allocation.end_date
    percentage = c.percentage if given(c.percentage) else allocation.percentage
    checks = Checks()
    if not (given(c.percentage) or given(c.start_date) or given(c.end_date)):
        checks.fail("percentage", "give a new percentage, start_date or end_date")
    if checks.day("start_date", start) and checks.day("end_date", end):
        path = "end_date" if given(c.end_date) else "start_date"
        checks.not_before(path, end, start, "the start date")
        _check_percentage(checks, state, percentage, start, end)
    checks.text("reason", c.reason)
    checks.optional_text("override_reason", c.override_reason)
    checks.done()
    _require(allocation, "AdjustAllocation", AllocationStatus.PROPOSED, AllocationStatus.CONFIRMED)
    adjusted = replace(allocation, start_date=start, end_date=end, percentage=percentage)
    if adjusted == allocation:
        return []
    conflicts = worsened_periods(
        state.allocations,
        state.capacity_schedule,
        _replacing(state.allocations, adjusted),
        state.capacity_schedule,
    )
    override = _override(state, conflicts, c.override_reason)
    return [
        AllocationAdjusted(
            resource_key=state.key,
            **_allocation_fields(adjusted),
            reason=c.reason,
            override_reason=override,
            over_allocation=tuple(conflicts),
        )
    ]


def _release(state: Resource, c: ReleaseAllocation) -> AllocationReleased:
    checks = Checks()
    checks.optional_text("reason", c.reason)
    checks.done()
    allocation = _allocation(state, c.allocation_id)
    _require(allocation, "ReleaseAllocation", AllocationStatus.PROPOSED, AllocationStatus.CONFIRMED)
    return AllocationReleased(
        resource_key=state.key, **_allocation_fields(allocation), reason=c.reason
    )


def _override(
    state: Resource, conflicts: list[OverAllocationPeriod], override_reason: str | None
) -> str | None:
    """The override to record: none when nothing was overridden."""
    if not conflicts:
        return None
    if override_reason is None:
        raise OverAllocation(state.key, conflicts)
    return override_reason


class _AllocationFields(TypedDict):
    allocation_id: UUID
    program_id: UUID
    workstream_id: UUID | None
    start_date: date
    end_date: date
    percentage: int


def _allocation_fields(allocation: Allocation) -> _AllocationFields:
    return {
        "allocation_id": allocation.allocation_id,
        "program_id": allocation.program_id,
        "workstream_id": allocation.workstream_id,
        "start_date": allocation.start_date,
        "end_date": allocation.end_date,
        "percentage": allocation.percentage,
    }


def _find(state: Resource, allocation_id: UUID) -> Allocation | None:
    return next((a for a in state.allocations if a.allocation_id == allocation_id), None)


def _replacing(allocations: tuple[Allocation, ...], new: Allocation) -> tuple[Allocation, ...]:
    return tuple(new if a.allocation_id == new.allocation_id else a for a in allocations)


# Evolve


def evolve(state: Resource | None, event: ResourceEvent) -> Resource:
    """The resource after ``event``. Raises :class:`InconsistentHistory` only for histories
    ``decide`` cannot have produced."""
    if isinstance(event, ResourceRegistered):
        if state is not None:
            raise InconsistentHistory(f"resource {event.resource_key!r} was registered twice")
        return Resource(
            key=event.resource_key,
            name=event.name,
            kind=event.kind,
            department=event.department,
            role=event.role,
            capacity_schedule=(CapacityStep(effective_from=None, capacity=event.capacity),),
        )
    if state is None:
        raise InconsistentHistory(
            f"{event.event_type} for resource {event.resource_key!r} before ResourceRegistered"
        )
    match event:
        case ResourceDetailsUpdated():
            return replace(
                state,
                name=state.name if isinstance(event.name, UnsetType) else event.name,
                department=(
                    state.department
                    if isinstance(event.department, UnsetType)
                    else event.department
                ),
                role=state.role if isinstance(event.role, UnsetType) else event.role,
            )
        case ResourceCapacityChanged():
            schedule = with_step(state.capacity_schedule, event.effective_from, event.capacity)
            return replace(state, capacity_schedule=schedule)
        case AllocationProposed():
            allocation = Allocation(
                allocation_id=event.allocation_id,
                program_id=event.program_id,
                workstream_id=event.workstream_id,
                start_date=event.start_date,
                end_date=event.end_date,
                percentage=event.percentage,
                note=event.note,
            )
            return replace(state, allocations=(*state.allocations, allocation))
        case AllocationConfirmed():
            return _apply(state, event, status=AllocationStatus.CONFIRMED)
        case AllocationAdjusted():
            return _apply(state, event)
        case AllocationReleased():
            return _apply(state, event, status=AllocationStatus.RELEASED)


def _apply(
    state: Resource, event: _AllocationEvent, status: AllocationStatus | None = None
) -> Resource:
    current = _find(state, event.allocation_id)
    if current is None:
        raise InconsistentHistory(
            f"{event.event_type} on resource {state.key!r} names allocation "
            f"{event.allocation_id}, which was never proposed"
        )
    updated = replace(
        current,
        start_date=event.start_date,
        end_date=event.end_date,
        percentage=event.percentage,
        status=status or current.status,
    )
    return replace(state, allocations=_replacing(state.allocations, updated))


def fold(events: Iterable[ResourceEvent]) -> Resource | None:
    """The resource after all of ``events`` in order; ``None`` for an empty history."""
    state: Resource | None = None
    for event in events:
        state = evolve(state, event)
    return state
