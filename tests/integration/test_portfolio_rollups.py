"""Portfolio roll-ups on real PostgreSQL and NATS: kept by the projection as programs,
risks and key results change and programs move, and answered as of any moment."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import date
from uuid import UUID, uuid4

import asyncpg
import pytest
import pytest_asyncio

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.commands import Command, CommandContext
from programledger.application.handlers import Application
from programledger.domain.errors import ValidationError
from programledger.domain.objective import (
    AddKeyResult,
    CheckInKeyResult,
    DefineObjective,
    LinkObjectiveToProgram,
)
from programledger.domain.portfolio import ArchivePortfolio, CreatePortfolio
from programledger.domain.program import (
    ActivateProgram,
    AllocateBudget,
    Health,
    MoveProgramToPortfolio,
    PlanMilestone,
    ProgramMovedToPortfolio,
    ProposeProgram,
    ReportActualSpend,
    ReportProgramHealth,
    RescheduleMilestone,
)
from programledger.domain.risk import IdentifyRisk, RiskCategory
from programledger.domain.values import Money
from programledger.projections.engine.status import wait_for_position
from programledger.projections.portfolios import (
    get_portfolio,
    list_check_ins,
    list_members,
    list_moves,
)
from tests.support.projection_process import LiveSystem, app_store


@pytest_asyncio.fixture
async def store(pool: asyncpg.Pool, schema: str) -> PostgresEventStore:
    return app_store(pool, schema)


@pytest.fixture
def app(store: PostgresEventStore) -> Application:
    return Application(store)


@pytest_asyncio.fixture
async def live(
    store: PostgresEventStore, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[LiveSystem]:
    async with LiveSystem(store, pg_url, nats_url, subject_prefix) as system:
        yield system


class Portfolios:
    def __init__(self, app: Application) -> None:
        self.app = app
        self.at: dict[str, int] = {}

    async def do(self, label: str, command: Command) -> int:
        result = await self.app.handle(command, CommandContext(actor="pat", reason=label))
        self.at[label] = result.last_position
        return result.last_position

    async def program(self, label: str, currency: str, planned: int) -> UUID:
        program_id = uuid4()
        await self.do(
            label,
            ProposeProgram(
                program_id=program_id,
                code=f"P{uuid4().hex[:6].upper()}",
                name=label,
                objective="Grow",
                sponsor="Dana",
                owner="Tom",
                priority=2,
                start_date=date(2027, 1, 1),
                target_end_date=date(2027, 12, 31),
                planned_budget=Money(amount_minor=planned, currency=currency),
            ),
        )
        await self.do(f"{label} active", ActivateProgram(program_id=program_id))
        return program_id


async def test_a_roll_up_follows_its_programs_and_answers_as_of_any_moment(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    s = Portfolios(app)
    growth, platform = uuid4(), uuid4()
    await s.do("growth", CreatePortfolio(portfolio_id=growth, name="Growth", owner="Pat"))
    await s.do("platform", CreatePortfolio(portfolio_id=platform, name="Platform", owner="Sam"))
    pay = await s.program("pay", "EUR", 1_000_000)
    crm = await s.program("crm", "USD", 500_000)
    await s.do("pay in", MoveProgramToPortfolio(program_id=pay, portfolio_id=growth))
    await s.do("crm in", MoveProgramToPortfolio(program_id=crm, portfolio_id=growth))
    await s.do(
        "health",
        ReportProgramHealth(program_id=pay, health=Health.RED, summary="Vendor late"),
    )
    await s.do(
        "allocate",
        AllocateBudget(
            program_id=pay,
            budget_allocation_id=uuid4(),
            amount=Money(amount_minor=300_000, currency="EUR"),
            cost_centre="CC-1",
        ),
    )
    await s.do(
        "spend",
        ReportActualSpend(
            program_id=pay,
            amount=Money(amount_minor=120_000, currency="EUR"),
            as_of=date(2027, 3, 1),
        ),
    )
    milestone = uuid4()
    await s.do(
        "plan",
        PlanMilestone(
            program_id=pay, milestone_id=milestone, name="Pilot", due_date=date(2027, 4, 1)
        ),
    )
    await s.do(
        "slip",
        RescheduleMilestone(
            program_id=pay, milestone_id=milestone, forecast_date=date(2027, 4, 11), reason="v"
        ),
    )
    await s.do(
        "risk",
        IdentifyRisk(
            risk_id=uuid4(),
            program_id=crm,
            title="Vendor",
            category=RiskCategory.VENDOR,
            probability=4,
            impact=5,
            owner="Tom",
        ),
    )
    okr, kr = uuid4(), uuid4()
    await s.do(
        "okr",
        DefineObjective(
            objective_id=okr,
            title="Grow revenue",
            owner="Dana",
            starts_on=date(2027, 1, 1),
            ends_on=date(2027, 12, 31),
        ),
    )
    await s.do(
        "kr",
        AddKeyResult(
            objective_id=okr,
            key_result_id=kr,
            name="Customers",
            unit="customers",
            baseline=100,
            target=200,
            confidence=50,
        ),
    )
    await s.do("link", LinkObjectiveToProgram(objective_id=okr, program_id=pay))
    await s.do(
        "check-in",
        CheckInKeyResult(
            objective_id=okr,
            key_result_id=kr,
            value=150,
            confidence=80,
            checked_on=date(2027, 3, 1),
        ),
    )
    before_move = s.at["check-in"]
    head = await s.do("move", MoveProgramToPortfolio(program_id=crm, portfolio_id=platform))
    assert await wait_for_position(pool, head, 30)

    now = await get_portfolio(pool, growth)
    assert now is not None
    assert (now.programs, now.health, now.programs_red) == (1, "RED", 1)
    assert (now.open_risks, now.risk_exposure) == (0, 0)
    assert (now.milestones, now.milestones_slipped, now.slip_days) == (1, 1, 10)
    assert (now.objectives, now.key_results, now.key_result_progress) == (1, 1, 50)
    assert now.key_result_confidence == 80
    budgets = now.budgets
    assert [(b.currency, b.planned, b.allocated, b.actual) for b in budgets] == [
        ("EUR", 1_000_000, 300_000, 120_000)
    ]

    then = await get_portfolio(pool, growth, as_of=before_move)
    assert then is not None
    assert (then.programs, then.programs_unreported, then.open_risks_critical) == (2, 1, 1)
    assert then.risk_exposure == 20
    assert [b.currency for b in then.budgets] == ["EUR", "USD"]
    before_link = await get_portfolio(pool, growth, as_of=s.at["kr"])
    assert before_link is not None
    assert (before_link.objectives, before_link.key_result_progress) == (0, None)

    other = await get_portfolio(pool, platform)
    assert other is not None
    assert (other.programs, other.open_risks_critical, other.health) == (1, 1, None)
    members = await list_members(pool, platform, sort="program_id")
    assert [m.program_id for m in members.items] == [crm]
    moves = await list_moves(pool, program_id=crm, sort="position")
    assert [(m.from_portfolio_id, m.to_portfolio_id) for m in moves.items] == [
        (None, growth),
        (growth, platform),
    ]
    check_ins = await list_check_ins(pool, key_result_id=kr, sort="position")
    assert [(c.value, c.confidence) for c in check_ins.items] == [(150, 80)]


async def test_a_program_moves_only_into_an_open_portfolio(
    app: Application, store: PostgresEventStore
) -> None:
    s = Portfolios(app)
    archived, missing = uuid4(), uuid4()
    await s.do("create", CreatePortfolio(portfolio_id=archived, name="Old", owner="Pat"))
    await s.do("archive", ArchivePortfolio(portfolio_id=archived, reason="Merged"))
    program = await s.program("p", "EUR", 10)
    with pytest.raises(ValidationError, match="archived"):
        await s.do("move", MoveProgramToPortfolio(program_id=program, portfolio_id=archived))
    with pytest.raises(ValidationError, match="does not exist"):
        await s.do("move", MoveProgramToPortfolio(program_id=program, portfolio_id=missing))
    okr = uuid4()
    await s.do(
        "okr",
        DefineObjective(
            objective_id=okr,
            title="Grow",
            owner="Dana",
            starts_on=date(2027, 1, 1),
            ends_on=date(2027, 6, 30),
        ),
    )
    with pytest.raises(ValidationError, match="does not exist"):
        await s.do("link", LinkObjectiveToProgram(objective_id=okr, program_id=missing))


async def test_concurrent_moves_of_one_program_are_serialised_by_its_stream(
    app: Application,
) -> None:
    s = Portfolios(app)
    targets = [uuid4() for _ in range(4)]
    for i, target in enumerate(targets):
        await s.do(f"p{i}", CreatePortfolio(portfolio_id=target, name=f"P{i}", owner="Pat"))
    program = await s.program("p", "EUR", 10)
    await asyncio.gather(
        *(
            app.handle(
                MoveProgramToPortfolio(program_id=program, portfolio_id=target),
                CommandContext(actor=f"user{i}"),
            )
            for i, target in enumerate(targets)
        )
    )
    history = await app.history(f"program-{program}")
    moves = [h.event.data for h in history if isinstance(h.event.data, ProgramMovedToPortfolio)]
    assert len(moves) == len(targets)
    assert moves[0].from_portfolio_id is None
    for earlier, later in itertools.pairwise(moves):
        assert later.from_portfolio_id == earlier.to_portfolio_id, "each move left where it was"
    final = (await app.load_program(program)).state
    assert final is not None
    assert final.portfolio_id == moves[-1].to_portfolio_id
