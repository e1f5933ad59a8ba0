"""``decide`` for the Issue aggregate: checks a command against the issue as it is and
returns the events to record, or raises a :class:`~programledger.domain.errors.DomainError`.
Pure: no clock, no ids drawn, no I/O.

Lifecycle (see ``ISSUE_LIFECYCLE``)::

    OPEN -> RESOLVED -> (reopened) OPEN

An issue raised by another item in the same step (a risk materialising, an assumption
found false) is decided by :func:`raise_from`, from the raising event alone.
"""

from __future__ import annotations

from uuid import UUID

from programledger.domain._checks import Checks, changed, given
from programledger.domain.errors import AlreadyExists, InvalidTransition, NotFound
from programledger.domain.issue.commands import (
    EscalateIssue,
    IssueCommand,
    RaiseIssue,
    ReopenIssue,
    ResolveIssue,
    UpdateIssueDetails,
)
from programledger.domain.issue.events import (
    IssueDetailsUpdated,
    IssueEscalated,
    IssueEvent,
    IssueRaised,
    IssueReopened,
    IssueResolved,
)
from programledger.domain.issue.state import Issue, IssueSeverity, IssueStatus, RaisedIssue

__all__ = ["ISSUE_LIFECYCLE", "check_raised_issue", "decide", "raise_from"]

_S = IssueStatus

ISSUE_LIFECYCLE: dict[type[IssueCommand], frozenset[IssueStatus]] = {
    UpdateIssueDetails: frozenset({_S.OPEN}),
    EscalateIssue: frozenset({_S.OPEN}),
    ResolveIssue: frozenset({_S.OPEN}),
    ReopenIssue: frozenset({_S.RESOLVED}),
}
"""Command -> the statuses it is allowed in. A resolved issue changes only by being
reopened."""


def decide(state: Issue | None, command: IssueCommand) -> list[IssueEvent]:
    """The events ``command`` causes on ``state`` (``None``: no such issue yet).

    Returns an empty list when an update would change nothing.
    """
    if isinstance(command, RaiseIssue):
        if state is not None:
            raise AlreadyExists("issue", command.issue_id)
        return [_raise(command)]
    if state is None:
        raise NotFound("issue", command.issue_id)
    if command.issue_id != state.issue_id:
        raise ValueError(
            f"{type(command).__name__} for issue {command.issue_id} was decided against "
            f"issue {state.issue_id}: the caller loaded the wrong stream"
        )
    _check(command)
    allowed = ISSUE_LIFECYCLE[type(command)]
    if state.status not in allowed:
        hint = "reopen the issue first" if state.status is _S.RESOLVED else None
        raise InvalidTransition(
            "issue", state.issue_id, state.status.value, type(command).__name__, hint=hint
        )
    iid, pid = state.issue_id, state.program_id
    match command:
        case UpdateIssueDetails():
            return _update_details(state, command)
        case EscalateIssue(escalated_to=to, reason=reason):
            return [IssueEscalated(issue_id=iid, program_id=pid, escalated_to=to, reason=reason)]
        case ResolveIssue(resolution=resolution, resolved_on=on):
            return [
                IssueResolved(issue_id=iid, program_id=pid, resolution=resolution, resolved_on=on)
            ]
        case ReopenIssue(reason=reason):
            return [IssueReopened(issue_id=iid, program_id=pid, reason=reason)]


def check_raised_issue(checks: Checks, path: str, raised: RaisedIssue) -> None:
    """The fields of an issue raised by another item, reported under ``path``: the raising
    command is refused whole, before anything is recorded, if its issue could not open."""
    at = f"{path}." if path else ""
    checks.line(f"{at}title", raised.title)
    checks.member(f"{at}severity", raised.severity, IssueSeverity)
    checks.line(f"{at}owner", raised.owner)
    checks.day(f"{at}due_on", raised.due_on)
    checks.optional_text(f"{at}description", raised.description)


def raise_from(
    state: Issue | None,
    program_id: UUID,
    raised: RaisedIssue,
    *,
    risk_id: UUID | None = None,
    assumption_id: UUID | None = None,
) -> list[IssueEvent]:
    """The issue an event of another item raised (``risk_id`` or ``assumption_id``).

    Idempotent, since it completes a step that may be retried: an issue already opened by
    the same item records nothing; one opened otherwise under that id is
    :class:`AlreadyExists`.
    """
    event = IssueRaised(
        issue_id=raised.issue_id,
        program_id=program_id,
        title=raised.title,
        severity=raised.severity,
        owner=raised.owner,
        due_on=raised.due_on,
        description=raised.description,
        risk_id=risk_id,
        assumption_id=assumption_id,
    )
    if state is None:
        return [event]
    if (state.program_id, state.risk_id, state.assumption_id) == (
        program_id,
        risk_id,
        assumption_id,
    ):
        return []
    raise AlreadyExists("issue", raised.issue_id)


def _raise(c: RaiseIssue) -> IssueRaised:
    checks = Checks()
    check_raised_issue(
        checks,
        "",
        RaisedIssue(
            issue_id=c.issue_id,
            title=c.title,
            severity=c.severity,
            owner=c.owner,
            due_on=c.due_on,
            description=c.description,
        ),
    )
    checks.done()
    return IssueRaised(
        issue_id=c.issue_id,
        program_id=c.program_id,
        title=c.title,
        severity=c.severity,
        owner=c.owner,
        due_on=c.due_on,
        description=c.description,
        workstream_id=c.workstream_id,
        risk_id=c.risk_id,
    )


def _check(command: IssueCommand) -> None:
    """The command's own data, checked before its status so a form's mistakes are
    reported even when the status would refuse it too."""
    checks = Checks()
    match command:
        case UpdateIssueDetails():
            if given(command.title):
                checks.line("title", command.title)
            if given(command.description):
                checks.optional_text("description", command.description)
            if given(command.severity):
                checks.member("severity", command.severity, IssueSeverity)
            if given(command.owner):
                checks.line("owner", command.owner)
            if given(command.due_on):
                checks.day("due_on", command.due_on)
        case EscalateIssue():
            checks.line("escalated_to", command.escalated_to)
            checks.text("reason", command.reason)
        case ResolveIssue():
            checks.text("resolution", command.resolution)
            checks.day("resolved_on", command.resolved_on)
        case ReopenIssue():
            checks.text("reason", command.reason)
    checks.done()


def _update_details(state: Issue, c: UpdateIssueDetails) -> list[IssueEvent]:
    update = IssueDetailsUpdated(
        issue_id=state.issue_id,
        program_id=state.program_id,
        title=changed(c.title, state.title),
        description=changed(c.description, state.description),
        severity=changed(c.severity, state.severity),
        owner=changed(c.owner, state.owner),
        due_on=changed(c.due_on, state.due_on),
        workstream_id=changed(c.workstream_id, state.workstream_id),
    )
    if update == IssueDetailsUpdated(issue_id=state.issue_id, program_id=state.program_id):
        return []
    return [update]
