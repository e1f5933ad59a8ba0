"""``decide`` for the Objective aggregate. Pure: no clock, no ids drawn, no I/O.

Lifecycle (``OBJECTIVE_LIFECYCLE``): ``ACTIVE -> CLOSED``; a closed objective is final.
Whether a linked program exists is checked by the application: it lives on another
stream.
"""

from __future__ import annotations

from programledger.domain._checks import KEY_MAX, Checks, require_status
from programledger.domain.errors import AlreadyExists, NotFound
from programledger.domain.objective.commands import (
    AddKeyResult,
    CheckInKeyResult,
    CloseObjective,
    DefineObjective,
    LinkObjectiveToProgram,
    ObjectiveCommand,
    UnlinkObjectiveFromProgram,
)
from programledger.domain.objective.events import (
    KeyResultAdded,
    KeyResultCheckedIn,
    ObjectiveClosed,
    ObjectiveDefined,
    ObjectiveEvent,
    ObjectiveLinkedToProgram,
    ObjectiveUnlinkedFromProgram,
)
from programledger.domain.objective.state import Objective, ObjectiveStatus
from programledger.domain.values import MAX_SAFE_INTEGER

__all__ = ["KEY_RESULTS_PER_OBJECTIVE", "OBJECTIVE_LIFECYCLE", "decide"]

KEY_RESULTS_PER_OBJECTIVE = 10
"""OKR practice keeps an objective to a handful of key results; ten is generous."""

_ACTIVE = frozenset({ObjectiveStatus.ACTIVE})
OBJECTIVE_LIFECYCLE: dict[type[ObjectiveCommand], frozenset[ObjectiveStatus]] = {
    AddKeyResult: _ACTIVE,
    CheckInKeyResult: _ACTIVE,
    LinkObjectiveToProgram: _ACTIVE,
    UnlinkObjectiveFromProgram: _ACTIVE,
    CloseObjective: _ACTIVE,
}
"""Command -> the statuses it is allowed in: a closed objective keeps its record as it was
scored."""


def decide(state: Objective | None, command: ObjectiveCommand) -> list[ObjectiveEvent]:
    _check(command)
    if isinstance(command, DefineObjective):
        if state is not None:
            raise AlreadyExists("objective", command.objective_id)
        return [
            ObjectiveDefined(
                objective_id=command.objective_id,
                title=command.title,
                owner=command.owner,
                starts_on=command.starts_on,
                ends_on=command.ends_on,
                key=command.key,
                description=command.description,
            )
        ]
    if state is None:
        raise NotFound("objective", command.objective_id)
    require_status("objective", state.objective_id, state.status, OBJECTIVE_LIFECYCLE, command)
    oid = state.objective_id
    within = f"objective {oid}"
    match command:
        case AddKeyResult():
            if any(k.key_result_id == command.key_result_id for k in state.key_results):
                raise AlreadyExists("key result", command.key_result_id)
            checks = Checks()
            if len(state.key_results) >= KEY_RESULTS_PER_OBJECTIVE:
                checks.fail(
                    "key_result_id",
                    f"an objective holds at most {KEY_RESULTS_PER_OBJECTIVE} key results",
                )
            checks.done()
            return [
                KeyResultAdded(
                    objective_id=oid,
                    key_result_id=command.key_result_id,
                    name=command.name,
                    unit=command.unit,
                    baseline=command.baseline,
                    target=command.target,
                    confidence=command.confidence,
                )
            ]
        case CheckInKeyResult():
            kr = next(
                (k for k in state.key_results if k.key_result_id == command.key_result_id), None
            )
            if kr is None:
                raise NotFound("key result", command.key_result_id, within=within)
            checks = Checks()
            if kr.checked_on is not None:
                checks.not_before(
                    "checked_on", command.checked_on, kr.checked_on, "the previous check-in"
                )
            checks.done()
            return [
                KeyResultCheckedIn(
                    objective_id=oid,
                    key_result_id=command.key_result_id,
                    value=command.value,
                    confidence=command.confidence,
                    checked_on=command.checked_on,
                    note=command.note,
                )
            ]
        case LinkObjectiveToProgram(program_id=program_id):
            if program_id in state.program_ids:
                return []
            return [ObjectiveLinkedToProgram(objective_id=oid, program_id=program_id)]
        case UnlinkObjectiveFromProgram(program_id=program_id, reason=reason):
            if program_id not in state.program_ids:
                raise NotFound("program link", program_id, within=within)
            return [
                ObjectiveUnlinkedFromProgram(objective_id=oid, program_id=program_id, reason=reason)
            ]
        case CloseObjective(reason=reason):
            return [ObjectiveClosed(objective_id=oid, reason=reason)]


def _check(command: ObjectiveCommand) -> None:
    """The command's own data, checked before its status, every problem at once."""
    checks = Checks()
    match command:
        case DefineObjective():
            checks.line("title", command.title)
            checks.line("owner", command.owner)
            checks.optional_line("key", command.key, max_len=KEY_MAX)
            checks.optional_text("description", command.description)
            if checks.day("starts_on", command.starts_on) and checks.day(
                "ends_on", command.ends_on
            ):
                checks.not_before("ends_on", command.ends_on, command.starts_on, "the start")
        case AddKeyResult():
            checks.line("name", command.name)
            checks.line("unit", command.unit, max_len=KEY_MAX)
            checks.integer("baseline", command.baseline, -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
            if checks.integer("target", command.target, -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) and (
                command.target == command.baseline
            ):
                checks.fail(
                    "target", "must differ from the baseline, or there is nothing to measure"
                )
            checks.integer("confidence", command.confidence, 0, 100)
        case CheckInKeyResult():
            checks.integer("value", command.value, -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
            checks.integer("confidence", command.confidence, 0, 100)
            checks.day("checked_on", command.checked_on)
            checks.optional_text("note", command.note)
        case UnlinkObjectiveFromProgram() | CloseObjective():
            checks.text("reason", command.reason)
    checks.done()
