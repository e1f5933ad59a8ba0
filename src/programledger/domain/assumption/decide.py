"""``decide`` for the Assumption aggregate: checks a command against the assumption as it
is and returns the events to record, or raises a
:class:`~programledger.domain.errors.DomainError`. Pure: no clock, no ids drawn, no I/O.

Lifecycle (see ``ASSUMPTION_LIFECYCLE``)::

    OPEN -> VALIDATED -> INVALIDATED
    OPEN -> INVALIDATED (final)
"""

from __future__ import annotations

from programledger.domain._checks import Checks, changed, given
from programledger.domain.assumption.commands import (
    AssumptionCommand,
    InvalidateAssumption,
    RecordAssumption,
    UpdateAssumptionDetails,
    ValidateAssumption,
)
from programledger.domain.assumption.events import (
    AssumptionDetailsUpdated,
    AssumptionEvent,
    AssumptionInvalidated,
    AssumptionRecorded,
    AssumptionValidated,
)
from programledger.domain.assumption.state import (
    Assumption,
    AssumptionStatus,
    Confidence,
    Verdict,
)
from programledger.domain.errors import AlreadyExists, InvalidTransition, NotFound
from programledger.domain.issue.decide import check_raised_issue
from programledger.domain.risk.decide import check_raised_risk

__all__ = ["ASSUMPTION_LIFECYCLE", "decide"]

_S = AssumptionStatus

ASSUMPTION_LIFECYCLE: dict[type[AssumptionCommand], frozenset[AssumptionStatus]] = {
    UpdateAssumptionDetails: frozenset({_S.OPEN}),
    ValidateAssumption: frozenset({_S.OPEN}),
    InvalidateAssumption: frozenset({_S.OPEN, _S.VALIDATED}),
}
"""Command -> the statuses it is allowed in. A validated assumption can still be found
false later (new evidence); an invalidated one is final."""


def decide(state: Assumption | None, command: AssumptionCommand) -> list[AssumptionEvent]:
    """The events ``command`` causes on ``state`` (``None``: no such assumption yet).

    Returns an empty list when an update would change nothing, and for an invalidation
    repeated exactly as recorded: the application then completes the step it began (the
    raised risk or issue), which a crash may have cut short.
    """
    if isinstance(command, RecordAssumption):
        if state is not None:
            raise AlreadyExists("assumption", command.assumption_id)
        return [_record(command)]
    if state is None:
        raise NotFound("assumption", command.assumption_id)
    if command.assumption_id != state.assumption_id:
        raise ValueError(
            f"{type(command).__name__} for assumption {command.assumption_id} was decided "
            f"against assumption {state.assumption_id}: the caller loaded the wrong stream"
        )
    _check(command)
    if isinstance(command, InvalidateAssumption) and _repeats(state, command):
        return []
    allowed = ASSUMPTION_LIFECYCLE[type(command)]
    if state.status not in allowed:
        shown = " or ".join(s.value for s in AssumptionStatus if s in allowed)
        raise InvalidTransition(
            "assumption",
            state.assumption_id,
            state.status.value,
            type(command).__name__,
            hint=f"allowed only when {shown}",
        )
    aid, pid = state.assumption_id, state.program_id
    match command:
        case UpdateAssumptionDetails():
            return _update_details(state, command)
        case ValidateAssumption(evidence=evidence, validated_on=on):
            return [
                AssumptionValidated(
                    assumption_id=aid, program_id=pid, evidence=evidence, validated_on=on
                )
            ]
        case InvalidateAssumption():
            return [
                AssumptionInvalidated(
                    assumption_id=aid,
                    program_id=pid,
                    evidence=command.evidence,
                    invalidated_on=command.invalidated_on,
                    raised_risk=command.raise_risk,
                    raised_issue=command.raise_issue,
                )
            ]


def _repeats(state: Assumption, c: InvalidateAssumption) -> bool:
    """Whether ``c`` is the invalidation already recorded (same evidence, day and raised
    item)."""
    return (
        state.status is _S.INVALIDATED
        and state.invalidation == Verdict(evidence=c.evidence, on=c.invalidated_on)
        and state.raised_risk_id == (None if c.raise_risk is None else c.raise_risk.risk_id)
        and state.raised_issue_id == (None if c.raise_issue is None else c.raise_issue.issue_id)
    )


def _record(c: RecordAssumption) -> AssumptionRecorded:
    checks = Checks()
    checks.line("statement", c.statement)
    checks.line("owner", c.owner)
    checks.member("confidence", c.confidence, Confidence)
    checks.day("validate_by", c.validate_by)
    checks.optional_text("description", c.description)
    checks.done()
    return AssumptionRecorded(
        assumption_id=c.assumption_id,
        program_id=c.program_id,
        statement=c.statement,
        owner=c.owner,
        confidence=c.confidence,
        validate_by=c.validate_by,
        description=c.description,
        workstream_id=c.workstream_id,
    )


def _check(command: AssumptionCommand) -> None:
    """The command's own data, checked before its status so a form's mistakes are
    reported even when the status would refuse it too."""
    checks = Checks()
    match command:
        case UpdateAssumptionDetails():
            if given(command.statement):
                checks.line("statement", command.statement)
            if given(command.owner):
                checks.line("owner", command.owner)
            if given(command.confidence):
                checks.member("confidence", command.confidence, Confidence)
            if given(command.validate_by):
                checks.day("validate_by", command.validate_by)
            if given(command.description):
                checks.optional_text("description", command.description)
        case ValidateAssumption():
            checks.text("evidence", command.evidence)
            checks.day("validated_on", command.validated_on)
        case InvalidateAssumption():
            checks.text("evidence", command.evidence)
            checks.day("invalidated_on", command.invalidated_on)
            if command.raise_risk is not None:
                check_raised_risk(checks, "raise_risk", command.raise_risk)
            if command.raise_issue is not None:
                check_raised_issue(checks, "raise_issue", command.raise_issue)
                if command.raise_risk is not None:
                    checks.fail("raise_issue", "give raise_risk or raise_issue, not both")
    checks.done()


def _update_details(state: Assumption, c: UpdateAssumptionDetails) -> list[AssumptionEvent]:
    update = AssumptionDetailsUpdated(
        assumption_id=state.assumption_id,
        program_id=state.program_id,
        statement=changed(c.statement, state.statement),
        owner=changed(c.owner, state.owner),
        confidence=changed(c.confidence, state.confidence),
        validate_by=changed(c.validate_by, state.validate_by),
        description=changed(c.description, state.description),
        workstream_id=changed(c.workstream_id, state.workstream_id),
    )
    if update == AssumptionDetailsUpdated(
        assumption_id=state.assumption_id, program_id=state.program_id
    ):
        return []
    return [update]
