"""Events of the Program aggregate: facts, in the past tense, stored forever.

Each carries ``program_id`` (subjects are routed by program) and enough data for a read
model to apply it without looking anything up: creation events carry every initial field,
partial updates carry exactly the fields that changed (absent = unchanged). ``event_type``
is the stable stored name; never reuse or rename one.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, get_args
from uuid import UUID

from msgspec import UNSET, UnsetType

from programledger.domain.events import DomainEvent
from programledger.domain.program.state import (
    Baseline,
    DependencyTarget,
    Health,
    ItemRef,
    MilestoneDate,
    RaciRole,
)
from programledger.domain.values import Department, Money, PartyKind

__all__ = [
    "PROGRAM_EVENT_TYPES",
    "ActualSpendReported",
    "BudgetAllocated",
    "BudgetAllocationRevised",
    "ChangeRequestApproved",
    "ChangeRequestAssessed",
    "ChangeRequestRaised",
    "ChangeRequestRejected",
    "DecisionRecorded",
    "DependencyFlaggedAtRisk",
    "DependencyNeededByChanged",
    "DependencyRegistered",
    "DependencyReopened",
    "DependencyResolved",
    "DependencyRiskCleared",
    "LessonRecorded",
    "MilestoneCompleted",
    "MilestoneDurationSet",
    "MilestoneFlaggedAtRisk",
    "MilestoneMissed",
    "MilestonePlanned",
    "MilestoneRescheduled",
    "MilestoneRiskCleared",
    "PlannedBudgetRevised",
    "ProgramActivated",
    "ProgramCancelled",
    "ProgramCompleted",
    "ProgramDetailsUpdated",
    "ProgramEvent",
    "ProgramHealthReported",
    "ProgramMovedToPortfolio",
    "ProgramProposed",
    "ProgramPutOnHold",
    "ProgramResumed",
    "StakeholderAdded",
    "StakeholderRemoved",
    "WorkstreamAdded",
    "WorkstreamUpdated",
]


class _ProgramEvent(DomainEvent, frozen=True, kw_only=True):
    program_id: UUID


# Lifecycle and details


class ProgramProposed(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ProgramProposed"
    schema_version: ClassVar[int] = 1
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


class ProgramActivated(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ProgramActivated"
    schema_version: ClassVar[int] = 1
    reason: str | None = None


class ProgramPutOnHold(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ProgramPutOnHold"
    schema_version: ClassVar[int] = 1
    reason: str


class ProgramResumed(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ProgramResumed"
    schema_version: ClassVar[int] = 1
    reason: str | None = None


class ProgramCompleted(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ProgramCompleted"
    schema_version: ClassVar[int] = 1
    reason: str


class ProgramCancelled(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ProgramCancelled"
    schema_version: ClassVar[int] = 1
    reason: str


class ProgramDetailsUpdated(_ProgramEvent, frozen=True, kw_only=True):
    """Only the fields that changed are present; ``null`` clears an optional field."""

    event_type: ClassVar[str] = "ProgramDetailsUpdated"
    schema_version: ClassVar[int] = 1
    name: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    objective: str | UnsetType = UNSET
    objective_key: str | UnsetType | None = UNSET
    sponsor: str | UnsetType = UNSET
    owner: str | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    start_date: date | UnsetType = UNSET
    target_end_date: date | UnsetType = UNSET


class ProgramHealthReported(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ProgramHealthReported"
    schema_version: ClassVar[int] = 1
    health: Health
    summary: str


# Stakeholders and workstreams


class StakeholderAdded(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "StakeholderAdded"
    schema_version: ClassVar[int] = 1
    stakeholder_id: UUID
    name: str
    kind: PartyKind
    department: Department
    role: RaciRole


class StakeholderRemoved(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "StakeholderRemoved"
    schema_version: ClassVar[int] = 1
    stakeholder_id: UUID
    reason: str | None = None


class WorkstreamAdded(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "WorkstreamAdded"
    schema_version: ClassVar[int] = 1
    workstream_id: UUID
    name: str
    lead: str
    department: Department
    description: str | None = None


class WorkstreamUpdated(_ProgramEvent, frozen=True, kw_only=True):
    """Only the fields that changed are present."""

    event_type: ClassVar[str] = "WorkstreamUpdated"
    schema_version: ClassVar[int] = 1
    workstream_id: UUID
    name: str | UnsetType = UNSET
    lead: str | UnsetType = UNSET
    department: Department | UnsetType = UNSET
    description: str | UnsetType | None = UNSET


# Milestones


class MilestonePlanned(_ProgramEvent, frozen=True, kw_only=True):
    """The baseline date is also the first forecast."""

    event_type: ClassVar[str] = "MilestonePlanned"
    schema_version: ClassVar[int] = 1
    milestone_id: UUID
    name: str
    workstream_id: UUID | None
    description: str | None
    baseline_date: date


class MilestoneRescheduled(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "MilestoneRescheduled"
    schema_version: ClassVar[int] = 1
    milestone_id: UUID
    forecast_date: date
    reason: str


class MilestoneFlaggedAtRisk(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "MilestoneFlaggedAtRisk"
    schema_version: ClassVar[int] = 1
    milestone_id: UUID
    reason: str


class MilestoneRiskCleared(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "MilestoneRiskCleared"
    schema_version: ClassVar[int] = 1
    milestone_id: UUID
    reason: str | None = None


class MilestoneCompleted(_ProgramEvent, frozen=True, kw_only=True):
    """The forecast becomes the actual date, so slip shows how late it really was."""

    event_type: ClassVar[str] = "MilestoneCompleted"
    schema_version: ClassVar[int] = 1
    milestone_id: UUID
    actual_date: date


class MilestoneMissed(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "MilestoneMissed"
    schema_version: ClassVar[int] = 1
    milestone_id: UUID
    reason: str


class MilestoneDurationSet(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "MilestoneDurationSet"
    schema_version: ClassVar[int] = 1
    milestone_id: UUID
    duration_days: int
    reason: str | None = None


# Dependencies


class DependencyRegistered(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "DependencyRegistered"
    schema_version: ClassVar[int] = 1
    dependency_id: UUID
    title: str
    description: str | None
    dependent: ItemRef
    depends_on: DependencyTarget
    needed_by: date


class DependencyNeededByChanged(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "DependencyNeededByChanged"
    schema_version: ClassVar[int] = 1
    dependency_id: UUID
    needed_by: date
    reason: str


class DependencyFlaggedAtRisk(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "DependencyFlaggedAtRisk"
    schema_version: ClassVar[int] = 1
    dependency_id: UUID
    reason: str


class DependencyRiskCleared(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "DependencyRiskCleared"
    schema_version: ClassVar[int] = 1
    dependency_id: UUID
    reason: str | None = None


class DependencyResolved(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "DependencyResolved"
    schema_version: ClassVar[int] = 1
    dependency_id: UUID
    resolution: str


class DependencyReopened(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "DependencyReopened"
    schema_version: ClassVar[int] = 1
    dependency_id: UUID
    reason: str


# Decisions


class DecisionRecorded(_ProgramEvent, frozen=True, kw_only=True):
    """A new entry in the decision log; with ``supersedes`` set, the earlier decision it
    replaces is from then on superseded (and never edited)."""

    event_type: ClassVar[str] = "DecisionRecorded"
    schema_version: ClassVar[int] = 1
    decision_id: UUID
    title: str
    context: str
    outcome: str
    alternatives: tuple[str, ...]
    decided_by: str
    decided_on: date
    supersedes: UUID | None = None


# Budget


class PlannedBudgetRevised(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "PlannedBudgetRevised"
    schema_version: ClassVar[int] = 1
    planned_budget: Money
    reason: str


class BudgetAllocated(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "BudgetAllocated"
    schema_version: ClassVar[int] = 1
    budget_allocation_id: UUID
    amount: Money
    workstream_id: UUID | None
    cost_centre: str | None
    purpose: str | None = None


class BudgetAllocationRevised(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "BudgetAllocationRevised"
    schema_version: ClassVar[int] = 1
    budget_allocation_id: UUID
    amount: Money
    reason: str


class ActualSpendReported(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ActualSpendReported"
    schema_version: ClassVar[int] = 1
    amount: Money
    as_of: date
    note: str | None = None


# Lessons


class LessonRecorded(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "LessonRecorded"
    schema_version: ClassVar[int] = 1
    lesson_id: UUID
    what_happened: str
    learned: str
    follow_up_action: str | None = None


# Change control


class ChangeRequestRaised(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ChangeRequestRaised"
    schema_version: ClassVar[int] = 1
    change_request_id: UUID
    title: str
    description: str
    raised_by: str
    schedule_impact: tuple[MilestoneDate, ...]
    budget_impact: Money | None
    scope_added: tuple[str, ...]
    scope_removed: tuple[str, ...]


class ChangeRequestAssessed(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ChangeRequestAssessed"
    schema_version: ClassVar[int] = 1
    change_request_id: UUID
    assessed_by: str
    assessment: str


class ChangeRequestApproved(_ProgramEvent, frozen=True, kw_only=True):
    """Carries the whole new baseline: every milestone's baseline date, the budget and the
    scope, so a reader never recomputes it. The first approval also keeps version 0 (the
    plan as it stood before), see ``state.original_baseline``."""

    event_type: ClassVar[str] = "ChangeRequestApproved"
    schema_version: ClassVar[int] = 1
    change_request_id: UUID
    decided_by: str
    reason: str
    baseline: Baseline


class ChangeRequestRejected(_ProgramEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ChangeRequestRejected"
    schema_version: ClassVar[int] = 1
    change_request_id: UUID
    decided_by: str
    reason: str


class ProgramMovedToPortfolio(_ProgramEvent, frozen=True, kw_only=True):
    """The program left ``from_portfolio_id`` and joined ``to_portfolio_id`` (either is
    ``None`` for "no portfolio"); each move is recorded, so the history of a program's
    portfolios is the list of these events."""

    event_type: ClassVar[str] = "ProgramMovedToPortfolio"
    schema_version: ClassVar[int] = 1
    from_portfolio_id: UUID | None
    to_portfolio_id: UUID | None
    reason: str | None = None


ProgramEvent = (
    ProgramProposed
    | ProgramActivated
    | ProgramPutOnHold
    | ProgramResumed
    | ProgramCompleted
    | ProgramCancelled
    | ProgramDetailsUpdated
    | ProgramHealthReported
    | StakeholderAdded
    | StakeholderRemoved
    | WorkstreamAdded
    | WorkstreamUpdated
    | MilestonePlanned
    | MilestoneRescheduled
    | MilestoneFlaggedAtRisk
    | MilestoneRiskCleared
    | MilestoneCompleted
    | MilestoneMissed
    | MilestoneDurationSet
    | DependencyRegistered
    | DependencyNeededByChanged
    | DependencyFlaggedAtRisk
    | DependencyRiskCleared
    | DependencyResolved
    | DependencyReopened
    | DecisionRecorded
    | PlannedBudgetRevised
    | BudgetAllocated
    | BudgetAllocationRevised
    | ActualSpendReported
    | LessonRecorded
    | ChangeRequestRaised
    | ChangeRequestAssessed
    | ChangeRequestApproved
    | ChangeRequestRejected
    | ProgramMovedToPortfolio
)

PROGRAM_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(ProgramEvent)
