"""What the projection tests share: random valid histories, a running system, and a
projection worker as a process of its own.

- :func:`steps` draws command sequences over a few programs, risks and resources; each
  run maps their small numbers to fresh ids, so examples can share one store.
  :func:`run_steps` sends them through the real command handlers (the domain's
  ``decide`` refuses the invalid ones, which are skipped).
- :class:`LiveSystem` runs the relay and projection runners in the test's event loop.
- :func:`table_rows` reads every row version of a projection's tables, for row-for-row
  comparisons between live and rebuilt read models.
- Run as ``python -m tests.support.projection_process --pg URL --schema S --nats URL
  --prefix P`` it is a projection worker process that a fault test can SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from hypothesis import strategies as st
from nats.aio.client import Client as NatsClient

from programledger.adapters.codec import EventCodec
from programledger.adapters.nats import client as nats_client
from programledger.adapters.nats.relay import Relay, RelaySettings
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.commands import Command, CommandContext
from programledger.application.handlers import Application
from programledger.application.registry import application_registry
from programledger.bootstrap import runner_services
from programledger.bootstrap.supervisor import stop_on_signals, supervise
from programledger.domain.assumption import (
    Confidence,
    InvalidateAssumption,
    RecordAssumption,
    ValidateAssumption,
)
from programledger.domain.errors import DomainError
from programledger.domain.issue import (
    EscalateIssue,
    IssueSeverity,
    RaisedIssue,
    RaiseIssue,
    ReopenIssue,
    ResolveIssue,
)
from programledger.domain.objective import (
    AddKeyResult,
    CheckInKeyResult,
    CloseObjective,
    DefineObjective,
    LinkObjectiveToProgram,
    UnlinkObjectiveFromProgram,
)
from programledger.domain.portfolio import ArchivePortfolio, CreatePortfolio, ReopenPortfolio
from programledger.domain.program import (
    ActivateProgram,
    AddStakeholder,
    AddWorkstream,
    AllocateBudget,
    CancelProgram,
    ChangeDependencyNeededBy,
    ClearMilestoneRisk,
    CompleteMilestone,
    CompleteProgram,
    ExternalTarget,
    FlagDependencyAtRisk,
    FlagMilestoneAtRisk,
    Health,
    ItemKind,
    ItemRef,
    MarkMilestoneMissed,
    MoveProgramToPortfolio,
    PlanMilestone,
    ProgramItemTarget,
    ProposeProgram,
    PutProgramOnHold,
    RaciRole,
    RecordDecision,
    RecordLesson,
    RegisterDependency,
    ReopenDependency,
    ReportActualSpend,
    ReportProgramHealth,
    RescheduleMilestone,
    ResolveDependency,
    ResumeProgram,
    ReviseBudgetAllocation,
    RevisePlannedBudget,
    SupersedeDecision,
    UpdateProgramDetails,
)
from programledger.domain.report import (
    CorrectStatusReport,
    DraftStatusReport,
    EditStatusReport,
    PublishStatusReport,
    ReportFacts,
    propose,
)
from programledger.domain.resource import (
    AdjustAllocation,
    ChangeCapacity,
    ConfirmAllocation,
    ProposeAllocation,
    RegisterResource,
    ReleaseAllocation,
)
from programledger.domain.risk import (
    AcceptRisk,
    AssessRisk,
    ChangeRiskRoam,
    CloseRisk,
    EscalateRisk,
    IdentifyRisk,
    RaisedRisk,
    ReopenRisk,
    ReportRiskMaterialised,
    ResponseStrategy,
    ReviewRisk,
    RiskCategory,
    RoamStatus,
    StartMitigation,
    UpdateRiskDetails,
)
from programledger.domain.scenario import (
    AddScenarioAllocation,
    AddScenarioCapacityChange,
    CommitScenario,
    CreateScenario,
    DiscardScenario,
    RemoveScenarioChange,
)
from programledger.domain.values import Department, Money, PartyKind
from programledger.projections.engine.core import Projection
from programledger.projections.engine.runner import ProjectionRunner, RunnerSettings
from programledger.projections.registry import PROJECTIONS
from tests.support.relay_process import fast_settings

__all__ = [
    "Ids",
    "LiveSystem",
    "ProjectionProcess",
    "Step",
    "app_store",
    "busy_history",
    "fast_runner_settings",
    "run_steps",
    "steps",
    "table_rows",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY0 = date(2027, 1, 1)

Step = tuple[Any, ...]
"""``(kind, *small numbers)``; readable in hypothesis' failure reports."""


def fast_runner_settings(prefix: str, **overrides: Any) -> RunnerSettings:
    """Short waits, so that idle checks, resyncs and takeovers happen within a test."""
    base = RunnerSettings(
        prefix=prefix,
        batch_size=100,
        fetch_wait=0.1,
        idle_check_interval=0.2,
        standby_poll_interval=0.1,
        retry_initial=0.05,
        retry_max=0.5,
    )
    return replace(base, **overrides)


def app_store(pool: asyncpg.Pool, schema: str) -> PostgresEventStore:
    """A store that reads every stored event type (the application's program codes too)."""
    return PostgresEventStore(pool, EventCodec(application_registry()), schema=schema)


# --- random histories ---------------------------------------------------------------------


class Ids:
    """Fresh ids for the small numbers of one run's steps."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, int], uuid.UUID] = {}

    def __call__(self, kind: str, n: int) -> uuid.UUID:
        return self._ids.setdefault((kind, n), uuid.uuid4())

    def used(self, kind: str) -> list[uuid.UUID]:
        return [value for (k, _), value in self._ids.items() if k == kind]

    def code(self, n: int) -> str:
        return "T" + self("program", n).hex[:9].upper()

    def key(self, n: int) -> str:
        return f"r{self('resource', n).hex[:10]}"

    def resource_keys(self) -> list[str]:
        """The resource keys used."""
        return [f"r{value.hex[:10]}" for value in self.used("resource")]


def _day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def _eur(amount: int) -> Money:
    return Money(amount_minor=amount, currency="EUR")


_P, _M, _R, _A, _S = (
    st.integers(0, 1),
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(0, 3),
    st.integers(0, 1),
)
_DAYS, _LEVEL = st.integers(0, 240), st.integers(1, 5)


def _program_steps() -> st.SearchStrategy[Step]:
    return st.one_of(
        st.tuples(st.just("activate"), _P),
        st.tuples(st.just("hold"), _P),
        st.tuples(st.just("resume"), _P),
        st.tuples(st.just("complete"), _P),
        st.tuples(st.just("cancel"), _P),
        st.tuples(st.just("details"), _P, _LEVEL, st.integers(0, 2)),
        st.tuples(st.just("health"), _P, st.sampled_from(list(Health))),
        st.tuples(st.just("workstream"), _P, st.integers(0, 1)),
        st.tuples(st.just("stakeholder"), _P, st.integers(0, 2), st.sampled_from(list(RaciRole))),
        st.tuples(st.just("milestone"), _P, _M, _DAYS, st.none() | st.integers(0, 1)),
        st.tuples(st.just("reschedule"), _P, _M, _DAYS),
        st.tuples(st.just("flag_milestone"), _P, _M),
        st.tuples(st.just("clear_milestone"), _P, _M),
        st.tuples(st.just("complete_milestone"), _P, _M, _DAYS),
        st.tuples(st.just("miss_milestone"), _P, _M),
        st.tuples(st.just("dependency"), _P, st.integers(0, 1), _M, st.booleans()),
        st.tuples(st.just("dependency_at_risk"), _P, st.integers(0, 1)),
        st.tuples(st.just("resolve"), _P, st.integers(0, 1)),
        st.tuples(st.just("reopen_dependency"), _P, st.integers(0, 1)),
        st.tuples(st.just("needed_by"), _P, st.integers(0, 1), _DAYS),
        st.tuples(st.just("decision"), _P, st.integers(0, 2)),
        st.tuples(st.just("supersede"), _P, st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.just("budget"), _P, st.integers(0, 1), st.integers(0, 600_000)),
        st.tuples(st.just("revise_budget"), _P, st.integers(0, 1), st.integers(0, 600_000)),
        st.tuples(st.just("plan"), _P, st.integers(0, 2_000_000)),
        st.tuples(st.just("spend"), _P, st.integers(0, 900_000), _DAYS),
        st.tuples(st.just("lesson"), _P, st.integers(0, 1)),
    )


def _risk_steps() -> st.SearchStrategy[Step]:
    return st.one_of(
        st.tuples(st.just("identify"), _R, _P, _LEVEL, _LEVEL, st.none() | _DAYS),
        st.tuples(st.just("assess"), _R, _LEVEL, _LEVEL),
        st.tuples(st.just("mitigate"), _R, _DAYS),
        st.tuples(st.just("accept"), _R),
        st.tuples(st.just("materialise"), _R, _DAYS),
        st.tuples(st.just("escalate"), _R),
        st.tuples(st.just("close"), _R),
        st.tuples(st.just("reopen"), _R),
        st.tuples(st.just("review"), _R, _DAYS, st.integers(0, 30)),
        st.tuples(st.just("risk_owner"), _R, st.integers(0, 2)),
        st.tuples(st.just("roam"), _R, st.sampled_from(list(RoamStatus))),
        st.tuples(st.just("materialise_issue"), _R, _DAYS, st.integers(0, 2)),
    )


def _raid_steps() -> st.SearchStrategy[Step]:
    """Assumptions and issues: a false assumption raises a risk or an issue (ids shared
    with the risk and issue steps, so raised items are worked on afterwards)."""
    return st.one_of(
        st.tuples(st.just("assume"), _R, _P, st.sampled_from(list(Confidence)), _DAYS),
        st.tuples(st.just("validate"), _R, _DAYS),
        st.tuples(st.just("invalidate"), _R, _DAYS, st.sampled_from(["risk", "issue", None]), _R),
        st.tuples(st.just("raise_issue"), st.integers(0, 2), _P, st.none() | _R),
        st.tuples(st.just("escalate_issue"), st.integers(0, 2)),
        st.tuples(st.just("resolve_issue"), st.integers(0, 2), _DAYS),
        st.tuples(st.just("reopen_issue"), st.integers(0, 2)),
    )


def _resource_steps() -> st.SearchStrategy[Step]:
    return st.one_of(
        st.tuples(st.just("allocate"), _S, _A, _P, _DAYS, st.integers(0, 60), st.integers(10, 100)),
        st.tuples(st.just("confirm"), _S, _A, st.booleans()),
        st.tuples(st.just("adjust"), _S, _A, st.integers(10, 100), st.none() | _DAYS),
        st.tuples(st.just("release"), _S, _A),
        st.tuples(st.just("capacity"), _S, st.integers(40, 100), st.none() | _DAYS),
    )


_WEEK, _CHANGE = st.integers(0, 2), st.integers(0, 2)


def _report_and_scenario_steps() -> st.SearchStrategy[Step]:
    return st.one_of(
        st.tuples(st.just("draft_report"), _P, _WEEK, st.integers(0, 20)),
        st.tuples(st.just("edit_report"), _P, _WEEK, st.integers(0, 20)),
        st.tuples(st.just("publish_report"), _P, _WEEK),
        st.tuples(st.just("correct_report"), _P, _WEEK, st.integers(0, 20)),
        st.tuples(st.just("scenario"), _S),
        st.tuples(st.just("scenario_work"), _S, _CHANGE, _P, _DAYS, st.integers(10, 100)),
        st.tuples(st.just("scenario_capacity"), _S, _CHANGE, st.integers(40, 100)),
        st.tuples(st.just("scenario_remove"), _S, _CHANGE),
        st.tuples(st.just("scenario_commit"), _S),
        st.tuples(st.just("scenario_discard"), _S),
    )


def _portfolio_steps() -> st.SearchStrategy[Step]:
    return st.one_of(
        st.tuples(st.just("move"), _P, st.none() | st.integers(0, 1)),
        st.tuples(st.just("archive_portfolio"), st.integers(0, 1)),
        st.tuples(st.just("reopen_portfolio"), st.integers(0, 1)),
        st.tuples(st.just("objective"), st.integers(0, 1)),
        st.tuples(st.just("key_result"), st.integers(0, 1), st.integers(0, 1), _LEVEL),
        st.tuples(
            st.just("check_in"), st.integers(0, 1), st.integers(0, 1), st.integers(-5, 15), _DAYS
        ),
        st.tuples(st.just("link_objective"), st.integers(0, 1), _P),
        st.tuples(st.just("unlink_objective"), st.integers(0, 1), _P),
        st.tuples(st.just("close_objective"), st.integers(0, 1)),
    )


SETUP: tuple[Step, ...] = (
    ("portfolio", 0),
    ("portfolio", 1),
    ("propose", 0),
    ("propose", 1),
    ("activate", 0),
    ("register", 0, 100),
    ("register", 1, 80),
)


def steps(max_size: int = 40) -> st.SearchStrategy[list[Step]]:
    """Setup (two programs, two resources) followed by random steps of every kind."""
    any_step = st.one_of(
        _program_steps(),
        _risk_steps(),
        _raid_steps(),
        _resource_steps(),
        _portfolio_steps(),
        _report_and_scenario_steps(),
    )
    return st.lists(any_step, min_size=1, max_size=max_size).map(lambda s: [*SETUP, *s])


def busy_history(rounds: int) -> list[Step]:
    """A history in which nearly every step records an event: volume for fault tests."""
    history: list[Step] = [
        *SETUP,
        ("milestone", 0, 0, 10, None),
        ("identify", 0, 0, 2, 3, 5),
        ("allocate", 0, 0, 0, 0, 30, 50),
        ("confirm", 0, 0, False),
    ]
    for i in range(rounds):
        history += [
            ("health", 0, list(Health)[i % 3]),
            ("reschedule", 0, 0, 20 + i),
            ("assess", 0, 1 + i % 5, 1 + i // 5 % 5),
            ("adjust", 0, 0, 10 + i % 50, None),
            ("details", 0, 1 + i % 5, i % 3),
        ]
    return history


# Compact on purpose: one command per kind of step, each readable in a line or two.
# fmt: off
def _command(step: Step, ids: Ids) -> Command:
    kind, *a = step
    pid = ids("program", a[0])
    item = a[0] * 10 + (a[1] if len(a) > 1 and isinstance(a[1], int) else 0)
    m, d = ids("m", item), ids("d", item)
    match kind:
        case "propose":
            return ProposeProgram(program_id=pid, code=ids.code(a[0]), name=f"Program {a[0]}",
                                  objective="Ship it", sponsor="Dana", owner="user0", priority=2,
                                  start_date=DAY0, target_end_date=_day(365),
                                  planned_budget=_eur(1_000_000))
        case "activate":
            return ActivateProgram(program_id=pid)
        case "hold":
            return PutProgramOnHold(program_id=pid, reason="paused")
        case "resume":
            return ResumeProgram(program_id=pid)
        case "complete":
            return CompleteProgram(program_id=pid, reason="done")
        case "cancel":
            return CancelProgram(program_id=pid, reason="stopped")
        case "details":
            return UpdateProgramDetails(program_id=pid, priority=a[1], name=f"Name {a[2]}")
        case "health":
            return ReportProgramHealth(program_id=pid, health=a[1], summary="status")
        case "workstream":
            return AddWorkstream(program_id=pid, workstream_id=ids("ws", item), name=f"WS {a[1]}",
                                 lead="Lee", department=Department.ENGINEERING)
        case "stakeholder":
            return AddStakeholder(program_id=pid, stakeholder_id=ids("sh", a[1]), name="Sam",
                                  kind=PartyKind.PERSON, department=Department.LEGAL, role=a[2])
        case "milestone":
            ws = None if a[3] is None else ids("ws", a[0] * 10 + a[3])
            return PlanMilestone(program_id=pid, milestone_id=m, name=f"M{a[1]}",
                                 due_date=_day(a[2]), workstream_id=ws)
        case "reschedule":
            return RescheduleMilestone(program_id=pid, milestone_id=m, forecast_date=_day(a[2]),
                                       reason="slip")
        case "flag_milestone":
            return FlagMilestoneAtRisk(program_id=pid, milestone_id=m, reason="late vendor")
        case "clear_milestone":
            return ClearMilestoneRisk(program_id=pid, milestone_id=m)
        case "complete_milestone":
            return CompleteMilestone(program_id=pid, milestone_id=m, actual_date=_day(a[2]))
        case "miss_milestone":
            return MarkMilestoneMissed(program_id=pid, milestone_id=m, reason="missed")
        case "dependency":
            other = 1 - a[0]
            target = ExternalTarget(party="Vendor") if a[3] else ProgramItemTarget(
                program_id=ids("program", other), kind=ItemKind.MILESTONE,
                item_id=ids("m", other * 10 + a[2]))
            dependent = ItemRef(kind=ItemKind.MILESTONE, item_id=ids("m", a[0] * 10 + a[2]))
            return RegisterDependency(program_id=pid, dependency_id=d, title="needs",
                                      dependent=dependent, depends_on=target, needed_by=_day(100))
        case "dependency_at_risk":
            return FlagDependencyAtRisk(program_id=pid, dependency_id=d, reason="late")
        case "resolve":
            return ResolveDependency(program_id=pid, dependency_id=d, resolution="delivered")
        case "reopen_dependency":
            return ReopenDependency(program_id=pid, dependency_id=d, reason="broke")
        case "needed_by":
            return ChangeDependencyNeededBy(program_id=pid, dependency_id=d, needed_by=_day(a[2]),
                                            reason="replanned")
        case "decision":
            return RecordDecision(program_id=pid, decision_id=ids("dec", item), title="Use X",
                                  context="c", outcome="X", decided_by="Tom", decided_on=DAY0,
                                  alternatives=("Y",))
        case "supersede":
            return SupersedeDecision(program_id=pid, decision_id=ids("dec", item),
                                     supersedes=ids("dec", a[0] * 10 + a[2]), title="Use Z",
                                     context="c", outcome="Z", decided_by="Tom", decided_on=_day(5))
        case "budget":
            return AllocateBudget(program_id=pid, budget_allocation_id=ids("b", item),
                                  amount=_eur(a[2]), cost_centre="CC-1")
        case "revise_budget":
            return ReviseBudgetAllocation(program_id=pid, budget_allocation_id=ids("b", item),
                                          amount=_eur(a[2]), reason="revised")
        case "plan":
            return RevisePlannedBudget(program_id=pid, planned_budget=_eur(a[1]), reason="plan")
        case "spend":
            return ReportActualSpend(program_id=pid, amount=_eur(a[1]), as_of=_day(a[2]))
        case "lesson":
            return RecordLesson(program_id=pid, lesson_id=ids("l", item), what_happened="w",
                                learned="l")
    if kind in _PORTFOLIO_KINDS:
        return _portfolio_command(kind, a, ids)
    return _other_command(kind, a, ids)


def _other_command(kind: str, a: list[Any], ids: Ids) -> Command:
    rid = ids("risk", a[0])
    match kind:
        case "identify":
            review = None if a[4] is None else _day(a[4])
            return IdentifyRisk(risk_id=rid, program_id=ids("program", a[1]), title="Vendor",
                                category=RiskCategory.VENDOR, probability=a[2], impact=a[3],
                                owner="Olga", next_review_on=review)
        case "assess":
            return AssessRisk(risk_id=rid, probability=a[1], impact=a[2])
        case "mitigate":
            return StartMitigation(risk_id=rid, response_strategy=ResponseStrategy.MITIGATE,
                                   mitigation_plan="plan", mitigation_due_on=_day(a[1]))
        case "accept":
            return AcceptRisk(risk_id=rid, rationale="cheap", approved_by="Dana")
        case "materialise":
            return ReportRiskMaterialised(risk_id=rid, what_happened="it did",
                                          impact_description="bad", occurred_on=_day(a[1]))
        case "escalate":
            return EscalateRisk(risk_id=rid, escalated_to="CTO", reason="big")
        case "close":
            return CloseRisk(risk_id=rid, reason="over")
        case "reopen":
            return ReopenRisk(risk_id=rid, reason="back")
        case "review":
            return ReviewRisk(risk_id=rid, reviewed_on=_day(a[1]), next_review_on=_day(a[1] + a[2]))
        case "risk_owner":
            return UpdateRiskDetails(risk_id=rid, owner=f"Owner {a[1]}")
        case "roam":
            return ChangeRiskRoam(risk_id=rid, roam=a[1], reason="board")
        case "materialise_issue":
            return ReportRiskMaterialised(risk_id=rid, what_happened="it did",
                                          impact_description="bad", occurred_on=_day(a[1]),
                                          raise_issue=_raised_issue(ids, a[2], a[1]))
    return _raid_command(kind, a, ids)


def _raised_issue(ids: Ids, n: int, day: int) -> RaisedIssue:
    return RaisedIssue(issue_id=ids("issue", n), title=f"Issue {n}", severity=IssueSeverity.HIGH,
                       owner="Olga", due_on=_day(day + 14))


def _raid_command(kind: str, a: list[Any], ids: Ids) -> Command:
    aid, iid = ids("assumption", a[0]), ids("issue", a[0])
    match kind:
        case "assume":
            return RecordAssumption(assumption_id=aid, program_id=ids("program", a[1]),
                                    statement="The vendor delivers", owner="Priya",
                                    confidence=a[2], validate_by=_day(a[3]))
        case "validate":
            return ValidateAssumption(assumption_id=aid, evidence="seen", validated_on=_day(a[1]))
        case "invalidate":
            risk = None if a[2] != "risk" else RaisedRisk(
                risk_id=ids("risk", a[3]), title="Vendor", category=RiskCategory.VENDOR,
                probability=3, impact=3, owner="Olga")
            issue = _raised_issue(ids, a[3], a[1]) if a[2] == "issue" else None
            return InvalidateAssumption(assumption_id=aid, evidence="not so",
                                        invalidated_on=_day(a[1]), raise_risk=risk,
                                        raise_issue=issue)
        case "raise_issue":
            linked = None if a[2] is None else ids("risk", a[2])
            return RaiseIssue(issue_id=iid, program_id=ids("program", a[1]), title="Down",
                              severity=IssueSeverity.MEDIUM, owner="Olga", due_on=_day(30),
                              risk_id=linked)
        case "escalate_issue":
            return EscalateIssue(issue_id=iid, escalated_to="CTO", reason="big")
        case "resolve_issue":
            return ResolveIssue(issue_id=iid, resolution="fixed", resolved_on=_day(a[1]))
        case "reopen_issue":
            return ReopenIssue(issue_id=iid, reason="back")
    return _resource_command(kind, a, ids)


def _resource_command(kind: str, a: list[Any], ids: Ids) -> Command:
    key = ids.key(a[0])
    allocation = ids("a", a[0] * 10 + a[1]) if len(a) > 1 else ids("a", -1)
    match kind:
        case "register":
            return RegisterResource(resource_key=key, name=f"Res {a[0]}", kind=PartyKind.PERSON,
                                    department=Department.ENGINEERING, role="dev", capacity=a[1])
        case "allocate":
            return ProposeAllocation(resource_key=key, allocation_id=allocation,
                                     program_id=ids("program", a[2]), start_date=_day(a[3]),
                                     end_date=_day(a[3] + a[4]), percentage=a[5])
        case "confirm":
            return ConfirmAllocation(resource_key=key, allocation_id=allocation,
                                     override_reason="needed" if a[2] else None)
        case "adjust":
            if a[3] is None:
                return AdjustAllocation(resource_key=key, allocation_id=allocation,
                                        percentage=a[2], reason="change")
            return AdjustAllocation(resource_key=key, allocation_id=allocation, percentage=a[2],
                                    start_date=_day(a[3]), reason="change")
        case "release":
            return ReleaseAllocation(resource_key=key, allocation_id=allocation)
        case "capacity":
            since = None if a[2] is None else _day(a[2])
            return ChangeCapacity(resource_key=key, capacity=a[1], reason="hours",
                                  effective_from=since, override_reason="agreed")
    return _report_or_scenario_command(kind, a, ids)


def _report_or_scenario_command(kind: str, a: list[Any], ids: Ids) -> Command:
    """A status report of week ``2027-W0<1+n>`` (published when the step's actor is the
    owner, ``user0``) or a scenario's change; the content's RAGs follow from one number."""
    pid, week = ids("program", a[0]), f"2027-W0{1 + a[1]}" if len(a) > 1 else ""
    content = propose(ReportFacts(max_slip_days=a[2], open_issues=a[2] % 2)) if len(a) > 2 else None
    sid = ids("scenario", a[0])
    change = ids("change", a[0] * 10 + a[1]) if len(a) > 1 else ids("change", -1)
    match kind:
        case "draft_report" if content is not None:
            return DraftStatusReport(program_id=pid, period=week, content=content)
        case "edit_report" if content is not None:
            return EditStatusReport(program_id=pid, period=week, content=content)
        case "publish_report":
            return PublishStatusReport(program_id=pid, period=week)
        case "correct_report" if content is not None:
            return CorrectStatusReport(program_id=pid, period=week, content=content, reason="fix")
        case "scenario":
            return CreateScenario(scenario_id=sid, name=f"What if {a[0]}")
        case "scenario_work":
            return AddScenarioAllocation(scenario_id=sid, change_id=change, resource_key=ids.key(0),
                                         program_id=ids("program", a[2]), start_date=_day(a[3]),
                                         end_date=_day(a[3] + 13), percentage=a[4])
        case "scenario_capacity":
            return AddScenarioCapacityChange(scenario_id=sid, change_id=change,
                                             resource_key=ids.key(1), capacity=a[2],
                                             reason="hours", effective_from=_day(30))
        case "scenario_remove":
            return RemoveScenarioChange(scenario_id=sid, change_id=change)
        case "scenario_commit":
            return CommitScenario(scenario_id=sid, override_reason="agreed")
        case "scenario_discard":
            return DiscardScenario(scenario_id=sid, reason="no longer needed")
    raise ValueError(f"unknown step {kind!r}")


_PORTFOLIO_KINDS = frozenset({
    "portfolio", "move", "archive_portfolio", "reopen_portfolio", "objective", "key_result",
    "check_in", "link_objective", "unlink_objective", "close_objective",
})


def _portfolio_command(kind: str, a: list[Any], ids: Ids) -> Command:
    fid, oid = ids("portfolio", a[0]), ids("objective", a[0])
    match kind:
        case "portfolio":
            return CreatePortfolio(portfolio_id=fid, name=f"Portfolio {a[0]}", owner="Pat")
        case "move":
            target = None if a[1] is None else ids("portfolio", a[1])
            return MoveProgramToPortfolio(program_id=ids("program", a[0]), portfolio_id=target)
        case "archive_portfolio":
            return ArchivePortfolio(portfolio_id=fid, reason="merged")
        case "reopen_portfolio":
            return ReopenPortfolio(portfolio_id=fid, reason="split")
        case "objective":
            return DefineObjective(objective_id=oid, title=f"Objective {a[0]}", owner="Dana",
                                   starts_on=DAY0, ends_on=_day(365))
        case "key_result":
            return AddKeyResult(objective_id=oid, key_result_id=ids("kr", a[0] * 10 + a[1]),
                                name=f"KR {a[1]}", unit="u", baseline=0, target=10,
                                confidence=a[2] * 20)
        case "check_in":
            return CheckInKeyResult(objective_id=oid, key_result_id=ids("kr", a[0] * 10 + a[1]),
                                    value=a[2], confidence=50, checked_on=_day(a[3]))
        case "link_objective":
            return LinkObjectiveToProgram(objective_id=oid, program_id=ids("program", a[1]))
        case "unlink_objective":
            return UnlinkObjectiveFromProgram(objective_id=oid, program_id=ids("program", a[1]),
                                              reason="descoped")
        case "close_objective":
            return CloseObjective(objective_id=oid, reason="scored")
    raise ValueError(f"unknown step {kind!r}")
# fmt: on


async def run_steps(app: Application, step_list: Sequence[Step], ids: Ids | None = None) -> int:
    """Send each step's command; refused ones are skipped. Returns how many were recorded."""
    ids = ids or Ids()
    recorded = 0
    for i, step in enumerate(step_list):
        context = CommandContext(actor=f"user{i % 3}", reason="because" if i % 2 else None)
        try:
            result = await app.handle(_command(step, ids), context)
        except DomainError:
            continue
        recorded += len(result.events)
    return recorded


# --- a running system ---------------------------------------------------------------------


class LiveSystem:
    """The relay and projection runners, running in the test's event loop."""

    def __init__(
        self,
        store: PostgresEventStore,
        pg_url: str,
        nats_url: str,
        prefix: str,
        projections: Sequence[Projection] | None = None,
        relay_settings: RelaySettings | None = None,
        **settings: Any,
    ) -> None:
        """The runners get :func:`fast_runner_settings` with ``settings`` over them, the
        relay ``relay_settings`` (default: the tests' short intervals)."""
        self.store, self.pg_url, self.nats_url, self.prefix = store, pg_url, nats_url, prefix
        self.projections = list(projections or PROJECTIONS.values())
        self.settings = fast_runner_settings(prefix, **settings)
        self.relay_settings = relay_settings or fast_settings(prefix)
        self.nc: NatsClient | None = None
        self.relay: Relay | None = None
        self.runners: dict[str, ProjectionRunner] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._runner_tasks: dict[ProjectionRunner, asyncio.Task[None]] = {}

    async def __aenter__(self) -> LiveSystem:
        self.nc = await nats_client.connect(self.nats_url)
        self.relay = Relay(
            self.store,
            database_url=self.pg_url,
            nats_servers=self.nats_url,
            settings=self.relay_settings,
        )
        self._tasks.append(asyncio.create_task(self.relay.run()))
        for projection in self.projections:
            self.start(projection)
        return self

    def start(self, projection: Projection) -> ProjectionRunner:
        assert self.nc is not None
        runner = ProjectionRunner(
            projection,
            store=self.store,
            database_url=self.pg_url,
            nc=self.nc,
            settings=self.settings,
        )
        self.runners[projection.name] = runner
        task = asyncio.create_task(runner.run())
        self._tasks.append(task)
        self._runner_tasks[runner] = task
        return runner

    async def stop_runner(self, runner: ProjectionRunner, within: float) -> float:
        """Stop ``runner`` and wait for it: the seconds it took, failing past ``within``."""
        task = self._runner_tasks[runner]
        started = time.monotonic()
        runner.stop()
        await _stopped([task], within, f"projection runner {runner.projection.name}")
        return time.monotonic() - started

    async def __aexit__(self, *exc_info: object) -> None:
        for runner in self.runners.values():
            runner.stop()
        if self.relay is not None:
            self.relay.stop()
        # Generous for a loaded CI machine; tests/integration/test_projections_stop.py
        # holds runners to a tight bound.
        await _stopped(self._tasks, SHUTDOWN_WITHIN, "the relay and projection runners")
        if self.nc is not None:
            js = self.nc.jetstream()
            stream = f"{self.prefix.upper()}_EVENTS"
            try:
                await js.delete_stream(stream)
            except Exception as exc:  # the stream may never have been created
                logging.getLogger(__name__).debug("deleting %s: %r", stream, exc)
            await self.nc.close()


SHUTDOWN_WITHIN = 30.0


async def _stopped(tasks: Sequence[asyncio.Task[None]], within: float, what: str) -> None:
    """Wait for ``tasks``; past ``within`` seconds, cancel them and fail."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=within)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=bool(pending))
    if pending:
        raise AssertionError(f"{what}: {len(pending)} task(s) did not stop within {within} s")


async def table_rows(
    pool: asyncpg.Pool, projection: Projection
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ``projection`` (states included), in a stable order."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with pool.acquire() as conn:
        for table in projection.all_tables:
            columns = ", ".join(table.column_names)
            rows = await conn.fetch(f"SELECT {columns} FROM {table.name} ORDER BY {columns}")
            found[table.name] = [tuple(r) for r in rows]
    return found


# --- a worker process ---------------------------------------------------------------------


class ProjectionProcess:
    """Projection runners in a subprocess, so that a test can kill them with SIGKILL."""

    def __init__(
        self, pg_url: str, schema: str, nats_url: str, prefix: str, *, batch: int = 50
    ) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "tests.support.projection_process",
            "--pg",
            pg_url,
            "--schema",
            schema,
            "--nats",
            nats_url,
            "--prefix",
            prefix,
            "--batch",
            str(batch),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT)
        self.proc = subprocess.Popen(self.argv, cwd=REPO_ROOT, env=env)

    def kill(self) -> None:
        """SIGKILL: no cleanup, the batch in flight is neither committed nor acked."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


async def _main(args: argparse.Namespace) -> None:
    pool = await create_pool(args.pg, args.schema, min_size=1, max_size=8)
    nc = await nats_client.connect(args.nats)
    try:
        store = app_store(pool, args.schema)
        settings = fast_runner_settings(args.prefix, batch_size=args.batch)
        runners = [
            ProjectionRunner(p, store=store, database_url=args.pg, nc=nc, settings=settings)
            for p in PROJECTIONS.values()
        ]
        await supervise(runner_services(runners), stop_on_signals())
    finally:
        await nc.close()
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a projection worker process for fault tests")
    parser.add_argument("--pg", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="projection-process %(message)s"
    )
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
