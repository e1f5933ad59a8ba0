"""Properties: risk scoring, that any command sequence yields a history that folds, and
the state machines of the RAID items (an invalidated assumption never changes again; an
issue has a resolution exactly when it is resolved).

Random commands are drawn from small pools of ids, texts and dates so that they often hit
existing items (and sometimes do not). Whatever ``decide`` accepts, ``evolve`` must apply
without error, folding the history again must give the same state, and every event must
survive a JSON round trip. The audit trail's changes of each step, computed on the
states' structs, must be what comparing their plain forms finds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from programledger.domain import assumption, issue, program, risk
from programledger.domain.assumption import (
    AssumptionStatus,
    Confidence,
    InvalidateAssumption,
    RecordAssumption,
    UpdateAssumptionDetails,
    ValidateAssumption,
)
from programledger.domain.errors import DomainError
from programledger.domain.issue import (
    EscalateIssue,
    IssueSeverity,
    IssueStatus,
    RaisedIssue,
    RaiseIssue,
    ReopenIssue,
    ResolveIssue,
    UpdateIssueDetails,
)
from programledger.domain.program import (
    ActivateProgram,
    AddStakeholder,
    AddWorkstream,
    AllocateBudget,
    CancelProgram,
    ChangeDependencyNeededBy,
    ClearDependencyRisk,
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
    PlanMilestone,
    ProgramItemTarget,
    PutProgramOnHold,
    RaciRole,
    RecordDecision,
    RecordLesson,
    RegisterDependency,
    RemoveStakeholder,
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
    UpdateWorkstream,
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
    ReviseMitigationPlan,
    RiskCategory,
    RoamStatus,
    SeverityBand,
    StartMitigation,
    UpdateRiskDetails,
    risk_score,
    severity_band,
)
from programledger.domain.values import Department, PartyKind
from programledger.projections.audit import changes_between, diff
from programledger.projections.raid import IndexedDependency, dependency_after
from tests.unit.examples import ASSUMPTION, ISSUE, PROGRAM, RISK, eur, propose_program
from tests.unit.scenario import roundtrip, undeclared

levels = st.integers(1, 5)


@given(levels, levels)
def test_score_is_probability_times_impact(probability: int, impact: int) -> None:
    score = risk_score(probability, impact)
    assert 1 <= score <= 25
    assert score == risk_score(impact, probability) == probability * impact


@given(st.integers(1, 25), st.integers(1, 25))
def test_band_never_falls_as_the_score_rises(low: int, high: int) -> None:
    low, high = sorted((low, high))
    order = list(SeverityBand)
    assert order.index(severity_band(low)) <= order.index(severity_band(high))


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (1, SeverityBand.LOW),
        (4, SeverityBand.LOW),
        (5, SeverityBand.MEDIUM),
        (9, SeverityBand.MEDIUM),
        (10, SeverityBand.HIGH),
        (16, SeverityBand.HIGH),
        (17, SeverityBand.CRITICAL),
        (25, SeverityBand.CRITICAL),
    ],
)
def test_band_boundaries(score: int, band: SeverityBand) -> None:
    assert severity_band(score) is band


@given(st.integers().filter(lambda n: not 1 <= n <= 25))
def test_scores_outside_the_scale_are_rejected(score: int) -> None:
    with pytest.raises(ValueError, match="1 to 25"):
        severity_band(score)


def test_levels_outside_the_scale_are_rejected() -> None:
    with pytest.raises(ValueError, match="1 to 5"):
        risk_score(0, 3)


# Random command sequences

ids = st.sampled_from([UUID(int=n) for n in range(1, 4)])
texts = st.sampled_from(["Plan", "Vendor late", "Scope change", "Pilot", "Budget", "", "x\ny"])
"""Mostly valid; the empty and the two-line text are refused where required or one-line."""
days = st.integers(0, 400).map(lambda n: date(2027, 1, 1) + timedelta(days=n))
money = st.integers(0, 200_000).map(eur)
P = PROGRAM


def _program_commands() -> st.SearchStrategy[Any]:
    item = st.builds(ItemRef, kind=st.sampled_from(ItemKind), item_id=ids)
    target = st.one_of(
        st.builds(ExternalTarget, party=texts),
        st.builds(
            ProgramItemTarget,
            program_id=st.sampled_from([P, UUID(int=99)]),
            kind=st.sampled_from(ItemKind),
            item_id=ids,
        ),
    )
    decision = {
        "program_id": st.just(P),
        "decision_id": ids,
        "title": texts,
        "context": texts,
        "outcome": texts,
        "decided_by": texts,
        "decided_on": days,
    }
    return st.one_of(
        st.just(ActivateProgram(program_id=P)),
        st.builds(PutProgramOnHold, program_id=st.just(P), reason=texts),
        st.builds(ResumeProgram, program_id=st.just(P)),
        st.builds(CompleteProgram, program_id=st.just(P), reason=texts)
        | st.builds(CancelProgram, program_id=st.just(P), reason=texts),
        st.builds(UpdateProgramDetails, program_id=st.just(P), name=texts, priority=levels),
        st.builds(UpdateProgramDetails, program_id=st.just(P), target_end_date=days),
        st.builds(
            ReportProgramHealth,
            program_id=st.just(P),
            health=st.sampled_from(Health),
            summary=texts,
        ),
        st.builds(
            AddStakeholder,
            program_id=st.just(P),
            stakeholder_id=ids,
            name=texts,
            kind=st.sampled_from(PartyKind),
            department=st.sampled_from(Department),
            role=st.sampled_from(RaciRole),
        ),
        st.builds(RemoveStakeholder, program_id=st.just(P), stakeholder_id=ids),
        st.builds(
            AddWorkstream,
            program_id=st.just(P),
            workstream_id=ids,
            name=texts,
            lead=texts,
            department=st.sampled_from(Department),
        ),
        st.builds(UpdateWorkstream, program_id=st.just(P), workstream_id=ids, lead=texts),
        st.builds(
            PlanMilestone,
            program_id=st.just(P),
            milestone_id=ids,
            name=texts,
            due_date=days,
            workstream_id=st.none() | ids,
        ),
        st.builds(
            RescheduleMilestone,
            program_id=st.just(P),
            milestone_id=ids,
            forecast_date=days,
            reason=texts,
        ),
        st.builds(FlagMilestoneAtRisk, program_id=st.just(P), milestone_id=ids, reason=texts),
        st.builds(ClearMilestoneRisk, program_id=st.just(P), milestone_id=ids),
        st.builds(CompleteMilestone, program_id=st.just(P), milestone_id=ids, actual_date=days),
        st.builds(MarkMilestoneMissed, program_id=st.just(P), milestone_id=ids, reason=texts),
        st.builds(
            RegisterDependency,
            program_id=st.just(P),
            dependency_id=ids,
            title=texts,
            dependent=item,
            depends_on=target,
            needed_by=days,
        ),
        st.builds(
            ChangeDependencyNeededBy,
            program_id=st.just(P),
            dependency_id=ids,
            needed_by=days,
            reason=texts,
        ),
        st.builds(FlagDependencyAtRisk, program_id=st.just(P), dependency_id=ids, reason=texts),
        st.builds(ClearDependencyRisk, program_id=st.just(P), dependency_id=ids),
        st.builds(ResolveDependency, program_id=st.just(P), dependency_id=ids, resolution=texts),
        st.builds(ReopenDependency, program_id=st.just(P), dependency_id=ids, reason=texts),
        st.builds(RecordDecision, **decision),
        st.builds(SupersedeDecision, supersedes=ids, **decision),
        st.builds(RevisePlannedBudget, program_id=st.just(P), planned_budget=money, reason=texts),
        st.builds(
            AllocateBudget,
            program_id=st.just(P),
            budget_allocation_id=ids,
            amount=money,
            workstream_id=ids,
        ),
        st.builds(
            AllocateBudget,
            program_id=st.just(P),
            budget_allocation_id=ids,
            amount=money,
            cost_centre=st.just("CC-1"),
        ),
        st.builds(
            ReviseBudgetAllocation,
            program_id=st.just(P),
            budget_allocation_id=ids,
            amount=money,
            reason=texts,
        ),
        st.builds(ReportActualSpend, program_id=st.just(P), amount=money, as_of=days),
        st.builds(
            RecordLesson, program_id=st.just(P), lesson_id=ids, what_happened=texts, learned=texts
        ),
    )


def _raised_issues() -> st.SearchStrategy[RaisedIssue]:
    return st.builds(
        RaisedIssue,
        issue_id=ids,
        title=texts,
        severity=st.sampled_from(IssueSeverity),
        owner=texts,
        due_on=days,
    )


def _risk_commands() -> st.SearchStrategy[Any]:
    r = st.just(RISK)
    return st.one_of(
        st.builds(AssessRisk, risk_id=r, probability=levels, impact=levels),
        st.builds(
            StartMitigation,
            risk_id=r,
            response_strategy=st.sampled_from(ResponseStrategy),
            mitigation_plan=texts,
            mitigation_due_on=days,
        ),
        st.builds(
            ReviseMitigationPlan,
            risk_id=r,
            mitigation_plan=texts,
            mitigation_due_on=days,
            reason=texts,
        ),
        st.builds(AcceptRisk, risk_id=r, rationale=texts, approved_by=texts),
        st.builds(
            ReportRiskMaterialised,
            risk_id=r,
            what_happened=texts,
            impact_description=texts,
            occurred_on=days,
            raise_issue=st.none() | _raised_issues(),
        ),
        st.builds(
            ChangeRiskRoam,
            risk_id=r,
            roam=st.sampled_from(RoamStatus),
            reason=st.none() | texts,
        ),
        st.builds(EscalateRisk, risk_id=r, escalated_to=texts, reason=texts),
        st.builds(CloseRisk, risk_id=r, reason=texts),
        st.builds(ReopenRisk, risk_id=r, reason=texts),
        st.builds(UpdateRiskDetails, risk_id=r, owner=texts, workstream_id=st.none() | ids),
        st.builds(ReviewRisk, risk_id=r, reviewed_on=days, next_review_on=days),
    )


def _replay(
    decide: Callable[[Any, Any], list[Any]],
    evolve: Callable[[Any, Any], Any],
    fold: Callable[[list[Any]], Any],
    commands: list[Any],
) -> None:
    state: Any = None
    history: list[Any] = []
    for command in commands:
        try:
            events = decide(state, command)
        except DomainError as error:
            undeclared(command, error)
            continue
        for event in events:
            assert roundtrip(event) == event
            before, state = state, evolve(state, event)
            history.append(event)
            if before is not None:
                plain = diff(msgspec.to_builtins(before), msgspec.to_builtins(state))
                assert changes_between(before, state) == plain, "the audit diff"
        assert fold(history) == state
    assert fold(list(history)) == fold(list(history))


@settings(max_examples=120, deadline=None)
@given(st.lists(_program_commands(), max_size=40))
def test_program_histories_always_fold(commands: list[Any]) -> None:
    _replay(program.decide, program.evolve, program.fold, [*_program_setup(), *commands])


@settings(max_examples=120, deadline=None)
@given(st.lists(_program_commands(), max_size=40))
def test_the_raid_index_follows_dependencies_as_the_program_does(commands: list[Any]) -> None:
    """The RAID index keeps a small state per dependency instead of folding programs; it
    must agree with the Program aggregate on every dependency's title, date and status."""
    state: Any = None
    index: dict[UUID, IndexedDependency] = {}
    for command in [*_program_setup(), *commands]:
        try:
            events = program.decide(state, command)
        except DomainError:
            continue
        for event in events:
            state = program.evolve(state, event)
            dependency_id = getattr(event, "dependency_id", None)
            if isinstance(dependency_id, UUID):
                index[dependency_id] = dependency_after(index.get(dependency_id), event)
    assert state is not None
    assert {d.dependency_id: (d.title, d.needed_by, d.status) for d in state.dependencies} == {
        key: (d.title, d.needed_by, d.status) for key, d in index.items()
    }


def _program_setup() -> list[Any]:
    """A program with every pooled workstream and milestone id taken, so that random
    commands mostly find what they name."""
    setup: list[Any] = [
        propose_program(target_end_date=date(2028, 6, 30)),
        ActivateProgram(program_id=P),
    ]
    for n in range(1, 4):
        setup.append(
            AddWorkstream(
                program_id=P,
                workstream_id=UUID(int=n),
                name=f"Workstream {n}",
                lead="Priya",
                department=Department.ENGINEERING,
            )
        )
        setup.append(
            PlanMilestone(
                program_id=P, milestone_id=UUID(int=n), name=f"M{n}", due_date=date(2027, n, 1)
            )
        )
    return setup


@settings(max_examples=120, deadline=None)
@given(st.lists(_risk_commands(), max_size=30))
def test_risk_histories_always_fold(commands: list[Any]) -> None:
    _replay(risk.decide, risk.evolve, risk.fold, [_risk_identified(), *commands])


def _risk_identified() -> IdentifyRisk:
    return IdentifyRisk(
        risk_id=RISK,
        program_id=PROGRAM,
        title="Vendor late",
        category=RiskCategory.VENDOR,
        probability=3,
        impact=3,
        owner="Priya",
    )


def _assumption_commands() -> st.SearchStrategy[Any]:
    a = st.just(ASSUMPTION)
    raised_risks = st.builds(
        RaisedRisk,
        risk_id=ids,
        title=texts,
        category=st.sampled_from(RiskCategory),
        probability=levels,
        impact=levels,
        owner=texts,
    )
    return st.one_of(
        st.builds(
            UpdateAssumptionDetails,
            assumption_id=a,
            owner=texts,
            confidence=st.sampled_from(Confidence),
            validate_by=days,
        ),
        st.builds(ValidateAssumption, assumption_id=a, evidence=texts, validated_on=days),
        st.builds(
            InvalidateAssumption,
            assumption_id=a,
            evidence=texts,
            invalidated_on=days,
            raise_risk=st.none() | raised_risks,
            raise_issue=st.none() | _raised_issues(),
        ),
    )


@settings(max_examples=120, deadline=None)
@given(st.lists(_assumption_commands(), max_size=20))
def test_assumption_histories_always_fold_and_an_invalidated_one_never_changes(
    commands: list[Any],
) -> None:
    record = RecordAssumption(
        assumption_id=ASSUMPTION,
        program_id=PROGRAM,
        statement="The sandbox supports 3-D Secure 2.2",
        owner="Priya",
        confidence=Confidence.MEDIUM,
        validate_by=date(2027, 2, 15),
    )
    _replay(assumption.decide, assumption.evolve, assumption.fold, [record, *commands])
    state = assumption.decide(None, record)
    folded = assumption.fold(state)
    for command in commands:
        try:
            events = assumption.decide(folded, command)
        except DomainError:
            continue
        if folded is not None and folded.status is AssumptionStatus.INVALIDATED:
            assert events == [], "an invalidated assumption is final"
        for event in events:
            folded = assumption.evolve(folded, event)
        assert folded is not None
        assert (folded.invalidation is not None) == (folded.status is AssumptionStatus.INVALIDATED)


def _issue_commands() -> st.SearchStrategy[Any]:
    i = st.just(ISSUE)
    return st.one_of(
        st.builds(
            UpdateIssueDetails,
            issue_id=i,
            severity=st.sampled_from(IssueSeverity),
            owner=texts,
            due_on=days,
        ),
        st.builds(EscalateIssue, issue_id=i, escalated_to=texts, reason=texts),
        st.builds(ResolveIssue, issue_id=i, resolution=texts, resolved_on=days),
        st.builds(ReopenIssue, issue_id=i, reason=texts),
    )


@settings(max_examples=120, deadline=None)
@given(st.lists(_issue_commands(), max_size=20))
def test_issue_histories_always_fold_and_resolution_goes_with_the_status(
    commands: list[Any],
) -> None:
    opened = RaiseIssue(
        issue_id=ISSUE,
        program_id=PROGRAM,
        title="Sandbox rejects challenges",
        severity=IssueSeverity.HIGH,
        owner="Priya",
        due_on=date(2027, 3, 1),
    )
    _replay(issue.decide, issue.evolve, issue.fold, [opened, *commands])
    state = issue.fold(issue.decide(None, opened))
    for command in commands:
        try:
            events = issue.decide(state, command)
        except DomainError:
            continue
        for event in events:
            state = issue.evolve(state, event)
        assert state is not None
        resolved = state.status is IssueStatus.RESOLVED
        assert (state.resolution is not None) == resolved
        assert (state.resolved_on is not None) == resolved
