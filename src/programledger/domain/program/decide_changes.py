"""``decide`` for change control: change requests and the baselines their approval sets.
Split from ``decide.py`` only to keep each file readable; the program's lifecycle guard
has already run when these are called.

A change request is raised with its impact (new baseline dates for named milestones, a
budget delta, scope items added and removed), assessed, then approved or rejected by the
program's sponsor with a reason. Approval records the complete next baseline: the current
baseline's dates with the request's applied, the planned budget with its delta (refused
with ``BudgetExceeded`` below what is allocated), the scope with its changes; earlier
baselines stay as they were.
"""

from __future__ import annotations

from programledger.domain._checks import Checks, require_item
from programledger.domain.errors import AlreadyExists, BudgetExceeded, ValidationError
from programledger.domain.program.commands import (
    ApproveChangeRequest,
    AssessChangeRequest,
    ProgramCommand,
    RaiseChangeRequest,
    RejectChangeRequest,
)
from programledger.domain.program.events import (
    ChangeRequestApproved,
    ChangeRequestAssessed,
    ChangeRequestRaised,
    ChangeRequestRejected,
)
from programledger.domain.program.state import (
    Baseline,
    ChangeRequest,
    ChangeRequestStatus,
    MilestoneDate,
    Program,
    allocated_budget,
    current_baseline,
    find,
    within,
)
from programledger.domain.values import MAX_SAFE_INTEGER, Money

__all__ = [
    "CHANGE_REQUEST_LIFECYCLE",
    "approve_change",
    "assess_change",
    "raise_change",
    "reject_change",
]

_CS = ChangeRequestStatus
CHANGE_REQUEST_LIFECYCLE: dict[type[ProgramCommand], frozenset[ChangeRequestStatus]] = {
    AssessChangeRequest: frozenset({_CS.RAISED, _CS.ASSESSED}),
    ApproveChangeRequest: frozenset({_CS.ASSESSED}),
    RejectChangeRequest: frozenset({_CS.RAISED, _CS.ASSESSED}),
}
"""Command on a change request -> the statuses it is allowed in. Only an assessed request
can be approved (its impact has been looked at); a decided one is final. Assessing again
replaces the assessment."""


def raise_change(state: Program, c: RaiseChangeRequest) -> ChangeRequestRaised:
    checks = Checks()
    checks.line("title", c.title)
    checks.text("description", c.description)
    checks.line("raised_by", c.raised_by)
    seen = set()
    for i, impact in enumerate(c.schedule_impact):
        checks.day(f"schedule_impact[{i}].day", impact.day)
        if find(state.milestones, lambda m: m.milestone_id, impact.milestone_id) is None:
            checks.fail(
                f"schedule_impact[{i}].milestone_id",
                f"milestone {impact.milestone_id} does not exist in {within(state)}",
            )
        if impact.milestone_id in seen:
            checks.fail(f"schedule_impact[{i}].milestone_id", "is named more than once")
        seen.add(impact.milestone_id)
    if c.budget_impact is not None:
        _delta(checks, c.budget_impact, state.planned_budget.currency)
    scope = current_baseline(state).scope
    for i, item in enumerate(c.scope_added):
        checks.line(f"scope_added[{i}]", item)
        if item in scope:
            checks.fail(f"scope_added[{i}]", f"{item!r} is already in scope")
    for i, item in enumerate(c.scope_removed):
        checks.line(f"scope_removed[{i}]", item)
        if item not in scope:
            checks.fail(f"scope_removed[{i}]", f"{item!r} is not in scope")
    if not (c.schedule_impact or c.budget_impact or c.scope_added or c.scope_removed):
        checks.fail("", "a change request changes dates, budget or scope: name at least one")
    checks.done()
    if find(state.change_requests, lambda r: r.change_request_id, c.change_request_id):
        raise AlreadyExists("change request", c.change_request_id, within=within(state))
    return ChangeRequestRaised(
        program_id=c.program_id,
        change_request_id=c.change_request_id,
        title=c.title,
        description=c.description,
        raised_by=c.raised_by,
        schedule_impact=c.schedule_impact,
        budget_impact=c.budget_impact,
        scope_added=c.scope_added,
        scope_removed=c.scope_removed,
    )


def _delta(checks: Checks, amount: Money, currency: str) -> None:
    checks.integer(
        "budget_impact.amount_minor", amount.amount_minor, -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER
    )
    if amount.currency != currency:
        checks.fail(
            "budget_impact.currency",
            f"must be {currency}, the currency of the program's budget (got {amount.currency})",
        )


def _request(
    state: Program, c: AssessChangeRequest | ApproveChangeRequest | RejectChangeRequest
) -> ChangeRequest:
    request = find(state.change_requests, lambda r: r.change_request_id, c.change_request_id)
    return require_item(
        "change request",
        c.change_request_id,
        request,
        CHANGE_REQUEST_LIFECYCLE,
        c,
        within(state),
    )


def assess_change(state: Program, c: AssessChangeRequest) -> ChangeRequestAssessed:
    checks = Checks()
    checks.line("assessed_by", c.assessed_by)
    checks.text("assessment", c.assessment)
    checks.done()
    _request(state, c)
    return ChangeRequestAssessed(
        program_id=c.program_id,
        change_request_id=c.change_request_id,
        assessed_by=c.assessed_by,
        assessment=c.assessment,
    )


def _by_sponsor(state: Program, checks: Checks, decided_by: str) -> None:
    checks.line("decided_by", decided_by)
    if decided_by != state.sponsor:
        checks.fail(
            "decided_by",
            f"only the program's sponsor ({state.sponsor}) approves or rejects a change request",
        )


def approve_change(state: Program, c: ApproveChangeRequest) -> ChangeRequestApproved:
    checks = Checks()
    _by_sponsor(state, checks, c.decided_by)
    checks.text("reason", c.reason)
    checks.line("baseline_name", c.baseline_name)
    checks.done()
    request = _request(state, c)
    current = current_baseline(state)
    if any(b.name == c.baseline_name for b in (*state.baselines, current)):
        raise ValidationError.single(
            "baseline_name", f"a baseline of {within(state)} is already called {c.baseline_name!r}"
        )
    moved = {d.milestone_id: d.day for d in request.schedule_impact}
    dates = tuple(
        MilestoneDate(milestone_id=d.milestone_id, day=moved.get(d.milestone_id, d.day))
        for d in current.milestone_dates
    )
    budget = state.planned_budget
    if request.budget_impact is not None:
        total = budget.amount_minor + request.budget_impact.amount_minor
        budget = Money(amount_minor=total, currency=budget.currency)
        allocated = allocated_budget(state)
        if total < allocated:
            raise BudgetExceeded(
                state.program_id, budget, Money(amount_minor=allocated, currency=budget.currency)
            )
    removed = set(request.scope_removed)
    scope = (*(s for s in current.scope if s not in removed), *request.scope_added)
    return ChangeRequestApproved(
        program_id=c.program_id,
        change_request_id=c.change_request_id,
        decided_by=c.decided_by,
        reason=c.reason,
        baseline=Baseline(
            version=current.version + 1,
            name=c.baseline_name,
            change_request_id=c.change_request_id,
            milestone_dates=dates,
            budget=budget,
            scope=scope,
        ),
    )


def reject_change(state: Program, c: RejectChangeRequest) -> ChangeRequestRejected:
    checks = Checks()
    _by_sponsor(state, checks, c.decided_by)
    checks.text("reason", c.reason)
    checks.done()
    _request(state, c)
    return ChangeRequestRejected(
        program_id=c.program_id,
        change_request_id=c.change_request_id,
        decided_by=c.decided_by,
        reason=c.reason,
    )
