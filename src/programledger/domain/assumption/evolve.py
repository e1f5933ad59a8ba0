"""``evolve`` for the Assumption aggregate: applies one recorded event to the assumption.
Pure, so the same history always yields the same assumption."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec import UnsetType
from msgspec.structs import asdict, replace

from programledger.domain.assumption.events import (
    AssumptionDetailsUpdated,
    AssumptionEvent,
    AssumptionInvalidated,
    AssumptionRecorded,
    AssumptionValidated,
)
from programledger.domain.assumption.state import Assumption, AssumptionStatus, Verdict
from programledger.domain.errors import InconsistentHistory
from programledger.domain.events import replay

__all__ = ["evolve", "fold"]


def evolve(state: Assumption | None, event: AssumptionEvent) -> Assumption:
    """The assumption after ``event``. Raises :class:`InconsistentHistory` only for
    histories ``decide`` cannot have produced."""
    if isinstance(event, AssumptionRecorded):
        if state is not None:
            raise InconsistentHistory(f"assumption {event.assumption_id} was recorded twice")
        return Assumption(**asdict(event))
    if state is None:
        raise InconsistentHistory(
            f"{event.event_type} for assumption {event.assumption_id} before AssumptionRecorded"
        )
    match event:
        case AssumptionDetailsUpdated():
            changes = {
                name: value
                for name, value in asdict(event).items()
                if name not in ("assumption_id", "program_id") and not isinstance(value, UnsetType)
            }
            return replace(state, **changes)
        case AssumptionValidated():
            verdict = Verdict(evidence=event.evidence, on=event.validated_on)
            return replace(state, status=AssumptionStatus.VALIDATED, validation=verdict)
        case AssumptionInvalidated(raised_risk=risk, raised_issue=issue):
            return replace(
                state,
                status=AssumptionStatus.INVALIDATED,
                invalidation=Verdict(evidence=event.evidence, on=event.invalidated_on),
                raised_risk_id=None if risk is None else risk.risk_id,
                raised_issue_id=None if issue is None else issue.issue_id,
            )


def fold(events: Iterable[AssumptionEvent]) -> Assumption | None:
    """The assumption after all of ``events`` in order; ``None`` for an empty history."""
    return replay(evolve, events)
