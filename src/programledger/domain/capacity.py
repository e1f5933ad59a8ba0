"""Load against capacity over time: the pure arithmetic behind the Resource aggregate's
over-allocation rule, usable by the read side too (utilisation, over-allocated resources).

Periods are computed exactly, day by day, without walking every day: a sweep visits only
the days on which something changes (an allocation starts, one ends, capacity changes), and
between two such days the load is constant.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from itertools import pairwise
from typing import NamedTuple
from uuid import UUID

import msgspec

from programledger.domain.values import OverAllocationPeriod

__all__ = [
    "Allocation",
    "AllocationStatus",
    "CapacityStep",
    "capacity_at_ordinal",
    "capacity_on",
    "over_allocated_periods",
    "with_step",
    "worsened_periods",
]


class AllocationStatus(enum.StrEnum):
    PROPOSED = "PROPOSED"
    """Pencilled in: does not count against capacity."""
    CONFIRMED = "CONFIRMED"
    RELEASED = "RELEASED"
    """Handed back, or a proposal that was withdrawn: no longer counts."""


class CapacityStep(msgspec.Struct, frozen=True, kw_only=True):
    """``capacity`` applies from ``effective_from`` until the next step; ``None`` is the
    first step and applies since always."""

    effective_from: date | None
    capacity: int
    reason: str | None = None
    """Why capacity changed to this step; ``None`` for the capacity registered with."""
    override_reason: str | None = None
    """Set when the change was accepted in spite of over-allocating confirmed work in
    ``over_allocation``."""
    over_allocation: tuple[OverAllocationPeriod, ...] = ()


class Allocation(msgspec.Struct, frozen=True, kw_only=True):
    allocation_id: UUID
    program_id: UUID
    workstream_id: UUID | None
    start_date: date
    end_date: date
    """Inclusive: the last day the allocation applies."""
    percentage: int
    status: AllocationStatus = AllocationStatus.PROPOSED
    note: str | None = None
    override_reason: str | None = None
    """Why the last confirmation or adjustment was accepted in spite of over-allocating the
    resource in ``over_allocation``; ``None`` when it needed no override."""
    over_allocation: tuple[OverAllocationPeriod, ...] = ()


def capacity_on(schedule: Sequence[CapacityStep], day: date) -> int:
    """The capacity that applies on ``day``."""
    return capacity_at_ordinal(schedule, day.toordinal())


class _Segment(NamedTuple):
    """Days ``first..last`` (ordinals, inclusive) over which nothing changes."""

    first: int
    last: int
    total: int
    capacity: int
    members: tuple[Allocation, ...]


def over_allocated_periods(
    allocations: Iterable[Allocation], capacity: int | Sequence[CapacityStep]
) -> list[OverAllocationPeriod]:
    """The periods in which the CONFIRMED ``allocations`` add up to more than ``capacity``
    (a fixed number or a schedule), as maximal runs of days with the same allocations."""
    schedule = _as_schedule(capacity)
    segments = _segments(_confirmed(allocations), schedule)
    return _periods(s for s in segments if s.total > s.capacity)


def _as_schedule(capacity: int | Sequence[CapacityStep]) -> Sequence[CapacityStep]:
    if isinstance(capacity, int):
        return (CapacityStep(effective_from=None, capacity=capacity),)
    return capacity


def _confirmed(allocations: Iterable[Allocation]) -> list[Allocation]:
    return [a for a in allocations if a.status is AllocationStatus.CONFIRMED]


def capacity_at_ordinal(schedule: Sequence[CapacityStep], day: int) -> int:
    """The capacity on the day ``day`` (a ``date.toordinal()``); the schedule is sorted with
    its dateless first step at index 0, as ``with_step`` keeps it."""
    starts = [s.effective_from.toordinal() if s.effective_from else 0 for s in schedule]
    return schedule[max(bisect.bisect_right(starts, day) - 1, 0)].capacity


def _breakpoints(allocations: Iterable[Allocation], schedule: Sequence[CapacityStep]) -> set[int]:
    points = {s.effective_from.toordinal() for s in schedule if s.effective_from}
    for allocation in allocations:
        points.add(allocation.start_date.toordinal())
        points.add(allocation.end_date.toordinal() + 1)
    return points


def _segments(
    allocations: Sequence[Allocation],
    schedule: Sequence[CapacityStep],
    extra_points: Iterable[int] = (),
) -> Iterator[_Segment]:
    """The loaded runs of days, split at every point where an allocation starts or ends,
    capacity changes, or one of ``extra_points`` falls (to line up with another sweep)."""
    points = sorted(_breakpoints(allocations, schedule).union(extra_points))
    starting: dict[int, list[Allocation]] = {}
    ending: dict[int, list[Allocation]] = {}
    for allocation in allocations:
        starting.setdefault(allocation.start_date.toordinal(), []).append(allocation)
        ending.setdefault(allocation.end_date.toordinal() + 1, []).append(allocation)
    active: dict[UUID, Allocation] = {}
    for point, following in pairwise(points):
        for allocation in ending.get(point, ()):
            del active[allocation.allocation_id]
        for allocation in starting.get(point, ()):
            active[allocation.allocation_id] = allocation
        if active:
            members = tuple(active.values())
            yield _Segment(
                first=point,
                last=following - 1,
                total=sum(a.percentage for a in members),
                capacity=capacity_at_ordinal(schedule, point),
                members=members,
            )


def _periods(segments: Iterable[_Segment]) -> list[OverAllocationPeriod]:
    """Adjacent segments with the same allocations, total and capacity become one period."""
    merged: list[_Segment] = []
    for segment in segments:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and previous.last + 1 == segment.first
            and (previous.total, previous.capacity) == (segment.total, segment.capacity)
            and {a.allocation_id for a in previous.members}
            == {a.allocation_id for a in segment.members}
        ):
            merged[-1] = previous._replace(last=segment.last)
        else:
            merged.append(segment)
    return [
        OverAllocationPeriod(
            start=date.fromordinal(s.first),
            end=date.fromordinal(s.last),
            total_percentage=s.total,
            capacity=s.capacity,
            program_ids=tuple(sorted({a.program_id for a in s.members})),
            allocation_ids=tuple(sorted(a.allocation_id for a in s.members)),
        )
        for s in merged
    ]


def worsened_periods(
    before: Sequence[Allocation],
    before_schedule: Sequence[CapacityStep],
    after: Sequence[Allocation],
    after_schedule: Sequence[CapacityStep],
) -> list[OverAllocationPeriod]:
    """Periods over capacity after a change in which the excess (load minus capacity) grew:
    what the change itself breaks, leaving earlier accepted overrides out of it."""
    before, after = _confirmed(before), _confirmed(after)
    points = _breakpoints(before, before_schedule) | _breakpoints(after, after_schedule)
    excess_before = {
        s.first: s.total - s.capacity for s in _segments(before, before_schedule, points)
    }
    return _periods(
        s
        for s in _segments(after, after_schedule, points)
        if s.total > s.capacity and s.total - s.capacity > excess_before.get(s.first, 0)
    )


def with_step(
    schedule: tuple[CapacityStep, ...],
    effective_from: date | None,
    capacity: int,
    *,
    reason: str | None = None,
    override_reason: str | None = None,
    over_allocation: tuple[OverAllocationPeriod, ...] = (),
) -> tuple[CapacityStep, ...]:
    """The schedule after setting ``capacity`` from ``effective_from`` until the next step
    (``None``: for all time, replacing every step), with why."""
    step = CapacityStep(
        effective_from=effective_from,
        capacity=capacity,
        reason=reason,
        override_reason=override_reason,
        over_allocation=over_allocation,
    )
    if effective_from is None:
        return (step,)
    kept = [s for s in schedule if s.effective_from != effective_from]
    return tuple(sorted([*kept, step], key=lambda s: s.effective_from or date.min))
