"""``eventFeed``: the global feed as a GraphQL connection (``GET /events`` streams the same).

Every event since the first, each as the relay publishes it to NATS (subject, headers,
envelope), filtered as the subjects are; pages end at the safe head, so a cursor never
passes a position a transaction still open could fill. For downstream services and
auditors: the ``subscriber``, ``auditor`` or ``admin`` role.
"""

from __future__ import annotations

import msgspec
import strawberry
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.scalars import JSON

from programledger.adapters.feed import EventLog, FeedPosition
from programledger.api.auth import Capability
from programledger.api.graphql.connections import PageInfo
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.permissions import allowed
from programledger.api.graphql.subscriptions import StreamType
from programledger.api.graphql.types import SafeInt

__all__ = ["FeedQueries"]

DEFAULT_FEED_PAGE = 100


@strawberry.type(name="MessageHeader")
class MessageHeaderType:
    name: str
    value: str


@strawberry.type(name="FeedEvent", description="One event as NATS carries it.")
class FeedEventType:
    position: SafeInt
    subject: str = strawberry.field(
        description="<prefix>.<program id or _>.<stream type>.<EventType>"
    )
    headers: list[MessageHeaderType]
    envelope: JSON = strawberry.field(description="The message's JSON payload (docs/events.md).")

    @classmethod
    def of(cls, event: FeedPosition) -> FeedEventType:
        message = event.message
        return cls(
            position=SafeInt(event.position),
            subject=message.subject,
            headers=[MessageHeaderType(name=k, value=v) for k, v in message.headers.items()],
            envelope=msgspec.json.decode(message.payload),
        )


@strawberry.type(name="FeedEventEdge")
class FeedEventEdge:
    cursor: str = strawberry.field(description="Pass as ``after`` to resume after this event.")
    node: FeedEventType


@strawberry.type(name="EventFeedConnection", description="A page of the global feed.")
class EventFeedConnection:
    edges: list[FeedEventEdge]
    nodes: list[FeedEventType]
    page_info: PageInfo = strawberry.field(
        description="endCursor moves past what the filter skipped, up to headPosition."
    )
    head_position: SafeInt = strawberry.field(
        description="The safe head this page was read up to: every event at or below it "
        "is recorded for good."
    )


@strawberry.input(name="EventFeedFilter", description="As the NATS subjects filter.")
class EventFeedFilter:
    program_id: strawberry.ID | None = None
    stream_types: list[StreamType] | None = None
    event_types: list[str] | None = None


def _bad_input(message: str) -> StrawberryGraphQLError:
    return StrawberryGraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


async def _event_feed(
    info: ApiInfo,
    after: str | None = None,
    first: int = DEFAULT_FEED_PAGE,
    filter: EventFeedFilter | None = None,
) -> EventFeedConnection:
    f = filter or EventFeedFilter()
    try:
        position = 0 if after is None else int(after)
        streams = None if f.stream_types is None else [s.value for s in f.stream_types]
        services = info.context.services
        log = EventLog(services.store, services.feed.prefix)
        selection = await log.selection(f.program_id, streams, f.event_types)
        page = await log.page(position, first, selection)
    except ValueError as exc:
        message = str(exc) if after is None or after.isdigit() else "after must be a position"
        raise _bad_input(message) from None
    nodes = [FeedEventType.of(e) for e in page.events]
    return EventFeedConnection(
        edges=[FeedEventEdge(cursor=str(n.position), node=n) for n in nodes],
        nodes=nodes,
        page_info=PageInfo(
            has_next_page=page.has_more,
            has_previous_page=position > 0,
            start_cursor=str(nodes[0].position) if nodes else None,
            end_cursor=str(page.end_position),
        ),
        head_position=SafeInt(page.head),
    )


@strawberry.type
class FeedQueries:
    event_feed: EventFeedConnection = strawberry.field(
        resolver=_event_feed,
        extensions=[allowed(Capability.FEED)],
        description="Every event since the first, oldest first, as NATS carries them; "
        "page on with pageInfo.endCursor as after (also GET /events as NDJSON).",
    )
