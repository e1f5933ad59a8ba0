"""Commands to the Portfolio aggregate. Moving a program in or out is a program command
(``MoveProgramToPortfolio``), recorded on the program's stream."""

from __future__ import annotations

from uuid import UUID

import msgspec

__all__ = ["ArchivePortfolio", "CreatePortfolio", "PortfolioCommand", "ReopenPortfolio"]


class _PortfolioCommand(msgspec.Struct, frozen=True, kw_only=True):
    portfolio_id: UUID


class CreatePortfolio(_PortfolioCommand, frozen=True, kw_only=True):
    name: str
    owner: str
    description: str | None = None


class ArchivePortfolio(_PortfolioCommand, frozen=True, kw_only=True):
    reason: str


class ReopenPortfolio(_PortfolioCommand, frozen=True, kw_only=True):
    reason: str


PortfolioCommand = CreatePortfolio | ArchivePortfolio | ReopenPortfolio
