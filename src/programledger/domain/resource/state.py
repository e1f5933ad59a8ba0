"""The Resource aggregate's state (stream ``resource-<key>``): a person or a team, its
capacity and **all** of its allocations to programs.

Allocations of one resource to different programs share this one stream on purpose: the
rule "confirmed allocations never exceed capacity on any day" spans programs, and only one
stream's optimistic concurrency can enforce it without races.

Capacity is an integer percentage of one FTE (a person 1-100, a team of three 300) and may
change over time: each change applies from a date (or from the start, without one), so a
person going part-time from June does not turn last year's full-time work into an
over-allocation. The arithmetic is in :mod:`programledger.domain.capacity`, shared with the
read side.
"""

from __future__ import annotations

from uuid import UUID

import msgspec

from programledger.domain.capacity import Allocation, CapacityStep
from programledger.domain.values import Department, PartyKind

__all__ = ["Resource", "find_allocation", "replacing_allocation", "resource_stream_id"]


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


def find_allocation(state: Resource, allocation_id: UUID) -> Allocation | None:
    return next((a for a in state.allocations if a.allocation_id == allocation_id), None)


def replacing_allocation(
    allocations: tuple[Allocation, ...], new: Allocation
) -> tuple[Allocation, ...]:
    return tuple(new if a.allocation_id == new.allocation_id else a for a in allocations)
