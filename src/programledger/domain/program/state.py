"""The Program aggregate's state (stream ``program-<uuid>``): what ``decide`` checks
commands against.

Everything is an immutable Struct; collections are tuples in the order items were added
(the order a TPM sees them listed). The state is also what folding one stream up to a
moment yields, so it must agree with the read models "as of" that moment.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import date
from typing import TypeVar
from uuid import UUID

import msgspec

from programledger.domain.values import Department, Money, PartyKind

__all__ = [
    "TERMINAL_PROGRAM_STATUSES",
    "Baseline",
    "BudgetAllocation",
    "ChangeRequest",
    "ChangeRequestStatus",
    "Decision",
    "Dependency",
    "DependencyStatus",
    "DependencyTarget",
    "ExternalTarget",
    "Health",
    "ItemKind",
    "ItemRef",
    "Lesson",
    "Milestone",
    "MilestoneDate",
    "MilestoneStatus",
    "Program",
    "ProgramItemTarget",
    "ProgramStatus",
    "RaciRole",
    "SpendReport",
    "Stakeholder",
    "Workstream",
    "allocated_budget",
    "current_baseline",
    "find",
    "original_baseline",
    "program_stream_id",
    "slip_days",
    "within",
]


class ProgramStatus(enum.StrEnum):
    PROPOSED = "PROPOSED"
    ACTIVE = "ACTIVE"
    ON_HOLD = "ON_HOLD"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


TERMINAL_PROGRAM_STATUSES = frozenset({ProgramStatus.COMPLETED, ProgramStatus.CANCELLED})


class Health(enum.StrEnum):
    GREEN = "GREEN"
    AMBER = "AMBER"
    RED = "RED"


class RaciRole(enum.StrEnum):
    """Spelled out rather than R/A/C/I so an API enum reads on its own."""

    RESPONSIBLE = "RESPONSIBLE"
    ACCOUNTABLE = "ACCOUNTABLE"
    CONSULTED = "CONSULTED"
    INFORMED = "INFORMED"


class MilestoneStatus(enum.StrEnum):
    PLANNED = "PLANNED"
    AT_RISK = "AT_RISK"
    DONE = "DONE"
    MISSED = "MISSED"


class DependencyStatus(enum.StrEnum):
    OPEN = "OPEN"
    AT_RISK = "AT_RISK"
    RESOLVED = "RESOLVED"


class ChangeRequestStatus(enum.StrEnum):
    RAISED = "RAISED"
    ASSESSED = "ASSESSED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class ItemKind(enum.StrEnum):
    """What inside a program a dependency starts from or points at."""

    WORKSTREAM = "WORKSTREAM"
    MILESTONE = "MILESTONE"


class ItemRef(msgspec.Struct, frozen=True, kw_only=True):
    """A workstream or milestone of the program the dependency is recorded on."""

    kind: ItemKind
    item_id: UUID


class ProgramItemTarget(
    msgspec.Struct, frozen=True, kw_only=True, tag="PROGRAM_ITEM", tag_field="type"
):
    """A workstream or milestone of this or another program. Items of another program are
    not checked here (another stream); the application layer may."""

    program_id: UUID
    kind: ItemKind
    item_id: UUID


class ExternalTarget(msgspec.Struct, frozen=True, kw_only=True, tag="EXTERNAL", tag_field="type"):
    """A party outside the company's programs: a vendor, a regulator, another company."""

    party: str
    contact: str | None = None


DependencyTarget = ProgramItemTarget | ExternalTarget
"""Encoded with a ``type`` field (``PROGRAM_ITEM`` or ``EXTERNAL``) telling them apart."""


class Stakeholder(msgspec.Struct, frozen=True, kw_only=True):
    stakeholder_id: UUID
    name: str
    kind: PartyKind
    department: Department
    role: RaciRole


class Workstream(msgspec.Struct, frozen=True, kw_only=True):
    workstream_id: UUID
    name: str
    lead: str
    department: Department
    description: str | None = None


class Milestone(msgspec.Struct, frozen=True, kw_only=True):
    milestone_id: UUID
    name: str
    workstream_id: UUID | None
    description: str | None
    baseline_date: date
    """Fixed when planned: what the plan promised."""
    forecast_date: date
    """What we expect now; becomes the actual date once the milestone is done."""
    status: MilestoneStatus
    actual_date: date | None = None
    duration_days: int = 0
    """Calendar days of work leading to the milestone (its start is this many days before
    it): what start-to-start links measure from. 0 for a pure checkpoint."""


class Dependency(msgspec.Struct, frozen=True, kw_only=True):
    """``dependent`` cannot finish until ``depends_on`` delivers, by ``needed_by``."""

    dependency_id: UUID
    title: str
    description: str | None
    dependent: ItemRef
    depends_on: DependencyTarget
    needed_by: date
    status: DependencyStatus
    resolution: str | None = None


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    decision_id: UUID
    title: str
    context: str
    outcome: str
    """What was decided (DOMAIN.md's "the decision")."""
    alternatives: tuple[str, ...]
    decided_by: str
    decided_on: date
    supersedes: UUID | None = None
    superseded_by: UUID | None = None


class BudgetAllocation(msgspec.Struct, frozen=True, kw_only=True):
    """Money set aside for exactly one of a workstream or a cost centre."""

    budget_allocation_id: UUID
    workstream_id: UUID | None
    cost_centre: str | None
    amount: Money
    purpose: str | None = None


class SpendReport(msgspec.Struct, frozen=True, kw_only=True):
    """Actual spend to date as last reported: a running total, not an increment."""

    amount: Money
    as_of: date


class Lesson(msgspec.Struct, frozen=True, kw_only=True):
    lesson_id: UUID
    what_happened: str
    learned: str
    follow_up_action: str | None = None


class MilestoneDate(msgspec.Struct, frozen=True, kw_only=True):
    milestone_id: UUID
    day: date


class ChangeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A proposed change to the plan: raised with its impact, assessed, then approved or
    rejected by the sponsor. Approval sets a new baseline (see :class:`Baseline`)."""

    change_request_id: UUID
    title: str
    description: str
    raised_by: str
    schedule_impact: tuple[MilestoneDate, ...]
    """The baseline date each named milestone would get."""
    budget_impact: Money | None
    """Added to (negative: taken from) the planned budget."""
    scope_added: tuple[str, ...]
    scope_removed: tuple[str, ...]
    status: ChangeRequestStatus = ChangeRequestStatus.RAISED
    assessed_by: str | None = None
    assessment: str | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    baseline_version: int | None = None
    """The baseline its approval set."""


class Baseline(msgspec.Struct, frozen=True, kw_only=True):
    """One approved version of the plan, kept for ever: version 0 is the plan as first
    laid down, each approved change request adds the next."""

    version: int
    name: str
    change_request_id: UUID | None
    milestone_dates: tuple[MilestoneDate, ...]
    budget: Money
    scope: tuple[str, ...]


class Program(msgspec.Struct, frozen=True, kw_only=True):
    program_id: UUID
    code: str
    name: str
    description: str | None
    objective: str
    objective_key: str | None
    sponsor: str
    owner: str
    priority: int
    start_date: date
    target_end_date: date
    planned_budget: Money
    status: ProgramStatus = ProgramStatus.PROPOSED
    health: Health | None = None
    """``None`` until the first health report."""
    health_summary: str | None = None
    actual_spend: SpendReport | None = None
    budget_allocations: tuple[BudgetAllocation, ...] = ()
    stakeholders: tuple[Stakeholder, ...] = ()
    workstreams: tuple[Workstream, ...] = ()
    milestones: tuple[Milestone, ...] = ()
    dependencies: tuple[Dependency, ...] = ()
    decisions: tuple[Decision, ...] = ()
    lessons: tuple[Lesson, ...] = ()
    change_requests: tuple[ChangeRequest, ...] = ()
    baselines: tuple[Baseline, ...] = ()
    """Empty until the first approved change request, which also keeps version 0."""
    portfolio_id: UUID | None = None
    """The one portfolio the program is in, if any (see ``MoveProgramToPortfolio``)."""


def program_stream_id(program_id: UUID) -> str:
    return f"program-{program_id}"


def within(program: Program) -> str:
    """How a refusal about an item names the program holding it."""
    return f"program {program.code}"


Item = TypeVar("Item")


def find(items: tuple[Item, ...], key: Callable[[Item], UUID], item_id: UUID) -> Item | None:
    return next((item for item in items if key(item) == item_id), None)


def slip_days(milestone: Milestone) -> int:
    """Days the forecast (the actual date, once done) lies after the baseline; negative
    when ahead of plan."""
    return (milestone.forecast_date - milestone.baseline_date).days


def allocated_budget(program: Program) -> int:
    """Sum of the budget allocations, in the plan's minor units."""
    return sum(allocation.amount.amount_minor for allocation in program.budget_allocations)


def original_baseline(program: Program) -> Baseline:
    """Version 0: each milestone's date as planned, the planned budget, no scope items.
    Kept explicitly from the first approved change request on."""
    if program.baselines:
        return program.baselines[0]
    return Baseline(
        version=0,
        name="Original plan",
        change_request_id=None,
        milestone_dates=tuple(
            MilestoneDate(milestone_id=m.milestone_id, day=m.baseline_date)
            for m in program.milestones
        ),
        budget=program.planned_budget,
        scope=(),
    )


def current_baseline(program: Program) -> Baseline:
    """The latest approved baseline; a milestone planned after it is in it at the date it
    was planned for, as that is the baseline it was promised against."""
    latest = program.baselines[-1] if program.baselines else original_baseline(program)
    dated = {d.milestone_id for d in latest.milestone_dates}
    later = tuple(
        MilestoneDate(milestone_id=m.milestone_id, day=m.baseline_date)
        for m in program.milestones
        if m.milestone_id not in dated
    )
    if not later:
        return latest
    return msgspec.structs.replace(latest, milestone_dates=(*latest.milestone_dates, *later))
