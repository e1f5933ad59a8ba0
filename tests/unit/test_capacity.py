"""The over-allocation sweep, checked against a day-by-day count."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from programledger.domain.capacity import (
    Allocation,
    AllocationStatus,
    CapacityStep,
    capacity_on,
    over_allocated_periods,
    with_step,
    worsened_periods,
)
from programledger.domain.values import OverAllocationPeriod

DAY0 = date(2027, 1, 1)
P1 = UUID(int=1)
P2 = UUID(int=2)


def allocation(
    n: int,
    start: int,
    end: int,
    percentage: int,
    *,
    program: UUID = P1,
    status: AllocationStatus = AllocationStatus.CONFIRMED,
) -> Allocation:
    return Allocation(
        allocation_id=UUID(int=100 + n),
        program_id=program,
        workstream_id=None,
        start_date=DAY0 + timedelta(days=start),
        end_date=DAY0 + timedelta(days=end),
        percentage=percentage,
        status=status,
    )


def d(offset: int) -> date:
    return DAY0 + timedelta(days=offset)


def test_no_allocations_no_conflicts() -> None:
    assert over_allocated_periods([], 100) == []


def test_overlap_is_reported_once_with_both_programs() -> None:
    a = allocation(1, 0, 29, 60)
    b = allocation(2, 15, 44, 50, program=P2)
    assert over_allocated_periods([a, b], 100) == [
        OverAllocationPeriod(
            start=d(15),
            end=d(29),
            total_percentage=110,
            capacity=100,
            program_ids=(P1, P2),
            allocation_ids=(a.allocation_id, b.allocation_id),
        )
    ]


def test_only_confirmed_allocations_count() -> None:
    a = allocation(1, 0, 9, 80)
    proposed = allocation(2, 0, 9, 80, status=AllocationStatus.PROPOSED)
    released = allocation(3, 0, 9, 80, status=AllocationStatus.RELEASED)
    assert over_allocated_periods([a, proposed, released], 100) == []


def test_a_single_day_overlap_counts() -> None:
    a = allocation(1, 0, 9, 60)
    b = allocation(2, 9, 19, 60)
    periods = over_allocated_periods([a, b], 100)
    assert [(p.start, p.end, p.total_percentage) for p in periods] == [(d(9), d(9), 120)]


def test_changing_totals_split_periods() -> None:
    a = allocation(1, 0, 29, 70)
    b = allocation(2, 10, 19, 40)
    c = allocation(3, 15, 24, 40)
    periods = over_allocated_periods([a, b, c], 100)
    assert [(p.start, p.end, p.total_percentage) for p in periods] == [
        (d(10), d(14), 110),
        (d(15), d(19), 150),
        (d(20), d(24), 110),
    ]


def test_capacity_schedule_splits_and_applies() -> None:
    schedule = with_step((CapacityStep(effective_from=None, capacity=100),), d(10), 50)
    a = allocation(1, 0, 19, 60)
    periods = over_allocated_periods([a], schedule)
    assert [(p.start, p.end, p.capacity) for p in periods] == [(d(10), d(19), 50)]
    assert capacity_on(schedule, d(9)) == 100
    assert capacity_on(schedule, d(10)) == 50


def test_a_capacity_step_that_changes_nothing_does_not_split_a_period() -> None:
    schedule = with_step((CapacityStep(effective_from=None, capacity=100),), d(5), 100)
    periods = over_allocated_periods([allocation(1, 0, 9, 120)], schedule)
    assert [(p.start, p.end) for p in periods] == [(d(0), d(9))]


def test_steps_keep_their_order_and_replace_the_same_date() -> None:
    schedule: tuple[CapacityStep, ...] = (CapacityStep(effective_from=None, capacity=100),)
    schedule = with_step(schedule, d(20), 60)
    schedule = with_step(schedule, d(10), 80)
    schedule = with_step(schedule, d(20), 40)
    assert [(s.effective_from, s.capacity) for s in schedule] == [
        (None, 100),
        (d(10), 80),
        (d(20), 40),
    ]


def test_the_last_possible_day_does_not_overflow() -> None:
    a = Allocation(
        allocation_id=UUID(int=1),
        program_id=P1,
        workstream_id=None,
        start_date=date.max - timedelta(days=1),
        end_date=date.max,
        percentage=120,
        status=AllocationStatus.CONFIRMED,
    )
    assert over_allocated_periods([a], 100)[0].end == date.max


# Properties against a day-by-day oracle

spans = st.tuples(st.integers(0, 40), st.integers(0, 15), st.integers(1, 100))
statuses = st.sampled_from(AllocationStatus)


@st.composite
def allocation_sets(draw: st.DrawFn) -> list[Allocation]:
    drawn = draw(st.lists(st.tuples(spans, statuses), max_size=6))
    return [
        allocation(n, start, start + length, pct, status=status)
        for n, ((start, length, pct), status) in enumerate(drawn)
    ]


@st.composite
def schedules(draw: st.DrawFn) -> tuple[CapacityStep, ...]:
    schedule: tuple[CapacityStep, ...] = (
        CapacityStep(effective_from=None, capacity=draw(st.integers(1, 200))),
    )
    for offset, capacity in draw(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 200)))):
        schedule = with_step(schedule, d(offset), capacity)
    return schedule


def load_by_day(allocations: list[Allocation]) -> dict[date, int]:
    load: dict[date, int] = {}
    for a in allocations:
        if a.status is not AllocationStatus.CONFIRMED:
            continue
        day = a.start_date
        while day <= a.end_date:
            load[day] = load.get(day, 0) + a.percentage
            day += timedelta(days=1)
    return load


def days_in(periods: list[OverAllocationPeriod]) -> set[date]:
    days: set[date] = set()
    for period in periods:
        day = period.start
        while day <= period.end:
            days.add(day)
            day += timedelta(days=1)
    return days


@settings(max_examples=150, deadline=None)
@given(allocation_sets(), schedules())
def test_periods_are_exactly_the_over_capacity_days(
    allocations: list[Allocation], schedule: tuple[CapacityStep, ...]
) -> None:
    periods = over_allocated_periods(allocations, schedule)
    load = load_by_day(allocations)
    over = {day for day, total in load.items() if total > capacity_on(schedule, day)}
    assert days_in(periods) == over
    for period in periods:
        assert period.total_percentage == load[period.start] == load[period.end]
        assert period.capacity == capacity_on(schedule, period.start)
    for earlier, later in pairwise(periods):
        assert earlier.end < later.start


@settings(max_examples=150, deadline=None)
@given(allocation_sets(), allocation_sets(), schedules(), schedules())
def test_worsened_periods_are_the_days_where_excess_grew(
    before: list[Allocation],
    after: list[Allocation],
    before_schedule: tuple[CapacityStep, ...],
    after_schedule: tuple[CapacityStep, ...],
) -> None:
    periods = worsened_periods(before, before_schedule, after, after_schedule)
    load_before, load_after = load_by_day(before), load_by_day(after)
    expected = set()
    for day, total in load_after.items():
        excess = total - capacity_on(after_schedule, day)
        excess_before = load_before.get(day, 0) - capacity_on(before_schedule, day)
        if excess > 0 and excess > excess_before:
            expected.add(day)
    assert days_in(periods) == expected
