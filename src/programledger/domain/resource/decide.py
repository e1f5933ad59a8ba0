"""``decide`` for the Resource aggregate: checks a command against the resource as it is
and returns the events to record, or raises a
:class:`~programledger.domain.errors.DomainError`. Pure: no clock, no ids drawn, no I/O.

A change that would push confirmed load over capacity on some day, or raise load on a day
already over it, is refused with :class:`OverAllocation`, unless it carries an
``override_reason``; the accepted event then records the reason and the periods overridden.
Over-allocation already accepted that a change does not worsen does not block it.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TypedDict
from uuid import UUID

from msgspec.structs import replace

from programledger.domain._checks import Checks, changed, given, require_status
from programledger.domain.capacity import (
    Allocation,
    AllocationStatus,
    CapacityStep,
    capacity_at_ordinal,
    with_step,
    worsened_periods,
)
from programledger.domain.errors import AlreadyExists, NotFound, OverAllocation
from programledger.domain.resource.commands import (
    AdjustAllocation,
    ChangeCapacity,
    ConfirmAllocation,
    ProposeAllocation,
    RegisterResource,
    ReleaseAllocation,
    ResourceCommand,
    UpdateResourceDetails,
)
from programledger.domain.resource.events import (
    AllocationAdjusted,
    AllocationConfirmed,
    AllocationProposed,
    AllocationReleased,
    ResourceCapacityChanged,
    ResourceDetailsUpdated,
    ResourceEvent,
    ResourceRegistered,
)
from programledger.domain.resource.state import Resource, find_allocation, replacing_allocation
from programledger.domain.values import Department, OverAllocationPeriod, PartyKind

__all__ = [
    "ALLOCATION_LIFECYCLE",
    "MAX_PERSON_CAPACITY",
    "MAX_TEAM_CAPACITY",
    "RESOURCE_KEY_PATTERN",
    "decide",
]

RESOURCE_KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{0,99}")
"""Lower-case, stable, readable keys (``alice.martin``, ``team-payments``): part of a
stream id, so never renamed."""
MAX_PERSON_CAPACITY = 100
MAX_TEAM_CAPACITY = 100_000

_AS = AllocationStatus
ALLOCATION_LIFECYCLE: dict[type[ResourceCommand], frozenset[AllocationStatus]] = {
    ConfirmAllocation: frozenset({_AS.PROPOSED}),
    AdjustAllocation: frozenset({_AS.PROPOSED, _AS.CONFIRMED}),
    ReleaseAllocation: frozenset({_AS.PROPOSED, _AS.CONFIRMED}),
}
"""Command on an allocation -> the allocation statuses it is allowed in. A released
allocation is history: nothing changes it any more."""


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
    if _levels(schedule) == _levels(state.capacity_schedule):
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
    if find_allocation(state, c.allocation_id) is not None:
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
    (1000 for 100) early; whether it fits beside other work is checked on confirmation.
    A period given backwards is checked as written forwards, so both mistakes show at once."""
    first, last = sorted((start.toordinal(), end.toordinal()))
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
    allocation = find_allocation(state, allocation_id)
    if allocation is None:
        raise NotFound("allocation", allocation_id, within=f"resource {state.key}")
    return allocation


def _require(
    allocation: Allocation, c: ConfirmAllocation | AdjustAllocation | ReleaseAllocation
) -> None:
    require_status(
        "allocation", allocation.allocation_id, allocation.status, ALLOCATION_LIFECYCLE, c
    )


def _confirm(state: Resource, c: ConfirmAllocation) -> AllocationConfirmed:
    checks = Checks()
    checks.optional_text("override_reason", c.override_reason)
    checks.done()
    allocation = _allocation(state, c.allocation_id)
    _require(allocation, c)
    confirmed = replace(allocation, status=AllocationStatus.CONFIRMED)
    conflicts = worsened_periods(
        state.allocations,
        state.capacity_schedule,
        replacing_allocation(state.allocations, confirmed),
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
    _require(allocation, c)
    adjusted = replace(allocation, start_date=start, end_date=end, percentage=percentage)
    if adjusted == allocation:
        return []
    conflicts = worsened_periods(
        state.allocations,
        state.capacity_schedule,
        replacing_allocation(state.allocations, adjusted),
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
    _require(allocation, c)
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


def _levels(schedule: tuple[CapacityStep, ...]) -> list[tuple[date | None, int]]:
    """A schedule's capacity from each date, without why each step was set: a change
    that sets what is already there is no change."""
    return [(step.effective_from, step.capacity) for step in schedule]
