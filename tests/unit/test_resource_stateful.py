"""Random command sequences on one resource: the over-allocation rule holds throughout.

Whatever mix of proposals, confirmations, adjustments, releases and capacity changes is
tried, with or without overrides: every day on which confirmed load exceeds capacity lies
in a period that an accepted override recorded, and folding the whole history gives the
state that was built step by step. Each step's audit-trail changes (computed on the
structs) are what comparing the states' plain forms finds.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from programledger.domain import resource
from programledger.domain.capacity import capacity_on, over_allocated_periods
from programledger.domain.errors import DomainError, OverAllocation
from programledger.domain.resource import (
    AdjustAllocation,
    ChangeCapacity,
    ConfirmAllocation,
    ProposeAllocation,
    RegisterResource,
    ReleaseAllocation,
    Resource,
    ResourceCommand,
    ResourceEvent,
)
from programledger.domain.values import Department, PartyKind
from programledger.projections.audit import changes_between, diff
from tests.unit.scenario import roundtrip, undeclared

DAY0 = date(2027, 1, 1)
KEY = "team-payments"
PROGRAMS = [UUID(int=1), UUID(int=2), UUID(int=3)]

offsets = st.integers(0, 40)
lengths = st.integers(0, 20)
percentages = st.integers(1, 100)
"""Per FTE of the resource: a team of three gets three times as much."""
overrides = st.one_of(st.none(), st.just("Agreed with the team lead"))


def day(offset: int) -> date:
    return DAY0 + timedelta(days=offset)


class ResourceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.history: list[ResourceEvent] = []
        self.state: Resource | None = None
        self.allocation_ids: list[UUID] = []
        self.fte = 1

    def run(self, command: ResourceCommand) -> bool:
        """Applies the command's events; ``False`` when it was refused."""
        try:
            events = resource.decide(self.state, command)
        except DomainError as error:
            undeclared(command, error)
            self.refused(command, error)
            return False
        for event in events:
            assert roundtrip(event) == event
            before, self.state = self.state, resource.evolve(self.state, event)
            self.history.append(event)
            if before is not None:
                plain = diff(msgspec.to_builtins(before), msgspec.to_builtins(self.state))
                assert changes_between(before, self.state) == plain, "the audit diff"
        return True

    def refused(self, command: ResourceCommand, error: DomainError) -> None:
        """Refusals are expected (random input); an override refused for over-allocation
        is not."""
        if isinstance(error, OverAllocation):
            assert getattr(command, "override_reason", None) is None, "an override was refused"
            assert error.conflicts

    @initialize(kind=st.sampled_from(PartyKind), size=st.integers(1, 3))
    def register(self, kind: PartyKind, size: int) -> None:
        self.fte = 1 if kind is PartyKind.PERSON else size
        self.run(
            RegisterResource(
                resource_key=KEY,
                name="Payments",
                kind=kind,
                department=Department.ENGINEERING,
                role="Engineering",
                capacity=100 * self.fte,
            )
        )
        assert self.state is not None

    @rule(
        program=st.sampled_from(PROGRAMS),
        start=offsets,
        length=lengths,
        percentage=percentages,
    )
    def propose(self, program: UUID, start: int, length: int, percentage: int) -> None:
        allocation_id = UUID(int=1000 + len(self.allocation_ids))
        proposal = ProposeAllocation(
            resource_key=KEY,
            allocation_id=allocation_id,
            program_id=program,
            start_date=day(start),
            end_date=day(start + length),
            percentage=percentage * self.fte,
        )
        if self.run(proposal):
            self.allocation_ids.append(allocation_id)

    @precondition(lambda self: self.allocation_ids)
    @rule(pick=st.integers(0, 1000), override=overrides)
    def confirm(self, pick: int, override: str | None) -> None:
        allocation_id = self.allocation_ids[pick % len(self.allocation_ids)]
        self.run(
            ConfirmAllocation(
                resource_key=KEY, allocation_id=allocation_id, override_reason=override
            )
        )

    @precondition(lambda self: self.allocation_ids)
    @rule(
        pick=st.integers(0, 1000),
        percentage=st.one_of(st.none(), percentages),
        start=st.one_of(st.none(), offsets),
        length=lengths,
        override=overrides,
    )
    def adjust(
        self,
        pick: int,
        percentage: int | None,
        start: int | None,
        length: int,
        override: str | None,
    ) -> None:
        allocation_id = self.allocation_ids[pick % len(self.allocation_ids)]
        changes: dict[str, Any] = {}
        if percentage is not None:
            changes["percentage"] = percentage * self.fte
        if start is not None:
            changes.update(start_date=day(start), end_date=day(start + length))
        self.run(
            AdjustAllocation(
                resource_key=KEY,
                allocation_id=allocation_id,
                reason="Plan changed",
                override_reason=override,
                **changes,
            )
        )

    @precondition(lambda self: self.allocation_ids)
    @rule(pick=st.integers(0, 1000))
    def release(self, pick: int) -> None:
        allocation_id = self.allocation_ids[pick % len(self.allocation_ids)]
        self.run(ReleaseAllocation(resource_key=KEY, allocation_id=allocation_id))

    @rule(
        capacity=st.integers(1, 100),
        effective_from=st.one_of(st.none(), offsets),
        override=overrides,
    )
    def change_capacity(
        self, capacity: int, effective_from: int | None, override: str | None
    ) -> None:
        self.run(
            ChangeCapacity(
                resource_key=KEY,
                capacity=capacity * self.fte,
                effective_from=None if effective_from is None else day(effective_from),
                reason="Team changed",
                override_reason=override,
            )
        )

    @invariant()
    def confirmed_load_stays_within_capacity_unless_overridden(self) -> None:
        assert self.state is not None
        overridden: set[date] = set()
        for event in self.history:
            override = getattr(event, "override_reason", None)
            conflicts = getattr(event, "over_allocation", ())
            assert (override is None) == (not conflicts)
            for period in conflicts:
                overridden |= _days(period.start, period.end)
        for period in over_allocated_periods(self.state.allocations, self.state.capacity_schedule):
            assert period.total_percentage > capacity_on(self.state.capacity_schedule, period.start)
            assert _days(period.start, period.end) <= overridden

    @invariant()
    def folding_the_history_gives_the_same_state(self) -> None:
        assert resource.fold(self.history) == self.state


def _days(start: date, end: date) -> set[date]:
    return {start + timedelta(days=n) for n in range((end - start).days + 1)}


TestResourceMachine = ResourceMachine.TestCase
TestResourceMachine.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
