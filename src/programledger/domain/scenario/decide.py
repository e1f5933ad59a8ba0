"""``decide`` for a capacity scenario, and :func:`commit_plan`: the real commands a commit
sends.

A scenario checks its changes' own data; whether the work fits a resource is what
evaluation shows and what the resource's own rules decide at commit. That the resource
and the program exist is checked by the application when a change is added (rules across
streams read the store just before deciding).
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from programledger.domain._checks import Checks, require_status
from programledger.domain.errors import AlreadyExists, NotFound, ValidationError
from programledger.domain.resource.commands import (
    ChangeCapacity,
    ConfirmAllocation,
    ProposeAllocation,
    ResourceCommand,
)
from programledger.domain.resource.decide import MAX_TEAM_CAPACITY, RESOURCE_KEY_PATTERN
from programledger.domain.scenario.commands import (
    AddScenarioAllocation,
    AddScenarioCapacityChange,
    CommitScenario,
    CreateScenario,
    DiscardScenario,
    RemoveScenarioChange,
    ScenarioCommand,
)
from programledger.domain.scenario.events import (
    ScenarioAllocationAdded,
    ScenarioCapacityChangeAdded,
    ScenarioChangeRemoved,
    ScenarioCommitted,
    ScenarioCreated,
    ScenarioDiscarded,
    ScenarioEvent,
)
from programledger.domain.scenario.state import (
    HypotheticalAllocation,
    HypotheticalCapacity,
    Scenario,
    ScenarioStatus,
    scenario_stream_id,
)

__all__ = ["CHANGES_MAX", "SCENARIO_LIFECYCLE", "commit_plan", "decide"]

CHANGES_MAX = 500
"""Changes per scenario: a commit sends up to two commands for each, in one request."""

_OPEN = frozenset({ScenarioStatus.OPEN})
SCENARIO_LIFECYCLE: Mapping[type, frozenset[ScenarioStatus]] = {
    AddScenarioAllocation: _OPEN,
    AddScenarioCapacityChange: _OPEN,
    RemoveScenarioChange: _OPEN,
    CommitScenario: _OPEN,
    DiscardScenario: _OPEN,
}


def decide(state: Scenario | None, command: ScenarioCommand) -> list[ScenarioEvent]:
    _check(command)
    if isinstance(command, CreateScenario):
        if state is not None:
            raise AlreadyExists("scenario", command.scenario_id)
        return [
            ScenarioCreated(
                scenario_id=command.scenario_id,
                name=command.name,
                description=command.description,
            )
        ]
    if state is None:
        raise NotFound("scenario", command.scenario_id)
    require_status("scenario", command.scenario_id, state.status, SCENARIO_LIFECYCLE, command)
    changes: set[UUID] = {a.change_id for a in state.allocations}
    changes |= {c.change_id for c in state.capacity_changes}
    match command:
        case AddScenarioAllocation() | AddScenarioCapacityChange():
            if command.change_id in changes:
                raise AlreadyExists(
                    "scenario change",
                    command.change_id,
                    within=scenario_stream_id(state.scenario_id),
                )
            if len(changes) >= CHANGES_MAX:
                raise ValidationError.single(
                    "change_id", f"a scenario holds at most {CHANGES_MAX} changes"
                )
            if isinstance(command, AddScenarioAllocation):
                return [
                    ScenarioAllocationAdded(
                        scenario_id=state.scenario_id,
                        change_id=command.change_id,
                        resource_key=command.resource_key,
                        program_id=command.program_id,
                        workstream_id=command.workstream_id,
                        start_date=command.start_date,
                        end_date=command.end_date,
                        percentage=command.percentage,
                    )
                ]
            return [
                ScenarioCapacityChangeAdded(
                    scenario_id=state.scenario_id,
                    change=HypotheticalCapacity(
                        change_id=command.change_id,
                        resource_key=command.resource_key,
                        capacity=command.capacity,
                        reason=command.reason,
                        effective_from=command.effective_from,
                    ),
                )
            ]
        case RemoveScenarioChange():
            if command.change_id not in changes:
                raise NotFound(
                    "scenario change",
                    command.change_id,
                    within=scenario_stream_id(state.scenario_id),
                )
            return [
                ScenarioChangeRemoved(scenario_id=state.scenario_id, change_id=command.change_id)
            ]
        case CommitScenario():
            if not changes:
                raise ValidationError.single(
                    "scenario_id", "the scenario holds no changes: there is nothing to commit"
                )
            return [
                ScenarioCommitted(
                    scenario_id=state.scenario_id,
                    outcomes=command.outcomes,
                    override_reason=command.override_reason,
                )
            ]
        case DiscardScenario():
            return [ScenarioDiscarded(scenario_id=state.scenario_id, reason=command.reason)]
    raise TypeError(f"{type(command).__name__} is not a scenario command")


def _check(command: ScenarioCommand) -> None:
    checks = Checks()
    match command:
        case CreateScenario():
            checks.line("name", command.name)
            checks.optional_text("description", command.description)
        case AddScenarioAllocation():
            checks.pattern(
                "resource_key", command.resource_key, RESOURCE_KEY_PATTERN, "alice.martin"
            )
            checks.day("start_date", command.start_date)
            checks.day("end_date", command.end_date)
            checks.not_before("end_date", command.end_date, command.start_date, "start_date")
            checks.integer("percentage", command.percentage, 1, MAX_TEAM_CAPACITY)
        case AddScenarioCapacityChange():
            checks.pattern(
                "resource_key", command.resource_key, RESOURCE_KEY_PATTERN, "alice.martin"
            )
            checks.integer("capacity", command.capacity, 0, MAX_TEAM_CAPACITY)
            checks.text("reason", command.reason)
            checks.optional_day("effective_from", command.effective_from)
        case CommitScenario():
            checks.optional_text("override_reason", command.override_reason)
        case DiscardScenario():
            checks.text("reason", command.reason)
    checks.done()


def commit_plan(
    state: Scenario, override_reason: str | None = None
) -> list[tuple[HypotheticalAllocation | HypotheticalCapacity, ResourceCommand]]:
    """The real commands a commit sends, in order: capacity changes first (a raise makes
    room for the work after it), then each allocation proposed and confirmed. The
    allocation's id is the change's, so a repeated commit cannot allocate twice."""
    plan: list[tuple[HypotheticalAllocation | HypotheticalCapacity, ResourceCommand]] = [
        (
            c,
            ChangeCapacity(
                resource_key=c.resource_key,
                capacity=c.capacity,
                reason=c.reason,
                effective_from=c.effective_from,
                override_reason=override_reason,
            ),
        )
        for c in state.capacity_changes
    ]
    for a in state.allocations:
        plan.append(
            (
                a,
                ProposeAllocation(
                    resource_key=a.resource_key,
                    allocation_id=a.change_id,
                    program_id=a.program_id,
                    workstream_id=a.workstream_id,
                    start_date=a.start_date,
                    end_date=a.end_date,
                    percentage=a.percentage,
                    note=f"from scenario {state.name}",
                ),
            )
        )
        plan.append(
            (
                a,
                ConfirmAllocation(
                    resource_key=a.resource_key,
                    allocation_id=a.change_id,
                    override_reason=override_reason,
                ),
            )
        )
    return plan
