"""Events of a capacity scenario. A scenario spans programs, so only the event adding
hypothetical work names one (``program_id``); the others are routed without a program."""

from __future__ import annotations

from datetime import date
from typing import ClassVar, get_args
from uuid import UUID

from programledger.domain.events import DomainEvent
from programledger.domain.scenario.state import (
    CommitOutcome,
    HypotheticalAllocation,
    HypotheticalCapacity,
)

__all__ = [
    "SCENARIO_EVENT_TYPES",
    "ScenarioAllocationAdded",
    "ScenarioCapacityChangeAdded",
    "ScenarioChangeRemoved",
    "ScenarioCommitted",
    "ScenarioCreated",
    "ScenarioDiscarded",
    "ScenarioEvent",
]


class ScenarioCreated(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ScenarioCreated"
    schema_version: ClassVar[int] = 1
    scenario_id: UUID
    name: str
    description: str | None = None


class ScenarioAllocationAdded(DomainEvent, frozen=True, kw_only=True):
    """Hypothetical work, with the program it is for (the one event of a scenario that
    concerns one program, routed by it like an allocation)."""

    event_type: ClassVar[str] = "ScenarioAllocationAdded"
    schema_version: ClassVar[int] = 1
    scenario_id: UUID
    change_id: UUID
    resource_key: str
    program_id: UUID
    start_date: date
    end_date: date
    percentage: int
    workstream_id: UUID | None = None

    def change(self) -> HypotheticalAllocation:
        return HypotheticalAllocation(
            change_id=self.change_id,
            resource_key=self.resource_key,
            program_id=self.program_id,
            workstream_id=self.workstream_id,
            start_date=self.start_date,
            end_date=self.end_date,
            percentage=self.percentage,
        )


class ScenarioCapacityChangeAdded(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ScenarioCapacityChangeAdded"
    schema_version: ClassVar[int] = 1
    scenario_id: UUID
    change: HypotheticalCapacity


class ScenarioChangeRemoved(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ScenarioChangeRemoved"
    schema_version: ClassVar[int] = 1
    scenario_id: UUID
    change_id: UUID


class ScenarioCommitted(DomainEvent, frozen=True, kw_only=True):
    """The changes were sent as real commands; ``outcomes`` says what each did (the real
    events are on the resources' streams)."""

    event_type: ClassVar[str] = "ScenarioCommitted"
    schema_version: ClassVar[int] = 1
    scenario_id: UUID
    outcomes: tuple[CommitOutcome, ...]
    override_reason: str | None = None


class ScenarioDiscarded(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ScenarioDiscarded"
    schema_version: ClassVar[int] = 1
    scenario_id: UUID
    reason: str


ScenarioEvent = (
    ScenarioCreated
    | ScenarioAllocationAdded
    | ScenarioCapacityChangeAdded
    | ScenarioChangeRemoved
    | ScenarioCommitted
    | ScenarioDiscarded
)

SCENARIO_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(ScenarioEvent)
