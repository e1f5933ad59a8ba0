"""Output types shared by the schema: scalars, the typed errors of mutation payloads, and
what an accepted command returns.

Every error a mutation can return implements ``UserError`` (``code``, ``message``,
``path``), so a frontend can show any of them generically and branch on ``__typename`` (or
``code``) where it wants to do more: mark fields from a ``ValidationError``, reload after a
``ConflictError``, show the periods of an ``OverAllocationError``.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import NewType

import strawberry
from strawberry.schema_directive import Location
from strawberry.types.scalar import ScalarDefinition

from programledger.api.auth import Role
from programledger.application.commands import CommandResult
from programledger.domain.errors import (
    AlreadyExists,
    BudgetExceeded,
    InvalidTransition,
    NotFound,
    NotProgramOwner,
    OverAllocation,
    ScheduleCycle,
    TerminalState,
    ValidationError,
)
from programledger.domain.values import MAX_SAFE_INTEGER, OverAllocationPeriod

__all__ = [
    "ERROR_TYPES",
    "SCALARS",
    "AllowedRoles",
    "AlreadyExistsError",
    "BudgetExceededError",
    "CommandAccepted",
    "ConflictError",
    "ErrorCode",
    "FieldIssue",
    "ForbiddenError",
    "IdempotencyKeyReusedError",
    "InvalidTransitionError",
    "MoneyType",
    "NotFoundError",
    "NotProgramOwnerError",
    "OverAllocationError",
    "OverAllocationPeriodType",
    "SafeInt",
    "UserError",
    "ValidationErrorType",
]

SafeInt = NewType("SafeInt", int)
"""Integers beyond GraphQL's 32-bit ``Int``: money in minor units, global positions."""


def _parse_safe_int(value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"SafeInt must be a whole number, got {value!r}")
    if abs(value) > MAX_SAFE_INTEGER:
        raise ValueError(f"SafeInt must be between -(2^53-1) and 2^53-1, got {value}")
    return value


SCALARS: dict[object, ScalarDefinition] = {
    SafeInt: strawberry.scalar(
        name="SafeInt",
        description="A whole number between -(2^53-1) and 2^53-1: exact in JavaScript, "
        "wider than Int (32 bits). Sent as a JSON number.",
        serialize=_parse_safe_int,
        parse_value=_parse_safe_int,
    ),
}
"""For ``StrawberryConfig(scalar_map=...)``."""


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="allowedRoles",
    description="Only tokens with one of these roles may use the field; others get FORBIDDEN.",
)
class AllowedRoles:
    roles: list[Role]


@strawberry.enum(description="What kind of refusal a UserError is: stable, for code to branch on.")
class ErrorCode(enum.Enum):
    VALIDATION_FAILED = ValidationError.code
    SCHEDULE_CYCLE = ScheduleCycle.code
    NOT_FOUND = NotFound.code
    ALREADY_EXISTS = AlreadyExists.code
    INVALID_TRANSITION = InvalidTransition.code
    TERMINAL_STATE = TerminalState.code
    OVER_ALLOCATED = OverAllocation.code
    BUDGET_EXCEEDED = BudgetExceeded.code
    NOT_PROGRAM_OWNER = NotProgramOwner.code
    CONFLICT = "CONFLICT"
    """The stream moved on (the store's ConcurrencyConflict)."""
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    """The key was used for another command (the store's IdempotencyKeyReused)."""
    FORBIDDEN = "FORBIDDEN"
    """The token's roles do not allow the command."""


@strawberry.interface(description="A refusal the client can act on; nothing was recorded.")
class UserError:
    code: str = strawberry.field(graphql_type=ErrorCode, description="E.g. NOT_FOUND.")
    message: str = strawberry.field(description="What was wrong and what to do, for a person.")
    path: list[str] = strawberry.field(
        description='The input field at fault, e.g. ["input", "plannedBudget", "currency"]; '
        '["input"] when several are (see issues); empty when the command as a whole is '
        "refused."
    )


@strawberry.type
class FieldIssue:
    path: list[str]
    message: str


@strawberry.type(
    name="ValidationError",
    description="The input is wrong whatever the current state; every wrong field at once.",
)
class ValidationErrorType(UserError):
    issues: list[FieldIssue]


@strawberry.type(
    description="The stream moved past the version the client based its command on "
    "(expectedVersion), or concurrent writers kept winning: reload and decide again."
)
class ConflictError(UserError):
    stream_id: str
    expected_version: int | None
    current_version: int


@strawberry.type(
    description="Not allowed in the entity's current status. code TERMINAL_STATE means "
    "the status is final and nothing will make the command valid."
)
class InvalidTransitionError(UserError):
    entity: str
    entity_id: strawberry.ID
    from_status: str
    attempted: str
    hint: str | None


@strawberry.type(
    name="OverAllocationPeriod",
    description="A run of days, both ends included, on which confirmed work exceeds capacity.",
)
class OverAllocationPeriodType:
    start: date
    end: date
    total_percentage: int
    capacity: int
    program_ids: list[strawberry.ID]
    allocation_ids: list[strawberry.ID]

    @staticmethod
    def of(period: OverAllocationPeriod) -> OverAllocationPeriodType:
        return OverAllocationPeriodType(
            start=period.start,
            end=period.end,
            total_percentage=period.total_percentage,
            capacity=period.capacity,
            program_ids=[strawberry.ID(str(p)) for p in period.program_ids],
            allocation_ids=[strawberry.ID(str(a)) for a in period.allocation_ids],
        )


@strawberry.type(
    description="Confirmed allocations would exceed the resource's capacity; repeat the "
    "command with overrideReason to accept it anyway."
)
class OverAllocationError(UserError):
    resource_key: str
    conflicts: list[OverAllocationPeriodType]


@strawberry.type(description="The thing the command acts on does not exist.")
class NotFoundError(UserError):
    entity: str
    entity_id: strawberry.ID


@strawberry.type(description="A create command reused an id (or program code) already taken.")
class AlreadyExistsError(UserError):
    entity: str
    entity_id: strawberry.ID


@strawberry.type(name="Money", description="An amount in the currency's minor unit (cents).")
class MoneyType:
    amount_minor: SafeInt
    currency: str


@strawberry.type(description="Budget allocations would exceed the planned budget.")
class BudgetExceededError(UserError):
    program_id: strawberry.ID
    planned: MoneyType
    allocated: MoneyType


@strawberry.type(
    description="Only the program's owner may do this (publish its status report): the "
    "role allows the command, the program says who may."
)
class NotProgramOwnerError(UserError):
    program_id: strawberry.ID
    owner: str = strawberry.field(description="The program's owner, who may.")
    actor: str = strawberry.field(description="Who asked (the token's subject).")


@strawberry.type(description="The token's roles do not allow this operation.")
class ForbiddenError(UserError):
    required_roles: list[Role] = strawberry.field(
        description="Any one of these roles would be allowed."
    )


@strawberry.type(
    description="The idempotency key was used before for a different command (or by "
    "another caller); use a new key for a new command."
)
class IdempotencyKeyReusedError(UserError):
    key: str


ERROR_TYPES: tuple[type, ...] = (
    ValidationErrorType,
    ConflictError,
    InvalidTransitionError,
    OverAllocationError,
    NotFoundError,
    AlreadyExistsError,
    BudgetExceededError,
    NotProgramOwnerError,
    ForbiddenError,
    IdempotencyKeyReusedError,
)
"""Members of every mutation payload union, after its success type."""


@strawberry.interface(description="A command that was accepted (or replayed).")
class CommandAccepted:
    entity_id: strawberry.ID = strawberry.field(
        description="The program or risk id, or the resource key."
    )
    stream_id: str
    version: int = strawberry.field(description="The stream's version: the next expectedVersion.")
    position: SafeInt = strawberry.field(
        description="Global position of the last event written (or read, if none was)."
    )
    replayed: bool = strawberry.field(
        description="An earlier command with this idempotency key: its result, nothing new."
    )
    event_ids: list[strawberry.ID]
    event_types: list[str] = strawberry.field(
        description="The events recorded, in order; empty when nothing changed."
    )
    projections_caught_up: bool | None = strawberry.field(
        description="With waitForProjections: whether the read models have this write."
    )
    result: strawberry.Private[CommandResult]
    """What the command returned: the entity the payload reads back, at its position."""
    command: strawberry.Private[object] = None
    """The command, whose item ids name the items the payload reads back."""
