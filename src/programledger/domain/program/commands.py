"""Commands to the Program aggregate: what a user asks for, in the imperative.

Every command names the program it is for. Ids of new items (milestones, decisions...) are
chosen by the caller, so ``decide`` stays pure and a retried command creates nothing twice.
Partial updates use ``UNSET`` for "leave unchanged" and ``None`` for "clear".
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from programledger.domain.program.state import (
    DependencyTarget,
    Health,
    ItemRef,
    MilestoneDate,
    RaciRole,
)
from programledger.domain.values import Department, Money, PartyKind

__all__ = [
    "ActivateProgram",
    "AddStakeholder",
    "AddWorkstream",
    "AllocateBudget",
    "ApproveChangeRequest",
    "AssessChangeRequest",
    "CancelProgram",
    "ChangeDependencyNeededBy",
    "ClearDependencyRisk",
    "ClearMilestoneRisk",
    "CompleteMilestone",
    "CompleteProgram",
    "FlagDependencyAtRisk",
    "FlagMilestoneAtRisk",
    "MarkMilestoneMissed",
    "MoveProgramToPortfolio",
    "PlanMilestone",
    "ProgramCommand",
    "ProposeProgram",
    "PutProgramOnHold",
    "RaiseChangeRequest",
    "RecordDecision",
    "RecordLesson",
    "RegisterDependency",
    "RejectChangeRequest",
    "RemoveStakeholder",
    "ReopenDependency",
    "ReportActualSpend",
    "ReportProgramHealth",
    "RescheduleMilestone",
    "ResolveDependency",
    "ResumeProgram",
    "ReviseBudgetAllocation",
    "RevisePlannedBudget",
    "SetMilestoneDuration",
    "SupersedeDecision",
    "UpdateProgramDetails",
    "UpdateWorkstream",
]


class _ProgramCommand(msgspec.Struct, frozen=True, kw_only=True):
    program_id: UUID


# Lifecycle and details


class ProposeProgram(_ProgramCommand, frozen=True, kw_only=True):
    code: str
    name: str
    objective: str
    sponsor: str
    owner: str
    priority: int
    start_date: date
    target_end_date: date
    planned_budget: Money
    description: str | None = None
    objective_key: str | None = None


class ActivateProgram(_ProgramCommand, frozen=True, kw_only=True):
    reason: str | None = None


class PutProgramOnHold(_ProgramCommand, frozen=True, kw_only=True):
    reason: str


class ResumeProgram(_ProgramCommand, frozen=True, kw_only=True):
    reason: str | None = None


class CompleteProgram(_ProgramCommand, frozen=True, kw_only=True):
    reason: str


class CancelProgram(_ProgramCommand, frozen=True, kw_only=True):
    reason: str


class UpdateProgramDetails(_ProgramCommand, frozen=True, kw_only=True):
    name: str | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    objective: str | UnsetType = UNSET
    objective_key: str | UnsetType | None = UNSET
    sponsor: str | UnsetType = UNSET
    owner: str | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    start_date: date | UnsetType = UNSET
    target_end_date: date | UnsetType = UNSET


class ReportProgramHealth(_ProgramCommand, frozen=True, kw_only=True):
    health: Health
    summary: str


# Stakeholders and workstreams


class AddStakeholder(_ProgramCommand, frozen=True, kw_only=True):
    stakeholder_id: UUID
    name: str
    kind: PartyKind
    department: Department
    role: RaciRole


class RemoveStakeholder(_ProgramCommand, frozen=True, kw_only=True):
    stakeholder_id: UUID
    reason: str | None = None


class AddWorkstream(_ProgramCommand, frozen=True, kw_only=True):
    workstream_id: UUID
    name: str
    lead: str
    department: Department
    description: str | None = None


class UpdateWorkstream(_ProgramCommand, frozen=True, kw_only=True):
    workstream_id: UUID
    name: str | UnsetType = UNSET
    lead: str | UnsetType = UNSET
    department: Department | UnsetType = UNSET
    description: str | UnsetType | None = UNSET


# Milestones


class PlanMilestone(_ProgramCommand, frozen=True, kw_only=True):
    milestone_id: UUID
    name: str
    due_date: date
    """Becomes both the baseline (fixed) and the first forecast."""
    workstream_id: UUID | None = None
    description: str | None = None


class RescheduleMilestone(_ProgramCommand, frozen=True, kw_only=True):
    milestone_id: UUID
    forecast_date: date
    reason: str


class FlagMilestoneAtRisk(_ProgramCommand, frozen=True, kw_only=True):
    milestone_id: UUID
    reason: str


class ClearMilestoneRisk(_ProgramCommand, frozen=True, kw_only=True):
    milestone_id: UUID
    reason: str | None = None


class CompleteMilestone(_ProgramCommand, frozen=True, kw_only=True):
    milestone_id: UUID
    actual_date: date


class MarkMilestoneMissed(_ProgramCommand, frozen=True, kw_only=True):
    milestone_id: UUID
    reason: str


class SetMilestoneDuration(_ProgramCommand, frozen=True, kw_only=True):
    milestone_id: UUID
    duration_days: int
    reason: str | None = None


# Dependencies


class RegisterDependency(_ProgramCommand, frozen=True, kw_only=True):
    dependency_id: UUID
    title: str
    dependent: ItemRef
    depends_on: DependencyTarget
    needed_by: date
    description: str | None = None


class ChangeDependencyNeededBy(_ProgramCommand, frozen=True, kw_only=True):
    dependency_id: UUID
    needed_by: date
    reason: str


class FlagDependencyAtRisk(_ProgramCommand, frozen=True, kw_only=True):
    dependency_id: UUID
    reason: str


class ClearDependencyRisk(_ProgramCommand, frozen=True, kw_only=True):
    dependency_id: UUID
    reason: str | None = None


class ResolveDependency(_ProgramCommand, frozen=True, kw_only=True):
    dependency_id: UUID
    resolution: str


class ReopenDependency(_ProgramCommand, frozen=True, kw_only=True):
    dependency_id: UUID
    reason: str


# Decisions


class _DecisionCommand(_ProgramCommand, frozen=True, kw_only=True):
    decision_id: UUID
    title: str
    context: str
    outcome: str
    """What was decided."""
    decided_by: str
    decided_on: date
    alternatives: tuple[str, ...] = ()


class RecordDecision(_DecisionCommand, frozen=True, kw_only=True):
    """Adds a decision to the log; recorded decisions are never edited."""


class SupersedeDecision(_DecisionCommand, frozen=True, kw_only=True):
    """Records a new decision that replaces ``supersedes``, which stays in the log."""

    supersedes: UUID


# Budget


class RevisePlannedBudget(_ProgramCommand, frozen=True, kw_only=True):
    planned_budget: Money
    reason: str


class AllocateBudget(_ProgramCommand, frozen=True, kw_only=True):
    """Sets money aside for exactly one of ``workstream_id`` or ``cost_centre``."""

    budget_allocation_id: UUID
    amount: Money
    workstream_id: UUID | None = None
    cost_centre: str | None = None
    purpose: str | None = None


class ReviseBudgetAllocation(_ProgramCommand, frozen=True, kw_only=True):
    """Changes an allocation's amount; zero releases the money while keeping the record."""

    budget_allocation_id: UUID
    amount: Money
    reason: str


class ReportActualSpend(_ProgramCommand, frozen=True, kw_only=True):
    amount: Money
    """Total spent so far, not the spend since the last report."""
    as_of: date
    note: str | None = None


# Lessons


class RecordLesson(_ProgramCommand, frozen=True, kw_only=True):
    lesson_id: UUID
    what_happened: str
    learned: str
    follow_up_action: str | None = None


# Change control


class RaiseChangeRequest(_ProgramCommand, frozen=True, kw_only=True):
    change_request_id: UUID
    title: str
    description: str
    raised_by: str
    schedule_impact: tuple[MilestoneDate, ...] = ()
    budget_impact: Money | None = None
    """Added to the planned budget; a negative amount gives money back."""
    scope_added: tuple[str, ...] = ()
    scope_removed: tuple[str, ...] = ()


class AssessChangeRequest(_ProgramCommand, frozen=True, kw_only=True):
    change_request_id: UUID
    assessed_by: str
    assessment: str


class ApproveChangeRequest(_ProgramCommand, frozen=True, kw_only=True):
    """By the program's sponsor; sets the next baseline, named ``baseline_name``."""

    change_request_id: UUID
    decided_by: str
    reason: str
    baseline_name: str


class RejectChangeRequest(_ProgramCommand, frozen=True, kw_only=True):
    change_request_id: UUID
    decided_by: str
    reason: str


class MoveProgramToPortfolio(_ProgramCommand, frozen=True, kw_only=True):
    """Puts the program in ``portfolio_id``, taking it out of the one it was in (``None``:
    out of every portfolio). The program's own stream holds its portfolio, so two
    concurrent moves are serialised by the stream's version: the second is decided again
    on the first and records the portfolio it really leaves."""

    portfolio_id: UUID | None = None
    reason: str | None = None


ProgramCommand = (
    ProposeProgram
    | ActivateProgram
    | PutProgramOnHold
    | ResumeProgram
    | CompleteProgram
    | CancelProgram
    | UpdateProgramDetails
    | ReportProgramHealth
    | AddStakeholder
    | RemoveStakeholder
    | AddWorkstream
    | UpdateWorkstream
    | PlanMilestone
    | RescheduleMilestone
    | FlagMilestoneAtRisk
    | ClearMilestoneRisk
    | CompleteMilestone
    | MarkMilestoneMissed
    | SetMilestoneDuration
    | RegisterDependency
    | ChangeDependencyNeededBy
    | FlagDependencyAtRisk
    | ClearDependencyRisk
    | ResolveDependency
    | ReopenDependency
    | RecordDecision
    | SupersedeDecision
    | RevisePlannedBudget
    | AllocateBudget
    | ReviseBudgetAllocation
    | ReportActualSpend
    | RecordLesson
    | RaiseChangeRequest
    | AssessChangeRequest
    | ApproveChangeRequest
    | RejectChangeRequest
    | MoveProgramToPortfolio
)
