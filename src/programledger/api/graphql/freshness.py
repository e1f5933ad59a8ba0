"""Read your writes in the API: wait only for the read models a request touches, bound
the wait, and say so when it gave up instead of passing stale data off as fresh.

- A mutation with ``waitForProjections`` waits for the read models that handle the
  events it wrote (a command that wrote nothing: those fed by its stream's type).
- A query with ``Programledger-Min-Position`` waits for the read models behind the
  fields it selects (:data:`READ_MODELS_OF_FIELD`, at any depth, fragments included),
  and, for ``node`` and ``nodes``, behind the types its fragments name
  (:data:`READ_MODELS_OF_TYPE`; every one of them when it names none); history,
  integrity, status, the feed and webhooks are read from the event store or tables of
  their own and never wait (:data:`UNWAITED_FIELDS`).
- A query that reads as of a position (``asOfPosition``, ``knownAtPosition``) waits for
  it the same way, so that a read as of a position always gives the same answer; one
  as of a time (``asOf``, ``knownAt``) waits for the last position recorded at or
  before it, which costs a query only when its read models are behind the store.
- A position beyond the store's head is a ``BAD_USER_INPUT`` request error, at once; a
  process with ``max_waiting_requests`` requests already waiting answers ``UNAVAILABLE``
  (HTTP 503, ``Retry-After``) rather than queueing more.
- A wait that ended with read models still behind is reported in the response: the
  ``Programledger-Projections-Behind`` header and ``extensions.projectionsBehind`` (with
  ``extensions.stale: true``) name them.

Waiting holds no database connection (``ProgressWatch``), and the request's database
deadline is pushed out by the time spent waiting, so a wait is never mistaken for a
database that does not answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import datetime
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    StringValueNode,
    VariableNode,
    Visitor,
    visit,
)
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.extensions import SchemaExtension
from strawberry.schema.types.base_scalars import DateTimeDefinition

from programledger.adapters.postgres.eventstore import stream_type_of
from programledger.api.graphql.context import ApiContext, Services
from programledger.application.commands import CommandResult
from programledger.projections.engine.progress import (
    PositionAhead,
    TooManyWaiting,
    WaitOutcome,
    projections_for_event_types,
    projections_for_stream_type,
)

__all__ = [
    "BEHIND_HEADER",
    "READ_MODELS_OF_FIELD",
    "READ_MODELS_OF_TYPE",
    "UNWAITED_FIELDS",
    "ReadYourWrites",
    "as_of_positions",
    "as_of_times",
    "read_models_of",
    "wait_for_command",
]

log = logging.getLogger("programledger.api")

BEHIND_HEADER = "Programledger-Projections-Behind"

READ_MODELS_OF_FIELD: dict[str, tuple[str, ...]] = {
    "program": ("programs",),
    "programs": ("programs",),
    "programByCode": ("programs",),
    "workstreams": ("programs",),
    "stakeholders": ("programs",),
    "budgetAllocations": ("programs",),
    "spendReports": ("programs",),
    "risk": ("risks",),
    "risks": ("risks",),
    "riskHeatmap": ("risks",),
    "raid": ("raid",),
    "assumption": ("raid",),
    "issue": ("raid",),
    "dependency": ("milestones",),
    "milestone": ("milestones",),
    "milestones": ("milestones",),
    "dependencies": ("milestones",),
    "decision": ("decisions",),
    "decisions": ("decisions",),
    "lessons": ("decisions",),
    "resource": ("allocations",),
    "resources": ("allocations",),
    "allocations": ("allocations",),
    "utilisation": ("allocations",),
    "staffing": ("allocations",),
    "auditTrail": ("audit",),
    "scheduleAnalysis": ("schedule",),
    "scheduleWhatIf": ("schedule",),
    "scheduleVariance": ("schedule",),
    "baselines": ("schedule",),
    "changeRequests": ("schedule",),
    "scheduleLinks": ("schedule",),
    "portfolio": ("portfolios",),
    "portfolios": ("portfolios",),
    "portfolioOfProgram": ("portfolios",),
    "portfolioMoves": ("portfolios",),
    "objective": ("portfolios",),
    "objectives": ("portfolios",),
    "programObjectives": ("portfolios",),
    "keyResultCheckIns": ("portfolios",),
    "objectiveLinks": ("portfolios",),
    "statusReport": ("status_reports",),
    "statusReports": ("status_reports",),
    "statusReportTrend": ("status_reports",),
    "scenario": ("scenarios",),
    "scenarios": ("scenarios",),
    # Over the resources and allocations as they are now.
    "scenarioEvaluation": ("scenarios", "allocations"),
    # Proposed from the program, its milestones and dependencies, change requests, risks
    # and the week's over-allocations.
    "statusReportDraft": ("programs", "milestones", "schedule", "risks", "allocations"),
}
"""The read models each field reads, by field name (root or nested)."""

READ_MODELS_OF_TYPE: dict[str, str] = {
    "Program": "programs",
    "Workstream": "programs",
    "Stakeholder": "programs",
    "BudgetAllocation": "programs",
    "Risk": "risks",
    "Assumption": "raid",
    "Issue": "raid",
    "Milestone": "milestones",
    "Dependency": "milestones",
    "Decision": "decisions",
    "Lesson": "decisions",
    "Allocation": "allocations",
    "Resource": "allocations",
    "Portfolio": "portfolios",
    "Objective": "portfolios",
    "StatusReport": "status_reports",
    "Scenario": "scenarios",
}
"""The read model behind each type ``node`` and ``nodes`` answer: which one an id names
is known only once it is read, so a document waits for the types its fragments name."""

UNWAITED_FIELDS = frozenset(
    {
        "me",
        "history",
        "verifyIntegrity",
        "projectionStatus",
        "ledgerHead",
        "treeHeads",
        "inclusionProof",
        "consistencyProof",
        "ledgerPublicKeys",
        "eventFeed",
        "webhookEndpoints",
        "webhookDeliveries",
    }
)
"""The root fields that read no read model: the event store, the ledger's tree, the
projections' own progress, webhooks' tables, the caller's token."""

_NODE_FIELDS = frozenset({"node", "nodes"})

_POSITION_ARGUMENTS = frozenset({"asOfPosition", "knownAtPosition"})

_TIME_ARGUMENTS = frozenset({"asOf", "knownAt"})

_AS_OF_MARKS = tuple(_TIME_ARGUMENTS)
"""What the text of a document reading as of a position or a time contains: the time
arguments' names begin the position arguments'."""


def read_models_of(document: DocumentNode) -> frozenset[str]:
    """The read models the fields of ``document`` read."""
    return _reads(document, {})[0]


def as_of_positions(document: DocumentNode, variables: Mapping[str, Any]) -> list[int]:
    """The positions ``document`` reads as of (``asOfPosition``, ``knownAtPosition``),
    given as literals or variables; a value that is not a position is left to the
    field's own validation."""
    return _reads(document, variables)[1]


def as_of_times(document: DocumentNode, variables: Mapping[str, Any]) -> list[datetime]:
    """The times ``document`` reads as of (``asOf``, ``knownAt``), given as literals or
    variables; a value that is not a time with an offset is left to the field's own
    validation."""
    return _reads(document, variables)[2]


def _moment(value: object) -> datetime | None:
    """``value`` as the ``DateTime`` argument will read it (strawberry's own parser), if
    it is a time with an offset."""
    try:
        # Set for DateTime, though typed optional for every scalar.
        at = DateTimeDefinition.parse_value(value)  # type: ignore[misc]
    except StrawberryInputCoercionError:
        return None
    return at if isinstance(at, datetime) and at.tzinfo is not None else None


def _reads(
    document: DocumentNode, variables: Mapping[str, Any]
) -> tuple[frozenset[str], list[int], list[datetime]]:
    """The read models ``document`` reads and the positions and times it reads them as
    of, in one walk of it."""
    found: set[str] = set()
    typed: set[str] = set()
    positions: list[int] = []
    times: list[datetime] = []
    asks_nodes = False

    class Collect(Visitor):
        def enter_field(self, node: FieldNode, *_args: object) -> None:
            nonlocal asks_nodes
            name = node.name.value
            found.update(READ_MODELS_OF_FIELD.get(name, ()))
            asks_nodes = asks_nodes or name in _NODE_FIELDS

        def enter_inline_fragment(self, node: InlineFragmentNode, *_args: object) -> None:
            if node.type_condition is not None:
                typed.add(node.type_condition.name.value)

        def enter_fragment_definition(self, node: FragmentDefinitionNode, *_args: object) -> None:
            typed.add(node.type_condition.name.value)

        def enter_argument(self, node: ArgumentNode, *_args: object) -> None:
            name = node.name.value
            if name not in _POSITION_ARGUMENTS and name not in _TIME_ARGUMENTS:
                return
            value: object = None
            if isinstance(node.value, IntValueNode):
                value = int(node.value.value)
            elif isinstance(node.value, StringValueNode):
                value = node.value.value
            elif isinstance(node.value, VariableNode):
                value = variables.get(node.value.name.value)
            if name in _TIME_ARGUMENTS:
                if (at := _moment(value)) is not None:
                    times.append(at)
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                positions.append(value)

    visit(document, Collect())
    if asks_nodes:
        named = {READ_MODELS_OF_TYPE[t] for t in typed if t in READ_MODELS_OF_TYPE}
        found.update(named or READ_MODELS_OF_TYPE.values())
    return frozenset(found), positions, times


async def _waited(
    context: ApiContext,
    position: int | datetime,
    names: Collection[str],
    *,
    committed: bool,
    timeout: float | None = None,  # noqa: ASYNC109 - the rest of the request's bound
) -> WaitOutcome:
    """The wait (at most ``timeout`` seconds, else the request's bound), with the
    request's database deadline pushed out by its duration."""
    services = context.services
    assert services.wait_for_position is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    bound = services.projection_wait if timeout is None else timeout
    try:
        return await services.wait_for_position(position, bound, names, committed=committed)
    finally:
        if context.deadline is not None:
            context.deadline.extend(loop.time() - started)


async def wait_for_command(context: ApiContext, result: CommandResult) -> bool:
    """Whether the read models a command's events touch reached its position in time.

    The write is already done, so a failing or refused wait is reported as ``false`` (and
    in ``projectionsBehind``), never as an error a client might answer by sending the
    command again.
    """
    services: Services = context.services
    if result.events:
        written = (*result.events, *result.raised)
        names = projections_for_event_types(event.event_type for event in written)
    else:
        names = projections_for_stream_type(stream_type_of(result.stream_id))
    if services.wait_for_position is None:
        context.waited(names)
        return False
    try:
        outcome = await _waited(context, result.last_position, names, committed=True)
    except TooManyWaiting:
        context.waited(names)
        return False
    except Exception:
        log.warning(
            "waiting for the projections to reach position %d failed",
            result.last_position,
            exc_info=True,
        )
        context.waited(names)
        return False
    context.waited(outcome.behind)
    return outcome.caught_up


class ReadYourWrites(SchemaExtension):
    """Waits for ``Programledger-Min-Position`` and for the positions and times a query
    reads as of (``asOfPosition``, ``knownAtPosition``, ``asOf``, ``knownAt``) once the
    document is known and valid, and adds ``projectionsBehind`` to a result whose reads
    did not catch up.

    A read as of a position the read models have not reached would answer the state
    before it under that position's name, and the same read a moment later another one:
    a mutation's ``position`` read at once as ``asOfPosition`` (what docs/api.md
    suggests) showed the entity without the mutation. So it waits like the header, and a
    position beyond the store's head is refused the same way. A read as of a time is
    answered at the last position recorded at or before it, so it waits for that one:
    during a rebuild or after an outage, an auditor's "as of the steering meeting"
    otherwise showed an older state under that time, unflagged."""

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        document = self.execution_context.graphql_document
        if (
            isinstance(context, ApiContext)
            and not self.execution_context.pre_execution_errors
            and document is not None
        ):
            query = self.execution_context.query
            # The document is walked only when the request may wait: it carries the header,
            # or its text names an as-of argument (most requests do neither).
            if (
                context.min_position is not None
                or query is None
                or any(mark in query for mark in _AS_OF_MARKS)
            ):
                names, read_at, times = _reads(document, self.execution_context.variables or {})
                # One bound for the request, however many waits it takes.
                until = asyncio.get_running_loop().time() + context.services.projection_wait
                error: GraphQLError | None = None
                if context.min_position is not None or read_at:
                    position = max((context.min_position or 0, *read_at))
                    error = await self._wait(context, names, position, until)
                if error is None and times:
                    error = await self._wait(context, names, max(times), until)
                if error is not None:
                    # Set before strawberry looks at them, so the operation does not run.
                    self.execution_context.pre_execution_errors = [error]
        yield

    async def _wait(
        self, context: ApiContext, names: frozenset[str], position: int | datetime, until: float
    ) -> GraphQLError | None:
        if context.services.wait_for_position is None:
            context.waited(names)
            return None
        left = max(0.0, until - asyncio.get_running_loop().time())
        try:
            outcome = await _waited(context, position, names, committed=False, timeout=left)
        except PositionAhead as exc:
            return GraphQLError(str(exc), extensions={"code": "BAD_USER_INPUT", "head": exc.head})
        except TooManyWaiting as exc:
            if context.response is not None:
                context.response.headers["Retry-After"] = "1"
            return GraphQLError(str(exc), extensions={"code": "UNAVAILABLE", "retryable": True})
        context.waited(outcome.behind)
        return None

    def get_results(self) -> dict[str, Any]:
        context = self.execution_context.context
        if not isinstance(context, ApiContext) or not context.projections_behind:
            return {}
        behind = sorted(context.projections_behind)
        if context.response is not None:
            context.response.headers[BEHIND_HEADER] = ",".join(behind)
        return {"projectionsBehind": behind, "stale": True}
