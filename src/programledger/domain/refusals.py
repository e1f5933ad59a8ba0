"""The refusals each command can meet: the domain's answer to "what can go wrong with
this command", which the API turns into each mutation's payload union (a client then
handles exactly the errors the command can return).

The table is checked against the decide functions: every domain test that runs a
command through ``decide`` (the ``given/when`` scenarios, the random histories of the
property tests) fails on a refusal the command does not list here. The refusals the
application adds before deciding are listed too, with the rule they come from:

- every command can be refused as invalid (:class:`ValidationError`): its own data, or a
  reference the application checks (a program or workstream that does not exist);
- every command on something that exists can find it missing (:class:`NotFound`: the
  aggregate, or the item inside it the command names);
- every command on a program, and every command starting work on one (identifying a
  risk, proposing or confirming an allocation), is refused once the program is final
  (:class:`TerminalState`, an :class:`InvalidTransition`), as are the lifecycle's
  transitions (``PROGRAM_LIFECYCLE``, ``RISK_LIFECYCLE``, ``ALLOCATION_LIFECYCLE``);
- a command creating something under a caller's id can find it taken
  (:class:`AlreadyExists`; a program's code as well);
- budgets (:class:`BudgetExceeded`) and capacity (:class:`OverAllocation`) are refused
  by the commands that move them.

Refusals of the store (a concurrent change, a reused idempotency key) can meet any
command and are not listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from programledger.domain.assumption import commands as assumption
from programledger.domain.errors import (
    AlreadyExists,
    BudgetExceeded,
    DomainError,
    InvalidTransition,
    NotFound,
    NotProgramOwner,
    OverAllocation,
    ValidationError,
)
from programledger.domain.issue import commands as issue
from programledger.domain.objective import commands as objective
from programledger.domain.portfolio import commands as portfolio
from programledger.domain.program import commands as program
from programledger.domain.report import commands as report
from programledger.domain.resource import commands as resource
from programledger.domain.risk import commands as risk
from programledger.domain.scenario import commands as scenario
from programledger.domain.schedule import commands as schedule

__all__ = ["REFUSALS", "declared"]

Refusals = frozenset[type[DomainError]]

_CREATE: Refusals = frozenset({ValidationError, AlreadyExists})
"""A new aggregate: its data, and its id (or a program's code) taken."""
_CHANGE: Refusals = frozenset({ValidationError, NotFound})
"""A command on an aggregate with no lifecycle of its own (a resource, the schedule)."""
_ON_PROGRAM: Refusals = frozenset({ValidationError, NotFound, InvalidTransition})
"""A command on an existing program (or risk, allocation): missing, or in a status that
does not allow it."""


def _with(*more: type[DomainError]) -> Refusals:
    return _ON_PROGRAM | frozenset(more)


_PROGRAM: Mapping[type, Refusals] = {
    program.ProposeProgram: _CREATE,
    program.AddStakeholder: _with(AlreadyExists),
    program.AddWorkstream: _with(AlreadyExists),
    program.PlanMilestone: _with(AlreadyExists),
    program.RegisterDependency: _with(AlreadyExists),
    program.RecordDecision: _with(AlreadyExists),
    program.SupersedeDecision: _with(AlreadyExists),
    program.RecordLesson: _with(AlreadyExists),
    program.RaiseChangeRequest: _with(AlreadyExists),
    program.AllocateBudget: _with(AlreadyExists, BudgetExceeded),
    program.ReviseBudgetAllocation: _with(BudgetExceeded),
    program.RevisePlannedBudget: _with(BudgetExceeded),
    program.ApproveChangeRequest: _with(BudgetExceeded),
}
"""Program commands whose refusals differ from :data:`_ON_PROGRAM`."""

_RISK: Mapping[type, Refusals] = {
    # A risk on a program that does not exist is a wrong reference (ValidationError).
    risk.IdentifyRisk: _CREATE | {InvalidTransition},
    # Materialising may raise an issue under the caller's id, which can be taken.
    risk.ReportRiskMaterialised: _with(AlreadyExists),
}

_ASSUMPTION: Mapping[type, Refusals] = {
    assumption.RecordAssumption: _CREATE | {InvalidTransition},
    # Invalidating may raise a risk or an issue under the caller's id, which can be taken.
    assumption.InvalidateAssumption: _with(AlreadyExists),
}

_ISSUE: Mapping[type, Refusals] = {
    issue.RaiseIssue: _CREATE | {InvalidTransition},
}

_RESOURCE: Mapping[type, Refusals] = {
    resource.RegisterResource: _CREATE,
    resource.UpdateResourceDetails: _CHANGE,
    resource.ChangeCapacity: _CHANGE | {OverAllocation},
    resource.ProposeAllocation: _ON_PROGRAM | {AlreadyExists},
    resource.ConfirmAllocation: _ON_PROGRAM | {OverAllocation},
    resource.AdjustAllocation: _ON_PROGRAM | {OverAllocation},
    resource.ReleaseAllocation: _ON_PROGRAM,
}

_SCHEDULE: Mapping[type, Refusals] = {
    # A link closing a cycle is a ScheduleCycle, a ValidationError.
    schedule.LinkMilestones: _CREATE,
    schedule.UnlinkMilestones: _CHANGE,
}

_PORTFOLIO: Mapping[type, Refusals] = {
    portfolio.CreatePortfolio: _CREATE,
}

_OBJECTIVE: Mapping[type, Refusals] = {
    objective.DefineObjective: _CREATE,
    objective.AddKeyResult: _ON_PROGRAM | {AlreadyExists},
    # Linking a program it already serves records nothing; a second link is no refusal.
}

_REPORT: Mapping[type, Refusals] = {
    report.DraftStatusReport: _CREATE | {InvalidTransition},
    # Only the program's owner publishes; the application fills in who asks and who owns.
    report.PublishStatusReport: _ON_PROGRAM | {NotProgramOwner},
}

_SCENARIO: Mapping[type, Refusals] = {
    scenario.CreateScenario: _CREATE,
    # A change is added under the caller's id, which can be taken.
    scenario.AddScenarioAllocation: _ON_PROGRAM | {AlreadyExists},
    scenario.AddScenarioCapacityChange: _ON_PROGRAM | {AlreadyExists},
}

REFUSALS: Mapping[type, Refusals] = {
    **{command: _PROGRAM.get(command, _ON_PROGRAM) for command in get_args(program.ProgramCommand)},
    **{command: _RISK.get(command, _ON_PROGRAM) for command in get_args(risk.RiskCommand)},
    **{
        command: _ASSUMPTION.get(command, _ON_PROGRAM)
        for command in get_args(assumption.AssumptionCommand)
    },
    **{command: _ISSUE.get(command, _ON_PROGRAM) for command in get_args(issue.IssueCommand)},
    **{
        command: _PORTFOLIO.get(command, _ON_PROGRAM)
        for command in get_args(portfolio.PortfolioCommand)
    },
    **{
        command: _OBJECTIVE.get(command, _ON_PROGRAM)
        for command in get_args(objective.ObjectiveCommand)
    },
    **{
        command: _REPORT.get(command, _ON_PROGRAM)
        for command in get_args(report.StatusReportCommand)
    },
    **{
        command: _SCENARIO.get(command, _ON_PROGRAM)
        for command in get_args(scenario.ScenarioCommand)
    },
    **{command: _RESOURCE[command] for command in get_args(resource.ResourceCommand)},
    **{command: _SCHEDULE[command] for command in get_args(schedule.ScheduleCommand)},
}
"""Every command -> the kinds of :class:`DomainError` it can be refused with (a subclass,
such as ``TerminalState`` or ``ScheduleCycle``, counts as its listed base)."""


def declared(command: object, error: DomainError) -> bool:
    """Whether ``error`` is one of the refusals the table lists for ``command``."""
    return any(isinstance(error, kind) for kind in REFUSALS[type(command)])
