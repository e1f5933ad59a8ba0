"""What a caller hands the application with a command, and what it gets back.

The command itself is a domain type (``programledger.domain``); the context carries what
the domain must not see: who asks (from the authenticated caller, never the request body),
how the request is traced, and the concurrency and idempotency terms of the request.
The one exception is a rule about who may act (only a program's owner publishes its
status report): there the application copies the caller into the command's
``filled_by_application`` field, so the domain decides it like any other rule.
"""

from __future__ import annotations

import functools
import hashlib
from uuid import UUID, uuid4

import msgspec

from programledger.domain._checks import text_problem
from programledger.domain.assumption import AssumptionCommand
from programledger.domain.errors import FieldIssue, ValidationError
from programledger.domain.events import DomainEvent
from programledger.domain.issue import IssueCommand
from programledger.domain.objective import ObjectiveCommand
from programledger.domain.portfolio import PortfolioCommand
from programledger.domain.program import ProgramCommand
from programledger.domain.report import StatusReportCommand
from programledger.domain.resource import ResourceCommand
from programledger.domain.risk import RiskCommand
from programledger.domain.scenario import ScenarioCommand
from programledger.domain.schedule import ScheduleCommand

__all__ = [
    "Command",
    "CommandContext",
    "CommandResult",
    "command_fingerprint",
]

Command = (
    ProgramCommand
    | RiskCommand
    | ResourceCommand
    | ScheduleCommand
    | PortfolioCommand
    | ObjectiveCommand
    | AssumptionCommand
    | IssueCommand
    | StatusReportCommand
    | ScenarioCommand
)
"""Every command the application handles."""

_ACTOR_MAX = 200
_REASON_MAX = 2000
_KEY_MAX = 200
"""The store's limits on metadata, checked here so a caller gets a ValidationError naming
the field rather than a store error."""


class CommandContext(msgspec.Struct, frozen=True, kw_only=True):
    """Who sends a command and on what terms.

    ``expected_version``: the stream version the client based its command on. When given,
    a stream that has moved on refuses the command with ``ConcurrencyConflict`` (the client
    decides again on fresh data); when ``None``, the application retries conflicts itself.
    ``correlation_id`` is drawn when not given, so every command's events can be traced.
    """

    actor: str
    correlation_id: UUID = msgspec.field(default_factory=uuid4)
    causation_id: UUID | None = None
    reason: str | None = None
    idempotency_key: str | None = None
    expected_version: int | None = None

    def check(self) -> None:
        """Refuse a context the store would refuse, naming the request field.

        A bad actor is the authentication layer's bug, not the user's, so it is a
        ``ValueError`` rather than a validation issue.
        """
        actor = self.actor
        if (
            not isinstance(actor, str)
            or not actor.strip()
            or len(actor) > _ACTOR_MAX
            or text_problem(actor, single_line=True) is not None
        ):
            raise ValueError(f"actor must be 1-{_ACTOR_MAX} characters of text, got {actor!r}")
        issues: list[FieldIssue] = []
        reason = self.reason
        if reason is not None:
            if not reason.strip() or len(reason) > _REASON_MAX:
                issues.append(
                    FieldIssue(
                        "reason", f"must be non-blank text of at most {_REASON_MAX} characters"
                    )
                )
            elif (problem := text_problem(reason, single_line=False)) is not None:
                issues.append(FieldIssue("reason", problem))
        key = self.idempotency_key
        if key is not None and not (
            0 < len(key) <= _KEY_MAX and text_problem(key, single_line=False) is None
        ):
            issues.append(
                FieldIssue("idempotency_key", f"must be 1-{_KEY_MAX} characters without NUL")
            )
        version = self.expected_version
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 0
        ):
            issues.append(FieldIssue("expected_version", "must be a whole number >= 0"))
        if issues:
            raise ValidationError(issues)


class CommandResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of an accepted command.

    A command that changes nothing (``events`` empty) wrote nothing: ``version`` and
    ``last_position`` then describe the stream as the command found it, so "wait until
    the read side reached ``last_position``" still shows the state the command saw.
    """

    stream_id: str
    entity_id: UUID | str
    """The aggregate's id: the program or risk id, or the resource key."""
    version: int
    """The stream's version after the command: the next expected version."""
    last_position: int
    """Global position of the last event written (or, for a no-op, of the stream's last
    event; 0 for no stream); a query can wait for the read side to reach it."""
    event_ids: tuple[UUID, ...]
    events: tuple[DomainEvent, ...]
    replayed: bool = False
    """True when an idempotency key matched an earlier command: this is its result, and
    nothing was written now."""
    raised: tuple[DomainEvent, ...] = ()
    """The first event of a risk or issue this command raised on the item's own stream in
    the same step (an assumption invalidated, a risk materialised), when written now."""


_encoder = msgspec.json.Encoder(order="sorted")


@functools.cache
def _fields(command_type: type[Command]) -> tuple[msgspec.structs.FieldInfo, ...]:
    """A command type's fields, worked out once: ``msgspec.structs.fields`` evaluates the
    type's annotations at every call, which cost an API process 5 % of its CPU when it ran
    for every command that carried an idempotency key."""
    return msgspec.structs.fields(command_type)


def _is_default(value: object, field: msgspec.structs.FieldInfo) -> bool:
    if field.default is not msgspec.NODEFAULT:
        return bool(value == field.default)
    if field.default_factory is not msgspec.NODEFAULT:
        return bool(value == field.default_factory())
    return False


def command_fingerprint(command: Command, actor: str) -> bytes:
    """What an idempotency key is bound to: the command's type, its data and the actor.

    Not the expected version or the events: a retry of the same command decided on a newer
    state must still be recognised as the same command. Fields left at their defaults are
    not part of it either, so a release that adds an optional field to a command still
    recognises a retry that began before it.
    """
    given = {
        f.encode_name: value
        for f in _fields(type(command))
        if not _is_default(value := getattr(command, f.name), f)
    }
    digest = hashlib.sha256()
    digest.update(type(command).__name__.encode())
    digest.update(b"\x00")
    digest.update(_encoder.encode(given))
    digest.update(b"\x00")
    digest.update(actor.encode())
    return digest.digest()
