"""The refusals a command can meet, one class per kind a client can act on differently.

The API maps each class to one typed GraphQL error; ``code`` is the stable name it sends, so
a frontend branches on it without parsing messages. Messages are written for the person who
sent the command: what was wrong and, where it helps, what to do instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, NamedTuple
from uuid import UUID

from programledger.domain.values import Money, OverAllocationPeriod

__all__ = [
    "AlreadyExists",
    "BudgetExceeded",
    "DomainError",
    "FieldIssue",
    "InconsistentHistory",
    "InvalidTransition",
    "NotFound",
    "NotProgramOwner",
    "OverAllocation",
    "ScheduleCycle",
    "TerminalState",
    "ValidationError",
]


class DomainError(Exception):
    """A command the domain refuses; nothing is recorded."""

    code: ClassVar[str] = "DOMAIN_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FieldIssue(NamedTuple):
    """One problem with one input field; ``path`` is dotted (``planned_budget.currency``)."""

    path: str
    message: str


class ValidationError(DomainError):
    """The command's own data is wrong, whatever the current state: fix the input."""

    code = "VALIDATION_FAILED"

    def __init__(self, issues: Iterable[FieldIssue]) -> None:
        self.issues = tuple(issues)
        details = "; ".join(f"{issue.path}: {issue.message}" for issue in self.issues)
        super().__init__(f"the command is not valid: {details}")

    @classmethod
    def single(cls, path: str, message: str) -> ValidationError:
        return cls([FieldIssue(path, message)])


class ScheduleCycle(ValidationError):
    """A schedule link that would close a cycle: no date could ever satisfy it. ``cycle``
    lists the milestones around it as ``(program_id, milestone_id)``, from the new link's
    predecessor back to itself, so the person can see which link to drop."""

    code = "SCHEDULE_CYCLE"

    def __init__(self, path: str, cycle: tuple[tuple[UUID, UUID], ...]) -> None:
        self.cycle = cycle
        around = " -> ".join(f"milestone {m} (program {p})" for p, m in cycle)
        super().__init__([FieldIssue(path, f"would close a cycle: {around}")])


class NotFound(DomainError):
    """The command names something that does not exist (an aggregate or an item inside it)."""

    code = "NOT_FOUND"

    def __init__(self, entity: str, entity_id: UUID | str, *, within: str | None = None) -> None:
        where = f" in {within}" if within else ""
        super().__init__(f"{entity} {entity_id} does not exist{where}")
        self.entity = entity
        self.entity_id = entity_id


class AlreadyExists(DomainError):
    """The command would create something under an id that is already taken."""

    code = "ALREADY_EXISTS"

    def __init__(self, entity: str, entity_id: UUID | str, *, within: str | None = None) -> None:
        where = f" in {within}" if within else ""
        super().__init__(f"{entity} {entity_id} already exists{where}; choose another id")
        self.entity = entity
        self.entity_id = entity_id


class InvalidTransition(DomainError):
    """The command is not allowed in the status the entity is in now."""

    code = "INVALID_TRANSITION"

    def __init__(
        self,
        entity: str,
        entity_id: UUID | str,
        from_status: str,
        attempted: str,
        *,
        hint: str | None = None,
    ) -> None:
        message = f"{entity} {entity_id} is {from_status}: {attempted} is not allowed"
        if hint:
            message = f"{message}; {hint}"
        super().__init__(message)
        self.entity = entity
        self.entity_id = entity_id
        self.from_status = from_status
        self.attempted = attempted
        self.hint = hint


class TerminalState(InvalidTransition):
    """A transition refused because the entity reached a final status: nothing more can
    change, so retrying or reordering the commands will not help."""

    code = "TERMINAL_STATE"

    def __init__(self, entity: str, entity_id: UUID | str, status: str, attempted: str) -> None:
        super().__init__(
            entity,
            entity_id,
            status,
            attempted,
            hint=f"{status} is final, no further changes are accepted",
        )


class OverAllocation(DomainError):
    """Confirmed allocations would exceed the resource's capacity in the listed periods.

    The same command is accepted when it carries an ``override_reason``.
    """

    code = "OVER_ALLOCATED"

    def __init__(self, resource_key: str, conflicts: Iterable[OverAllocationPeriod]) -> None:
        self.resource_key = resource_key
        self.conflicts = tuple(conflicts)
        periods = "; ".join(
            f"{c.start.isoformat()}..{c.end.isoformat()} at {c.total_percentage}% of "
            f"{c.capacity}% (programs {', '.join(map(str, c.program_ids))}; "
            f"allocations {', '.join(map(str, c.allocation_ids))})"
            for c in self.conflicts
        )
        super().__init__(
            f"resource {resource_key!r} would be allocated over capacity: {periods}. "
            "Reduce or move an allocation, or repeat the command with an override_reason"
        )


class BudgetExceeded(DomainError):
    """Budget allocations would add up to more than the planned budget."""

    code = "BUDGET_EXCEEDED"

    def __init__(self, program_id: UUID, planned: Money, allocated: Money) -> None:
        self.program_id = program_id
        self.planned = planned
        self.allocated = allocated
        super().__init__(
            f"program {program_id}: budget allocations would total {allocated.amount_minor} "
            f"{allocated.currency} (minor units) against a planned budget of "
            f"{planned.amount_minor} {planned.currency}; raise the planned budget first or "
            "reduce the allocations"
        )


class NotProgramOwner(DomainError):
    """Only the program's owner may do this (publish its status report); an editor who is
    not the owner drafts and edits, the owner publishes."""

    code = "NOT_PROGRAM_OWNER"

    def __init__(self, program_id: UUID, owner: str, actor: str, attempted: str) -> None:
        self.program_id = program_id
        self.owner = owner
        self.actor = actor
        self.attempted = attempted
        super().__init__(
            f"only the owner of program {program_id} ({owner!r}) may {attempted}; "
            f"{actor!r} is not its owner: ask them, or change the program's owner first"
        )


class InconsistentHistory(Exception):
    """A stored event that cannot follow the events before it, e.g. an update to a stream
    that was never created. It means corrupted or mis-routed history, never bad input, so
    it is deliberately not a :class:`DomainError`."""
