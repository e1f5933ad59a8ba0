"""``evolve`` for the Resource aggregate: applies one recorded event to the resource.
Pure, so the same history always yields the same resource."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec import UnsetType
from msgspec.structs import replace

from programledger.domain.capacity import Allocation, AllocationStatus, CapacityStep, with_step
from programledger.domain.errors import InconsistentHistory
from programledger.domain.events import replay
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

__all__ = ["evolve", "fold"]


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
            schedule = with_step(
                state.capacity_schedule,
                event.effective_from,
                event.capacity,
                reason=event.reason,
                override_reason=event.override_reason,
                over_allocation=event.over_allocation,
            )
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
            return _apply(state, event, status=AllocationStatus.CONFIRMED, override=event)
        case AllocationAdjusted():
            return _apply(state, event, override=event)
        case AllocationReleased():
            return _apply(state, event, status=AllocationStatus.RELEASED)


def _apply(
    state: Resource,
    event: AllocationConfirmed | AllocationAdjusted | AllocationReleased,
    status: AllocationStatus | None = None,
    override: AllocationConfirmed | AllocationAdjusted | None = None,
) -> Resource:
    """The allocation as the event carries it; a confirmation or an adjustment also sets
    the override it was accepted under (none when it needed none)."""
    current = find_allocation(state, event.allocation_id)
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
        override_reason=current.override_reason if override is None else override.override_reason,
        over_allocation=current.over_allocation if override is None else override.over_allocation,
    )
    return replace(state, allocations=replacing_allocation(state.allocations, updated))


def fold(events: Iterable[ResourceEvent]) -> Resource | None:
    """The resource after all of ``events`` in order; ``None`` for an empty history."""
    return replay(evolve, events)
