"""``decide`` for a program's plan: its workstreams and the milestones planned in them.
Split from ``decide.py`` only to keep each file readable; the program's lifecycle guard has
already run when these are called."""

from __future__ import annotations

from uuid import UUID

from programledger.domain._checks import Checks, changed, given, require_item
from programledger.domain.errors import AlreadyExists, NotFound, ValidationError
from programledger.domain.program.commands import (
    AddWorkstream,
    ClearMilestoneRisk,
    CompleteMilestone,
    FlagMilestoneAtRisk,
    MarkMilestoneMissed,
    PlanMilestone,
    ProgramCommand,
    RescheduleMilestone,
    SetMilestoneDuration,
    UpdateWorkstream,
)
from programledger.domain.program.events import (
    MilestoneCompleted,
    MilestoneDurationSet,
    MilestoneFlaggedAtRisk,
    MilestoneMissed,
    MilestonePlanned,
    MilestoneRescheduled,
    MilestoneRiskCleared,
    ProgramEvent,
    WorkstreamAdded,
    WorkstreamUpdated,
)
from programledger.domain.program.state import Milestone, MilestoneStatus, Program, find, within
from programledger.domain.values import Department

__all__ = [
    "MILESTONE_LIFECYCLE",
    "add_workstream",
    "clear_milestone_risk",
    "complete_milestone",
    "flag_milestone",
    "miss_milestone",
    "plan_milestone",
    "require_workstream",
    "reschedule_milestone",
    "set_duration",
    "update_workstream",
]

_MS = MilestoneStatus
MILESTONE_LIFECYCLE: dict[type[ProgramCommand], frozenset[MilestoneStatus]] = {
    RescheduleMilestone: frozenset({_MS.PLANNED, _MS.AT_RISK, _MS.MISSED}),
    FlagMilestoneAtRisk: frozenset({_MS.PLANNED}),
    ClearMilestoneRisk: frozenset({_MS.AT_RISK}),
    CompleteMilestone: frozenset({_MS.PLANNED, _MS.AT_RISK, _MS.MISSED}),
    MarkMilestoneMissed: frozenset({_MS.PLANNED, _MS.AT_RISK}),
    SetMilestoneDuration: frozenset({_MS.PLANNED, _MS.AT_RISK, _MS.MISSED}),
}
"""Command on a milestone -> the milestone statuses it is allowed in. DONE is final; a
missed milestone can still be rescheduled and completed (delivered late)."""


def add_workstream(state: Program, c: AddWorkstream) -> WorkstreamAdded:
    checks = Checks()
    checks.line("name", c.name)
    checks.line("lead", c.lead)
    checks.member("department", c.department, Department)
    checks.optional_text("description", c.description)
    checks.done()
    if find(state.workstreams, lambda w: w.workstream_id, c.workstream_id) is not None:
        raise AlreadyExists("workstream", c.workstream_id, within=within(state))
    _unique_workstream_name(state, c.name, c.workstream_id)
    return WorkstreamAdded(
        program_id=c.program_id,
        workstream_id=c.workstream_id,
        name=c.name,
        lead=c.lead,
        department=c.department,
        description=c.description,
    )


def update_workstream(state: Program, c: UpdateWorkstream) -> list[ProgramEvent]:
    """No event when nothing would change: repeating an update is harmless."""
    checks = Checks()
    if given(c.name):
        checks.line("name", c.name)
    if given(c.lead):
        checks.line("lead", c.lead)
    if given(c.department):
        checks.member("department", c.department, Department)
    if given(c.description):
        checks.optional_text("description", c.description)
    checks.done()
    current = find(state.workstreams, lambda w: w.workstream_id, c.workstream_id)
    if current is None:
        raise NotFound("workstream", c.workstream_id, within=within(state))
    if given(c.name):
        _unique_workstream_name(state, c.name, c.workstream_id)
    update = WorkstreamUpdated(
        program_id=c.program_id,
        workstream_id=c.workstream_id,
        name=changed(c.name, current.name),
        lead=changed(c.lead, current.lead),
        department=changed(c.department, current.department),
        description=changed(c.description, current.description),
    )
    if update == WorkstreamUpdated(program_id=c.program_id, workstream_id=c.workstream_id):
        return []
    return [update]


def _unique_workstream_name(state: Program, name: str, workstream_id: UUID) -> None:
    if any(w.name == name and w.workstream_id != workstream_id for w in state.workstreams):
        raise ValidationError.single("name", f"another workstream is already called {name!r}")


def require_workstream(state: Program, workstream_id: UUID, path: str) -> None:
    if find(state.workstreams, lambda w: w.workstream_id, workstream_id) is None:
        raise ValidationError.single(
            path, f"workstream {workstream_id} does not exist in {within(state)}"
        )


# Milestones


def plan_milestone(state: Program, c: PlanMilestone) -> MilestonePlanned:
    checks = Checks()
    checks.line("name", c.name)
    checks.day("due_date", c.due_date)
    checks.optional_text("description", c.description)
    checks.done()
    if find(state.milestones, lambda m: m.milestone_id, c.milestone_id) is not None:
        raise AlreadyExists("milestone", c.milestone_id, within=within(state))
    if c.workstream_id is not None:
        require_workstream(state, c.workstream_id, "workstream_id")
    return MilestonePlanned(
        program_id=c.program_id,
        milestone_id=c.milestone_id,
        name=c.name,
        workstream_id=c.workstream_id,
        description=c.description,
        baseline_date=c.due_date,
    )


def _milestone(
    state: Program,
    c: RescheduleMilestone
    | FlagMilestoneAtRisk
    | ClearMilestoneRisk
    | CompleteMilestone
    | MarkMilestoneMissed
    | SetMilestoneDuration,
) -> Milestone:
    milestone = find(state.milestones, lambda m: m.milestone_id, c.milestone_id)
    return require_item(
        "milestone", c.milestone_id, milestone, MILESTONE_LIFECYCLE, c, within(state)
    )


def reschedule_milestone(state: Program, c: RescheduleMilestone) -> MilestoneRescheduled:
    checks = Checks()
    checks.day("forecast_date", c.forecast_date)
    checks.text("reason", c.reason)
    checks.done()
    milestone = _milestone(state, c)
    if milestone.forecast_date == c.forecast_date:
        raise ValidationError.single(
            "forecast_date", f"the milestone is already forecast for {c.forecast_date}"
        )
    return MilestoneRescheduled(
        program_id=c.program_id,
        milestone_id=c.milestone_id,
        forecast_date=c.forecast_date,
        reason=c.reason,
    )


def flag_milestone(state: Program, c: FlagMilestoneAtRisk) -> MilestoneFlaggedAtRisk:
    checks = Checks()
    checks.text("reason", c.reason)
    checks.done()
    _milestone(state, c)
    return MilestoneFlaggedAtRisk(
        program_id=c.program_id, milestone_id=c.milestone_id, reason=c.reason
    )


def clear_milestone_risk(state: Program, c: ClearMilestoneRisk) -> MilestoneRiskCleared:
    checks = Checks()
    checks.optional_text("reason", c.reason)
    checks.done()
    _milestone(state, c)
    return MilestoneRiskCleared(
        program_id=c.program_id, milestone_id=c.milestone_id, reason=c.reason
    )


def complete_milestone(state: Program, c: CompleteMilestone) -> MilestoneCompleted:
    checks = Checks()
    checks.day("actual_date", c.actual_date)
    checks.done()
    _milestone(state, c)
    return MilestoneCompleted(
        program_id=c.program_id, milestone_id=c.milestone_id, actual_date=c.actual_date
    )


def miss_milestone(state: Program, c: MarkMilestoneMissed) -> MilestoneMissed:
    checks = Checks()
    checks.text("reason", c.reason)
    checks.done()
    _milestone(state, c)
    return MilestoneMissed(program_id=c.program_id, milestone_id=c.milestone_id, reason=c.reason)


DURATION_LIMIT = 3650


def set_duration(state: Program, c: SetMilestoneDuration) -> list[ProgramEvent]:
    """No event when the duration is already that: repeating it is harmless."""
    checks = Checks()
    checks.integer("duration_days", c.duration_days, 0, DURATION_LIMIT)
    checks.optional_text("reason", c.reason)
    checks.done()
    if _milestone(state, c).duration_days == c.duration_days:
        return []
    return [
        MilestoneDurationSet(
            program_id=c.program_id,
            milestone_id=c.milestone_id,
            duration_days=c.duration_days,
            reason=c.reason,
        )
    ]
