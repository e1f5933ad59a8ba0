"""One mutation per domain command, generated: ``proposeProgram(input: ProposeProgramInput!)``.

Each returns ``<Command>Payload``, a union of ``<Command>Success`` (which implements
``CommandAccepted``) and the typed errors that command can return: those of the refusals
the domain lists for it (``domain.refusals``), and what any command can meet (invalid
input, a conflict, a reused idempotency key, a role without the right). A refusal of the
domain or the store becomes the matching error, one to one; anything else is a bug,
reported as a GraphQL error with code INTERNAL and the request id (see ``extensions``).

A success reads back what the command changed, as the read models show it after the
command (waiting for them, bounded): its aggregate (program, risk, resource) and the item
the command names by id (a milestone, dependency, decision, lesson or allocation).

The actor is the token's subject, and only that: no input has an actor field.
"""

from __future__ import annotations

import functools
import logging
import operator
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, assert_never, get_args
from uuid import UUID, uuid4

import strawberry
from graphql import FieldNode
from msgspec import UnsetType
from strawberry.types.field import StrawberryField

from programledger.api.auth import Capability
from programledger.api.graphql.allocations import AllocationType, ResourceType
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.decisions import DecisionType, LessonType
from programledger.api.graphql.freshness import wait_for_command
from programledger.api.graphql.inputs import CommandInputs, camel, doc_of
from programledger.api.graphql.milestones import DependencyType, MilestoneType
from programledger.api.graphql.nodes import read_entity
from programledger.api.graphql.objectives import ObjectiveType
from programledger.api.graphql.parts import BudgetAllocationType, StakeholderType, WorkstreamType
from programledger.api.graphql.permissions import allowed
from programledger.api.graphql.portfolios import PortfolioType
from programledger.api.graphql.programs import ProgramType
from programledger.api.graphql.raid import AssumptionType, IssueType
from programledger.api.graphql.risks import RiskType
from programledger.api.graphql.scenarios import ScenarioType
from programledger.api.graphql.status_reports import StatusReportType
from programledger.api.graphql.types import (
    ERROR_TYPES,
    AlreadyExistsError,
    BudgetExceededError,
    CommandAccepted,
    ConflictError,
    FieldIssue,
    ForbiddenError,
    IdempotencyKeyReusedError,
    InvalidTransitionError,
    MoneyType,
    NotFoundError,
    NotProgramOwnerError,
    OverAllocationError,
    OverAllocationPeriodType,
    SafeInt,
    UserError,
    ValidationErrorType,
)
from programledger.application.commands import Command, CommandContext, CommandResult
from programledger.application.eventstore import ConcurrencyConflict, IdempotencyKeyReused
from programledger.domain.assumption import AssumptionCommand
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
from programledger.domain.issue import IssueCommand
from programledger.domain.objective import ObjectiveCommand
from programledger.domain.portfolio import PortfolioCommand
from programledger.domain.program import ProgramCommand
from programledger.domain.refusals import REFUSALS
from programledger.domain.report import StatusReportCommand
from programledger.domain.resource import ResourceCommand
from programledger.domain.risk import RiskCommand
from programledger.domain.scenario import ScenarioCommand
from programledger.domain.schedule import ScheduleCommand
from programledger.domain.values import Money

__all__ = ["COMMANDS", "errors_of", "mutation_type"]

log = logging.getLogger(__name__)

COMMANDS: tuple[type[Command], ...] = (
    *get_args(ProgramCommand),
    *get_args(RiskCommand),
    *get_args(AssumptionCommand),
    *get_args(IssueCommand),
    *get_args(ResourceCommand),
    *get_args(ScheduleCommand),
    *get_args(StatusReportCommand),
    *get_args(ScenarioCommand),
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
    | NotProgramOwner
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
    NotProgramOwner,
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
            if isinstance(exc, DomainError) and not any(
                isinstance(exc, refusal) for refusal in REFUSALS[self.command]
            ):
                # Not in the payload's union: domain.refusals is wrong, a bug to report.
                raise
            error = _in_graphql_names(self._refusal(exc, command if command is not None else data))
            services.metrics.mutation_done(info.field_name, error.code)
            return error
        caught_up = None
        if value.wait_for_projections:
            caught_up = await wait_for_command(info.context, result)
        services.metrics.mutation_done(
            info.field_name, "replayed" if result.replayed else "accepted"
        )
        assert command is not None  # handled, so built
        return self._accepted(result, command, caught_up)

    def _accepted(
        self, result: CommandResult, command: Command, caught_up: bool | None
    ) -> CommandAccepted:
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
            command=command,
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
                    conflicts=[OverAllocationPeriodType.of(c) for c in exc.conflicts],
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
            case NotProgramOwner():
                return NotProgramOwnerError(
                    code=exc.code,
                    message=exc.message,
                    path=[],
                    program_id=strawberry.ID(str(exc.program_id)),
                    owner=exc.owner,
                    actor=exc.actor,
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


_ERROR_TYPES: Mapping[type[DomainError], type] = {
    ValidationError: ValidationErrorType,
    InvalidTransition: InvalidTransitionError,
    OverAllocation: OverAllocationError,
    NotFound: NotFoundError,
    AlreadyExists: AlreadyExistsError,
    BudgetExceeded: BudgetExceededError,
    NotProgramOwner: NotProgramOwnerError,
}
"""The typed error of each refusal of the domain."""

_ANY_COMMAND = (ValidationErrorType, ConflictError, ForbiddenError, IdempotencyKeyReusedError)
"""What any mutation can answer: input the API itself checks (the idempotency key against
its header), the store's refusals, and the caller's role."""


def errors_of(command: type[Command]) -> tuple[type, ...]:
    """The typed errors of ``command``'s payload: those of the refusals the domain lists
    for it (``domain.refusals``), and what any mutation can answer; in the order of
    ``ERROR_TYPES``."""
    wanted = {*_ANY_COMMAND, *(_ERROR_TYPES[refusal] for refusal in REFUSALS[command])}
    return tuple(error for error in ERROR_TYPES if error in wanted)


def _field(mutation: _Mutation, input_type: type) -> StrawberryField:
    name = mutation.name
    payload = _payload(name, (mutation.success, *errors_of(mutation.command)))

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


_READ_BACK = "read from the read models after the command (waiting for them, bounded)"


@dataclass(frozen=True, slots=True)
class _ReadBack:
    """A field of a success payload: an entity the command changed, read back after it."""

    name: str
    type_name: str
    """Its GraphQL type, as ``nodes`` reads it."""
    graphql_type: type
    what: str
    key: Callable[[CommandAccepted], Any]

    def field(self) -> StrawberryField:
        async def resolve(root: strawberry.Parent[CommandAccepted], info: ApiInfo) -> Any:
            key = self.key(root)
            if key is None or isinstance(key, UnsetType):
                return None  # the command names no such item (an optional id not given)
            await _caught_up(root, info)
            return await read_entity(info, self.type_name, key)

        found: StrawberryField = strawberry.field(
            resolver=resolve,
            graphql_type=self.graphql_type | None,
            description=f"The {self.what} {_READ_BACK}.",
        )
        return found


def _entity(parse: Callable[[str], Any]) -> Callable[[CommandAccepted], Any]:
    return lambda root: parse(str(root.result.entity_id))


def _item(field: str) -> Callable[[CommandAccepted], Any]:
    return lambda root: getattr(root.command, field)


def _part(field: str) -> Callable[[CommandAccepted], Any]:
    """The key of a part of the program the command decided on: its ids are unique only
    within that program."""

    def key(root: CommandAccepted) -> Any:
        item = getattr(root.command, field)
        if item is None or isinstance(item, UnsetType):
            return item
        return UUID(str(root.result.entity_id)), item

    return key


def _report(root: CommandAccepted) -> tuple[UUID, str]:
    """The program and week of the report stream written (``status_report-<id>:<week>``)."""
    program_id, _, period = str(root.result.entity_id).removeprefix("status_report-").partition(":")
    return UUID(program_id), period


_AGGREGATES: tuple[tuple[object, _ReadBack], ...] = (
    (ProgramCommand, _ReadBack("program", "Program", ProgramType, "program", _entity(UUID))),
    (RiskCommand, _ReadBack("risk", "Risk", RiskType, "risk", _entity(UUID))),
    (
        AssumptionCommand,
        _ReadBack("assumption", "Assumption", AssumptionType, "assumption", _entity(UUID)),
    ),
    (IssueCommand, _ReadBack("issue", "Issue", IssueType, "issue", _entity(UUID))),
    (ResourceCommand, _ReadBack("resource", "Resource", ResourceType, "resource", _entity(str))),
    (
        PortfolioCommand,
        _ReadBack("portfolio", "Portfolio", PortfolioType, "portfolio", _entity(UUID)),
    ),
    (
        ObjectiveCommand,
        _ReadBack("objective", "Objective", ObjectiveType, "objective", _entity(UUID)),
    ),
    (
        StatusReportCommand,
        _ReadBack("status_report", "StatusReport", StatusReportType, "report", _report),
    ),
    (
        ScenarioCommand,
        _ReadBack(
            "scenario",
            "Scenario",
            ScenarioType,
            "scenario; after a commit, its outcomes,",
            _entity(UUID),
        ),
    ),
)
"""The aggregate each command union decides on, read back by the result's entity id. The
schedule network is no entity a client caches (its links are read through
``scheduleAnalysis``), so its commands read no aggregate back."""


_ITEMS: tuple[tuple[str, str, type], ...] = (
    ("milestone", "Milestone", MilestoneType),
    ("dependency", "Dependency", DependencyType),
    ("decision", "Decision", DecisionType),
    ("lesson", "Lesson", LessonType),
    ("allocation", "Allocation", AllocationType),
)
"""The items inside an aggregate with a read type: a command naming one by its
``<name>_id`` field (``milestone_id``...) reads it back too."""

_PARTS: tuple[tuple[str, str, type], ...] = (
    ("workstream", "Workstream", WorkstreamType),
    ("stakeholder", "Stakeholder", StakeholderType),
    ("budget_allocation", "BudgetAllocation", BudgetAllocationType),
)
"""The parts of a program (keyed by program and id): a program command naming one by its
``<name>_id`` field reads it back too."""


def _read_backs(command: type[Command]) -> list[_ReadBack]:
    """What a command's success reads back: its aggregate, then the items it names."""
    found = [back for union, back in _AGGREGATES if command in get_args(union)]
    fields = getattr(command, "__struct_fields__", ())
    found += [
        _ReadBack(name, type_name, graphql_type, name, _item(f"{name}_id"))
        for name, type_name, graphql_type in _ITEMS
        if f"{name}_id" in fields
    ]
    if command in get_args(ProgramCommand):
        found += [
            _ReadBack(name, type_name, graphql_type, name.replace("_", " "), _part(f"{name}_id"))
            for name, type_name, graphql_type in _PARTS
            if f"{name}_id" in fields
        ]
    return found


def mutation_type(inputs: CommandInputs, bases: tuple[type, ...] = ()) -> type:
    """The ``Mutation`` root: one field per command in :data:`COMMANDS`, and the fields of
    ``bases`` (operations that are not domain commands, such as webhooks)."""
    fields: dict[str, object] = {}
    for command in COMMANDS:
        input_type = inputs.command_input(command)
        reads_back = {back.name: back.field() for back in _read_backs(command)}
        success = strawberry.type(
            type(f"{command.__name__}Success", (CommandAccepted,), reads_back),
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
