"""Status reports and capacity scenarios through the application on real PostgreSQL: the
owner rule with the caller and the program's owner filled in by the application, and a
scenario committed as real commands, each decided by its resource at that moment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from uuid import UUID, uuid4

import asyncpg
import pytest
import pytest_asyncio
from msgspec.structs import replace

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.commands import CommandContext
from programledger.application.eventstore import ConcurrencyConflict
from programledger.application.handlers import Application
from programledger.application.registry import application_registry
from programledger.domain.capacity import AllocationStatus
from programledger.domain.errors import InvalidTransition, NotProgramOwner, ValidationError
from programledger.domain.events import EventRegistry
from programledger.domain.program import ActivateProgram, UpdateProgramDetails
from programledger.domain.report import (
    CorrectStatusReport,
    DraftStatusReport,
    PublishStatusReport,
    ReportFacts,
    ReportStatus,
    StatusReportPublished,
    propose,
)
from programledger.domain.resource import ConfirmAllocation, ProposeAllocation, RegisterResource
from programledger.domain.scenario import (
    AddScenarioAllocation,
    AddScenarioCapacityChange,
    CommitScenario,
    CreateScenario,
    DiscardScenario,
    RemoveScenarioChange,
    ScenarioCommitted,
    ScenarioStatus,
)
from programledger.domain.values import Department, PartyKind
from programledger.projections import scenarios, status_reports
from programledger.projections.allocations import list_allocations
from programledger.projections.engine.status import wait_for_position
from programledger.projections.registry import PROJECTIONS
from tests.support.projection_process import LiveSystem
from tests.unit.examples import propose_program

OWNER = "tia@example.com"
WEEK = "2027-W14"


@pytest.fixture
def registry() -> EventRegistry:
    return application_registry()


@pytest.fixture
def app(event_store: PostgresEventStore) -> Application:
    return Application(event_store)


def as_(actor: str) -> CommandContext:
    return CommandContext(actor=actor)


async def owned_program(app: Application) -> UUID:
    program_id = uuid4()
    code = f"P{program_id.hex[:8].upper()}"
    await app.handle(propose_program(program_id=program_id, code=code, owner=OWNER), as_(OWNER))
    await app.handle(ActivateProgram(program_id=program_id), as_(OWNER))
    return program_id


async def test_only_the_owner_publishes_and_the_owner_is_read_at_the_decision(
    app: Application,
) -> None:
    program_id = await owned_program(app)
    content = propose(ReportFacts(max_slip_days=3))
    draft = DraftStatusReport(program_id=program_id, period=WEEK, content=content)
    await app.handle(draft, as_("eve@example.com"))  # an editor drafts
    publish = PublishStatusReport(program_id=program_id, period=WEEK)
    with pytest.raises(NotProgramOwner) as refused:
        await app.handle(publish, as_("eve@example.com"))
    assert (refused.value.owner, refused.value.actor) == (OWNER, "eve@example.com")
    # A client cannot name itself the publisher: the application overwrites the fields.
    forged = replace(publish, published_by=OWNER, program_owner="eve@example.com")
    with pytest.raises(NotProgramOwner):
        await app.handle(forged, as_("eve@example.com"))
    result = await app.handle(publish, as_(OWNER))
    (published,) = result.events
    assert isinstance(published, StatusReportPublished)
    assert published.published_by == OWNER
    # The owner changes: from then on the new owner publishes.
    await app.handle(
        UpdateProgramDetails(program_id=program_id, owner="eve@example.com"), as_(OWNER)
    )
    correct = CorrectStatusReport(
        program_id=program_id, period=WEEK, content=content, reason="late figures"
    )
    await app.handle(correct, as_(OWNER))
    with pytest.raises(NotProgramOwner):
        await app.handle(publish, as_(OWNER))
    await app.handle(publish, as_("eve@example.com"))
    loaded = await app.load_status_report(program_id, WEEK)
    assert loaded.state is not None
    assert loaded.state.status is ReportStatus.PUBLISHED
    assert [p.published_by for p in loaded.state.published] == [OWNER, "eve@example.com"]


async def test_a_report_names_an_existing_program(app: Application) -> None:
    draft = DraftStatusReport(program_id=uuid4(), period=WEEK, content=propose(ReportFacts()))
    with pytest.raises(ValidationError) as refused:
        await app.handle(draft, as_(OWNER))
    assert [i.path for i in refused.value.issues] == ["program_id"]


def _register(key: str) -> RegisterResource:
    return RegisterResource(
        resource_key=key,
        name=key,
        kind=PartyKind.PERSON,
        department=Department.ENGINEERING,
        role="Engineer",
        capacity=100,
    )


async def book(
    app: Application, key: str, program_id: UUID, period: tuple[date, date], percentage: int
) -> UUID:
    """A real, confirmed allocation: its id."""
    proposal = ProposeAllocation(
        resource_key=key,
        allocation_id=uuid4(),
        program_id=program_id,
        start_date=period[0],
        end_date=period[1],
        percentage=percentage,
    )
    await app.handle(proposal, as_(OWNER))
    await app.handle(
        ConfirmAllocation(resource_key=key, allocation_id=proposal.allocation_id), as_(OWNER)
    )
    return proposal.allocation_id


async def test_a_commit_sends_real_commands_and_records_each_outcome(app: Application) -> None:
    program_id = await owned_program(app)
    ana, ben = f"ana.{uuid4().hex[:6]}", f"ben.{uuid4().hex[:6]}"
    for key in (ana, ben):
        await app.handle(_register(key), as_(OWNER))
    # Ben is already booked at 80 % in April, for real.
    await book(app, ben, program_id, (date(2027, 4, 1), date(2027, 4, 30)), 80)
    scenario_id = uuid4()
    await app.handle(CreateScenario(scenario_id=scenario_id, name="April push"), as_(OWNER))
    fits, too_much = uuid4(), uuid4()
    for change_id, key in ((fits, ana), (too_much, ben)):
        await app.handle(
            AddScenarioAllocation(
                scenario_id=scenario_id,
                change_id=change_id,
                resource_key=key,
                program_id=program_id,
                start_date=date(2027, 4, 1),
                end_date=date(2027, 4, 30),
                percentage=50,
            ),
            as_(OWNER),
        )
    more = uuid4()
    await app.handle(
        AddScenarioCapacityChange(
            scenario_id=scenario_id,
            change_id=more,
            resource_key=ana,
            capacity=80,
            reason="part time from May",
            effective_from=date(2027, 5, 1),
        ),
        as_(OWNER),
    )
    # Nothing real changed yet.
    assert (await app.load_resource(ana)).state.allocations == ()  # type: ignore[union-attr]
    with pytest.raises(ValidationError) as unknown:
        await app.handle(
            AddScenarioCapacityChange(
                scenario_id=scenario_id,
                change_id=uuid4(),
                resource_key="nobody",
                capacity=50,
                reason="x",
            ),
            as_(OWNER),
        )
    assert [i.path for i in unknown.value.issues] == ["resource_key"]
    result = await app.handle(CommitScenario(scenario_id=scenario_id), as_(OWNER))
    (committed,) = result.events
    assert isinstance(committed, ScenarioCommitted)
    outcomes = [(o.change_id, o.command, o.accepted, o.error_code) for o in committed.outcomes]
    assert outcomes == [
        (more, "ChangeCapacity", True, None),
        (fits, "ProposeAllocation", True, None),
        (fits, "ConfirmAllocation", True, None),
        (too_much, "ProposeAllocation", True, None),
        (too_much, "ConfirmAllocation", False, "OVER_ALLOCATED"),
    ]
    ana_now = (await app.load_resource(ana)).state
    assert ana_now is not None
    assert [(a.allocation_id, a.status) for a in ana_now.allocations] == [
        (fits, AllocationStatus.CONFIRMED)
    ]
    scenario = (await app.load_scenario(scenario_id)).state
    assert scenario is not None
    assert scenario.status is ScenarioStatus.COMMITTED
    with pytest.raises(InvalidTransition):
        await app.handle(CommitScenario(scenario_id=scenario_id), as_(OWNER))


# --- the read models ---------------------------------------------------------------------


RUNNING = ("status_reports", "scenarios", "allocations", "programs")


async def caught_up(pool: asyncpg.Pool, position: int) -> None:
    assert await wait_for_position(pool, position, 30, RUNNING)


@pytest_asyncio.fixture
async def live(
    event_store: PostgresEventStore, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[LiveSystem]:
    wanted = [PROJECTIONS[n] for n in RUNNING]
    async with LiveSystem(event_store, pg_url, nats_url, subject_prefix, wanted) as system:
        yield system


async def test_reports_their_revisions_and_the_trend_as_of_any_moment(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    program_id = await owned_program(app)
    green = propose(ReportFacts())
    amber = propose(ReportFacts(max_slip_days=3))
    red = propose(ReportFacts(milestones_missed=1))
    for week, content in (("2027-W13", green), (WEEK, amber)):
        await app.handle(
            DraftStatusReport(program_id=program_id, period=week, content=content), as_(OWNER)
        )
        last = await app.handle(PublishStatusReport(program_id=program_id, period=week), as_(OWNER))
    before_correction = last.last_position
    await app.handle(
        CorrectStatusReport(program_id=program_id, period=WEEK, content=red, reason="missed M2"),
        as_(OWNER),
    )
    drafting = await app.handle(
        DraftStatusReport(program_id=program_id, period="2027-W15", content=green), as_(OWNER)
    )
    await caught_up(pool, drafting.last_position)
    row = await status_reports.get_status_report(pool, program_id, WEEK)
    assert row is not None
    assert (row.status, row.revision, row.overall, row.published_revisions) == (
        "DRAFT",
        2,
        "RED",
        1,
    )
    assert row.correction_reason == "missed M2"
    revisions = await status_reports.revisions_of(pool, program_id, WEEK)
    assert [(r.revision, r.status, r.overall) for r in revisions] == [
        (1, "PUBLISHED", "AMBER"),
        (2, "DRAFT", "RED"),
    ]
    assert revisions[0].published_by == OWNER
    assert revisions[0].published_at is not None
    span = (date(2027, 3, 1), date(2027, 4, 30))
    trend = await status_reports.trend(pool, program_id, *span)
    # The W15 draft is not published, the correction of W14 not yet either.
    assert [(t.period, t.overall, t.schedule_rag) for t in trend] == [
        ("2027-W13", "GREEN", "GREEN"),
        ("2027-W14", "AMBER", "AMBER"),
    ]
    republished = await app.handle(
        PublishStatusReport(program_id=program_id, period=WEEK), as_(OWNER)
    )
    await caught_up(pool, republished.last_position)
    trend = await status_reports.trend(pool, program_id, *span)
    assert [(t.period, t.revision, t.overall, t.corrects) for t in trend] == [
        ("2027-W13", 1, "GREEN", None),
        ("2027-W14", 2, "RED", 1),
    ]
    then = await status_reports.trend(pool, program_id, *span, as_of=before_correction)
    assert [t.overall for t in then] == ["GREEN", "AMBER"]
    page = await status_reports.list_status_reports(pool, program_id=program_id, status=["DRAFT"])
    assert [r.period for r in page.items] == ["2027-W15"]


async def test_a_scenario_is_evaluated_without_touching_real_allocations(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    program_id = await owned_program(app)
    ana = f"ana.{uuid4().hex[:6]}"
    await app.handle(_register(ana), as_(OWNER))
    real = await book(app, ana, program_id, (date(2027, 4, 5), date(2027, 4, 18)), 60)
    scenario_id, extra, dropped = uuid4(), uuid4(), uuid4()
    await app.handle(CreateScenario(scenario_id=scenario_id, name="More for Ana"), as_(OWNER))
    for change_id in (extra, dropped):
        await app.handle(
            AddScenarioAllocation(
                scenario_id=scenario_id,
                change_id=change_id,
                resource_key=ana,
                program_id=program_id,
                start_date=date(2027, 4, 12),
                end_date=date(2027, 4, 25),
                percentage=50,
            ),
            as_(OWNER),
        )
    last = await app.handle(
        RemoveScenarioChange(scenario_id=scenario_id, change_id=dropped), as_(OWNER)
    )
    await caught_up(pool, last.last_position)
    changes = await scenarios.changes_of(pool, scenario_id)
    assert [c.change_id for c in changes] == [extra]
    evaluation = await scenarios.evaluate_scenario(pool, scenario_id)
    assert evaluation is not None
    (impact,) = evaluation.resources
    assert impact.over_allocated_now == []
    assert [(p.start, p.end, p.total_percentage) for p in impact.worsened] == [
        (date(2027, 4, 12), date(2027, 4, 18), 110)
    ]
    weeks = {w.week_start: w for w in evaluation.departments if w.department == "ENGINEERING"}
    week = weeks[date(2027, 4, 12)]
    assert week.confirmed_days_with_scenario - week.confirmed_days == 350
    assert (week.over_allocated, week.over_allocated_with_scenario) == (0, 1)
    # The real read model does not know the scenario.
    page = await list_allocations(pool, resource_key=ana)
    assert [a.allocation_id for a in page.items] == [real]
    committed = await app.handle(
        CommitScenario(scenario_id=scenario_id, override_reason="Ana agreed to the crunch"),
        as_(OWNER),
    )
    await caught_up(pool, committed.last_position)
    outcomes = await scenarios.outcomes_of(pool, scenario_id)
    assert [(o.command, o.accepted) for o in outcomes] == [
        ("ProposeAllocation", True),
        ("ConfirmAllocation", True),
    ]
    row = await scenarios.get_scenario(pool, scenario_id)
    assert row is not None
    assert (row.status, row.override_reason) == ("COMMITTED", "Ana agreed to the crunch")
    page = await list_allocations(pool, resource_key=ana)
    assert {a.allocation_id for a in page.items} == {real, extra}


async def test_a_discarded_scenario_says_why(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    scenario_id = uuid4()
    await app.handle(CreateScenario(scenario_id=scenario_id, name="Hiring freeze"), as_(OWNER))
    created = await app.handle(
        DiscardScenario(scenario_id=scenario_id, reason="the freeze was lifted"), as_(OWNER)
    )
    await caught_up(pool, created.last_position)
    row = await scenarios.get_scenario(pool, scenario_id)
    assert row is not None
    assert (row.status, row.discard_reason) == ("DISCARDED", "the freeze was lifted")
    assert await scenarios.evaluate_scenario(pool, uuid4()) is None
    with pytest.raises(ValueError, match="give start and end"):
        await scenarios.evaluate_scenario(pool, scenario_id)


async def test_a_commit_is_sent_once_and_not_on_a_stale_version(app: Application) -> None:
    program_id = await owned_program(app)
    key = f"cy.{uuid4().hex[:6]}"
    await app.handle(_register(key), as_(OWNER))
    scenario_id, change_id = uuid4(), uuid4()
    await app.handle(CreateScenario(scenario_id=scenario_id, name="Once"), as_(OWNER))
    added = await app.handle(
        AddScenarioAllocation(
            scenario_id=scenario_id,
            change_id=change_id,
            resource_key=key,
            program_id=program_id,
            start_date=date(2027, 5, 3),
            end_date=date(2027, 5, 9),
            percentage=40,
        ),
        as_(OWNER),
    )
    commit = CommitScenario(scenario_id=scenario_id)
    with pytest.raises(ConcurrencyConflict):
        await app.handle(commit, CommandContext(actor=OWNER, expected_version=added.version - 1))
    assert (await app.load_resource(key)).state.allocations == ()  # type: ignore[union-attr]
    once = CommandContext(actor=OWNER, idempotency_key=f"commit-{scenario_id}")
    first = await app.handle(commit, once)
    again = await app.handle(commit, once)
    assert (again.replayed, again.event_ids) == (True, first.event_ids)
    resource = (await app.load_resource(key)).state
    assert resource is not None
    assert [a.allocation_id for a in resource.allocations] == [change_id]
