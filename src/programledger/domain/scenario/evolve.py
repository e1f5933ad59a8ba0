"""``evolve`` for a capacity scenario."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec.structs import replace

from programledger.domain.errors import InconsistentHistory
from programledger.domain.events import replay
from programledger.domain.scenario.events import (
    ScenarioAllocationAdded,
    ScenarioCapacityChangeAdded,
    ScenarioChangeRemoved,
    ScenarioCommitted,
    ScenarioCreated,
    ScenarioDiscarded,
    ScenarioEvent,
)
from programledger.domain.scenario.state import Scenario, ScenarioStatus

__all__ = ["evolve", "fold"]


def evolve(state: Scenario | None, event: ScenarioEvent) -> Scenario:
    if isinstance(event, ScenarioCreated):
        if state is not None:
            raise InconsistentHistory(f"scenario {event.scenario_id} was created twice")
        return Scenario(
            scenario_id=event.scenario_id,
            name=event.name,
            description=event.description,
            status=ScenarioStatus.OPEN,
        )
    if state is None:
        raise InconsistentHistory(f"{event.event_type} before the scenario was created")
    match event:
        case ScenarioAllocationAdded():
            return replace(state, allocations=(*state.allocations, event.change()))
        case ScenarioCapacityChangeAdded():
            return replace(state, capacity_changes=(*state.capacity_changes, event.change))
        case ScenarioChangeRemoved():
            return replace(
                state,
                allocations=tuple(a for a in state.allocations if a.change_id != event.change_id),
                capacity_changes=tuple(
                    c for c in state.capacity_changes if c.change_id != event.change_id
                ),
            )
        case ScenarioCommitted():
            return replace(state, status=ScenarioStatus.COMMITTED, outcomes=event.outcomes)
        case ScenarioDiscarded():
            return replace(state, status=ScenarioStatus.DISCARDED)
    raise InconsistentHistory(f"{event.event_type} is not a scenario event")


def fold(events: Iterable[ScenarioEvent]) -> Scenario | None:
    return replay(evolve, events)
