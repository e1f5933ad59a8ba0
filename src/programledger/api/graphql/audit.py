"""The auditor's views in GraphQL: ``auditTrail`` (the ``audit`` read model), and
``history`` and ``verifyIntegrity``, which read the event store itself by design: the
state each decision was made on, and the hash chains.

Auditors and admins only. Each field is nullable, so that a query asking for one beside
what its role may read gets the rest, with the refused field null and a ``FORBIDDEN``
error entry at its path, rather than no data at all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import strawberry
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.scalars import JSON

from programledger.adapters.postgres.verification import VerificationSummary, verify_page
from programledger.api.graphql.connections import Connection, connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.reads import auditor, bad_input, counts, paging, read, uuid
from programledger.api.graphql.types import SafeInt
from programledger.application.eventstore import BrokenChain, StreamVerification
from programledger.projections import audit
from programledger.projections.audit import AuditEntry
from programledger.projections.engine.queries import MAX_PAGE_SIZE

__all__ = [
    "AuditEntryType",
    "AuditFilter",
    "AuditQueries",
    "FieldChangeType",
    "HistoryEntryType",
    "IntegrityReport",
    "StreamIntegrity",
]

HISTORY_PAGE = 100
"""Events a ``history`` answer holds unless ``first`` says otherwise."""

VERIFY_PAGE = 200
"""Streams one ``verifyIntegrity`` answer walks unless ``first`` says otherwise."""


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready builtins (UUIDs, dates and structs as the API writes them)."""
    return msgspec.to_builtins(value)


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


@strawberry.type(name="FieldChange", description="One field of the entity, before and after.")
class FieldChangeType:
    path: str = strawberry.field(description='Dotted path, e.g. "milestones[m-1].forecastDate".')
    before: JSON | None
    after: JSON | None


@strawberry.type(name="AuditEntry", description="One event: who changed what, when and why.")
class AuditEntryType:
    position: SafeInt
    event_id: strawberry.ID
    stream_id: str
    entity_id: strawberry.ID
    program_id: strawberry.ID | None
    version: int
    event_type: str
    actor: str
    reason: str | None
    correlation_id: strawberry.ID | None
    recorded_at: datetime
    changes: list[FieldChangeType]

    @staticmethod
    def of(e: AuditEntry) -> AuditEntryType:
        return AuditEntryType(
            position=SafeInt(e.position),
            event_id=strawberry.ID(str(e.event_id)),
            stream_id=e.stream_id,
            entity_id=strawberry.ID(e.entity_id),
            program_id=None if e.program_id is None else strawberry.ID(str(e.program_id)),
            version=e.version,
            event_type=e.event_type,
            actor=e.actor,
            reason=e.reason,
            correlation_id=None
            if e.correlation_id is None
            else strawberry.ID(str(e.correlation_id)),
            recorded_at=e.recorded_at,
            changes=[
                FieldChangeType(path=c.path, before=_plain(c.before), after=_plain(c.after))
                for c in e.changes
            ],
        )


@strawberry.type(name="HistoryEntry", description="One event and the entity right after it.")
class HistoryEntryType:
    position: SafeInt
    version: int
    event_type: str
    event_id: strawberry.ID
    actor: str | None
    recorded_at: datetime
    data: JSON = strawberry.field(description="The event's content.")
    state: JSON | None = strawberry.field(
        description="The whole entity after the event: what the next decision was made on."
    )


@strawberry.type(description="One stream's hash chain.")
class StreamIntegrity:
    stream_id: str
    ok: bool
    events_checked: int
    broken_at_version: int | None
    problem: str | None

    @staticmethod
    def of(result: StreamVerification) -> StreamIntegrity:
        return StreamIntegrity(
            stream_id=result.stream_id,
            ok=result.ok,
            events_checked=result.events_checked,
            broken_at_version=result.broken_at_version,
            problem=result.problem,
        )


@strawberry.type(description="Hash chains walked: all streams, or the one asked for.")
class IntegrityReport:
    ok: bool
    streams: int
    events: int
    broken: list[StreamIntegrity] = strawberry.field(
        description="Each broken stream's first broken link; empty when all is well."
    )
    next_after_stream_id: str | None = strawberry.field(
        default=None,
        description="More streams remain: pass this as afterStreamId. Null when done.",
    )


async def _audit_trail(
    info: ApiInfo,
    filter: AuditFilter | None = None,
    newest_first: bool = True,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Connection[AuditEntryType]:
    f = filter or AuditFilter()
    page = await read(
        audit.audit_trail(
            info.context.services.pool,
            stream_id=f.stream_id,
            entity_id=f.entity_id,
            program_id=uuid(f.program_id, "programId"),
            actor=f.actor,
            event_types=f.event_types,
            correlation_id=uuid(f.correlation_id, "correlationId"),
            recorded_from=f.from_,
            recorded_to=f.to,
            newest_first=newest_first,
            **paging(first, after, last, before),
            count=counts(info),
        )
    )
    return connection(page, AuditEntryType.of)


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
        raise bad_input(f"first must be between 1 and {MAX_PAGE_SIZE}")
    try:
        entries = await info.context.services.application.history(
            stream_id, recorded_before=recorded_before, after_version=after_version, limit=first
        )
    except ValueError as exc:
        raise bad_input(str(exc)) from None
    except BrokenChain as exc:
        raise StrawberryGraphQLError(
            str(exc),
            extensions={
                "code": "INTEGRITY_VIOLATION",
                "streamId": exc.stream_id,
                "brokenAtVersion": exc.version,
            },
        ) from None
    return [
        HistoryEntryType(
            position=SafeInt(e.event.position),
            version=e.event.version,
            event_type=e.event.event_type,
            event_id=strawberry.ID(str(e.event.event_id)),
            actor=e.event.metadata.actor,
            recorded_at=e.event.recorded_at,
            data=_plain(e.event.data),
            state=_plain(e.state),
        )
        for e in entries
    ]


async def _verify_integrity(
    info: ApiInfo,
    stream_id: str | None = None,
    after_stream_id: str | None = None,
    first: int = VERIFY_PAGE,
) -> IntegrityReport:
    """Walks hash chains in the event store: one stream, or the streams after
    ``after_stream_id``, ``first`` at a time, so a request's time stays bounded."""
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise bad_input(f"first must be between 1 and {MAX_PAGE_SIZE}")
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
        broken=[StreamIntegrity.of(b) for b in summary.broken],
        next_after_stream_id=next_after,
    )


@strawberry.type
class AuditQueries:
    audit_trail: Connection[AuditEntryType] | None = strawberry.field(
        resolver=_audit_trail,
        extensions=auditor(),
        description="Who changed what, when and why, with field diffs.",
    )
    history: list[HistoryEntryType] | None = strawberry.field(
        resolver=_history,
        extensions=auditor(),
        description="A program, risk, resource, schedule, status report or scenario stream: "
        "each event after afterVersion (at most first, default 100) and the state after it; "
        "page on with the last version.",
    )
    verify_integrity: IntegrityReport | None = strawberry.field(
        resolver=_verify_integrity,
        extensions=auditor(),
        description="Walk the hash chain of one stream, or of the streams after "
        "afterStreamId (first at a time, default 200); page on with nextAfterStreamId.",
    )
