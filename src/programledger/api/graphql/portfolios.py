"""Portfolios in GraphQL: ``portfolio``, ``portfolios``, ``portfolioOfProgram`` and
``portfolioMoves``, over the ``portfolios`` read model.

A portfolio carries its roll-up (health, budget per currency, risk exposure by band,
schedule variance, key-result progress) as the projection keeps it, so asking for it as
of any moment reads one row version, its ``budgets`` included. Its nested lists
(``programs``, ``moves``) are read at the position the portfolio was read at, so they show
the same moment as their parent.
"""

from __future__ import annotations

import enum
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry

from programledger.api.graphql.connections import Connection, connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.programs import ProgramType, with_nested
from programledger.api.graphql.reads import (
    AS_OF,
    an_id,
    counts,
    enum_filter,
    list_page,
    listing,
    lookup,
    one_connection,
    paging,
    plain,
    read,
    read_field,
    uuid,
    values,
)
from programledger.api.graphql.recorded import Recorded, recorded
from programledger.api.graphql.types import MoneyType, SafeInt
from programledger.domain.portfolio import PortfolioStatus
from programledger.domain.program import Health
from programledger.projections import portfolios, programs
from programledger.projections.portfolios import MoveRow, PortfolioBudget, PortfolioRow

__all__ = [
    "PortfolioBudgetType",
    "PortfolioFilter",
    "PortfolioMoveType",
    "PortfolioQueries",
    "PortfolioSort",
    "PortfolioType",
]


def _id(value: UUID | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


@strawberry.enum(description="Sort keys of portfolios.")
class PortfolioSort(enum.Enum):
    NAME = "name"
    PROGRAMS = "programs"
    RISK_EXPOSURE = "risk_exposure"


@strawberry.input
class PortfolioFilter:
    status: list[Enum] | None = enum_filter(PortfolioStatus)
    owner: str | None = None


@strawberry.type(
    name="PortfolioBudget",
    description="The budgets of a portfolio's programs planned in one currency, summed.",
)
class PortfolioBudgetType:
    currency: str
    programs: int
    planned: MoneyType
    allocated: MoneyType
    actual: MoneyType = strawberry.field(description="Spend reported to date (0 if none).")

    @staticmethod
    def of(b: PortfolioBudget) -> PortfolioBudgetType:
        def money(amount: int) -> MoneyType:
            return MoneyType(amount_minor=SafeInt(amount), currency=b.currency)

        return PortfolioBudgetType(
            currency=b.currency,
            programs=b.programs,
            planned=money(b.planned),
            allocated=money(b.allocated),
            actual=money(b.actual),
        )


@strawberry.type(
    name="PortfolioMove",
    description="A program moved between portfolios (ProgramMovedToPortfolio).",
)
class PortfolioMoveType:
    position: SafeInt
    program_id: strawberry.ID
    from_portfolio_id: strawberry.ID | None = strawberry.field(
        description="Null: the program was in no portfolio."
    )
    to_portfolio_id: strawberry.ID | None = strawberry.field(
        description="Null: the program left every portfolio."
    )
    reason: str | None
    actor: str
    recorded_at: datetime

    @staticmethod
    def of(m: MoveRow) -> PortfolioMoveType:
        return PortfolioMoveType(
            position=SafeInt(m.position),
            program_id=strawberry.ID(str(m.program_id)),
            from_portfolio_id=_id(m.from_portfolio_id),
            to_portfolio_id=_id(m.to_portfolio_id),
            reason=m.reason,
            actor=m.actor,
            recorded_at=m.recorded_at,
        )


async def _programs_of(
    root: strawberry.Parent[PortfolioType],
    info: ApiInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[ProgramType]:
    async with one_connection(info.context.services.pool) as reads:
        page = await read(
            portfolios.list_members(
                reads,
                UUID(root.portfolio_id),
                sort="program_id",
                **paging(first, after, last, before),
                as_of=root.position,
                count=counts(info),
            )
        )
        found = await programs.programs_by_id(
            reads, [m.program_id for m in page.items], as_of=root.position
        )
        convert = await with_nested(
            info, reads, list(found.values()), root.position, (("nodes",), ("edges", "node"))
        )
    return connection(page, lambda m: convert(found[m.program_id], root.position))


async def _moves_of(
    root: strawberry.Parent[PortfolioType],
    info: ApiInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[PortfolioMoveType]:
    return await list_page(
        info,
        portfolios.list_moves,
        PortfolioMoveType.of,
        root.position,
        MoveSort.POSITION,
        False,
        paging(first, after, last, before),
        portfolio_id=UUID(root.portfolio_id),
    )


@strawberry.type(name="Portfolio")
class PortfolioType(Node, Recorded):
    portfolio_id: strawberry.ID
    name: str
    owner: str
    description: str | None
    status: str = strawberry.field(graphql_type=domain_enum(PortfolioStatus))
    archived_reason: str | None = strawberry.field(description="Why it was last archived.")
    reopened_reason: str | None = strawberry.field(description="Why it was last reopened.")
    program_count: int
    health: str | None = strawberry.field(
        graphql_type=domain_enum(Health) | None,
        description="The worst health of its programs; null when none has reported.",
    )
    programs_green: int
    programs_amber: int
    programs_red: int
    programs_unreported: int
    open_risks: int
    open_risks_low: int
    open_risks_medium: int
    open_risks_high: int
    open_risks_critical: int
    risk_exposure: int = strawberry.field(
        description="The scores (probability x impact) of its programs' open risks, summed."
    )
    milestones: int
    milestones_slipped: int = strawberry.field(
        description="Milestones forecast (or done) after their baseline."
    )
    slip_days: int = strawberry.field(
        description="Days those milestones slipped, summed: the schedule variance."
    )
    objectives: int = strawberry.field(description="Objectives its programs are linked to.")
    key_results: int
    key_result_progress: int | None = strawberry.field(
        description="Mean progress of those objectives' key results, whole percent."
    )
    key_result_confidence: int | None = strawberry.field(
        description="Mean confidence of those key results, whole percent."
    )
    version: int = strawberry.field(description="The expectedVersion for the next command.")
    position: strawberry.Private[int | None]
    """Where the portfolio was read: its nested lists are read there too."""

    @staticmethod
    def of(p: PortfolioRow, position: int | None) -> PortfolioType:
        return PortfolioType(
            id=global_id("Portfolio", p.portfolio_id),
            portfolio_id=strawberry.ID(str(p.portfolio_id)),
            name=p.name,
            owner=p.owner,
            description=p.description,
            status=p.status,
            archived_reason=p.archived_reason,
            reopened_reason=p.reopened_reason,
            program_count=p.programs,
            health=p.health,
            programs_green=p.programs_green,
            programs_amber=p.programs_amber,
            programs_red=p.programs_red,
            programs_unreported=p.programs_unreported,
            open_risks=p.open_risks,
            open_risks_low=p.open_risks_low,
            open_risks_medium=p.open_risks_medium,
            open_risks_high=p.open_risks_high,
            open_risks_critical=p.open_risks_critical,
            risk_exposure=p.risk_exposure,
            milestones=p.milestones,
            milestones_slipped=p.milestones_slipped,
            slip_days=p.slip_days,
            objectives=p.objectives,
            key_results=p.key_results,
            key_result_progress=p.key_result_progress,
            key_result_confidence=p.key_result_confidence,
            budgets=[PortfolioBudgetType.of(b) for b in p.budgets],
            version=p.version,
            **recorded(p),
            position=position,
        )

    budgets: list[PortfolioBudgetType] = strawberry.field(
        description="Its budget, one entry per currency of its programs."
    )

    programs: Connection[ProgramType] = strawberry.field(
        resolver=_programs_of, description="The programs in it."
    )

    moves: Connection[PortfolioMoveType] = strawberry.field(
        resolver=_moves_of, description="Programs moved into or out of it, oldest first."
    )


def _portfolio_id(id: strawberry.ID) -> UUID:
    return an_id(id, "id")


_portfolio = lookup(portfolios.get_portfolio, plain(PortfolioType.of), _portfolio_id)


def _program_id(program_id: strawberry.ID) -> UUID:
    return an_id(program_id, "programId")


_portfolio_of_program = lookup(portfolios.portfolio_of, plain(PortfolioType.of), _program_id)


def _portfolio_filters(filter: PortfolioFilter | None = None) -> dict[str, Any]:
    f = filter or PortfolioFilter()
    return {"status": values(f.status), "owner": f.owner}


_portfolios = listing(
    portfolios.list_portfolios,
    plain(PortfolioType.of),
    _portfolio_filters,
    PortfolioSort.NAME,
    descending=False,
)


@strawberry.enum(description="Sort keys of portfolio moves.")
class MoveSort(enum.Enum):
    POSITION = "position"


def _move_filters(
    program_id: strawberry.ID | None = None, portfolio_id: strawberry.ID | None = None
) -> dict[str, Any]:
    return {
        "program_id": uuid(program_id, "programId"),
        "portfolio_id": uuid(portfolio_id, "portfolioId"),
    }


_portfolio_moves = listing(
    portfolios.list_moves,
    plain(lambda row, _at: PortfolioMoveType.of(row)),
    _move_filters,
    MoveSort.POSITION,
    descending=False,
)


@strawberry.type
class PortfolioQueries:
    portfolio: PortfolioType | None = read_field(
        _portfolio, "One portfolio and its roll-up." + AS_OF
    )
    portfolios: Connection[PortfolioType] = read_field(
        _portfolios, "Portfolios and their roll-ups." + AS_OF
    )
    portfolio_of_program: PortfolioType | None = read_field(
        _portfolio_of_program, "The portfolio a program is in; null when in none." + AS_OF
    )
    portfolio_moves: Connection[PortfolioMoveType] = read_field(
        _portfolio_moves,
        "Moves of programs between portfolios, of one program or one portfolio, oldest first."
        + AS_OF,
    )
