"""The demo portfolio: every status the domain has, written once however often it runs."""

from __future__ import annotations

from typing import get_args

import pytest

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.demo import DEMO_PROGRAMS, DEMO_SCENARIOS, load_demo, story
from programledger.application.handlers import Application
from programledger.application.registry import application_registry
from programledger.domain.assumption import (
    AssumptionStatus,
    InvalidateAssumption,
    RecordAssumption,
)
from programledger.domain.capacity import Allocation, AllocationStatus
from programledger.domain.events import EventRegistry
from programledger.domain.issue import IssueCommand, IssueStatus
from programledger.domain.objective import ObjectiveStatus
from programledger.domain.portfolio import PortfolioStatus
from programledger.domain.program import (
    DependencyStatus,
    MilestoneStatus,
    Program,
    ProgramMovedToPortfolio,
    ProgramStatus,
    slip_days,
)
from programledger.domain.report import ReportStatus
from programledger.domain.resource import AllocationConfirmed, Resource
from programledger.domain.risk import Risk, RiskCommand, RiskStatus, RoamStatus
from programledger.domain.scenario import ScenarioStatus
from programledger.domain.scheduling import Activity, Edge, Network, analyse


@pytest.fixture
def registry() -> EventRegistry:
    return application_registry()


async def _all_events(store: PostgresEventStore) -> int:
    """Counted directly: the global read waits for every older transaction on the cluster,
    which another suite on a shared server may hold open."""
    async with store.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM events"))


async def test_running_the_demo_twice_records_it_once(event_store: PostgresEventStore) -> None:
    app = Application(event_store)
    first = await load_demo(app)
    assert first.refused == 1, "the over-allocation without override is refused"
    assert first.replayed == 0
    assert first.recorded == first.steps - first.refused
    written = await _all_events(event_store)

    second = await load_demo(app)
    assert second.recorded == 0
    assert second.events == 0
    assert second.replayed == first.recorded
    assert second.refused == 1
    assert await _all_events(event_store) == written


async def test_the_portfolio_covers_every_status(event_store: PostgresEventStore) -> None:
    app = Application(event_store)
    await load_demo(app)

    programs: list[Program] = []
    for program_id in DEMO_PROGRAMS.values():
        found = (await app.load_program(program_id)).state
        assert found is not None
        programs.append(found)
    assert {p.status for p in programs} == set(ProgramStatus)
    milestones = [m for p in programs for m in p.milestones]
    assert {m.status for m in milestones} == set(MilestoneStatus)
    assert any(slip_days(m) > 0 for m in milestones), "some milestones slipped"
    dependencies = [d for p in programs for d in p.dependencies]
    assert {d.status for d in dependencies} == set(DependencyStatus)
    assert any(d.superseded_by is not None for p in programs for d in p.decisions)
    assert any(p.lessons for p in programs if p.status is ProgramStatus.COMPLETED)

    risk_ids = {s.command.risk_id for s in story() if isinstance(s.command, get_args(RiskCommand))}
    risk_ids |= {
        s.command.raise_risk.risk_id
        for s in story()
        if isinstance(s.command, InvalidateAssumption) and s.command.raise_risk is not None
    }
    risks: list[Risk] = []
    for risk_id in risk_ids:
        loaded = (await app.load_risk(risk_id)).state
        assert loaded is not None
        risks.append(loaded)
    assert {r.status for r in risks} == set(RiskStatus)
    assert any(r.escalation is not None for r in risks)
    assert {r.roam for r in risks} == {*RoamStatus, None}
    assert any(r.assumption_id is not None for r in risks), "raised by a false assumption"

    assumption_ids = {
        s.command.assumption_id for s in story() if isinstance(s.command, RecordAssumption)
    }
    assumptions = [(await app.load_assumption(a)).state for a in assumption_ids]
    assert {a.status for a in assumptions if a is not None} == set(AssumptionStatus)
    issue_ids = {
        s.command.issue_id for s in story() if isinstance(s.command, get_args(IssueCommand))
    }
    opened = [i for i in [(await app.load_issue(i)).state for i in issue_ids] if i is not None]
    assert len(opened) == 3
    assert {i.status for i in opened} == set(IssueStatus)
    assert any(i.risk_id is not None for i in opened), "linked to the risk it realises"
    assert any(i.assumption_id is not None for i in opened), "raised by a false assumption"
    assert any(i.escalation is not None for i in opened)

    keys = {s.command.resource_key for s in story() if hasattr(s.command, "resource_key")}
    allocations: list[Allocation] = []
    overrides: list[AllocationConfirmed] = []
    for key in keys:
        history = await app.history(f"resource-{key}")
        state = history[-1].state
        assert isinstance(state, Resource)
        allocations += list(state.allocations)
        overrides += [
            h.event.data
            for h in history
            if isinstance(h.event.data, AllocationConfirmed) and h.event.data.override_reason
        ]
    assert {a.status for a in allocations} == set(AllocationStatus)
    assert len(overrides) == 1
    assert overrides[0].over_allocation, "the override records what it overrode"


async def test_the_demo_schedule_crosses_programs_and_has_change_control(
    event_store: PostgresEventStore,
) -> None:
    app = Application(event_store)
    await load_demo(app)
    network = (await app.load_schedule()).state
    assert network is not None
    programs = {
        ref.program_id for link in network.links for ref in (link.predecessor, link.successor)
    }
    assert len(programs) == 4
    states = {p: (await app.load_program(p)).state for p in programs}
    activities = [
        Activity(m.milestone_id, p, m.forecast_date, m.duration_days, m.status.value == "DONE")
        for p, state in states.items()
        if state is not None
        for m in state.milestones
    ]
    edges = [
        Edge(x.predecessor.milestone_id, x.successor.milestone_id, x.type, x.lag_days)
        for x in network.links
    ]
    pay = DEMO_PROGRAMS["PAY-2027"]
    result = analyse(Network.build(activities, edges), [pay])
    timings = {t.key: t for t in result.timings}
    payments = states[pay]
    assert payments is not None
    pilot = next(m for m in payments.milestones if m.name == "Pilot merchants live")
    sso = next(
        m
        for m in states[DEMO_PROGRAMS["ID-2027"]].milestones  # type: ignore[union-attr]
        if m.name == "SSO for the merchant portal"
    )
    assert timings[pilot.milestone_id].forecast > pilot.forecast_date  # moved by the SSO
    assert timings[pilot.milestone_id].first_domino == sso.milestone_id
    assert sso.milestone_id in result.critical_path
    assert [b.name for b in payments.baselines] == ["Original plan", "Re-baseline for SCA"]
    assert sorted(r.status.value for r in payments.change_requests) == ["APPROVED", "REJECTED"]


async def test_the_demo_shows_status_reports_and_capacity_what_ifs(
    event_store: PostgresEventStore,
) -> None:
    app = Application(event_store)
    await load_demo(app)
    corrected = (await app.load_status_report(DEMO_PROGRAMS["PAY-2027"], "2026-W49")).state
    assert corrected is not None
    assert [p.revision for p in corrected.published] == [1, 2]
    draft = (await app.load_status_report(DEMO_PROGRAMS["PAY-2027"], "2026-W50")).state
    assert draft is not None
    assert draft.status is ReportStatus.DRAFT
    pilot = (await app.load_scenario(DEMO_SCENARIOS["pay-pilot"])).state
    assert pilot is not None
    assert pilot.status is ScenarioStatus.COMMITTED
    assert [o.accepted for o in pilot.outcomes] == [True, True, True]
    crunch = (await app.load_scenario(DEMO_SCENARIOS["identity-crunch"])).state
    assert crunch is not None
    assert crunch.status is ScenarioStatus.OPEN


async def test_the_demo_has_portfolios_and_objectives_with_key_results(
    event_store: PostgresEventStore,
) -> None:
    app = Application(event_store)
    await load_demo(app)

    portfolio_ids = {s.command.portfolio_id for s in story() if hasattr(s.command, "portfolio_id")}
    portfolios = [(await app.load_portfolio(p)).state for p in portfolio_ids if p is not None]
    assert {p.status for p in portfolios if p is not None} == set(PortfolioStatus)
    members = {
        code: (await app.load_program(program_id)).state
        for code, program_id in DEMO_PROGRAMS.items()
    }
    assert all(p is not None and p.portfolio_id is not None for p in members.values())
    history = await app.history(f"program-{DEMO_PROGRAMS['MOB-2027']}")
    moves = [h.event.data for h in history if isinstance(h.event.data, ProgramMovedToPortfolio)]
    assert len(moves) == 2, "the mobile app moved between portfolios"
    assert moves[1].from_portfolio_id == moves[0].to_portfolio_id

    objective_ids = {s.command.objective_id for s in story() if hasattr(s.command, "objective_id")}
    objectives = [(await app.load_objective(o)).state for o in objective_ids]
    assert {o.status for o in objectives if o is not None} == set(ObjectiveStatus)
    key_results = [k for o in objectives if o is not None for k in o.key_results]
    assert any(k.checked_on is not None for k in key_results)
    assert all(o is not None and o.program_ids for o in objectives)
