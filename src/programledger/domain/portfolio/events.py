"""Events of the Portfolio aggregate. None names a program: programs record their own
moves (``ProgramMovedToPortfolio``)."""

from __future__ import annotations

from typing import ClassVar, get_args
from uuid import UUID

from programledger.domain.events import DomainEvent

__all__ = [
    "PORTFOLIO_EVENT_TYPES",
    "PortfolioArchived",
    "PortfolioCreated",
    "PortfolioEvent",
    "PortfolioReopened",
]


class _PortfolioEvent(DomainEvent, frozen=True, kw_only=True):
    portfolio_id: UUID


class PortfolioCreated(_PortfolioEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "PortfolioCreated"
    schema_version: ClassVar[int] = 1
    name: str
    owner: str
    description: str | None = None


class PortfolioArchived(_PortfolioEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "PortfolioArchived"
    schema_version: ClassVar[int] = 1
    reason: str


class PortfolioReopened(_PortfolioEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "PortfolioReopened"
    schema_version: ClassVar[int] = 1
    reason: str


PortfolioEvent = PortfolioCreated | PortfolioArchived | PortfolioReopened

PORTFOLIO_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(PortfolioEvent)
