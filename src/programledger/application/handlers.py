"""Command handling: load the stream, decide, append with the version loaded.

One entry, :meth:`Application.handle`, routes each command to its aggregate. The event
store is the only source the handlers read, projections never: a read model may lag, and
a rule checked against a lagging copy is not a rule.

Concurrency. Every append states the version the decision was made on. When the client
named the version it based its command on, a stream that moved is the client's conflict
to resolve, so it is reported at once. Otherwise the handler decides again on the fresh
state, after a short jittered pause, until it gets through or a deadline passes, which is
what serialises competing commands on one stream, e.g. two confirmations that together
would over-allocate one person: the second is decided against the first and refused.

Nothing is written for a command that is refused: every string of it is checked for text
no store can hold before anything is appended, and a proposal's code is reserved only once
the proposal has been decided and its events checked for encoding (see ``reservations``).

Rules that span streams (a risk's or allocation's program must exist and be open, a
program's code must be unique) read the other stream just before deciding. Existence never
goes away (programs and workstreams are never deleted), and codes are held by their own
streams (see ``reservations``). A program closing at the very moment a risk is raised on it
is not serialised against it: the window is one round trip, and the rule is that no *new*
work starts on a closed program, which the next command will see.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeVar, cast
from uuid import UUID

import msgspec
from msgspec.structs import replace

from programledger.application.commands import (
    Command,
    CommandContext,
    CommandResult,
    command_fingerprint,
)
from programledger.application.eventstore import (
    AppendResult,
    ConcurrencyConflict,
    EventMetadata,
    InvalidAppend,
    RecordedEvent,
)
from programledger.application.ports import CommandStore, require_intact
from programledger.application.reservations import ABANDONED_AFTER, reserve_program_code
from programledger.domain import (
    assumption,
    issue,
    objective,
    portfolio,
    program,
    program_id_of,
    report,
    resource,
    risk,
    scenario,
    schedule,
)
from programledger.domain._checks import unstorable_text
from programledger.domain.assumption import (
    ASSUMPTION_EVENT_TYPES,
    Assumption,
    AssumptionCommand,
    AssumptionEvent,
    AssumptionInvalidated,
    InvalidateAssumption,
    RecordAssumption,
    UpdateAssumptionDetails,
    assumption_stream_id,
)
from programledger.domain.errors import (
    DomainError,
    FieldIssue,
    InconsistentHistory,
    TerminalState,
    ValidationError,
)
from programledger.domain.events import DomainEvent
from programledger.domain.issue import (
    ISSUE_EVENT_TYPES,
    Issue,
    IssueCommand,
    IssueEvent,
    RaisedIssue,
    RaiseIssue,
    UpdateIssueDetails,
    issue_stream_id,
)
from programledger.domain.objective import (
    OBJECTIVE_EVENT_TYPES,
    LinkObjectiveToProgram,
    Objective,
    ObjectiveCommand,
    ObjectiveEvent,
    objective_stream_id,
)
from programledger.domain.portfolio import (
    PORTFOLIO_EVENT_TYPES,
    Portfolio,
    PortfolioCommand,
    PortfolioEvent,
    PortfolioStatus,
    portfolio_stream_id,
)
from programledger.domain.program import (
    PROGRAM_EVENT_TYPES,
    TERMINAL_PROGRAM_STATUSES,
    MoveProgramToPortfolio,
    Program,
    ProgramCommand,
    ProgramEvent,
    ProposeProgram,
    program_stream_id,
)
from programledger.domain.report import (
    STATUS_REPORT_EVENT_TYPES,
    PublishStatusReport,
    StatusReport,
    StatusReportCommand,
    StatusReportEvent,
    status_report_stream_id,
)
from programledger.domain.resource import (
    RESOURCE_EVENT_TYPES,
    ConfirmAllocation,
    ProposeAllocation,
    Resource,
    ResourceCommand,
    ResourceEvent,
    resource_stream_id,
)
from programledger.domain.risk import (
    RISK_EVENT_TYPES,
    IdentifyRisk,
    RaisedRisk,
    ReportRiskMaterialised,
    Risk,
    RiskCommand,
    RiskEvent,
    RiskMaterialised,
    UpdateRiskDetails,
    risk_stream_id,
)
from programledger.domain.scenario import (
    SCENARIO_EVENT_TYPES,
    AddScenarioAllocation,
    AddScenarioCapacityChange,
    CommitOutcome,
    CommitScenario,
    Scenario,
    ScenarioCommand,
    ScenarioEvent,
    commit_plan,
    scenario_stream_id,
)
from programledger.domain.schedule import (
    NETWORK_STREAM_ID,
    SCHEDULE_EVENT_TYPES,
    LinkMilestones,
    ScheduleCommand,
    ScheduleEvent,
    ScheduleNetwork,
)

__all__ = ["AggregateState", "Application", "HistoryEntry", "Loaded", "RetryPolicy"]

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E", bound=DomainEvent)

AggregateState = (
    Program
    | Risk
    | Assumption
    | Issue
    | Resource
    | ScheduleNetwork
    | Portfolio
    | Objective
    | StatusReport
    | Scenario
)


class Loaded(NamedTuple, Generic[S]):
    """An aggregate as its stream tells it: ``state`` is ``None`` when there is no stream."""

    state: S | None
    version: int
    last_position: int
    """Global position of the stream's last event read (0 for no stream)."""


class HistoryEntry(NamedTuple):
    """One stored event and the aggregate right after it: what a decision was made on."""

    event: RecordedEvent
    state: AggregateState


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a command with no client-given version is decided again after conflicts.

    A writer loses a round only to another writer's success, so under any sustained load
    each writer's turn comes; what a fixed number of attempts could not promise (4 writers
    on one stream saw one command in a few hundred refused after 10 lost rounds) a
    deadline does: retries go on until ``deadline`` seconds after the first attempt, far
    beyond any real contention, and stop well before a client's request timeout. Full
    jitter keeps competing writers from colliding again in lockstep; the cap keeps a
    writer that lost often from sleeping through the turns of writers that arrive fresh.
    """

    deadline: float = 10.0
    base_delay: float = 0.002
    max_delay: float = 0.05

    def delay(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** min(attempt, 16)))


@dataclass(frozen=True, slots=True)
class _Aggregate(Generic[S, C, E]):
    name: str
    event_types: tuple[type[DomainEvent], ...]
    decide: Callable[[S | None, C], Sequence[E]]
    evolve: Callable[[S | None, E], S]

    def event(self, record: RecordedEvent) -> E:
        """The record's event, refused unless it belongs on this aggregate's streams: a
        foreign event would be folded into nonsense rather than fail."""
        if not isinstance(record.data, self.event_types):
            raise InconsistentHistory(
                f"{record.stream_id} v{record.version} holds {record.event_type}, "
                f"which is not a {self.name} event"
            )
        return cast(E, record.data)

    def walk(self, records: Sequence[RecordedEvent]) -> Iterator[tuple[RecordedEvent, S]]:
        state: S | None = None
        for record in records:
            state = self.evolve(state, self.event(record))
            yield record, state

    def load(self, records: Sequence[RecordedEvent]) -> Loaded[S]:
        state: S | None = None
        for record in records:
            state = self.evolve(state, self.event(record))
        if not records:
            return Loaded(None, 0, 0)
        return Loaded(state, records[-1].version, records[-1].position)


_PROGRAMS: _Aggregate[Program, ProgramCommand, ProgramEvent] = _Aggregate(
    "program", PROGRAM_EVENT_TYPES, program.decide, program.evolve
)
_RISKS: _Aggregate[Risk, RiskCommand, RiskEvent] = _Aggregate(
    "risk", RISK_EVENT_TYPES, risk.decide, risk.evolve
)
_ASSUMPTIONS: _Aggregate[Assumption, AssumptionCommand, AssumptionEvent] = _Aggregate(
    "assumption", ASSUMPTION_EVENT_TYPES, assumption.decide, assumption.evolve
)
_ISSUES: _Aggregate[Issue, IssueCommand, IssueEvent] = _Aggregate(
    "issue", ISSUE_EVENT_TYPES, issue.decide, issue.evolve
)
_RESOURCES: _Aggregate[Resource, ResourceCommand, ResourceEvent] = _Aggregate(
    "resource", RESOURCE_EVENT_TYPES, resource.decide, resource.evolve
)

_SCHEDULE: _Aggregate[ScheduleNetwork, ScheduleCommand, ScheduleEvent] = _Aggregate(
    "schedule", SCHEDULE_EVENT_TYPES, schedule.decide, schedule.evolve
)

_PORTFOLIOS: _Aggregate[Portfolio, PortfolioCommand, PortfolioEvent] = _Aggregate(
    "portfolio", PORTFOLIO_EVENT_TYPES, portfolio.decide, portfolio.evolve
)
_OBJECTIVES: _Aggregate[Objective, ObjectiveCommand, ObjectiveEvent] = _Aggregate(
    "objective", OBJECTIVE_EVENT_TYPES, objective.decide, objective.evolve
)
_REPORTS: _Aggregate[StatusReport, StatusReportCommand, StatusReportEvent] = _Aggregate(
    "status report", STATUS_REPORT_EVENT_TYPES, report.decide, report.evolve
)
_SCENARIOS: _Aggregate[Scenario, ScenarioCommand, ScenarioEvent] = _Aggregate(
    "scenario", SCENARIO_EVENT_TYPES, scenario.decide, scenario.evolve
)
_WALKERS: dict[str, _Aggregate[Any, Any, Any]] = {
    "program": _PROGRAMS,
    "risk": _RISKS,
    "assumption": _ASSUMPTIONS,
    "issue": _ISSUES,
    "resource": _RESOURCES,
    "schedule": _SCHEDULE,
    "portfolio": _PORTFOLIOS,
    "objective": _OBJECTIVES,
    "status_report": _REPORTS,
    "scenario": _SCENARIOS,
}
"""The aggregate of each kind of stream (the stream id's prefix)."""

_FAMILIES = (
    ProgramCommand,
    PortfolioCommand,
    ObjectiveCommand,
    RiskCommand,
    AssumptionCommand,
    IssueCommand,
    ResourceCommand,
    ScheduleCommand,
    StatusReportCommand,
    ScenarioCommand,
)


@functools.cache
def _family(command_type: type) -> object:
    """The union ``command_type`` belongs to, if any. ``isinstance`` against a union tries
    its members one by one (2.5 µs for the 37 program commands), so a resource command
    paid 4.6 µs to pass the families before its own, a tenth of its CPU in a busy
    process; this is asked once per class, and the ``isinstance`` behind it in
    :meth:`Application.handle` stays for the type checker."""
    return next((family for family in _FAMILIES if issubclass(command_type, family)), None)


_References = Callable[[S | None, C], Awaitable[list[FieldIssue]]]
"""Checks a command's references to other streams; returns the wrong fields, or raises
when the referenced program is final."""


class Application:
    """Handles commands and answers the single-stream queries that later layers need.

    Built with any :class:`CommandStore`; the composition root passes the PostgreSQL one.
    """

    def __init__(
        self,
        store: CommandStore,
        *,
        retry: RetryPolicy | None = None,
        abandoned_reservation_after: timedelta = ABANDONED_AFTER,
    ) -> None:
        self._store = store
        self._retry = retry or RetryPolicy()
        self._abandoned_after = abandoned_reservation_after

    async def handle(self, command: Command, context: CommandContext) -> CommandResult:
        """Decide ``command`` and record its events, or raise why not.

        Raises a :class:`~programledger.domain.errors.DomainError` for a refusal,
        :class:`ConcurrencyConflict` (with ``actual_version``) when the client's expected
        version is stale or the retry deadline passed, :class:`IdempotencyKeyReused` when
        the key belongs to another command. A context the store would refuse is a
        ``ValidationError`` too, raised before anything is read.
        """
        context.check()
        fingerprint = None
        if context.idempotency_key is not None:
            fingerprint = command_fingerprint(command, context.actor)
        run = functools.partial(self._run, context=context, fingerprint=fingerprint)
        family = _family(type(command))
        match command:
            case ProposeProgram():
                reserve = functools.partial(self._reserve_code, command, context)
                stream_id = program_stream_id(command.program_id)
                return await run(
                    _PROGRAMS, stream_id, command.program_id, command, before_append=reserve
                )
            case _ if family is ProgramCommand and isinstance(command, ProgramCommand):
                stream_id = program_stream_id(command.program_id)
                return await run(
                    _PROGRAMS,
                    stream_id,
                    command.program_id,
                    command,
                    references=self._portfolio_references,
                )
            case _ if family is PortfolioCommand and isinstance(command, PortfolioCommand):
                stream_id = portfolio_stream_id(command.portfolio_id)
                return await run(_PORTFOLIOS, stream_id, command.portfolio_id, command)
            case _ if family is ObjectiveCommand and isinstance(command, ObjectiveCommand):
                stream_id = objective_stream_id(command.objective_id)
                return await run(
                    _OBJECTIVES,
                    stream_id,
                    command.objective_id,
                    command,
                    references=self._objective_references,
                )
            case _ if family is RiskCommand and isinstance(command, RiskCommand):
                stream_id = risk_stream_id(command.risk_id)
                result = await run(
                    _RISKS, stream_id, command.risk_id, command, references=self._risk_references
                )
                if isinstance(command, ReportRiskMaterialised):
                    return await self._complete_raised(result, context)
                return result
            case _ if family is AssumptionCommand and isinstance(command, AssumptionCommand):
                stream_id = assumption_stream_id(command.assumption_id)
                result = await run(
                    _ASSUMPTIONS,
                    stream_id,
                    command.assumption_id,
                    command,
                    references=self._assumption_references,
                )
                if isinstance(command, InvalidateAssumption):
                    return await self._complete_raised(result, context)
                return result
            case _ if family is IssueCommand and isinstance(command, IssueCommand):
                stream_id = issue_stream_id(command.issue_id)
                return await run(
                    _ISSUES,
                    stream_id,
                    command.issue_id,
                    command,
                    references=self._issue_references,
                )
            case _ if family is ResourceCommand and isinstance(command, ResourceCommand):
                stream_id = resource_stream_id(command.resource_key)
                return await run(
                    _RESOURCES,
                    stream_id,
                    command.resource_key,
                    command,
                    references=self._allocation_references,
                )
            case _ if family is ScheduleCommand and isinstance(command, ScheduleCommand):
                return await run(
                    _SCHEDULE,
                    NETWORK_STREAM_ID,
                    NETWORK_STREAM_ID,
                    command,
                    references=self._link_references,
                )
            case _ if family is StatusReportCommand and isinstance(command, StatusReportCommand):
                stream_id = status_report_stream_id(command.program_id, command.period)
                return await run(
                    _REPORTS,
                    stream_id,
                    stream_id,
                    command,
                    references=self._report_references,
                    complete=functools.partial(self._publisher, context=context),
                )
            case CommitScenario():
                return await self._commit_scenario(command, context, fingerprint)
            case _ if family is ScenarioCommand and isinstance(command, ScenarioCommand):
                stream_id = scenario_stream_id(command.scenario_id)
                return await run(
                    _SCENARIOS,
                    stream_id,
                    command.scenario_id,
                    command,
                    references=self._scenario_references,
                )
        raise TypeError(f"{type(command).__name__} is not a command this application handles")

    # Queries

    async def load_program(
        self, program_id: UUID, *, recorded_before: datetime | None = None
    ) -> Loaded[Program]:
        return await self._load(_PROGRAMS, program_stream_id(program_id), recorded_before)

    async def load_risk(
        self, risk_id: UUID, *, recorded_before: datetime | None = None
    ) -> Loaded[Risk]:
        return await self._load(_RISKS, risk_stream_id(risk_id), recorded_before)

    async def load_assumption(
        self, assumption_id: UUID, *, recorded_before: datetime | None = None
    ) -> Loaded[Assumption]:
        return await self._load(_ASSUMPTIONS, assumption_stream_id(assumption_id), recorded_before)

    async def load_issue(
        self, issue_id: UUID, *, recorded_before: datetime | None = None
    ) -> Loaded[Issue]:
        return await self._load(_ISSUES, issue_stream_id(issue_id), recorded_before)

    async def load_resource(
        self, key: str, *, recorded_before: datetime | None = None
    ) -> Loaded[Resource]:
        return await self._load(_RESOURCES, resource_stream_id(key), recorded_before)

    async def load_schedule(
        self, *, recorded_before: datetime | None = None
    ) -> Loaded[ScheduleNetwork]:
        return await self._load(_SCHEDULE, NETWORK_STREAM_ID, recorded_before)

    async def load_status_report(
        self, program_id: UUID, period: str, *, recorded_before: datetime | None = None
    ) -> Loaded[StatusReport]:
        stream_id = status_report_stream_id(program_id, period)
        return await self._load(_REPORTS, stream_id, recorded_before)

    async def load_scenario(
        self, scenario_id: UUID, *, recorded_before: datetime | None = None
    ) -> Loaded[Scenario]:
        return await self._load(_SCENARIOS, scenario_stream_id(scenario_id), recorded_before)

    async def load_portfolio(
        self, portfolio_id: UUID, *, recorded_before: datetime | None = None
    ) -> Loaded[Portfolio]:
        return await self._load(_PORTFOLIOS, portfolio_stream_id(portfolio_id), recorded_before)

    async def load_objective(
        self, objective_id: UUID, *, recorded_before: datetime | None = None
    ) -> Loaded[Objective]:
        return await self._load(_OBJECTIVES, objective_stream_id(objective_id), recorded_before)

    async def history(
        self,
        stream_id: str,
        *,
        recorded_before: datetime | None = None,
        after_version: int = 0,
        limit: int | None = None,
    ) -> list[HistoryEntry]:
        """The events of an aggregate's stream (program, risk, assumption, issue, resource,
        schedule, portfolio, objective, status report or scenario) after ``after_version``
        (at most ``limit``), each with the state right after it, so a reader can replay what
        each decision was made on. States are folded from the stream's start. Raises
        :class:`BrokenChain` when the stream's hash chain does not hold."""
        walker = _WALKERS.get(stream_id.partition("-")[0])
        if walker is None:
            raise ValueError(
                f"{stream_id!r} is not a program, risk, assumption, issue, resource, "
                "schedule, portfolio, objective, status report or scenario stream"
            )
        if after_version < 0 or (limit is not None and limit < 1):
            raise ValueError("after_version must be 0 or more, and limit at least 1")
        try:
            records = await self._store.read_stream(
                stream_id,
                to_version=None if limit is None else after_version + limit,
                recorded_before=recorded_before,
            )
        except Exception:
            # Altered data may not even decode: say so when that is why.
            await require_intact(self._store, [stream_id])
            raise
        if records:
            await require_intact(self._store, [stream_id])
        steps: Iterator[tuple[RecordedEvent, AggregateState]] = walker.walk(records)
        return [
            HistoryEntry(record, state) for record, state in steps if record.version > after_version
        ]

    # The loop

    async def _load(
        self, aggregate: _Aggregate[S, C, E], stream_id: str, recorded_before: datetime | None
    ) -> Loaded[S]:
        records = await self._store.read_stream(stream_id, recorded_before=recorded_before)
        return aggregate.load(records)

    async def _run(
        self,
        aggregate: _Aggregate[S, C, E],
        stream_id: str,
        entity_id: UUID | str,
        command: C,
        *,
        context: CommandContext,
        fingerprint: bytes | None,
        references: _References[S, C] | None = None,
        complete: Callable[[C], Awaitable[C]] | None = None,
        before_append: Callable[[], Awaitable[None]] | None = None,
    ) -> CommandResult:
        """``complete`` adds, at each attempt, the facts the application fills into the
        command (``filled_by_application``), read just before deciding.

        A repeat (the same idempotency key) is recognised where the fresh decision cannot
        be recorded, not before every command: the append itself answers a repeat with the
        first result (``append_batch`` checks the key before the version, under its lock),
        so the key is looked up only when deciding again refuses the command, finds a
        stale expected version or changes nothing. That saves each keyed command a round
        trip, 10 % of an API process's CPU when every command carried a key (the soak).
        A command with ``before_append`` still looks first: what it reserves cannot be
        undone."""
        key = context.idempotency_key
        if before_append is not None:
            earlier = await self._earlier(key, fingerprint, entity_id)
            if earlier is not None:
                return earlier
        attempt = 0
        give_up_at = time.monotonic() + self._retry.deadline
        while True:
            attempt += 1
            loaded = await self._load(aggregate, stream_id, None)
            expected = context.expected_version
            try:
                if expected is not None and expected != loaded.version:
                    raise ConcurrencyConflict(stream_id, expected, loaded.version)
                issues = [] if references is None else await references(loaded.state, command)
                decided = command if complete is None else await complete(command)
                events = _decide(aggregate, loaded.state, decided, issues)
            except (DomainError, ConcurrencyConflict):
                earlier = await self._earlier(key, fingerprint, entity_id)
                if earlier is not None:
                    return earlier
                raise
            if not events:
                earlier = await self._earlier(key, fingerprint, entity_id)
                if earlier is not None:
                    return earlier
                return CommandResult(
                    stream_id=stream_id,
                    entity_id=entity_id,
                    version=loaded.version,
                    last_position=loaded.last_position,
                    event_ids=(),
                    events=(),
                )
            try:
                if before_append is not None:
                    # Refusals come before the reservation, which cannot be undone: the
                    # events are encoded (and so checked) first; after it, only an outage
                    # can stop them, and a retry with the same id finds its reservation.
                    self._store.check_events(events)
                    await before_append()
                appended = await self._store.append(
                    stream_id,
                    loaded.version,
                    events,
                    _metadata(context, _program_of(events)),
                    idempotency_key=key,
                    fingerprint=fingerprint,
                )
            except ConcurrencyConflict:
                if expected is not None or time.monotonic() >= give_up_at:
                    raise
                await asyncio.sleep(self._retry.delay(attempt))
                continue
            except InvalidAppend as exc:
                # Only the data can be at fault here (e.g. texts too large once encoded):
                # the stream id, metadata and key were checked before.
                raise ValidationError.single("", f"the command cannot be recorded: {exc}") from exc
            if appended.replayed:
                # A concurrent request with the same key and command got there first.
                records = await self._stored(appended)
                return _replayed(appended, entity_id, records)
            return CommandResult(
                stream_id=stream_id,
                entity_id=entity_id,
                version=appended.last_version,
                last_position=appended.last_position,
                event_ids=tuple(appended.event_ids),
                events=tuple(events),
            )

    async def _earlier(
        self, key: str | None, fingerprint: bytes | None, entity_id: UUID | str
    ) -> CommandResult | None:
        """The first result of the command ``key`` names, if it was recorded (``None``
        without a key); raises :class:`IdempotencyKeyReused` if the key belongs to another
        command."""
        if key is None or fingerprint is None:
            return None
        earlier = await self._store.find_idempotent(key, fingerprint)
        if earlier is None:
            return None
        return _replayed(earlier, entity_id, await self._stored(earlier))

    async def _stored(self, appended: AppendResult) -> list[RecordedEvent]:
        return await self._store.read_stream(
            appended.stream_id,
            from_version=appended.first_version,
            to_version=appended.last_version,
        )

    # An item raised in the same step by another

    async def _complete_raised(
        self, result: CommandResult, context: CommandContext
    ) -> CommandResult:
        """Opens the risk or issue that the source stream's latest raising event names
        (a risk materialised, an assumption invalidated), unless it is open already.

        One append writes one stream, so "invalidated, and the risk raised" is two
        appends. The first, on the source stream, records the raised item whole, chosen
        id included; the second is a pure function of it (``issue.raise_from``,
        ``risk.identify_from``), appended with "no stream yet" and idempotent. A crash
        between the two leaves the intent recorded and the item missing until the
        command is sent again: a repeat (the same key, or the same data without a key)
        records nothing on the source and completes this step. The result's position is
        the last one written, so waiting for it shows the raised item too.
        """
        records = await self._store.read_stream(result.stream_id)
        source = next(
            (
                r
                for r in reversed(records)
                if isinstance(r.data, RiskMaterialised | AssumptionInvalidated)
            ),
            None,
        )
        if source is None:
            return result
        event = source.data
        metadata = EventMetadata(
            actor=context.actor,
            correlation_id=context.correlation_id,
            causation_id=source.event_id,
            reason=context.reason,
            program_id=program_id_of(event),
        )
        raised: tuple[DomainEvent, ...]
        match event:
            case RiskMaterialised(raised_issue=RaisedIssue() as from_risk):
                position, raised = await self._open(
                    _ISSUES,
                    issue_stream_id(from_risk.issue_id),
                    lambda state: issue.raise_from(
                        state, event.program_id, from_risk, risk_id=event.risk_id
                    ),
                    metadata,
                )
            case AssumptionInvalidated(raised_issue=RaisedIssue() as from_assumption):
                position, raised = await self._open(
                    _ISSUES,
                    issue_stream_id(from_assumption.issue_id),
                    lambda state: issue.raise_from(
                        state, event.program_id, from_assumption, assumption_id=event.assumption_id
                    ),
                    metadata,
                )
            case AssumptionInvalidated(raised_risk=RaisedRisk() as new_risk):
                position, raised = await self._open(
                    _RISKS,
                    risk_stream_id(new_risk.risk_id),
                    lambda state: risk.identify_from(
                        state, event.program_id, new_risk, assumption_id=event.assumption_id
                    ),
                    metadata,
                )
            case _:
                return result
        return msgspec.structs.replace(
            result, last_position=max(result.last_position, position), raised=raised
        )

    async def _open(
        self,
        aggregate: _Aggregate[S, C, E],
        stream_id: str,
        decide: Callable[[S | None], Sequence[E]],
        metadata: EventMetadata,
    ) -> tuple[int, tuple[DomainEvent, ...]]:
        """Appends what ``decide`` makes of the stream, deciding again after a conflict;
        returns the stream's last position and what was appended."""
        give_up_at = time.monotonic() + self._retry.deadline
        attempt = 0
        while True:
            attempt += 1
            loaded = aggregate.load(await self._store.read_stream(stream_id))
            events = decide(loaded.state)
            if not events:
                return loaded.last_position, ()
            try:
                appended = await self._store.append(stream_id, loaded.version, events, metadata)
            except ConcurrencyConflict:
                if time.monotonic() >= give_up_at:
                    raise
                await asyncio.sleep(self._retry.delay(attempt))
                continue
            return appended.last_position, tuple(events)

    # Rules that span streams

    async def _reserve_code(self, command: ProposeProgram, context: CommandContext) -> None:
        await reserve_program_code(
            self._store,
            command.code,
            command.program_id,
            _metadata(context, command.program_id),
            self._code_of,
            abandoned_after=self._abandoned_after,
        )

    async def _code_of(self, program_id: UUID) -> str | None:
        state = (await self.load_program(program_id)).state
        return None if state is None else state.code

    async def _risk_references(self, state: Risk | None, command: RiskCommand) -> list[FieldIssue]:
        match command:
            case IdentifyRisk():
                return await self._program_reference(
                    command.program_id, command.workstream_id, refuse_final="IdentifyRisk"
                )
            case UpdateRiskDetails(workstream_id=UUID() as workstream_id) if state is not None:
                return await self._program_reference(state.program_id, workstream_id)
            case ReportRiskMaterialised(raise_issue=raised) if raised is not None:
                if state is not None and state.materialisation is not None:
                    return []  # a repeat: the raised issue is this risk's own
                return await self._unused("raise_issue.issue_id", issue_stream_id(raised.issue_id))
        return []

    async def _assumption_references(
        self, state: Assumption | None, command: AssumptionCommand
    ) -> list[FieldIssue]:
        match command:
            case RecordAssumption():
                return await self._program_reference(
                    command.program_id, command.workstream_id, refuse_final="RecordAssumption"
                )
            case UpdateAssumptionDetails(workstream_id=UUID() as workstream_id) if state:
                return await self._program_reference(state.program_id, workstream_id)
            case InvalidateAssumption() if state is not None and state.invalidation:
                return []  # a repeat (or refused): any raised item is this assumption's own
            case InvalidateAssumption(raise_risk=raised) if raised is not None:
                return await self._unused("raise_risk.risk_id", risk_stream_id(raised.risk_id))
            case InvalidateAssumption(raise_issue=raised) if raised is not None:
                return await self._unused("raise_issue.issue_id", issue_stream_id(raised.issue_id))
        return []

    async def _issue_references(
        self, state: Issue | None, command: IssueCommand
    ) -> list[FieldIssue]:
        match command:
            case RaiseIssue():
                issues = await self._program_reference(
                    command.program_id, command.workstream_id, refuse_final="RaiseIssue"
                )
                if command.risk_id is not None:
                    linked = (await self.load_risk(command.risk_id)).state
                    if linked is None or linked.program_id != command.program_id:
                        issues.append(
                            FieldIssue(
                                "risk_id",
                                f"risk {command.risk_id} does not exist in program "
                                f"{command.program_id}",
                            )
                        )
                return issues
            case UpdateIssueDetails(workstream_id=UUID() as workstream_id) if state:
                return await self._program_reference(state.program_id, workstream_id)
        return []

    async def _unused(self, path: str, stream_id: str) -> list[FieldIssue]:
        """An id for an item raised in the same step must not be taken: checked before
        the raising event is recorded, so the second step cannot be refused for it."""
        if await self._store.read_stream(stream_id, to_version=1):
            kind, _, item_id = stream_id.partition("-")
            return [FieldIssue(path, f"{kind} {item_id} already exists")]
        return []

    async def _allocation_references(
        self, state: Resource | None, command: ResourceCommand
    ) -> list[FieldIssue]:
        if state is None:
            return []  # no such resource: decide says so
        match command:
            case ProposeAllocation():
                return await self._program_reference(
                    command.program_id, command.workstream_id, refuse_final="ProposeAllocation"
                )
            case ConfirmAllocation():
                allocation = next(
                    (a for a in state.allocations if a.allocation_id == command.allocation_id),
                    None,
                )
                if allocation is not None:
                    return await self._program_reference(
                        allocation.program_id, None, refuse_final="ConfirmAllocation"
                    )
        return []

    async def _link_references(
        self, state: ScheduleNetwork | None, command: ScheduleCommand
    ) -> list[FieldIssue]:
        """Both ends of every new link must be milestones of their programs (which never
        go away); a link from or to a done milestone is allowed, being history."""
        if not isinstance(command, LinkMilestones):
            return []
        wanted = list(
            {ref.program_id for link in command.links for ref in (link.predecessor, link.successor)}
        )
        loaded = await asyncio.gather(*(self.load_program(p) for p in wanted))
        milestones: dict[UUID, set[UUID] | None] = {
            p: None if found.state is None else {m.milestone_id for m in found.state.milestones}
            for p, found in zip(wanted, loaded, strict=True)
        }
        issues = []
        for i, link in enumerate(command.links):
            for end, ref in (("predecessor", link.predecessor), ("successor", link.successor)):
                known = milestones[ref.program_id]
                if known is None:
                    issues.append(
                        FieldIssue(
                            f"links[{i}].{end}.program_id",
                            f"program {ref.program_id} does not exist",
                        )
                    )
                elif ref.milestone_id not in known:
                    issues.append(
                        FieldIssue(
                            f"links[{i}].{end}.milestone_id",
                            f"milestone {ref.milestone_id} does not exist in program "
                            f"{ref.program_id}",
                        )
                    )
        return issues

    async def _portfolio_references(
        self, state: Program | None, command: ProgramCommand
    ) -> list[FieldIssue]:
        """A program moves only into a portfolio that exists and is ACTIVE (an archived
        one takes no new programs; moving out of one is always possible)."""
        if not isinstance(command, MoveProgramToPortfolio) or command.portfolio_id is None:
            return []
        if state is not None and state.portfolio_id == command.portfolio_id:
            return []  # no move: decide records nothing
        target = (await self.load_portfolio(command.portfolio_id)).state
        if target is None:
            return [FieldIssue("portfolio_id", f"portfolio {command.portfolio_id} does not exist")]
        if target.status is not PortfolioStatus.ACTIVE:
            return [
                FieldIssue(
                    "portfolio_id",
                    f"portfolio {target.name} is archived and takes no new programs; "
                    "reopen it first",
                )
            ]
        return []

    async def _objective_references(
        self, state: Objective | None, command: ObjectiveCommand
    ) -> list[FieldIssue]:
        if isinstance(command, LinkObjectiveToProgram):
            return await self._program_reference(command.program_id, None)
        return []

    async def _report_references(
        self, state: StatusReport | None, command: StatusReportCommand
    ) -> list[FieldIssue]:
        if state is not None:
            return []  # the program existed when the report was drafted, and still does
        return await self._program_reference(command.program_id, None)

    async def _publisher(
        self, command: StatusReportCommand, *, context: CommandContext
    ) -> StatusReportCommand:
        """A publication as the domain decides it: the caller (the token), and the
        program's owner as its stream has it now."""
        if not isinstance(command, PublishStatusReport):
            return command
        found = (await self.load_program(command.program_id)).state
        owner = "" if found is None else found.owner
        return replace(command, published_by=context.actor, program_owner=owner)

    async def _scenario_references(
        self, state: Scenario | None, command: ScenarioCommand
    ) -> list[FieldIssue]:
        """A change must name a registered resource and, for work, an open program (and
        one of its workstreams): a scenario that cannot be committed misleads."""
        if not isinstance(command, AddScenarioAllocation | AddScenarioCapacityChange):
            return []
        issues = []
        if (await self.load_resource(command.resource_key)).state is None:
            issues.append(
                FieldIssue("resource_key", f"resource {command.resource_key!r} does not exist")
            )
        if isinstance(command, AddScenarioAllocation):
            issues += await self._program_reference(
                command.program_id, command.workstream_id, refuse_final="AddScenarioAllocation"
            )
        return issues

    async def _commit_scenario(
        self, command: CommitScenario, context: CommandContext, fingerprint: bytes | None
    ) -> CommandResult:
        """Sends each change as the real command the resource decides now, then records
        what each did on the scenario. Nothing is sent for a scenario that cannot be
        committed (not open, empty, or not at the client's expected version), nor for a
        repeat of a commit's idempotency key.

        Not atomic across resources, which no rule can be (each resource is its own
        consistency boundary): the outcomes say which changes went through. Allocation
        ids are the changes' ids, so two racing commits cannot allocate anything twice;
        the second is refused when it records (the scenario is committed)."""
        key = context.idempotency_key
        stream_id = scenario_stream_id(command.scenario_id)
        if key is not None and fingerprint is not None:
            earlier = await self._store.find_idempotent(key, fingerprint)
            if earlier is not None:
                return _replayed(earlier, command.scenario_id, await self._stored(earlier))
        loaded = await self.load_scenario(command.scenario_id)
        expected = context.expected_version
        if expected is not None and expected != loaded.version:
            raise ConcurrencyConflict(stream_id, expected, loaded.version)
        _decide(_SCENARIOS, loaded.state, command, [])
        assert loaded.state is not None  # decide refused a missing scenario
        real_context = replace(context, idempotency_key=None, expected_version=None)
        outcomes: list[CommitOutcome] = []
        refused: set[UUID] = set()
        for change, real in commit_plan(loaded.state, command.override_reason):
            name = type(real).__name__
            if change.change_id in refused:
                outcomes.append(
                    CommitOutcome(
                        change_id=change.change_id,
                        command=name,
                        accepted=False,
                        error_code="NOT_SENT",
                        message="not sent: the allocation's proposal was refused",
                    )
                )
                continue
            try:
                result = await self.handle(real, real_context)
            except (DomainError, ConcurrencyConflict) as exc:
                refused.add(change.change_id)
                code = exc.code if isinstance(exc, DomainError) else "CONFLICT"
                outcomes.append(
                    CommitOutcome(
                        change_id=change.change_id,
                        command=name,
                        accepted=False,
                        error_code=code,
                        message=str(exc),
                    )
                )
                continue
            outcomes.append(
                CommitOutcome(
                    change_id=change.change_id,
                    command=name,
                    accepted=True,
                    stream_id=result.stream_id,
                    position=result.last_position,
                )
            )
        committed = replace(command, outcomes=tuple(outcomes))
        return await self._run(
            _SCENARIOS,
            stream_id,
            command.scenario_id,
            committed,
            context=context,
            fingerprint=fingerprint,
        )

    async def _program_reference(
        self, program_id: UUID, workstream_id: UUID | None, *, refuse_final: str | None = None
    ) -> list[FieldIssue]:
        """Issues with a reference to a program (and one of its workstreams).

        ``refuse_final`` names a command that starts new work on the program, refused with
        :class:`TerminalState` once the program is completed or cancelled. Commands that
        wind work down (closing a risk, releasing or shortening an allocation) pass
        ``None``: they must stay possible after the program ends.
        """
        target = (await self.load_program(program_id)).state
        if target is None:
            return [FieldIssue("program_id", f"program {program_id} does not exist")]
        if refuse_final is not None and target.status in TERMINAL_PROGRAM_STATUSES:
            raise TerminalState("program", program_id, target.status.value, refuse_final)
        if workstream_id is not None and all(
            w.workstream_id != workstream_id for w in target.workstreams
        ):
            return [
                FieldIssue(
                    "workstream_id",
                    f"workstream {workstream_id} does not exist in program {target.code}",
                )
            ]
        return []


def _decide(
    aggregate: _Aggregate[S, C, E], state: S | None, command: C, issues: list[FieldIssue]
) -> Sequence[E]:
    """The aggregate's decision, with wrong references and text no store can hold (in any
    field, checked or not by ``decide``) reported beside the command's own wrong fields,
    so a form can mark every field at once."""
    issues = [*unstorable_text(command), *issues]
    try:
        events = aggregate.decide(state, command)
    except ValidationError as exc:
        reported = {issue.path for issue in exc.issues}
        more = [issue for issue in issues if issue.path not in reported]
        if not more:
            raise  # as decided, so a typed refusal (ScheduleCycle) keeps its type
        raise ValidationError([*exc.issues, *more]) from exc
    if issues:
        raise ValidationError(issues)
    return events


def _metadata(context: CommandContext, program_id: UUID | None) -> EventMetadata:
    return EventMetadata(
        actor=context.actor,
        correlation_id=context.correlation_id,
        causation_id=context.causation_id,
        reason=context.reason,
        program_id=program_id,
    )


def _program_of(events: Sequence[DomainEvent]) -> UUID | None:
    """The one program an append concerns: metadata holds one, so events of one command
    that named different programs would be a bug in ``decide``."""
    programs = {program_id_of(event) for event in events}
    if len(programs) > 1:
        raise ValueError(f"one command's events concern several programs: {programs}")
    return programs.pop()


def _replayed(
    appended: AppendResult, entity_id: UUID | str, records: Sequence[RecordedEvent]
) -> CommandResult:
    return CommandResult(
        stream_id=appended.stream_id,
        entity_id=entity_id,
        version=appended.last_version,
        last_position=appended.last_position,
        event_ids=tuple(appended.event_ids),
        events=tuple(r.data for r in records),
        replayed=True,
    )
