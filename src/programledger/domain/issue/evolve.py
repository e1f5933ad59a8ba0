"""``evolve`` for the Issue aggregate: applies one recorded event to the issue. Pure, so
the same history always yields the same issue."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec import UnsetType
from msgspec.structs import asdict, replace

from programledger.domain.errors import InconsistentHistory
from programledger.domain.events import replay
from programledger.domain.issue.events import (
    IssueDetailsUpdated,
    IssueEscalated,
    IssueEvent,
    IssueRaised,
    IssueReopened,
    IssueResolved,
)
from programledger.domain.issue.state import Issue, IssueEscalation, IssueStatus

__all__ = ["evolve", "fold"]


def evolve(state: Issue | None, event: IssueEvent) -> Issue:
    """The issue after ``event``. Raises :class:`InconsistentHistory` only for histories
    ``decide`` cannot have produced."""
    if isinstance(event, IssueRaised):
        if state is not None:
            raise InconsistentHistory(f"issue {event.issue_id} was raised twice")
        return Issue(**asdict(event))
    if state is None:
        raise InconsistentHistory(
            f"{event.event_type} for issue {event.issue_id} before IssueRaised"
        )
    match event:
        case IssueDetailsUpdated():
            changes = {
                name: value
                for name, value in asdict(event).items()
                if name not in ("issue_id", "program_id") and not isinstance(value, UnsetType)
            }
            return replace(state, **changes)
        case IssueEscalated():
            escalation = IssueEscalation(escalated_to=event.escalated_to, reason=event.reason)
            return replace(state, escalation=escalation)
        case IssueResolved():
            return replace(
                state,
                status=IssueStatus.RESOLVED,
                resolution=event.resolution,
                resolved_on=event.resolved_on,
            )
        case IssueReopened():
            return replace(
                state, status=IssueStatus.OPEN, resolution=None, resolved_on=None, escalation=None
            )


def fold(events: Iterable[IssueEvent]) -> Issue | None:
    """The issue after all of ``events`` in order; ``None`` for an empty history."""
    return replay(evolve, events)
