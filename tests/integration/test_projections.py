"""Projections against real PostgreSQL and NATS: the read models a TPM uses, as of any
moment, kept by runners that never apply an event twice and stop at a poison event."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest
import pytest_asyncio

from programledger.adapters.nats.envelope import HEADER_MSG_ID
from programledger.adapters.nats.stream import stream_name
from programledger.adapters.postgres.connection import connect, create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.commands import Command, CommandContext, CommandResult
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.application.handlers import Application
from programledger.domain.program import (
    ActivateProgram,
    AddStakeholder,
    AddWorkstream,
    AllocateBudget,
    CompleteMilestone,
    MilestoneRescheduled,
    PlanMilestone,
    ProposeProgram,
    RaciRole,
    RecordDecision,
    RecordLesson,
    RemoveStakeholder,
    ReportActualSpend,
    RescheduleMilestone,
    ReviseBudgetAllocation,
    SupersedeDecision,
)
from programledger.domain.resource import (
    ChangeCapacity,
    ConfirmAllocation,
    ProposeAllocation,
    RegisterResource,
)
from programledger.domain.risk import (
    AssessRisk,
    CloseRisk,
    IdentifyRisk,
    ResponseStrategy,
    RiskCategory,
    StartMitigation,
)
from programledger.domain.values import Department, Money, PartyKind
from programledger.projections.allocations import (
    StaffingPeriod,
    allocations_by_id,
    allocations_of_programs,
    get_resource,
    list_allocations,
    resources_by_key,
    staffing,
    utilisation,
)
from programledger.projections.audit import audit_trail
from programledger.projections.decisions import get_decision, list_decisions, list_lessons
from programledger.projections.engine.progress import ProgressWatch
from programledger.projections.engine.queries import with_stamps
from programledger.projections.engine.rebuild import RebuildFailed, rebuild
from programledger.projections.engine.runner import ProjectionRunner, RunnerState
from programledger.projections.engine.status import (
    _STATUS_SQL,
    clear_failure,
    projection_status,
    wait_for_position,
)
from programledger.projections.milestones import (
    get_milestone,
    list_milestones,
    milestones_of_programs,
)
from programledger.projections.programs import (
    get_program,
    get_program_by_code,
    list_budget_allocations,
    list_programs,
    list_spend_reports,
    list_stakeholders,
    list_workstreams,
    stakeholders_by_id,
)
from programledger.projections.registry import PROJECTIONS
from programledger.projections.risks import (
    get_risk,
    heat_map,
    list_risks,
    risks_by_id,
    risks_of_programs,
)
from tests.support.ledger import settled
from tests.support.plans import rows_read
from tests.support.projection_process import LiveSystem, app_store, table_rows
from tests.support.relay_process import append_notes, eventually

TODAY = date(2027, 3, 1)


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


class Story:
    """A program with a plan, a decision log, risks and a person's time."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.program, self.workstream = uuid4(), uuid4()
        self.m1, self.m2 = uuid4(), uuid4()
        self.d1, self.d2 = uuid4(), uuid4()
        self.r1, self.r2 = uuid4(), uuid4()
        self.a1, self.a2 = uuid4(), uuid4()
        self.alice = f"alice{uuid4().hex[:6]}"
        self.positions: dict[str, int] = {}

    async def do(self, label: str, command: Command, actor: str = "tom") -> CommandResult:
        result = await self.app.handle(command, CommandContext(actor=actor, reason=label))
        self.positions[label] = result.last_position
        return result

    async def tell(self) -> int:
        p = self.program
        await self.do(
            "propose",
            ProposeProgram(
                program_id=p,
                code=f"PAY{uuid4().hex[:6].upper()}",
                name="Payments",
                objective="Halve failures",
                sponsor="Dana",
                owner="Tom",
                priority=1,
                start_date=date(2027, 1, 1),
                target_end_date=date(2027, 12, 31),
                planned_budget=Money(amount_minor=1_000_000, currency="EUR"),
            ),
        )
        await self.do("activate", ActivateProgram(program_id=p))
        await self.do(
            "workstream",
            AddWorkstream(
                program_id=p,
                workstream_id=self.workstream,
                name="Core",
                lead="Lee",
                department=Department.ENGINEERING,
            ),
        )
        await self.do(
            "m1",
            PlanMilestone(
                program_id=p, milestone_id=self.m1, name="Pilot", due_date=date(2027, 4, 1)
            ),
        )
        await self.do(
            "m2",
            PlanMilestone(
                program_id=p, milestone_id=self.m2, name="Design", due_date=date(2027, 2, 1)
            ),
        )
        await self.do(
            "reschedule",
            RescheduleMilestone(
                program_id=p, milestone_id=self.m1, forecast_date=date(2027, 4, 11), reason="vendor"
            ),
        )
        await self.do(
            "done",
            CompleteMilestone(program_id=p, milestone_id=self.m2, actual_date=date(2027, 2, 3)),
        )
        await self.do(
            "d1",
            RecordDecision(
                program_id=p,
                decision_id=self.d1,
                title="Build",
                context="c",
                outcome="in-house",
                decided_by="Tom",
                decided_on=date(2027, 1, 10),
            ),
        )
        await self.do(
            "d2",
            SupersedeDecision(
                program_id=p,
                decision_id=self.d2,
                supersedes=self.d1,
                title="Buy",
                context="c",
                outcome="vendor",
                decided_by="Dana",
                decided_on=date(2027, 2, 10),
            ),
        )
        await self.do(
            "lesson",
            RecordLesson(program_id=p, lesson_id=uuid4(), what_happened="late", learned="buffer"),
        )
        await self.do(
            "budget",
            AllocateBudget(
                program_id=p,
                budget_allocation_id=uuid4(),
                workstream_id=self.workstream,
                amount=Money(amount_minor=300_000, currency="EUR"),
            ),
        )
        await self.do(
            "spend",
            ReportActualSpend(
                program_id=p,
                amount=Money(amount_minor=120_000, currency="EUR"),
                as_of=date(2027, 2, 28),
            ),
        )
        await self.do(
            "r1",
            IdentifyRisk(
                risk_id=self.r1,
                program_id=p,
                title="Vendor late",
                category=RiskCategory.VENDOR,
                probability=4,
                impact=5,
                owner="Olga",
                next_review_on=date(2027, 2, 15),
            ),
            actor="olga",
        )
        await self.do(
            "r2",
            IdentifyRisk(
                risk_id=self.r2,
                program_id=p,
                title="Typo",
                category=RiskCategory.OTHER,
                probability=2,
                impact=2,
                owner="Olga",
            ),
            actor="olga",
        )
        await self.do("r2 assessed", AssessRisk(risk_id=self.r2, probability=2, impact=2))
        await self.do(
            "r2 mitigated",
            StartMitigation(
                risk_id=self.r2,
                response_strategy=ResponseStrategy.MITIGATE,
                mitigation_plan="proofread",
                mitigation_due_on=date(2027, 3, 1),
            ),
        )
        await self.do("r2 closed", CloseRisk(risk_id=self.r2, reason="fixed"))
        await self.do(
            "alice",
            RegisterResource(
                resource_key=self.alice,
                name="Alice",
                kind=PartyKind.PERSON,
                department=Department.ENGINEERING,
                role="dev",
                capacity=100,
            ),
        )
        for allocation, percentage in ((self.a1, 60), (self.a2, 50)):
            await self.do(
                f"propose {percentage}",
                ProposeAllocation(
                    resource_key=self.alice,
                    allocation_id=allocation,
                    program_id=p,
                    start_date=date(2027, 3, 1),
                    end_date=date(2027, 3, 14),
                    percentage=percentage,
                ),
            )
        await self.do(
            "confirm 60", ConfirmAllocation(resource_key=self.alice, allocation_id=self.a1)
        )
        result = await self.do(
            "confirm 50",
            ConfirmAllocation(
                resource_key=self.alice, allocation_id=self.a2, override_reason="launch week"
            ),
        )
        return result.last_position


async def test_the_read_models_answer_what_a_tpm_asks(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    story = Story(app)
    head = await story.tell()
    assert await wait_for_position(pool, head, 20)

    page = await list_programs(pool)
    assert page.total_count == 1
    program = page.items[0]
    assert (program.status, program.priority, program.budget_planned) == ("ACTIVE", 1, 1_000_000)
    assert (program.budget_allocated, program.budget_actual) == (300_000, 120_000)
    assert (program.open_risks, program.open_risks_critical, program.open_risks_low) == (1, 1, 0)
    assert (program.next_milestone_id, program.next_milestone_date) == (story.m1, date(2027, 4, 11))

    by_code = await get_program_by_code(pool, program.code)
    assert by_code is not None
    assert by_code.program_id == story.program
    assert await get_program_by_code(pool, "NO-SUCH-CODE") is None
    listed = await list_milestones(pool, program_id=story.program)
    pilot = await get_milestone(pool, story.m1)
    assert pilot is not None
    assert (pilot.name, pilot.slip_days) == ("Pilot", 10)
    milestones = {m.milestone_id: m for m in listed.items}
    assert (milestones[story.m1].slip_days, milestones[story.m1].status) == (10, "PLANNED")
    assert (milestones[story.m2].status, milestones[story.m2].actual_date) == (
        "DONE",
        date(2027, 2, 3),
    )

    in_force = await list_decisions(pool, program_id=story.program, in_force=True)
    assert [d.decision_id for d in in_force.items] == [story.d2]
    earlier = await get_decision(pool, story.d1)
    assert earlier is not None
    assert earlier.superseded_by == story.d2
    before_supersession = await get_decision(pool, story.d1, as_of=story.positions["d1"])
    assert before_supersession is not None
    assert before_supersession.superseded_by is None
    assert (await list_lessons(pool, program_id=story.program)).total_count == 1

    register = await list_risks(pool, program_id=story.program, today=TODAY)
    assert [r.risk_id for r in register.items] == [story.r1, story.r2]
    r1 = register.items[0]
    assert (r1.score, r1.band, r1.overdue, r1.needs_response) == (20, "CRITICAL", True, True)
    assert not register.items[1].is_open
    overdue = await list_risks(pool, overdue=True, today=TODAY)
    assert [r.risk_id for r in overdue.items] == [story.r1]
    not_overdue = await list_risks(pool, overdue=False, today=TODAY)
    assert [r.risk_id for r in not_overdue.items] == [story.r2]
    assert [r.risk_id for r in (await list_risks(pool, min_score=5)).items] == [story.r1]
    assert [r.risk_id for r in (await list_risks(pool, min_score=4)).items] == [
        story.r1,
        story.r2,
    ]
    not_yet = await get_risk(pool, story.r1, today=date(2027, 2, 1))
    assert not_yet is not None
    assert not not_yet.overdue

    cells = {(c.probability, c.impact): c.count for c in (await heat_map(pool)).cells}
    assert cells[(4, 5)] == 1
    assert sum(cells.values()) == 1
    assert (await heat_map(pool, as_of=story.positions["r2"])).total == 2

    weeks = await utilisation(
        pool, start=date(2027, 3, 1), end=date(2027, 3, 14), resource_key=story.alice
    )
    assert [(w.week_start, w.confirmed_days, w.over_allocated) for w in weeks.items] == [
        (date(2027, 3, 1), 770, True),
        (date(2027, 3, 8), 770, True),
    ]
    assert weeks.items[0].utilisation == pytest.approx(1.1)
    # Bitemporal: the same weeks as known before the override was confirmed.
    known_then = await utilisation(
        pool,
        start=date(2027, 3, 1),
        end=date(2027, 3, 14),
        resource_key=story.alice,
        known_at=story.positions["confirm 60"],
    )
    assert [(w.confirmed_days, w.proposed_days, w.over_allocated) for w in known_then.items] == [
        (420, 350, False),
        (420, 350, False),
    ]
    assert (await list_allocations(pool, resource_key=story.alice)).total_count == 2

    # A page of programs' nested lists, one statement each, as the API reads them.
    other = uuid4()
    nested_risks = await risks_of_programs(pool, [story.program, other])
    assert [r.risk_id for r in nested_risks[story.program]] == [story.r1, story.r2]
    assert other not in nested_risks
    before_r2 = await risks_of_programs(pool, [story.program], as_of=story.positions["r1"])
    assert [r.risk_id for r in before_r2[story.program]] == [story.r1]
    nested_milestones = await milestones_of_programs(pool, [story.program])
    assert [m.milestone_id for m in nested_milestones[story.program]] == [
        m.milestone_id for m in listed.items
    ]
    nested_allocations = await allocations_of_programs(pool, [story.program])
    assert {a.allocation_id for a in nested_allocations[story.program]} == {story.a1, story.a2}
    by_id = await risks_by_id(pool, [story.r2, story.r1, uuid4()])
    assert {k: r.title for k, r in by_id.items()} == {story.r1: "Vendor late", story.r2: "Typo"}
    assert list(await allocations_by_id(pool, [story.a1], as_of=1)) == []
    assert list(await allocations_by_id(pool, [story.a1])) == [story.a1]
    people = await resources_by_key(pool, [story.alice, story.alice, "nobody"])
    assert list(people) == [story.alice]
    assert (people[story.alice].name, people[story.alice].version) == ("Alice", 5)


async def test_as_of_a_position_or_a_time_and_keyset_pages(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    story = Story(app)
    head = await story.tell()
    assert await wait_for_position(pool, head, 20)

    proposed = await get_program(pool, story.program, as_of=story.positions["propose"])
    assert proposed is not None
    assert proposed.status == "PROPOSED"
    assert await get_program(pool, story.program, as_of=story.positions["propose"] - 1) is None
    recorded = (await audit_trail(pool, entity_id=str(story.program), newest_first=False)).items
    activation = next(e for e in recorded if e.event_type == "ProgramActivated")
    by_time = await get_program(pool, story.program, as_of=activation.recorded_at)
    assert by_time is not None
    assert by_time.status == "ACTIVE"
    assert by_time.valid_from_pos <= activation.position

    first = await list_risks(pool, first=1)
    assert (len(first.items), first.total_count, first.has_next_page) == (1, 2, True)
    second = await list_risks(pool, first=1, after=first.end_cursor)
    assert [r.risk_id for r in second.items] == [story.r2]
    assert not second.has_next_page
    with pytest.raises(ValueError, match="another sort"):
        await list_risks(pool, first=1, after=first.end_cursor, sort="title")
    as_of_page = await list_risks(pool, first=1, as_of=story.positions["r1"])
    assert as_of_page.total_count == 1
    assert as_of_page.as_of_position == story.positions["r1"]


async def test_a_program_s_parts_its_staffing_and_who_made_each_version(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    story = Story(app)
    await story.tell()
    p = story.program
    accountable, consulted, budget = uuid4(), uuid4(), uuid4()
    for stakeholder, role in ((accountable, RaciRole.ACCOUNTABLE), (consulted, RaciRole.CONSULTED)):
        await story.do(
            f"add {role}",
            AddStakeholder(
                program_id=p,
                stakeholder_id=stakeholder,
                name=role.title(),
                kind=PartyKind.PERSON,
                department=Department.FINANCE,
                role=role,
            ),
            actor="dana",
        )
    await story.do(
        "remove", RemoveStakeholder(program_id=p, stakeholder_id=consulted, reason="left")
    )
    await story.do(
        "allocate",
        AllocateBudget(
            program_id=p,
            budget_allocation_id=budget,
            cost_centre="CC-7",
            amount=Money(amount_minor=100_000, currency="EUR"),
            purpose="audit",
        ),
    )
    await story.do(
        "revise",
        ReviseBudgetAllocation(
            program_id=p,
            budget_allocation_id=budget,
            amount=Money(amount_minor=150_000, currency="EUR"),
            reason="second audit round",
        ),
        actor="dana",
    )
    await story.do(
        "spend again",
        ReportActualSpend(
            program_id=p,
            amount=Money(amount_minor=180_000, currency="EUR"),
            as_of=date(2027, 3, 31),
            note="March invoices",
        ),
    )
    head = (
        await story.do(
            "capacity",
            ChangeCapacity(
                resource_key=story.alice,
                capacity=100,
                effective_from=date(2027, 3, 8),
                reason="back full time",
            ),
        )
    ).last_position
    assert await wait_for_position(pool, head, 20)

    [workstream] = (await list_workstreams(pool, program_id=p)).items
    assert (workstream.name, workstream.lead, workstream.department) == (
        "Core",
        "Lee",
        "ENGINEERING",
    )
    assert (workstream.created_by, workstream.change, workstream.created_at) == (
        "tom",
        "WorkstreamAdded",
        workstream.valid_from_time,
    )

    current = (await list_stakeholders(pool, program_id=p)).items
    assert [(s.stakeholder_id, s.role) for s in current] == [(accountable, "ACCOUNTABLE")]
    everyone = {
        s.stakeholder_id: s
        for s in (await list_stakeholders(pool, program_id=p, include_removed=True)).items
    }
    gone = everyone[consulted]
    assert (gone.removed, gone.change, gone.change_reason) == (True, "StakeholderRemoved", "left")
    assert (gone.created_by, gone.updated_by) == ("dana", "tom")
    assert gone.created_at is not None
    assert gone.created_at < gone.valid_from_time
    with with_stamps(False):
        [plain] = (await list_stakeholders(pool, program_id=p)).items
    assert (plain.stakeholder_id, plain.created_by, plain.change) == (accountable, None, None)
    before = await list_stakeholders(pool, program_id=p, as_of=story.positions["remove"] - 1)
    assert {s.stakeholder_id for s in before.items} == {accountable, consulted}
    assert list(await stakeholders_by_id(pool, [(p, consulted), (uuid4(), consulted)])) == [
        (p, consulted)
    ]

    allocations = {
        b.budget_allocation_id: b for b in (await list_budget_allocations(pool, program_id=p)).items
    }
    revised = allocations[budget]
    assert (revised.amount, revised.cost_centre, revised.purpose) == (150_000, "CC-7", "audit")
    assert (revised.change, revised.change_reason, revised.updated_by, revised.created_by) == (
        "BudgetAllocationRevised",
        "second audit round",
        "dana",
        "tom",
    )
    reports = (await list_spend_reports(pool, program_id=p)).items
    assert [(r.amount, r.as_of, r.note) for r in reports] == [
        (180_000, date(2027, 3, 31), "March invoices"),
        (120_000, date(2027, 2, 28), None),
    ]

    confirmed = {a.allocation_id: a for a in (await list_allocations(pool, program_id=p)).items}
    assert confirmed[story.a1].override_reason is None
    assert confirmed[story.a2].override_reason == "launch week"
    [period] = confirmed[story.a2].over_allocation
    assert (period.total_percentage, period.capacity) == (110, 100)
    resource = await get_resource(pool, story.alice)
    assert resource is not None
    assert [(s.capacity, s.reason) for s in resource.capacity_schedule] == [
        (100, None),
        (100, "back full time"),
    ]

    program = await get_program(pool, p)
    assert program is not None
    assert (program.created_by, program.change, program.change_reason) == (
        "tom",
        "ActualSpendReported",
        "spend again",
    )
    risk = await get_risk(pool, story.r1)
    assert risk is not None
    assert (risk.created_by, risk.change) == ("olga", "RiskIdentified")

    weeks = await staffing(pool, program_id=p, start=date(2027, 3, 1), end=date(2027, 3, 14))
    assert [
        (w.period_start, w.department, w.role, w.confirmed_days, w.resources) for w in weeks
    ] == [
        (date(2027, 3, 1), "ENGINEERING", "dev", 770, 1),
        (date(2027, 3, 8), "ENGINEERING", "dev", 770, 1),
    ]
    assert weeks[0].confirmed_fte == pytest.approx(1.1)
    [march] = await staffing(
        pool,
        program_id=p,
        start=date(2027, 3, 5),
        end=date(2027, 3, 5),
        period=StaffingPeriod.MONTH,
    )
    assert (march.period_start, march.period_end, march.confirmed_days) == (
        date(2027, 3, 1),
        date(2027, 3, 31),
        1540,
    )
    then = await staffing(
        pool,
        program_id=p,
        start=date(2027, 3, 1),
        end=date(2027, 3, 7),
        as_of=story.positions["confirm 60"],
    )
    assert [(w.confirmed_days, w.proposed_days, w.proposed_fte) for w in then] == [(420, 350, 0.5)]
    assert (
        await staffing(pool, program_id=uuid4(), start=date(2027, 3, 1), end=date(2027, 3, 7)) == []
    )
    with pytest.raises(ValueError, match="end must be on or after start"):
        await staffing(pool, program_id=p, start=date(2027, 3, 2), end=date(2027, 3, 1))

    # Taken off, then on again: the same row, current again.
    again = await story.do(
        "add again",
        AddStakeholder(
            program_id=p,
            stakeholder_id=consulted,
            name="Consulted",
            kind=PartyKind.PERSON,
            department=Department.LEGAL,
            role=RaciRole.INFORMED,
        ),
    )
    assert await wait_for_position(pool, again.last_position, 20)
    back = {s.stakeholder_id: s for s in (await list_stakeholders(pool, program_id=p)).items}
    assert (back[consulted].role, back[consulted].removed) == ("INFORMED", False)


async def test_the_audit_trail_says_who_changed_which_field(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    story = Story(app)
    head = await story.tell()
    assert await wait_for_position(pool, head, 20)

    trail = await audit_trail(pool, program_id=story.program, event_types=["MilestoneRescheduled"])
    [entry] = trail.items
    assert (entry.actor, entry.reason, entry.version) == ("tom", "reschedule", 6)
    assert [(c.path, c.before, c.after) for c in entry.changes] == [
        (f"milestones[{story.m1}].forecast_date", "2027-04-01", "2027-04-11")
    ]
    by_olga = await audit_trail(pool, actor="olga")
    assert {e.entity_id for e in by_olga.items} == {str(story.r1), str(story.r2)}
    created = (await audit_trail(pool, stream_id=f"risk-{story.r1}")).items[-1]
    assert {c.path for c in created.changes} >= {"title", "probability", "impact", "owner"}
    # One entry per domain event (each command of the story recorded one).
    assert (await audit_trail(pool, first=1)).total_count == len(story.positions)
    # A recorded-time window (from inclusive, to exclusive) is the range of positions
    # recorded in it, whichever events share an instant.
    everything = (await audit_trail(pool, newest_first=False, first=500)).items
    times = sorted({e.recorded_at for e in everything})
    for low, high in ((times[1], times[-1]), (times[0], times[0]), (times[-1], None)):
        window = await audit_trail(
            pool, recorded_from=low, recorded_to=high, newest_first=False, first=500
        )
        assert window.items == [
            e for e in everything if e.recorded_at >= low and (high is None or e.recorded_at < high)
        ]
    later = times[-1] + timedelta(seconds=1)
    assert (await audit_trail(pool, recorded_from=later)).items == []
    assert len((await audit_trail(pool, recorded_to=later, first=500)).items) == len(everything)


async def test_a_redelivered_event_is_never_applied_twice(
    app: Application, live: LiveSystem, pool: asyncpg.Pool, subject_prefix: str
) -> None:
    story = Story(app)
    head = await story.tell()
    assert await wait_for_position(pool, head, 20)
    before = {p.name: await table_rows(pool, p) for p in PROJECTIONS.values()}
    assert live.nc is not None
    js = live.nc.jetstream()
    stream = f"{subject_prefix.upper()}_EVENTS"
    info = await js.stream_info(stream)
    # Store every event a second time, as JetStream redelivers after a lost ack.
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, sequence)
        headers = {k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-")}
        headers[HEADER_MSG_ID] = f"again-{sequence}"
        assert msg.subject is not None
        assert msg.data is not None
        await js.publish(msg.subject, msg.data, headers=headers)
    audit = live.runners["audit"]
    await eventually(lambda: audit.stats.skipped >= info.state.messages, within=10)
    after = {p.name: await table_rows(pool, p) for p in PROJECTIONS.values()}
    assert after == before


async def test_a_deleted_consumer_is_recreated_at_the_checkpoint(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    story = Story(app)
    head = await story.tell()
    assert await wait_for_position(pool, head, 20)
    risks = live.runners["risks"]
    restarts = risks.stats.resyncs + risks.stats.failures
    assert live.nc is not None
    # An operator deletes it: a pull waiting on it is told, a later pull gets no answer
    # at all (the puller then looks); either way it is recreated.
    await live.nc.jetstream().delete_consumer(stream_name(live.prefix), risks.durable)
    result = await app.handle(
        AssessRisk(risk_id=story.r1, probability=2, impact=2), CommandContext(actor="olga")
    )
    assert await wait_for_position(pool, result.last_position, 20, ["risks"])
    assert risks.stats.resyncs + risks.stats.failures > restarts
    risk = await get_risk(pool, story.r1)
    assert risk is not None
    assert risk.score == 4


async def test_a_poison_event_stops_its_projections_and_is_reported(
    app: Application,
    live: LiveSystem,
    pool: asyncpg.Pool,
    store: PostgresEventStore,
    pg_url: str,
) -> None:
    story = Story(app)
    head = await story.tell()
    assert await wait_for_position(pool, head, 20)
    # An event decide() never makes: a milestone nobody planned. evolve() refuses it.
    bad = await store.append(
        f"program-{story.program}",
        ExpectedVersion.ANY,
        [
            MilestoneRescheduled(
                program_id=story.program,
                milestone_id=uuid4(),
                forecast_date=date(2027, 5, 1),
                reason="?",
            )
        ],
        EventMetadata(actor="mallory", program_id=story.program),
    )
    after = await app.handle(
        AssessRisk(risk_id=story.r1, probability=5, impact=5), CommandContext(actor="olga")
    )
    stopping = {"programs", "milestones", "decisions", "audit", "schedule", "portfolios"}
    # The others get past it, including those that handle neither event (only their
    # checkpoint moves), so what the watch reports behind is only what stopped.
    healthy = sorted(set(live.runners) - stopping)
    assert await wait_for_position(pool, after.last_position, 10, healthy)
    assert not await wait_for_position(pool, after.last_position, 10)  # fails fast, not at 10s
    # The API's watch says the same, and names the projections that will not get there.
    watch = ProgressWatch(
        pool, functools.partial(connect, pg_url, store.schema), schema=store.schema
    )
    try:
        fine = await watch.wait(after.last_position, 10, healthy)
        stopped = await watch.wait(after.last_position, 10)  # at once, not at 10 s
    finally:
        await watch.close()
    assert fine.caught_up
    assert set(stopped.behind) == stopping

    status = {s.name: s for s in await projection_status(pool)}
    for name in ("programs", "milestones", "decisions", "audit"):
        failed = status[name]
        assert (failed.state, failed.position) == ("failed", bad.last_position - 1)
        assert (failed.failed_position, failed.failed_event_type) == (
            bad.last_position,
            "MilestoneRescheduled",
        )
        assert failed.error is not None
        assert "InconsistentHistory" in failed.error
        assert live.runners[name].state is RunnerState.FAILED
    assert status["risks"].state == "running"
    assert status["risks"].lag_positions == 0
    risk = await get_risk(pool, story.r1)
    assert risk is not None
    assert risk.score == 25
    programs = await get_program(pool, story.program)
    assert programs is not None
    assert programs.open_risks_critical == 1  # stopped before

    with pytest.raises(RebuildFailed, match="MilestoneRescheduled"):
        await rebuild(pool, live.store, "milestones", progress=False)
    # Met by one of the worker processes of a rebuild in shares: reported the same way,
    # and nothing half built is left behind.
    for name in ("programs", "audit"):
        with pytest.raises(RebuildFailed, match="MilestoneRescheduled") as refused:
            await rebuild(pool, live.store, name, progress=False, workers=2, database_url=pg_url)
        assert refused.value.poison.position == bad.last_position
        assert await pool.fetchval("SELECT to_regclass($1)", f"rm_{name}__rebuild") is None
    # Cleared without a fix, the runner tries the same event again and stops again.
    assert await clear_failure(pool, "milestones")

    async def failed_again() -> bool:
        [again] = await projection_status(pool, ["milestones"])
        return again.state == "failed" and again.failed_position == bad.last_position

    await eventually(failed_again, within=10)


def _active(runner: ProjectionRunner) -> bool:
    return runner.state is RunnerState.ACTIVE


async def test_one_runner_is_active_and_a_standby_takes_over(
    app: Application,
    store: PostgresEventStore,
    pg_url: str,
    nats_url: str,
    subject_prefix: str,
    pool: asyncpg.Pool,
) -> None:
    risks = PROJECTIONS["risks"]
    async with LiveSystem(store, pg_url, nats_url, subject_prefix, [risks]) as system:
        first = system.runners["risks"]
        await eventually(lambda: _active(first))
        second = system.start(risks)
        await asyncio.sleep(0.5)
        assert second.state is RunnerState.STANDBY
        risk = uuid4()
        story = Story(app)
        await story.do("propose", _proposal(story.program))
        result = await story.do(
            "risk",
            IdentifyRisk(
                risk_id=risk,
                program_id=story.program,
                title="t",
                category=RiskCategory.OTHER,
                probability=1,
                impact=1,
                owner="o",
            ),
        )
        assert await wait_for_position(pool, result.last_position, 10, ["risks"])
        first.stop()
        await eventually(lambda: _active(second), within=10)
        result = await story.do("assess", AssessRisk(risk_id=risk, probability=3, impact=3))
        assert await wait_for_position(pool, result.last_position, 10, ["risks"])
        assessed = await get_risk(pool, risk)
        assert assessed is not None
        assert assessed.score == 9
        await eventually(lambda: second.stats.applied == 1)


async def test_lag_shows_positions_and_seconds_behind(
    app: Application,
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    pg_url: str,
    nats_url: str,
    subject_prefix: str,
) -> None:
    story = Story(app)
    head = await story.tell()
    await settled(store)
    status = {s.name: s for s in await projection_status(pool)}
    assert status["audit"].state == "idle"
    assert status["audit"].lag_positions == head
    await asyncio.sleep(0.05)
    [audit] = await projection_status(pool, ["audit"])
    assert audit.lag_seconds >= 0.05
    assert not await wait_for_position(pool, head, 0.2)
    async with LiveSystem(store, pg_url, nats_url, subject_prefix):
        assert await wait_for_position(pool, head, 20)
        caught_up = await projection_status(pool)
    assert all(s.lag_positions == 0 and s.lag_seconds == 0.0 for s in caught_up)
    assert {s.state for s in await projection_status(pool)} == {"stopped"}


@pytest.mark.parametrize("analyzed", [False, True], ids=["unanalyzed", "analyzed"])
async def test_status_reads_a_few_events_however_many_are_stored(
    event_store: PostgresEventStore, pool: asyncpg.Pool, analyzed: bool
) -> None:
    """``/ready``, ``/metrics`` and read-your-writes ask for it every few seconds: one
    event for the head and one per projection for its oldest unread, not a pass over the
    log."""
    written = await append_notes(event_store, writers=4, appends=50, per_append=10)
    await settled(event_store)
    if analyzed:
        await pool.execute("ANALYZE events")
    names = list(PROJECTIONS)
    async with pool.acquire() as conn:
        read = await rows_read(conn, _STATUS_SQL, names, relation="events")
    assert read <= 1 + len(names), f"the status read {read} of {written} events"
    status = await projection_status(pool)
    assert {(s.head_position, s.lag_positions) for s in status} == {(written, written)}


def _proposal(program_id: UUID) -> ProposeProgram:
    return ProposeProgram(
        program_id=program_id,
        code=f"PR{uuid4().hex[:6].upper()}",
        name="n",
        objective="o",
        sponsor="s",
        owner="o",
        priority=3,
        start_date=TODAY,
        target_end_date=TODAY,
        planned_budget=Money(amount_minor=1, currency="EUR"),
    )


async def _propose(app: Application) -> int:
    """A new program (each its own stream): where its events end."""
    result = await app.handle(_proposal(uuid4()), CommandContext(actor="tom"))
    return result.last_position


async def test_a_trickle_of_events_is_written_once_per_commit_interval(
    app: Application, store: PostgresEventStore, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    """Events that arrive one by one are gathered for ``commit_interval``: the runner
    commits a few times a second, not once per event, and applies every event."""
    interval, programs = 0.25, 30
    async with LiveSystem(
        store, pg_url, nats_url, subject_prefix, [PROJECTIONS["programs"]], commit_interval=interval
    ) as system:
        runner = system.runners["programs"]
        await eventually(lambda: runner.state is RunnerState.ACTIVE)
        started = time.monotonic()
        last = 0
        for _ in range(programs):
            last = await _propose(app)
            await asyncio.sleep(0.04)
        await eventually(lambda: runner.position >= last, within=20)
        took = time.monotonic() - started
    most = math.ceil(took / interval) + 2
    assert runner.stats.applied == programs
    assert runner.stats.batches <= most, f"{runner.stats.batches} commits in {took:.2f} s"


async def test_a_wait_for_a_time_asks_the_store_only_when_the_read_models_lag(
    app: Application,
    store: PostgresEventStore,
    pg_url: str,
    nats_url: str,
    subject_prefix: str,
) -> None:
    """A read as of a time waits for the last position recorded then. Finding it takes a
    query, which a watch that saw the read models reach every append it heard of does
    not need: it then answers with no connection at all."""
    pool = await create_pool(pg_url, store.schema, min_size=1, max_size=1)
    watch = ProgressWatch(
        pool,
        functools.partial(connect, pg_url, store.schema),
        schema=store.schema,
        events_channel=store.notify_channel,
    )
    try:
        before = datetime.now(UTC)
        written = await _propose(app)
        # No runner yet: the position recorded by now is found, waited for, not reached.
        lagging = await watch.wait(datetime.now(UTC), 0.5, ["programs"])
        assert lagging.behind == ("programs",)
        # Nothing was recorded before the write: nothing to wait for.
        assert (await watch.wait(before, 0.5, ["programs"])).caught_up
        async with LiveSystem(store, pg_url, nats_url, subject_prefix, [PROJECTIONS["programs"]]):
            assert (await watch.wait(written, 20, ["programs"], committed=True)).caught_up
            await pool.close()
            assert (await watch.wait(datetime.now(UTC), 0.5, ["programs"])).caught_up
    finally:
        await watch.close()
        await pool.close()


@pytest.mark.parametrize("reader", ["wait_for_position", "ProgressWatch"])
async def test_a_reader_waiting_for_a_position_cuts_the_commit_interval_short(
    app: Application,
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    pg_url: str,
    nats_url: str,
    subject_prefix: str,
    reader: str,
) -> None:
    """Gathering a trickle must not cost read-your-writes: a reader that waits for a
    position (a tool's ``wait_for_position``, the API's ``ProgressWatch``) says so, and
    the runner commits what it has at once."""
    interval = 5.0
    watch = ProgressWatch(
        pool, functools.partial(connect, pg_url, store.schema), schema=store.schema
    )

    async def waited(position: int) -> bool:
        if reader == "wait_for_position":
            return await wait_for_position(pool, position, 20, ["programs"])
        outcome = await watch.wait(position, 20, ["programs"], committed=True)
        return outcome.caught_up

    async def checkpoint() -> int:
        [status] = await projection_status(pool, ["programs"])
        return status.position

    async with LiveSystem(
        store, pg_url, nats_url, subject_prefix, [PROJECTIONS["programs"]], commit_interval=interval
    ) as system:
        runner = system.runners["programs"]
        await eventually(lambda: runner.state is RunnerState.ACTIVE)
        first = await _propose(app)
        await eventually(lambda: runner.position >= first, within=20)  # at once: the first
        gathered = await _propose(app)
        await asyncio.sleep(1.0)
        assert await checkpoint() < gathered  # held for the interval: nobody waits
        started = time.monotonic()
        try:
            assert await waited(gathered)
        finally:
            await watch.close()
        assert time.monotonic() - started < interval / 2
