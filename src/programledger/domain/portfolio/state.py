"""The Portfolio aggregate's state (stream ``portfolio-<uuid>``)."""

from __future__ import annotations

import enum
from uuid import UUID

import msgspec

__all__ = ["Portfolio", "PortfolioStatus", "portfolio_stream_id"]


class PortfolioStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"
    """Takes no new programs; the programs still in it stay until they are moved out."""


class Portfolio(msgspec.Struct, frozen=True, kw_only=True):
    portfolio_id: UUID
    name: str
    owner: str
    description: str | None = None
    status: PortfolioStatus = PortfolioStatus.ACTIVE


def portfolio_stream_id(portfolio_id: UUID) -> str:
    return f"portfolio-{portfolio_id}"
