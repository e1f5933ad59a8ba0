"""One mutation per domain command, generated: ``proposeProgram(input: ProposeProgramInput!)``.

Each returns ``<Command>Payload``, a union of ``<Command>Success`` (which implements
``CommandAccepted``) and every typed error (``types.ERROR_TYPES``). A refusal of the
domain or the store becomes the matching error, one to one; anything else is a bug,
reported as a GraphQL error with code INTERNAL and the request id (see ``extensions``).

The actor is the token's subject, and only that: no input has an actor field.
"""

from __future__ import annotations

import functools
import logging
import operator
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any, assert_never, get_args
from uuid import UUID, uuid4

import strawberry
from graphql import FieldNode
from strawberry.types.field import StrawberryField

from programledger.api.auth import Capability
from programledger.api.graphql.allocations import ResourceType
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.freshness import wait_for_command
from programledger.api.graphql.inputs import CommandInputs, camel, doc_of
from programledger.api.graphql.permissions import allowed
from programledger.api.graphql.programs import ProgramType, one_program
from programledger.api.graphql.risks import RiskType
from programledger.api.graphql.types import (
    ERROR_TYPES,
    AlreadyExistsError,
    BudgetExceededError,
    CommandAccepted,
    ConflictError,
    FieldIssue,
    IdempotencyKeyReusedError,
    InvalidTransitionError,
    MoneyType,
    NotFoundError,
    OverAllocationError,
    OverAllocationPeriodType,
    SafeInt,
    UserError,
    ValidationErrorType,
)
from programledger.application.commands import Command, CommandContext, CommandResult
from programledger.application.eventstore import ConcurrencyConflict, IdempotencyKeyReused
from programledger.domain.errors import (
    AlreadyExists,
    BudgetExceeded,
    InvalidTransition,
    NotFound,
    OverAllocation,
    ValidationError,
)
from programledger.domain.objective import ObjectiveCommand
from programledger.domain.portfolio import PortfolioCommand
from programledger.domain.program import ProgramCommand
from programledger.domain.resource import ResourceCommand
from programledger.domain.risk import RiskCommand
from programledger.domain.schedule import ScheduleCommand
from programledger.domain.values import Money
from programledger.projections import allocations, programs, risks

__all__ = ["COMMANDS", "mutation_type"]

log = logging.getLogger(__name__)

COMMANDS: tuple[type[Command], ...] = (
    *get_args(ProgramCommand),
    *get_args(RiskCommand),
    *get_args(ResourceCommand),
    *get_args(ScheduleCommand),
    *get_args(PortfolioCommand),
    *get_args(ObjectiveCommand),
)

_Refusal = (
    ValidationError
    | InvalidTransition
    | OverAllocation
    | NotFound
    | AlreadyExists
    | BudgetExceeded
    | ConcurrencyConflict
    | IdempotencyKeyReused
)
"""Every refusal a command can meet, each returned as its own typed error; an exception
outside this list is a bug (a GraphQL error with code INTERNAL). mypy checks that
``_REFUSALS`` and ``_refusal`` cover exactly these."""
_REFUSALS = (
    ValidationError,
    InvalidTransition,
    OverAllocation,
    NotFound,
    AlreadyExists,
    BudgetExceeded,
    ConcurrencyConflict,
    IdempotencyKeyReused,
)


@dataclass(frozen=True, slots=True)
class _Mutation:
    command: type[Command]
    inputs: CommandInputs
    success: type[CommandAccepted]

    @property
    def name(self) -> str:
        return self.command.__name__

    async def run(self, info: ApiInfo, value: Any) -> object:
        services = info.context.services
        data = self.inputs.data(value)
        command: Command | None = None
        try:
            context = _command_context(info, value)
            command = self.inputs.command(self.command, data)
            started = time.perf_counter()
            result = await services.application.handle(command, context)
            services.metrics.command_handled(
                self.name, time.perf_counter() - started, len(result.event_ids)
            )
        except _REFUSALS as exc:
            error = _in_graphql_names(self._refusal(exc, command if command is not None else data))
            services.metrics.mutation_done(info.field_name, error.code)
            return error
        caught_up = None
        if value.wait_for_projections:
            caught_up = await wait_for_command(info.context, result)
        services.metrics.mutation_done(
            info.field_name, "replayed" if result.replayed else "accepted"
        )
        return self._accepted(result, caught_up)

    def _accepted(self, result: CommandResult, caught_up: bool | None) -> CommandAccepted:
        return self.success(
            entity_id=strawberry.ID(str(result.entity_id)),
            stream_id=result.stream_id,
            version=result.version,
            position=SafeInt(result.last_position),
            replayed=result.replayed,
            event_ids=[strawberry.ID(str(event_id)) for event_id in result.event_ids],
            event_types=[event.event_type for event in result.events],
            projections_caught_up=caught_up,
            result=result,
        )

    def _refusal(self, exc: _Refusal, subject: object) -> UserError:
        """The typed error for a refusal; ``subject`` is the command (or its data when it
        could not be built), used to point at the input field at fault."""
        match exc:
            case ValidationError():
                issues = [
                    FieldIssue(
                        path=self.inputs.path(self.command, i.path, subject), message=i.message
                    )
                    for i in exc.issues
                ]
                path = issues[0].path if len(issues) == 1 else ["input"]
                return ValidationErrorType(
                    code=exc.code, message=exc.message, path=path, issues=issues
                )
            case ConcurrencyConflict():
                expected = exc.expected if isinstance(exc.expected, int) else None
                if expected is None:
                    message = (
                        f"{exc.stream_id} kept changing under concurrent commands; "
                        "send the command again"
                    )
                else:
                    message = (
                        f"{exc.stream_id} is at version {exc.actual_version}, not "
                        f"{expected}: reload it and decide again"
                    )
                return ConflictError(
                    code="CONFLICT",
                    message=message,
                    path=["input", "expectedVersion"] if expected is not None else [],
                    stream_id=exc.stream_id,
                    expected_version=expected,
                    current_version=exc.actual_version,
                )
            case IdempotencyKeyReused():
                return IdempotencyKeyReusedError(
                    code="IDEMPOTENCY_KEY_REUSED",
                    message=str(exc),
                    path=["input", "idempotencyKey"],
                    key=exc.key,
                )
            case InvalidTransition():
                return InvalidTransitionError(
                    code=exc.code,
                    message=exc.message,
                    path=[],
                    entity=exc.entity,
                    entity_id=strawberry.ID(str(exc.entity_id)),
                    from_status=exc.from_status,
                    attempted=exc.attempted,
                    hint=exc.hint,
                )
            case OverAllocation():
                return OverAllocationError(
                    code=exc.code,
                    message=exc.message,
                    path=[],
                    resource_key=exc.resource_key,
                    conflicts=[
                        OverAllocationPeriodType(
                            start=c.start,
                            end=c.end,
                            total_percentage=c.total_percentage,
                            capacity=c.capacity,
                            program_ids=[strawberry.ID(str(p)) for p in c.program_ids],
                            allocation_ids=[strawberry.ID(str(a)) for a in c.allocation_ids],
                        )
                        for c in exc.conflicts
                    ],
                )
            case NotFound() | AlreadyExists():
                error = NotFoundError if isinstance(exc, NotFound) else AlreadyExistsError
                return error(
                    code=exc.code,
                    message=exc.message,
                    path=_path_of_value(subject, exc.entity_id),
                    entity=exc.entity,
                    entity_id=strawberry.ID(str(exc.entity_id)),
                )
            case BudgetExceeded():
                return BudgetExceededError(
                    code=exc.code,
                    message=exc.message,
                    path=[],
                    program_id=strawberry.ID(str(exc.program_id)),
                    planned=_money(exc.planned),
                    allocated=_money(exc.allocated),
                )
        assert_never(exc)


_SNAKE = re.compile(r"(?<![\w'\"-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w'\"-])")
"""A field name as the domain writes it (``start_date``), not inside quotes (a key)."""


def _camel_text(text: str) -> str:
    return _SNAKE.sub(lambda found: camel(found.group()), text)


def _in_graphql_names(error: UserError) -> UserError:
    """``error`` with the domain's field names in its messages as GraphQL spells them
    (``startDate``), like its paths: a client shows or matches them as they are."""
    error.message = _camel_text(error.message)
    if isinstance(error, ValidationErrorType):
        for issue in error.issues:
            issue.message = _camel_text(issue.message)
    if isinstance(error, InvalidTransitionError) and error.hint is not None:
        error.hint = _camel_text(error.hint)
    return error


def _command_context(info: ApiInfo, value: Any) -> CommandContext:
    """Who sends the command (the token) and on what terms (the input's context fields)."""
    context = info.context
    assert context.identity is not None  # the WRITE permission ran first
    key: str | None = value.idempotency_key
    header = context.idempotency_key
    if header is not None:
        if key is not None and key != header:
            raise ValidationError.single(
                "idempotency_key", "differs from the Idempotency-Key header; send only one"
            )
        if key is None and _mutation_fields(info) > 1:
            raise ValidationError.single(
                "idempotency_key",
                "the Idempotency-Key header covers a request with a single mutation; give "
                "each mutation its own idempotencyKey instead",
            )
        key = header
    return CommandContext(
        actor=context.identity.subject,
        correlation_id=context.correlation_id or uuid4(),
        reason=value.reason,
        idempotency_key=key,
        expected_version=value.expected_version,
    )


def _mutation_fields(info: ApiInfo) -> int:
    """Mutation fields in the operation; a fragment counts as several (it may hold some)."""
    selections = info.operation.selection_set.selections
    return sum(1 if isinstance(node, FieldNode) else 2 for node in selections)


def _path_of_value(subject: object, entity_id: UUID | str) -> list[str]:
    """``["input", <field>]`` for the top-level field holding ``entity_id``, if any."""
    fields = subject if isinstance(subject, dict) else getattr(subject, "__struct_fields__", ())
    for name in fields:
        value = subject.get(name) if isinstance(subject, dict) else getattr(subject, name)
        if value is not None and str(value) == str(entity_id):
            return ["input", camel(name)]
    return []


def _money(money: Money) -> MoneyType:
    return MoneyType(amount_minor=SafeInt(money.amount_minor), currency=money.currency)


def _field(mutation: _Mutation, input_type: type) -> StrawberryField:
    name = mutation.name
    payload = _payload(name, (mutation.success, *ERROR_TYPES))

    async def resolve(info: ApiInfo, input: Any) -> object:
        return await mutation.run(info, input)

    # Strawberry reads the argument and result types from the annotations.
    resolve.__annotations__ = {"info": strawberry.Info, "input": input_type, "return": payload}
    doc = doc_of(mutation.command)
    description = f"{doc} " if doc else ""
    field: StrawberryField = strawberry.mutation(
        resolver=resolve,
        name=camel(_snake(name)),
        description=f"{description}The {name} command (docs/domain.md).",
        extensions=[allowed(Capability.WRITE)],
    )
    return field


def _payload(name: str, members: tuple[type, ...]) -> object:
    """``Annotated[Success | ValidationError | ..., strawberry.union("<Name>Payload")]``."""
    union: Any = functools.reduce(operator.or_, members)
    return Annotated[union, strawberry.union(f"{name}Payload")]


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


async def _caught_up(root: CommandAccepted, info: ApiInfo) -> None:
    """Wait (bounded) for the read models the command's events touch, so the entity is
    read after the command; a wait that gives up says so in ``projectionsBehind``."""
    if root.projections_caught_up is None:
        await wait_for_command(info.context, root.result)


async def _changed_program(
    root: strawberry.Parent[CommandAccepted], info: ApiInfo
) -> ProgramType | None:
    await _caught_up(root, info)
    program_id = UUID(str(root.entity_id))
    return await one_program(
        info, None, lambda reads, at: programs.get_program(reads, program_id, as_of=at)
    )


async def _changed_risk(root: strawberry.Parent[CommandAccepted], info: ApiInfo) -> RiskType | None:
    await _caught_up(root, info)
    row = await risks.get_risk(info.context.services.pool, UUID(str(root.entity_id)))
    return None if row is None else RiskType.of(row)


async def _changed_resource(
    root: strawberry.Parent[CommandAccepted], info: ApiInfo
) -> ResourceType | None:
    await _caught_up(root, info)
    row = await allocations.get_resource(info.context.services.pool, str(root.entity_id))
    return None if row is None else ResourceType.of(row)


_READ_BACK = "read from the read models after the command (waiting for them, bounded)"


@strawberry.type
class ProgramChanged:
    program: ProgramType | None = strawberry.field(
        resolver=_changed_program, description=f"The program {_READ_BACK}."
    )


@strawberry.type
class RiskChanged:
    risk: RiskType | None = strawberry.field(
        resolver=_changed_risk, description=f"The risk {_READ_BACK}."
    )


@strawberry.type
class ResourceChanged:
    resource: ResourceType | None = strawberry.field(
        resolver=_changed_resource, description=f"The resource {_READ_BACK}."
    )


def _changed(command: type[Command]) -> tuple[type, ...]:
    """The entity a command's success reads back: its aggregate's. The schedule network is
    no entity a client caches (its links are read through ``scheduleAnalysis``), so its
    commands' successes read nothing back."""
    if command in get_args(ProgramCommand):
        return (ProgramChanged,)
    if command in get_args(RiskCommand):
        return (RiskChanged,)
    if command in get_args(ResourceCommand):
        return (ResourceChanged,)
    return ()


def mutation_type(inputs: CommandInputs, bases: tuple[type, ...] = ()) -> type:
    """The ``Mutation`` root: one field per command in :data:`COMMANDS`, and the fields of
    ``bases`` (operations that are not domain commands, such as webhooks)."""
    fields: dict[str, object] = {}
    for command in COMMANDS:
        input_type = inputs.command_input(command)
        success = strawberry.type(
            type(f"{command.__name__}Success", (CommandAccepted, *_changed(command)), {}),
            name=f"{command.__name__}Success",
        )
        mutation = _Mutation(command=command, inputs=inputs, success=success)
        fields[_snake(command.__name__)] = _field(mutation, input_type)
    return strawberry.type(
        type("Mutation", bases, fields),
        description="Commands. Each needs the editor or admin role and returns a payload "
        "union: the command's Success type or a typed UserError. Webhook endpoints are "
        "managed here too, by admins.",
    )
