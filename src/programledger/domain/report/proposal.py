"""A draft's RAGs and reasons proposed from what the read models know, so the owner starts
from the data and edits the judgement, rather than typing the numbers.

Pure: the API gathers :class:`ReportFacts` for the program and week, :func:`propose`
rates them. The thresholds are the rules of docs/domain.md (Status reports); each reason
states the figures it was rated on.
"""

from __future__ import annotations

import msgspec

from programledger.domain.report.state import (
    Dimension,
    DimensionRag,
    Rag,
    ReportContent,
    worst,
)

__all__ = ["ReportFacts", "propose"]

SLIP_RED_DAYS = 14
"""A milestone slipping more than two weeks is off track, not merely at risk."""
BURN_AMBER_POINTS = 10
BURN_RED_POINTS = 20
"""Spend ahead of elapsed time by this many percentage points of the plan."""


class ReportFacts(msgspec.Struct, frozen=True, kw_only=True):
    """The figures a draft is rated on, as of the end of the reported week."""

    milestones_open: int = 0
    milestones_at_risk: int = 0
    milestones_missed: int = 0
    max_slip_days: int = 0
    """The largest forecast - baseline of an open milestone (0 when none is late)."""
    dependencies_at_risk: int = 0
    dependencies_overdue: int = 0
    """Unresolved dependencies whose needed-by date has passed."""
    change_requests_pending: int = 0
    planned_budget_minor: int = 0
    actual_spend_minor: int = 0
    elapsed_percent: int = 0
    """How much of the program's span (start to target end) has passed, 0 to 100."""
    over_allocated_resources: tuple[str, ...] = ()
    """People or teams working on the program who are over capacity in the week."""
    open_issues: int = 0
    """Risks that materialised and are not closed."""
    overdue_reviews: int = 0
    unmitigated_high: int = 0
    """HIGH or CRITICAL open risks with no mitigation."""


def _scope(f: ReportFacts) -> DimensionRag:
    reason = (
        f"{f.dependencies_overdue} dependencies past their needed-by date, "
        f"{f.dependencies_at_risk} at risk, {f.change_requests_pending} change requests pending"
    )
    if f.dependencies_overdue:
        rag = Rag.RED
    elif f.dependencies_at_risk or f.change_requests_pending:
        rag = Rag.AMBER
    else:
        rag = Rag.GREEN
    return DimensionRag(dimension=Dimension.SCOPE, rag=rag, reason=reason)


def _schedule(f: ReportFacts) -> DimensionRag:
    reason = (
        f"{f.milestones_missed} milestones missed, {f.milestones_at_risk} at risk of "
        f"{f.milestones_open} open; largest slip {f.max_slip_days} days"
    )
    if f.milestones_missed or f.max_slip_days > SLIP_RED_DAYS:
        rag = Rag.RED
    elif f.milestones_at_risk or f.max_slip_days > 0:
        rag = Rag.AMBER
    else:
        rag = Rag.GREEN
    return DimensionRag(dimension=Dimension.SCHEDULE, rag=rag, reason=reason)


def _budget(f: ReportFacts) -> DimensionRag:
    if f.planned_budget_minor <= 0:
        return DimensionRag(
            dimension=Dimension.BUDGET, rag=Rag.GREEN, reason="no planned budget to burn"
        )
    burn = f.actual_spend_minor * 100 // f.planned_budget_minor
    ahead = burn - f.elapsed_percent
    reason = f"{burn}% of the budget spent with {f.elapsed_percent}% of the time elapsed"
    if f.actual_spend_minor > f.planned_budget_minor or ahead > BURN_RED_POINTS:
        rag = Rag.RED
    elif ahead > BURN_AMBER_POINTS:
        rag = Rag.AMBER
    else:
        rag = Rag.GREEN
    return DimensionRag(dimension=Dimension.BUDGET, rag=rag, reason=reason)


def _resources(f: ReportFacts) -> DimensionRag:
    over = f.over_allocated_resources
    count = len(over)
    reason = (
        f"{count} people or teams over capacity this week: {', '.join(over)}"
        if over
        else "no one on the program is over capacity this week"
    )
    rag = Rag.RED if count > 1 else Rag.AMBER if count == 1 else Rag.GREEN
    return DimensionRag(dimension=Dimension.RESOURCES, rag=rag, reason=reason)


def _risks(f: ReportFacts) -> DimensionRag:
    reason = (
        f"{f.open_issues} open issues, {f.unmitigated_high} high or critical risks without "
        f"mitigation, {f.overdue_reviews} reviews overdue"
    )
    if f.open_issues or f.unmitigated_high > 1:
        rag = Rag.RED
    elif f.unmitigated_high or f.overdue_reviews:
        rag = Rag.AMBER
    else:
        rag = Rag.GREEN
    return DimensionRag(dimension=Dimension.RISKS, rag=rag, reason=reason)


def propose(facts: ReportFacts) -> ReportContent:
    """Each dimension rated by its rule, the overall the worst of them (its reason names
    the dimensions that set it); the lists are left for the owner."""
    rated = (_scope(facts), _schedule(facts), _budget(facts), _resources(facts), _risks(facts))
    overall = worst([r.rag for r in rated])
    setting = [r.dimension.value for r in rated if r.rag == overall]
    reason = (
        "every dimension is GREEN"
        if overall == Rag.GREEN
        else f"{overall.value} because of {', '.join(setting)}"
    )
    return ReportContent(overall=overall, overall_reason=reason, dimensions=rated)
