"""``subscription { events(programId, streamTypes, eventTypes, afterPosition) }``: events
as they happen, optionally resuming after a position.

Delivered over ``graphql-transport-ws`` from the relay's NATS messages (``api/events.py``),
each as the same envelope downstream services receive. A subscription ends with an error
a client must act on: ``EVENT_FEED_UNAVAILABLE`` (subscribe again, then refetch what it
shows, since events may have been missed) or ``UNAUTHENTICATED`` (its token expired:
reconnect with a new one).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from datetime import datetime
from uuid import UUID

import msgspec
import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from programledger.adapters.nats.envelope import EventEnvelope
from programledger.api.auth import Capability
from programledger.api.events import EventSelection, EventStream, FeedUnavailable
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.permissions import allowed
from programledger.api.graphql.types import SafeInt
from programledger.api.metrics import ApiMetrics
from programledger.domain import EVENT_TYPES

__all__ = ["EventEnvelopeType", "StreamType", "Subscription"]

_EVENT_TYPE_NAMES = frozenset(cls.event_type for cls in EVENT_TYPES)


@strawberry.enum(description="The kinds of stream whose events a subscription can select.")
class StreamType(enum.Enum):
    PROGRAM = "program"
    PROGRAMCODE = "programcode"
    RISK = "risk"
    ASSUMPTION = "assumption"
    ISSUE = "issue"
    RESOURCE = "resource"
    SCHEDULE = "schedule"
    PORTFOLIO = "portfolio"
    OBJECTIVE = "objective"
    STATUS_REPORT = "status_report"
    SCENARIO = "scenario"


@strawberry.type(
    name="EventEnvelope",
    description="One recorded event with its metadata; docs/events.md describes each type.",
)
class EventEnvelopeType:
    event_id: strawberry.ID
    position: SafeInt = strawberry.field(description="Global position: increases with time.")
    stream_id: str
    stream_type: StreamType
    version: int = strawberry.field(description="The event's version within its stream.")
    event_type: str
    schema_version: int
    recorded_at: datetime
    actor: str = strawberry.field(description="The token subject that sent the command.")
    correlation_id: strawberry.ID | None
    causation_id: strawberry.ID | None
    reason: str | None
    program_id: strawberry.ID | None
    data: JSON = strawberry.field(description="The event's fields, as in its JSON Schema.")


async def _events(
    info: ApiInfo,
    program_id: strawberry.ID | None = None,
    stream_types: list[StreamType] | None = None,
    event_types: list[str] | None = None,
    after_position: SafeInt | None = None,
) -> AsyncGenerator[EventEnvelopeType, None]:
    """Checks the arguments and opens the feed before returning the stream, so that a
    subscription that cannot start is refused with an ``error`` message, not a ``next``."""
    selection = _selection(program_id, stream_types, event_types)
    if after_position is not None and after_position < 0:
        raise _bad_input("afterPosition must be 0 or more")
    context = info.context
    assert context.identity is not None  # the READ permission ran first
    try:
        stream = await context.services.feed.open(
            selection,
            until=context.identity.expires_at,
            after_position=None if after_position is None else int(after_position),
        )
    except FeedUnavailable as exc:
        raise _feed_unavailable(exc) from None
    return _deliver(stream, context.services.metrics)


async def _deliver(
    stream: EventStream, metrics: ApiMetrics
) -> AsyncGenerator[EventEnvelopeType, None]:
    async with stream:
        metrics.subscriptions.inc()
        try:
            async for envelope in stream:
                yield _envelope(envelope)
        except FeedUnavailable as exc:
            raise _feed_unavailable(exc) from None
        finally:
            metrics.subscriptions.dec()
    raise GraphQLError(
        "your token expired; connect again with a new one",
        extensions={"code": "UNAUTHENTICATED"},
    )


def _feed_unavailable(exc: FeedUnavailable) -> GraphQLError:
    return GraphQLError(str(exc), extensions={"code": "EVENT_FEED_UNAVAILABLE"})


@strawberry.type(description="Live events. Needs any role (viewer and up).")
class Subscription:
    events = strawberry.subscription(
        resolver=_events,
        description="Events as they are recorded, in position order, filtered by program, "
        "stream type and event type (an omitted filter matches everything). With "
        "afterPosition, the events recorded after it come first: resume where a dropped "
        "subscription stopped, with the last position it delivered.",
        extensions=[allowed(Capability.READ)],
    )


def _selection(
    program_id: str | None, stream_types: list[StreamType] | None, event_types: list[str] | None
) -> EventSelection:
    """The filter, or a BAD_USER_INPUT error naming the argument at fault."""
    program = None
    if program_id is not None:
        try:
            program = UUID(program_id)
        except ValueError:
            raise _bad_input("programId must be a UUID") from None
    if stream_types is not None and not stream_types:
        raise _bad_input("streamTypes must not be empty; leave it out to receive every kind")
    if event_types is not None:
        unknown = sorted(set(event_types) - _EVENT_TYPE_NAMES)
        if unknown or not event_types:
            raise _bad_input(
                f"eventTypes must name known event types (unknown: {', '.join(unknown)}); "
                "leave it out to receive every type"
            )
    # Without a stream type filter: every stream type, a program's code reservation
    # included (as on the program's NATS subjects).
    streams = frozenset(
        (s.value for s in stream_types) if stream_types else (s.value for s in StreamType)
    )
    return EventSelection(
        program_id=program,
        stream_types=streams,
        event_types=frozenset(event_types) if event_types else None,
    )


def _bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def _envelope(envelope: EventEnvelope) -> EventEnvelopeType:
    def some_id(value: UUID | None) -> strawberry.ID | None:
        return None if value is None else strawberry.ID(str(value))

    return EventEnvelopeType(
        event_id=strawberry.ID(str(envelope.event_id)),
        position=SafeInt(envelope.position),
        stream_id=envelope.stream_id,
        stream_type=StreamType(envelope.stream_type),
        version=envelope.version,
        event_type=envelope.event_type,
        schema_version=envelope.schema_version,
        recorded_at=envelope.recorded_at,
        actor=envelope.actor,
        correlation_id=some_id(envelope.correlation_id),
        causation_id=some_id(envelope.causation_id),
        reason=envelope.reason,
        program_id=some_id(envelope.program_id),
        data=JSON(msgspec.json.decode(envelope.data)),
    )
