"""``evolve`` for the Portfolio aggregate."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec.structs import replace

from programledger.domain.errors import InconsistentHistory
from programledger.domain.events import replay
from programledger.domain.portfolio.events import (
    PortfolioArchived,
    PortfolioCreated,
    PortfolioEvent,
    PortfolioReopened,
)
from programledger.domain.portfolio.state import Portfolio, PortfolioStatus

__all__ = ["evolve", "fold"]


def evolve(state: Portfolio | None, event: PortfolioEvent) -> Portfolio:
    if isinstance(event, PortfolioCreated):
        if state is not None:
            raise InconsistentHistory(f"portfolio {event.portfolio_id} was created twice")
        return Portfolio(
            portfolio_id=event.portfolio_id,
            name=event.name,
            owner=event.owner,
            description=event.description,
        )
    if state is None:
        raise InconsistentHistory(
            f"{event.event_type} for portfolio {event.portfolio_id} before PortfolioCreated"
        )
    match event:
        case PortfolioArchived():
            return replace(state, status=PortfolioStatus.ARCHIVED)
        case PortfolioReopened():
            return replace(state, status=PortfolioStatus.ACTIVE)


def fold(events: Iterable[PortfolioEvent]) -> Portfolio | None:
    return replay(evolve, events)
