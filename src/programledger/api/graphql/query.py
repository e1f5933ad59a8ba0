"""The ``Query`` root: the read models as a frontend and an auditor read them.

Every list and object comes from the projections' query functions (PostgreSQL read
models), never from replaying the event store, so a dashboard costs index lookups; the
exceptions are ``history`` and ``verifyIntegrity``, which exist to read the event store
itself. Lists are Relay connections with keyset cursors; nested lists of a program are
batched by :mod:`nested`, so a page of programs costs the same statements for 1 or 50.

Permissions: the current state needs READ (every role). Looking back in time (``asOf``,
``asOfPosition``, ``knownAt``), the audit trail, history and integrity checks need AUDIT
(auditor or admin): what was known when is the auditor's question, and a refusal says so
with ``FORBIDDEN`` like any other. ``projectionStatus`` needs READ only, because a
frontend shows "data as of ..." banners from it; it exposes no business data.

One module over 500 lines: it is the schema's ``Query`` root, one resolver a field beside
the argument checks (as-of, ids, paging, selection) they all share, read top to bottom like
the schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from enum import Enum
from typing import Annotated, Any, TypeVar
from uuid import UUID

import strawberry
from graphql import FieldNode, FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode
from graphql.language import SelectionSetNode
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.extensions.field_extension import FieldExtension

from programledger.adapters.postgres.verification import VerificationSummary, verify_page
from programledger.api.auth import ROLES_WITH, Capability, Role
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.nested import NESTED_LISTS, read_nested
from programledger.api.graphql.permissions import Forbidden, allowed
from programledger.api.graphql.read_types import (
    AllocationSort,
    AllocationType,
    AuditEntryType,
    Connection,
    DecisionSort,
    DecisionType,
    DependencySort,
    DependencyType,
    HeatMapType,
    HistoryEntryType,
    IntegrityReport,
    MilestoneSort,
    MilestoneType,
    ProgramSort,
    ProgramType,
    ProjectionStatusType,
    ResourceSort,
    ResourceType,
    RiskSort,
    RiskType,
    StreamIntegrity,
    UtilisationType,
    UtilisationWeekType,
    connection,
    plain,
)
from programledger.api.graphql.reads import one_connection
from programledger.api.graphql.types import SafeInt
from programledger.application.eventstore import StreamVerification
from programledger.projections import allocations, audit, decisions, milestones, programs, risks
from programledger.projections.engine.queries import (
    MAX_PAGE_SIZE,
    AsOf,
    Filters,
    Page,
    fetch_page,
    resolve_position,
)
from programledger.projections.engine.status import projection_status

__all__ = ["Me", "Query"]

T = TypeVar("T")

DEFAULT_PAGE = 50


@strawberry.type(description="The caller, as the bearer token says.")
class Me:
    subject: str = strawberry.field(description="Written as the actor of every command.")
    roles: list[Role]
    expires_at: datetime


def _me(info: ApiInfo) -> Me:
    identity = info.context.identity
    assert identity is not None  # the READ permission ran first
    return Me(
        subject=identity.subject, roles=sorted(identity.roles), expires_at=identity.expires_at
    )


# Shared argument handling


def _bad_input(message: str) -> StrawberryGraphQLError:
    return StrawberryGraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def _as_of(info: ApiInfo, at: datetime | None, position: int | None) -> AsOf:
    """The moment to read at; anything but "now" is an auditor's question."""
    if at is None and position is None:
        return None
    identity = info.context.identity
    if identity is None or not identity.can(Capability.AUDIT):
        raise Forbidden(ROLES_WITH[Capability.AUDIT])
    if at is not None and position is not None:
        raise _bad_input("give asOf or asOfPosition, not both")
    if at is not None:
        if at.tzinfo is None:
            raise _bad_input("asOf needs a time zone offset")
        return at
    assert position is not None
    if position < 0:
        raise _bad_input("asOfPosition must be 0 or more")
    return position


async def _read(call: Any) -> Any:
    """Await a read-model query; its ValueErrors (bad cursor, bad range) are the client's."""
    try:
        return await call
    except ValueError as exc:
        raise _bad_input(str(exc)) from None


async def _list(
    info: ApiInfo,
    query: Callable[..., Awaitable[Page[Any]]],
    convert: Callable[[Any], Any],
    when: AsOf,
    order_by: Enum,
    descending: bool,
    first: int,
    after: str | None,
    **filters: Any,
) -> Connection[Any]:
    """The page every plain list field answers with: the read model's ``query`` with the
    field's filters, the client's sort and paging, the total only when selected, and the
    query's ``ValueError`` (bad cursor, bad range) as bad input. ``when`` is checked by
    the caller first, so a reader asking for the past is refused before its filters are
    read."""
    page = await _read(
        query(
            info.context.services.pool,
            **filters,
            sort=order_by.value,
            descending=descending,
            first=first,
            after=after,
            as_of=when,
            count=counts(info),
        )
    )
    return connection(page, convert)


def _subfields(
    selections: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    """The fields of a selection set, inside fragments too. ``@skip``/``@include`` are not
    evaluated, so a field that may be asked for counts as asked."""
    if selections is None:
        return
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _subfields(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:  # validation refused unknown and cyclic fragments
                yield from _subfields(fragment.selection_set, fragments)


def _selected(info: ApiInfo, path: Sequence[str]) -> set[str]:
    """The names of the fields selected at ``path`` inside this field (aliases do not
    matter). Read off the document itself: strawberry's ``selected_fields`` would convert
    the whole selection below this field first."""
    raw = info._raw_info
    fields: list[FieldNode] = list(raw.field_nodes)
    for step in path:
        fields = [
            found
            for field in fields
            for found in _subfields(field.selection_set, raw.fragments)
            if found.name.value == step
        ]
    return {
        found.name.value
        for field in fields
        for found in _subfields(field.selection_set, raw.fragments)
    }


def _nested_lists(info: ApiInfo, *paths: Sequence[str]) -> set[str]:
    """The nested lists selected on the programs this field returns (at ``paths`` inside
    it, or itself)."""
    selected = set().union(*(_selected(info, path) for path in paths or ((),)))
    return selected.intersection(NESTED_LISTS)


def counts(info: ApiInfo, *path: str) -> bool:
    """Whether the operation selects ``totalCount`` of the connection this field returns
    (or of the one at ``path`` inside it): counting a list reads all of its rows, which a
    page alone does not."""
    return "totalCount" in _selected(info, path)


# Filters


@strawberry.input
class ProgramFilter:
    status: list[str] | None = None
    health: list[str] | None = None
    priority: list[int] | None = None
    owner: str | None = None


@strawberry.input
class RiskFilter:
    program_id: strawberry.ID | None = None
    status: list[str] | None = None
    band: list[str] | None = None
    category: list[str] | None = None
    min_score: int | None = strawberry.field(default=None, description="Score at least this.")
    owner: str | None = None
    open_only: bool = False
    review_overdue: bool | None = strawberry.field(
        default=None, description="Open risks whose next review is before today (or asOf)."
    )
    needs_response: bool | None = None


@strawberry.input
class AllocationFilter:
    resource_key: str | None = None
    program_id: strawberry.ID | None = None
    workstream_id: strawberry.ID | None = None
    status: list[str] | None = None
    active_on: date | None = None


@strawberry.input
class AuditFilter:
    stream_id: str | None = None
    entity_id: str | None = strawberry.field(
        default=None, description="A program or risk id, or a resource key."
    )
    program_id: strawberry.ID | None = None
    actor: str | None = None
    event_types: list[str] | None = None
    correlation_id: strawberry.ID | None = None
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="Recorded at or after (inclusive)."
    )
    to: datetime | None = strawberry.field(default=None, description="Recorded before.")


def _uuid(value: str | None, name: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise _bad_input(f"{name} is not a UUID: {value!r}") from None


# Resolvers


async def _program(
    info: ApiInfo,
    id: strawberry.ID,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> ProgramType | None:
    when = _as_of(info, as_of, as_of_position)
    program_id = _uuid(id, "id")
    assert program_id is not None
    position: int | None
    async with one_connection(info.context.services.pool) as reads:
        if isinstance(when, datetime):  # one position for the program and its nested lists
            async with reads.acquire() as conn:
                position = await resolve_position(conn, when)
        else:
            position = when
        row = await programs.get_program(reads, program_id, as_of=position)
        if row is None:
            return None
        nested = await read_nested(reads, [row.program_id], position, _nested_lists(info))
    return ProgramType.of(row, nested)


async def _programs(
    info: ApiInfo,
    filter: ProgramFilter | None = None,
    order_by: ProgramSort = ProgramSort.CODE,
    descending: bool = False,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[ProgramType]:
    when = _as_of(info, as_of, as_of_position)
    f = filter or ProgramFilter()
    wanted = _nested_lists(info, ("nodes",), ("edges", "node"))
    async with one_connection(info.context.services.pool) as reads:
        page = await _read(
            programs.list_programs(
                reads,
                status=f.status,
                health=f.health,
                priority=f.priority,
                owner=f.owner,
                sort=order_by.value,
                descending=descending,
                first=first,
                after=after,
                as_of=when,
                count=counts(info),
            )
        )
        ids = [p.program_id for p in page.items]
        nested = await read_nested(reads, ids, page.as_of_position, wanted)
    return connection(page, lambda p: ProgramType.of(p, nested))


async def _risks(
    info: ApiInfo,
    filter: RiskFilter | None = None,
    order_by: RiskSort = RiskSort.SCORE,
    descending: bool = True,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[RiskType]:
    """``list_risks`` has no minimum score, so the same filters are built here over the
    risks read model's list spec, with ``score >= minScore`` added."""
    when = _as_of(info, as_of, as_of_position)
    f = filter or RiskFilter()
    pool = info.context.services.pool
    day = (when if isinstance(when, datetime) else datetime.now(UTC)).astimezone(UTC).date()
    filters = Filters()
    filters.equals("program_id", _uuid(f.program_id, "programId"))
    filters.any_of("status", f.status, "text")
    filters.any_of("band", f.band, "text")
    filters.any_of("category", f.category, "text")
    filters.equals("owner", f.owner)
    if f.min_score is not None:
        filters.where("score >= {}", f.min_score)
    if f.open_only:
        filters.where("is_open")
    if f.review_overdue is not None:
        clause = "is_open AND coalesce(next_review_on < {}, false)"
        filters.where(clause if f.review_overdue else f"NOT ({clause})", day)
    filters.equals("needs_response", f.needs_response)
    page = await _read(
        fetch_page(
            pool,
            risks.LIST,
            filters,
            sort=order_by.value,
            descending=descending,
            first=first,
            after=after,
            as_of=when,
            extra_select=", (is_open AND coalesce(next_review_on < {}, false)) AS overdue",
            extra_args=(day,),
            count=counts(info),
        )
    )
    return connection(page, RiskType.of)


async def _risk_heatmap(
    info: ApiInfo,
    program_id: strawberry.ID | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> HeatMapType:
    when = _as_of(info, as_of, as_of_position)
    pool = info.context.services.pool
    heat = await _read(risks.heat_map(pool, program_id=_uuid(program_id, "programId"), as_of=when))
    return HeatMapType.of(heat)


async def _milestones(
    info: ApiInfo,
    program_id: strawberry.ID | None = None,
    workstream_id: strawberry.ID | None = None,
    status: list[str] | None = None,
    due_from: date | None = None,
    due_to: date | None = None,
    slipped_only: bool = False,
    order_by: MilestoneSort = MilestoneSort.FORECAST_DATE,
    descending: bool = False,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[MilestoneType]:
    when = _as_of(info, as_of, as_of_position)
    return await _list(
        info,
        milestones.list_milestones,
        MilestoneType.of,
        when,
        order_by,
        descending,
        first,
        after,
        program_id=_uuid(program_id, "programId"),
        workstream_id=_uuid(workstream_id, "workstreamId"),
        status=status,
        due_from=due_from,
        due_to=due_to,
        slipped_only=slipped_only,
    )


async def _dependencies(
    info: ApiInfo,
    program_id: strawberry.ID | None = None,
    target_program_id: strawberry.ID | None = None,
    status: list[str] | None = None,
    needed_by_to: date | None = None,
    order_by: DependencySort = DependencySort.NEEDED_BY,
    descending: bool = False,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[DependencyType]:
    when = _as_of(info, as_of, as_of_position)
    return await _list(
        info,
        milestones.list_dependencies,
        DependencyType.of,
        when,
        order_by,
        descending,
        first,
        after,
        program_id=_uuid(program_id, "programId"),
        target_program_id=_uuid(target_program_id, "targetProgramId"),
        status=status,
        needed_by_to=needed_by_to,
    )


async def _decisions(
    info: ApiInfo,
    program_id: strawberry.ID | None = None,
    in_force: bool | None = None,
    decided_by: str | None = None,
    order_by: DecisionSort = DecisionSort.DECIDED_ON,
    descending: bool = True,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[DecisionType]:
    when = _as_of(info, as_of, as_of_position)
    return await _list(
        info,
        decisions.list_decisions,
        DecisionType.of,
        when,
        order_by,
        descending,
        first,
        after,
        program_id=_uuid(program_id, "programId"),
        in_force=in_force,
        decided_by=decided_by,
    )


async def _resources(
    info: ApiInfo,
    department: list[str] | None = None,
    kind: str | None = None,
    order_by: ResourceSort = ResourceSort.RESOURCE_KEY,
    descending: bool = False,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[ResourceType]:
    when = _as_of(info, as_of, as_of_position)
    return await _list(
        info,
        allocations.list_resources,
        ResourceType.of,
        when,
        order_by,
        descending,
        first,
        after,
        department=department,
        kind=kind,
    )


async def _allocations(
    info: ApiInfo,
    filter: AllocationFilter | None = None,
    order_by: AllocationSort = AllocationSort.START_DATE,
    descending: bool = False,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[AllocationType]:
    when = _as_of(info, as_of, as_of_position)
    f = filter or AllocationFilter()
    return await _list(
        info,
        allocations.list_allocations,
        AllocationType.of,
        when,
        order_by,
        descending,
        first,
        after,
        resource_key=f.resource_key,
        program_id=_uuid(f.program_id, "programId"),
        workstream_id=_uuid(f.workstream_id, "workstreamId"),
        status=f.status,
        active_on=f.active_on,
    )


async def _utilization(
    info: ApiInfo,
    from_: Annotated[date, strawberry.argument(name="from")],
    to: date,
    resource_key: str | None = None,
    over_allocated_only: bool = False,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    known_at: datetime | None = None,
    known_at_position: SafeInt | None = None,
) -> UtilisationType:
    """Weekly load in the valid-time period, as known at ``knownAt`` (now by default)."""
    when = _as_of(info, known_at, known_at_position)
    page = await _read(
        allocations.utilisation(
            info.context.services.pool,
            start=from_,
            end=to,
            resource_key=resource_key,
            over_allocated_only=over_allocated_only,
            known_at=when,
            first=first,
            after=after,
            count=counts(info, "weeks"),
        )
    )
    weeks = connection(page, UtilisationWeekType.of)
    return UtilisationType(weeks=weeks, over_allocated=[w for w in weeks.nodes if w.over_allocated])


async def _audit_trail(
    info: ApiInfo,
    filter: AuditFilter | None = None,
    newest_first: bool = True,
    first: int = DEFAULT_PAGE,
    after: str | None = None,
) -> Connection[AuditEntryType]:
    f = filter or AuditFilter()
    page = await _read(
        audit.audit_trail(
            info.context.services.pool,
            stream_id=f.stream_id,
            entity_id=f.entity_id,
            program_id=_uuid(f.program_id, "programId"),
            actor=f.actor,
            event_types=f.event_types,
            correlation_id=_uuid(f.correlation_id, "correlationId"),
            recorded_from=f.from_,
            recorded_to=f.to,
            newest_first=newest_first,
            first=first,
            after=after,
            count=counts(info),
        )
    )
    return connection(page, AuditEntryType.of)


HISTORY_PAGE = 100
"""Events a ``history`` answer holds unless ``first`` says otherwise."""


async def _history(
    info: ApiInfo,
    stream_id: str,
    recorded_before: datetime | None = None,
    after_version: int = 0,
    first: int = HISTORY_PAGE,
) -> list[HistoryEntryType]:
    """Replayed from the event store by design: the state each decision was made on. A
    page at a time: fewer than ``first`` entries means the stream has no more."""
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise _bad_input(f"first must be between 1 and {MAX_PAGE_SIZE}")
    try:
        entries = await info.context.services.application.history(
            stream_id, recorded_before=recorded_before, after_version=after_version, limit=first
        )
    except ValueError as exc:
        raise _bad_input(str(exc)) from None
    return [
        HistoryEntryType(
            position=SafeInt(e.event.position),
            version=e.event.version,
            event_type=e.event.event_type,
            event_id=strawberry.ID(str(e.event.event_id)),
            actor=e.event.metadata.actor,
            recorded_at=e.event.recorded_at,
            data=plain(e.event.data),
            state=plain(e.state),
        )
        for e in entries
    ]


def _integrity(result: StreamVerification) -> StreamIntegrity:
    return StreamIntegrity(
        stream_id=result.stream_id,
        ok=result.ok,
        events_checked=result.events_checked,
        broken_at_version=result.broken_at_version,
        problem=result.problem,
    )


VERIFY_PAGE = 200
"""Streams one ``verifyIntegrity`` answer walks unless ``first`` says otherwise."""


async def _verify_integrity(
    info: ApiInfo,
    stream_id: str | None = None,
    after_stream_id: str | None = None,
    first: int = VERIFY_PAGE,
) -> IntegrityReport:
    """Walks hash chains in the event store: one stream, or the streams after
    ``after_stream_id``, ``first`` at a time, so a request's time stays bounded."""
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise _bad_input(f"first must be between 1 and {MAX_PAGE_SIZE}")
    store = info.context.services.store
    summary = VerificationSummary()
    next_after = None
    if stream_id is not None:
        summary.add(await store.verify(stream_id))
    else:
        results, next_after = await verify_page(store, after=after_stream_id, limit=first)
        for result in results:
            summary.add(result)
    return IntegrityReport(
        ok=summary.ok,
        streams=summary.streams,
        events=summary.events,
        broken=[_integrity(b) for b in summary.broken],
        next_after_stream_id=next_after,
    )


async def _projection_status(info: ApiInfo) -> list[ProjectionStatusType]:
    found = await projection_status(info.context.services.pool)
    return [ProjectionStatusType.of(s) for s in found]


def _reader() -> list[FieldExtension]:
    return [allowed(Capability.READ)]


def _auditor() -> list[FieldExtension]:
    return [allowed(Capability.AUDIT)]


_AS_OF = " asOf, asOfPosition: auditor or admin."


@strawberry.type
class Query:
    me: Me = strawberry.field(resolver=_me, extensions=[allowed(Capability.READ)])
    program: ProgramType | None = strawberry.field(
        resolver=_program,
        extensions=_reader(),
        description="One program, with its risks, milestones and allocations." + _AS_OF,
    )
    programs: Connection[ProgramType] = strawberry.field(
        resolver=_programs, extensions=_reader(), description="The portfolio." + _AS_OF
    )
    risks: Connection[RiskType] = strawberry.field(
        resolver=_risks, extensions=_reader(), description="The risk register." + _AS_OF
    )
    risk_heatmap: HeatMapType = strawberry.field(
        resolver=_risk_heatmap,
        extensions=_reader(),
        description="Open risks by probability x impact, one program or all." + _AS_OF,
    )
    milestones: Connection[MilestoneType] = strawberry.field(
        resolver=_milestones, extensions=_reader(), description="Milestones." + _AS_OF
    )
    dependencies: Connection[DependencyType] = strawberry.field(
        resolver=_dependencies, extensions=_reader(), description="Dependencies." + _AS_OF
    )
    decisions: Connection[DecisionType] = strawberry.field(
        resolver=_decisions, extensions=_reader(), description="The decision log." + _AS_OF
    )
    resources: Connection[ResourceType] = strawberry.field(
        resolver=_resources, extensions=_reader(), description="People and teams." + _AS_OF
    )
    allocations: Connection[AllocationType] = strawberry.field(
        resolver=_allocations, extensions=_reader(), description="Allocations." + _AS_OF
    )
    utilization: UtilisationType = strawberry.field(
        resolver=_utilization,
        extensions=_reader(),
        description="Weekly load per resource; knownAt/knownAtPosition: auditor or admin.",
    )
    audit_trail: Connection[AuditEntryType] = strawberry.field(
        resolver=_audit_trail,
        extensions=_auditor(),
        description="Who changed what, when and why, with field diffs.",
    )
    history: list[HistoryEntryType] = strawberry.field(
        resolver=_history,
        extensions=_auditor(),
        description="A program, risk or resource stream: each event after afterVersion "
        "(at most first, default 100) and the state after it; page on with the last version.",
    )
    verify_integrity: IntegrityReport = strawberry.field(
        resolver=_verify_integrity,
        extensions=_auditor(),
        description="Walk the hash chain of one stream, or of the streams after "
        "afterStreamId (first at a time, default 200); page on with nextAfterStreamId.",
    )
    projection_status: list[ProjectionStatusType] = strawberry.field(
        resolver=_projection_status,
        extensions=_reader(),
        description="Each read model's position and lag (for 'data as of' banners).",
    )
