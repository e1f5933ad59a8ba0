"""The schedule network on real PostgreSQL and NATS: concurrent links that together would
close a cycle across programs, the schedule read model as of any position against the
computation over the events up to it, and change control through to baselines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
import pytest_asyncio

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.commands import Command, CommandContext, CommandResult
from programledger.application.handlers import Application
from programledger.domain import program, schedule
from programledger.domain.errors import ScheduleCycle, ValidationError
from programledger.domain.program import (
    ActivateProgram,
    ApproveChangeRequest,
    AssessChangeRequest,
    MilestoneDate,
    PlanMilestone,
    Program,
    ProposeProgram,
    RaiseChangeRequest,
    RescheduleMilestone,
    SetMilestoneDuration,
)
from programledger.domain.schedule import LinkMilestones, MilestoneRef, ScheduleLink
from programledger.domain.scheduling import (
    Activity,
    Analysis,
    Edge,
    LinkType,
    Network,
    analyse,
)
from programledger.domain.values import Money
from programledger.projections.engine.status import wait_for_position
from programledger.projections.schedule import baselines, change_requests, date_moves, read_schedule
from tests.support.projection_process import LiveSystem, app_store

START = date(2027, 1, 4)


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


async def run(app: Application, command: Command, actor: str = "tom") -> CommandResult:
    return await app.handle(command, CommandContext(actor=actor))


async def new_program(
    app: Application, milestones: dict[str, date]
) -> tuple[UUID, dict[str, UUID]]:
    pid = uuid4()
    await run(
        app,
        ProposeProgram(
            program_id=pid,
            code=f"P{uuid4().hex[:8].upper()}",
            name="Program",
            objective="Ship",
            sponsor="Dana",
            owner="Tom",
            priority=1,
            start_date=START,
            target_end_date=date(2027, 12, 31),
            planned_budget=Money(amount_minor=100_000_00, currency="EUR"),
        ),
    )
    await run(app, ActivateProgram(program_id=pid))
    ids = {}
    for name, due in milestones.items():
        ids[name] = uuid4()
        await run(
            app, PlanMilestone(program_id=pid, milestone_id=ids[name], name=name, due_date=due)
        )
    return pid, ids


def link(
    pred: tuple[UUID, UUID],
    succ: tuple[UUID, UUID],
    type_: LinkType = LinkType.FINISH_TO_START,
    lag: int = 0,
) -> ScheduleLink:
    return ScheduleLink(
        link_id=uuid4(),
        predecessor=MilestoneRef(program_id=pred[0], milestone_id=pred[1]),
        successor=MilestoneRef(program_id=succ[0], milestone_id=succ[1]),
        type=type_,
        lag_days=lag,
    )


async def test_concurrent_links_that_together_close_a_cycle_across_programs(
    app: Application,
) -> None:
    """With a -> k recorded, k -> b (on program 2's side) and b -> a (program 1's) are
    each acyclic alone and close a -> k -> b -> a together. Sent at once, both decide on
    the network at the same version; the store lets one append through, the other is
    decided again on the network holding the first, and refused naming the cycle."""
    for _ in range(3):
        p1, a = await new_program(app, {"a": date(2027, 3, 1), "b": date(2027, 4, 1)})
        p2, k = await new_program(app, {"k": date(2027, 3, 15)})
        await run(app, LinkMilestones(links=(link((p1, a["a"]), (p2, k["k"])),)))
        outcomes = await asyncio.gather(
            run(app, LinkMilestones(links=(link((p2, k["k"]), (p1, a["b"])),))),
            run(app, LinkMilestones(links=(link((p1, a["b"]), (p1, a["a"])),))),
            return_exceptions=True,
        )
        assert sum(isinstance(o, CommandResult) for o in outcomes) == 1, outcomes
        cycles = [o for o in outcomes if isinstance(o, ScheduleCycle)]
        assert len(cycles) == 1, outcomes
        assert {m for _, m in cycles[0].cycle} == {a["a"], a["b"], k["k"]}
        assert {p for p, _ in cycles[0].cycle} == {p1, p2}
    final = (await app.load_schedule()).state
    assert final is not None
    assert len(final.links) == 6
    # Building the arithmetic's network refuses a cyclic one: the stored one is not.
    edges = [
        Edge(x.predecessor.milestone_id, x.successor.milestone_id, x.type, 0) for x in final.links
    ]
    nodes = {e.predecessor for e in edges} | {e.successor for e in edges}
    Network.build([Activity(n, "P", START) for n in nodes], edges)


async def test_links_must_name_milestones_that_exist(app: Application) -> None:
    p1, a = await new_program(app, {"a": date(2027, 3, 1)})
    with pytest.raises(ValidationError) as refused:
        await run(
            app,
            LinkMilestones(
                links=(link((p1, a["a"]), (p1, uuid4())), link((uuid4(), uuid4()), (p1, a["a"])))
            ),
        )
    assert [i.path for i in refused.value.issues] == [
        "links[0].successor.milestone_id",
        "links[1].predecessor.program_id",
    ]
    assert (await app.load_schedule()).state is None


def _computed(
    programs: dict[UUID, Program], network: schedule.ScheduleNetwork | None
) -> Network[UUID]:
    activities = [
        Activity(
            m.milestone_id,
            p.program_id,
            m.forecast_date,
            m.duration_days,
            m.status is program.MilestoneStatus.DONE,
        )
        for p in programs.values()
        for m in p.milestones
    ]
    edges = [
        Edge(x.predecessor.milestone_id, x.successor.milestone_id, x.type, x.lag_days)
        for x in (network.links if network is not None else ())
    ]
    return Network.build(activities, edges)


async def _fold_up_to(store: PostgresEventStore, position: int) -> Network[UUID]:
    programs: dict[UUID, Program] = {}
    network: schedule.ScheduleNetwork | None = None
    after = 0
    while True:
        records = await store.read_all(after, 500)
        for r in records:
            if r.position > position:
                return _computed(programs, network)
            if r.stream_type == "program":
                pid = r.data.program_id  # type: ignore[attr-defined]
                programs[pid] = program.evolve(programs.get(pid), r.data)  # type: ignore[arg-type]
            elif r.stream_type == "schedule":
                network = schedule.evolve(network, r.data)  # type: ignore[arg-type]
        if not records:
            return _computed(programs, network)
        after = records[-1].position


def _shape(a: Analysis[UUID]) -> Any:
    return (a.end, a.finish, a.critical_path, a.timings)


async def test_the_critical_path_as_of_a_position_is_the_computation_over_the_events_up_to_it(
    app: Application, store: PostgresEventStore, pool: asyncpg.Pool, live: LiveSystem
) -> None:
    pay, m = await new_program(
        app, {"design": date(2027, 2, 1), "build": date(2027, 4, 1), "launch": date(2027, 6, 1)}
    )
    kyc, k = await new_program(app, {"vendor": date(2027, 3, 1), "rules": date(2027, 4, 15)})
    await run(
        app,
        LinkMilestones(
            links=(
                link((pay, m["design"]), (pay, m["build"]), lag=5),
                link((pay, m["build"]), (pay, m["launch"]), LinkType.FINISH_TO_START, 10),
                link((kyc, k["vendor"]), (kyc, k["rules"])),
                link((kyc, k["rules"]), (pay, m["launch"]), LinkType.FINISH_TO_FINISH, 30),
            )
        ),
    )
    await run(app, SetMilestoneDuration(program_id=pay, milestone_id=m["launch"], duration_days=20))
    marks: list[int] = []
    slip = await run(
        app,
        RescheduleMilestone(
            program_id=kyc,
            milestone_id=k["vendor"],
            forecast_date=date(2027, 5, 20),
            reason="Vendor contract signed late",
        ),
        actor="olga",
    )
    marks.append(slip.last_position)
    later = await run(
        app,
        RescheduleMilestone(
            program_id=pay,
            milestone_id=m["build"],
            forecast_date=date(2027, 7, 1),
            reason="Team moved to an incident",
        ),
    )
    marks.append(later.last_position)
    assert await wait_for_position(pool, later.last_position, 60, ["schedule"])
    for position in (marks[0] - 1, *marks):
        read = await read_schedule(pool, position)
        expected = await _fold_up_to(store, position)
        for groups in ([pay], [kyc], [pay, kyc], None):
            assert _shape(analyse(read.network, groups)) == _shape(analyse(expected, groups))
    first = analyse((await read_schedule(pool, marks[0])).network, [pay])
    # vendor 05-20 -> rules 05-20 -> launch FF +30 = 06-19 beats build 04-01+10+20
    assert first.critical_path == (k["vendor"], k["rules"], m["launch"])
    assert first.finish == date(2027, 6, 19)
    moves = await date_moves(pool, [(kyc, k["vendor"])], marks[0])
    assert moves[k["vendor"]].actor == "olga"
    assert moves[k["vendor"]].reason == "Vendor contract signed late"
    now = analyse((await read_schedule(pool)).network, [pay])
    assert now.critical_path == (m["build"], m["launch"])  # 07-01 + 10 + 20 = 07-31
    assert now.finish == date(2027, 7, 31)


async def test_an_approved_change_request_sets_a_baseline_and_keeps_the_original(
    app: Application, pool: asyncpg.Pool, live: LiveSystem
) -> None:
    pid, m = await new_program(app, {"pilot": date(2027, 6, 30)})
    cr = uuid4()
    await run(
        app,
        RaiseChangeRequest(
            program_id=pid,
            change_request_id=cr,
            title="3DS2",
            description="Regulator",
            raised_by="Tom",
            schedule_impact=(MilestoneDate(milestone_id=m["pilot"], day=date(2027, 8, 31)),),
            budget_impact=Money(amount_minor=5_000_00, currency="EUR"),
            scope_added=("3-D Secure 2",),
        ),
    )
    await run(
        app,
        AssessChangeRequest(
            program_id=pid, change_request_id=cr, assessed_by="Priya", assessment="2 months"
        ),
    )
    before = await run(
        app,
        RescheduleMilestone(
            program_id=pid, milestone_id=m["pilot"], forecast_date=date(2027, 7, 15), reason="r"
        ),
    )
    done = await run(
        app,
        ApproveChangeRequest(
            program_id=pid,
            change_request_id=cr,
            decided_by="Dana",
            reason="Regulatory",
            baseline_name="After SCA",
        ),
    )
    assert await wait_for_position(pool, done.last_position, 60, ["schedule", "milestones"])
    kept = await baselines(pool, pid)
    assert [(b.version, b.name) for b in kept] == [(0, "Original plan"), (1, "After SCA")]
    assert kept[0].dates == {m["pilot"]: date(2027, 6, 30)}
    assert kept[1].dates == {m["pilot"]: date(2027, 8, 31)}
    assert kept[1].budget_minor == 105_000_00
    assert kept[1].scope == ["3-D Secure 2"]
    assert await baselines(pool, pid, before.last_position) == []
    requests = await change_requests(pool, pid)
    assert [(r.status, r.baseline_version) for r in requests] == [("APPROVED", 1)]
    assert [r.status for r in await change_requests(pool, pid, before.last_position)] == [
        "ASSESSED"
    ]
    read = await read_schedule(pool)
    assert read.milestones[m["pilot"]].baseline_date == date(2027, 8, 31)
