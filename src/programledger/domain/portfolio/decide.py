"""``decide`` for the Portfolio aggregate. Pure: no clock, no ids drawn, no I/O.

Lifecycle (``PORTFOLIO_LIFECYCLE``): ``ACTIVE -> ARCHIVED -> (reopened) ACTIVE``.
"""

from __future__ import annotations

from programledger.domain._checks import Checks, require_status
from programledger.domain.errors import AlreadyExists, NotFound
from programledger.domain.portfolio.commands import (
    ArchivePortfolio,
    CreatePortfolio,
    PortfolioCommand,
    ReopenPortfolio,
)
from programledger.domain.portfolio.events import (
    PortfolioArchived,
    PortfolioCreated,
    PortfolioEvent,
    PortfolioReopened,
)
from programledger.domain.portfolio.state import Portfolio, PortfolioStatus

__all__ = ["PORTFOLIO_LIFECYCLE", "decide"]

PORTFOLIO_LIFECYCLE: dict[type[PortfolioCommand], frozenset[PortfolioStatus]] = {
    ArchivePortfolio: frozenset({PortfolioStatus.ACTIVE}),
    ReopenPortfolio: frozenset({PortfolioStatus.ARCHIVED}),
}
"""Command -> the statuses it is allowed in."""


def decide(state: Portfolio | None, command: PortfolioCommand) -> list[PortfolioEvent]:
    checks = Checks()
    match command:
        case CreatePortfolio():
            checks.line("name", command.name)
            checks.line("owner", command.owner)
            checks.optional_text("description", command.description)
        case ArchivePortfolio() | ReopenPortfolio():
            checks.text("reason", command.reason)
    checks.done()
    if isinstance(command, CreatePortfolio):
        if state is not None:
            raise AlreadyExists("portfolio", command.portfolio_id)
        return [
            PortfolioCreated(
                portfolio_id=command.portfolio_id,
                name=command.name,
                owner=command.owner,
                description=command.description,
            )
        ]
    if state is None:
        raise NotFound("portfolio", command.portfolio_id)
    require_status("portfolio", state.portfolio_id, state.status, PORTFOLIO_LIFECYCLE, command)
    match command:
        case ArchivePortfolio(reason=reason):
            return [PortfolioArchived(portfolio_id=state.portfolio_id, reason=reason)]
        case ReopenPortfolio(reason=reason):
            return [PortfolioReopened(portfolio_id=state.portfolio_id, reason=reason)]
