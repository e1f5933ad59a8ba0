"""``evolve`` for the Objective aggregate."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec.structs import replace

from programledger.domain.errors import InconsistentHistory
from programledger.domain.events import replay
from programledger.domain.objective.events import (
    KeyResultAdded,
    KeyResultCheckedIn,
    ObjectiveClosed,
    ObjectiveDefined,
    ObjectiveEvent,
    ObjectiveLinkedToProgram,
    ObjectiveUnlinkedFromProgram,
)
from programledger.domain.objective.state import KeyResult, Objective, ObjectiveStatus

__all__ = ["evolve", "fold"]


def evolve(state: Objective | None, event: ObjectiveEvent) -> Objective:
    if isinstance(event, ObjectiveDefined):
        if state is not None:
            raise InconsistentHistory(f"objective {event.objective_id} was defined twice")
        return Objective(
            objective_id=event.objective_id,
            title=event.title,
            owner=event.owner,
            starts_on=event.starts_on,
            ends_on=event.ends_on,
            key=event.key,
            description=event.description,
        )
    if state is None:
        raise InconsistentHistory(
            f"{event.event_type} for objective {event.objective_id} before ObjectiveDefined"
        )
    match event:
        case KeyResultAdded():
            kr = KeyResult(
                key_result_id=event.key_result_id,
                name=event.name,
                unit=event.unit,
                baseline=event.baseline,
                target=event.target,
                current=event.baseline,
                confidence=event.confidence,
            )
            return replace(state, key_results=(*state.key_results, kr))
        case KeyResultCheckedIn():
            if not any(k.key_result_id == event.key_result_id for k in state.key_results):
                raise InconsistentHistory(f"check-in of unknown key result {event.key_result_id}")
            krs = tuple(
                replace(
                    k, current=event.value, confidence=event.confidence, checked_on=event.checked_on
                )
                if k.key_result_id == event.key_result_id
                else k
                for k in state.key_results
            )
            return replace(state, key_results=krs)
        case ObjectiveLinkedToProgram():
            return replace(state, program_ids=(*state.program_ids, event.program_id))
        case ObjectiveUnlinkedFromProgram():
            kept = tuple(p for p in state.program_ids if p != event.program_id)
            return replace(state, program_ids=kept)
        case ObjectiveClosed():
            return replace(state, status=ObjectiveStatus.CLOSED)


def fold(events: Iterable[ObjectiveEvent]) -> Objective | None:
    return replay(evolve, events)
