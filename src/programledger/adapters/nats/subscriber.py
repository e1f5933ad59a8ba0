"""A typed consumer of the relay's events: durable, filtered, and in position order.

JetStream delivers at least once, and a message whose ack did not arrive (the consumer
crashed, or took longer than the ack wait) is delivered again *after* newer ones. Two ways
to consume, chosen by ``after_position``:

- **The consumer tracks its position** (``after_position=<its last committed position>``,
  the way a projection commits its checkpoint with its effects, DESIGN §3). The durable
  consumer is repositioned at every start to the first event after that position, so
  what an earlier instance left unacknowledged is not redelivered out of order; events
  come in strictly increasing position order, and a redelivery of a position already
  handed out is dropped. :meth:`Delivery.nak` rewinds to that event. This gives
  effectively-once processing.
- **JetStream tracks it** (``after_position=None``): a plain durable consumer resumes
  after the last acknowledged message; delivery is at least once and a redelivery may come
  after newer events, so handlers must be idempotent (dedupe by ``event_id``).

One active instance per durable name: two instances that track their own positions would
keep repositioning the consumer under each other.

**Older than the stream keeps.** When the stream no longer holds the events after
``after_position`` (its max age or size limit dropped them), a subscription given a
``backfill`` (:class:`~programledger.adapters.feed_client.FeedClient`, the API's global feed
over HTTP, which a downstream service can reach with a ``subscriber`` token, unlike the
event store) reads them from there up to the feed's head, then repositions the durable
consumer after that head and carries on from NATS: the feed is a consistent prefix and
positions are deduplicated, so nothing is missed or handed out twice. Without one, such a
subscription raises :class:`EventsExpired`.

Usage::

    subscription = await subscribe(js, "programledger", "billing", program_id=pid,
                                   after_position=await load_my_position())
    async with subscription:
        async for delivery in subscription:
            handle(delivery.envelope)          # and store delivery.envelope.position
            await delivery.ack()

With a backfill: ``subscribe(..., after_position=p, backfill=FeedClient(api_url, token))``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Protocol, Self
from uuid import UUID

import msgspec
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy

from programledger.adapters.nats.consumer import ConsumerConflict, PullConsumer, open_pull
from programledger.adapters.nats.envelope import (
    EventEnvelope,
    decode_envelope,
    decode_event,
    subject_pattern,
    validate_prefix,
)
from programledger.adapters.nats.pull import (
    BatchPuller,
    ConsumerGone,
    EventsExpired,
    PullRefused,
    resume_sequence,
)
from programledger.adapters.nats.stream import (
    ForeignStream,
    check_message_store,
    check_stream_store,
    stream_name,
    stream_store,
)
from programledger.domain.events import DomainEvent, EventRegistry

__all__ = [
    "Backfill",
    "ConsumerConflict",
    "Delivery",
    "EventSelection",
    "EventSubscription",
    "EventsExpired",
    "ForeignStream",
    "subject_filters",
    "subscribe",
]

log = logging.getLogger(__name__)

_MAX_FILTERS = 64


@dataclass(frozen=True, slots=True)
class EventSelection:
    """What a subscriber wants; ``None`` means any."""

    program_id: UUID | None = None
    stream_types: frozenset[str] | None = None
    event_types: frozenset[str] | None = None

    def wants(self, envelope: EventEnvelope) -> bool:
        return (
            (self.program_id is None or envelope.program_id == self.program_id)
            and (self.stream_types is None or envelope.stream_type in self.stream_types)
            and (self.event_types is None or envelope.event_type in self.event_types)
        )


def subject_filters(
    prefix: str,
    program_id: UUID | None = None,
    stream_types: Iterable[str] | None = None,
    event_types: Iterable[str] | None = None,
    *,
    multiple: bool = True,
) -> list[str]:
    """The filter subjects for a selection; with ``multiple=False`` (servers before 2.10)
    the one subject that covers it, with wildcards where a part has several values."""
    streams = sorted(set(stream_types)) if stream_types is not None else [None]
    types = sorted(set(event_types)) if event_types is not None else [None]
    if not streams or not types:
        raise ValueError("stream_types and event_types, when given, must not be empty")
    if not multiple or len(streams) * len(types) > _MAX_FILTERS:
        streams = streams if len(streams) == 1 else [None]
        types = types if len(types) == 1 else [None]
    return [
        subject_pattern(prefix, program_id, stream, event)
        for stream, event in itertools.product(streams, types)
    ]


class Backfill(Protocol):
    """Where events come from that the stream no longer holds (the API's global feed)."""

    def events(self, after: int, selection: EventSelection) -> AsyncIterator[EventEnvelope | int]:
        """The selected events after ``after`` in position order, then the head they were
        read up to (an ``int``: every selected event up to it has been given)."""
        ...


class Delivery:
    """One event handed to the application; ack it once its effects are durable.

    An event read from the backfill has no message (``from_backfill``): acknowledging it
    does nothing, and a nak reads it again from there."""

    __slots__ = ("_msg", "_subscription", "envelope")

    def __init__(
        self, envelope: EventEnvelope, msg: Msg | None, subscription: EventSubscription
    ) -> None:
        self.envelope = envelope
        self._msg = msg
        self._subscription = subscription

    @property
    def from_backfill(self) -> bool:
        return self._msg is None

    @property
    def redelivered(self) -> bool:
        """JetStream delivered this message before (its ack did not arrive)."""
        return self._msg is not None and self._msg.metadata.num_delivered > 1

    def event(self, registry: EventRegistry) -> DomainEvent:
        return decode_event(self.envelope, registry)

    async def ack(self) -> None:
        if self._msg is not None:
            await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Not done: deliver this event again, after ``delay`` seconds if given. When the
        consumer tracks its position, everything after it comes again too, in order."""
        await self._subscription._retry(self, self._msg, delay)

    async def in_progress(self) -> None:
        """Still working: restart the ack wait so it is not redelivered meanwhile."""
        if self._msg is not None:
            await self._msg.in_progress()


class EventSubscription:
    """An async iterator of :class:`Delivery`; create it with :func:`subscribe`."""

    def __init__(
        self,
        js: JetStreamContext,
        consumer: PullConsumer,
        pull: BatchPuller | None,
        *,
        program_id: UUID | None,
        stream_types: frozenset[str] | None,
        event_types: frozenset[str] | None,
        after_position: int | None,
        batch: int,
        wait: float,
        backfill: Backfill | None = None,
        store_id: UUID | None = None,
    ) -> None:
        self._js = js
        self._store_id = store_id
        self._consumer = consumer
        self._pull = pull
        self._selection = EventSelection(program_id, stream_types, event_types)
        self._ordered = after_position is not None
        self._last = after_position or 0
        self._batch = batch
        self._wait = wait
        self._buffer: list[Msg] = []
        self._closed = False
        self._source = backfill
        self._backfilling: AsyncIterator[EventEnvelope | int] | None = None
        if pull is None:
            self._backfilling = self._backfill_from(self._last)
        self.backfilled = 0
        """Events handed out from the backfill rather than from NATS."""
        self.skipped = 0
        """Messages acknowledged without being handed out: redeliveries of positions
        already handed out, or events outside the filter where the server could not
        filter precisely."""

    @property
    def last_position(self) -> int:
        """The highest position handed out (or given at start)."""
        return self._last

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivery:
        while not self._closed:
            if self._backfilling is not None:
                delivery = await self._next_backfilled()
                if delivery is not None:
                    return delivery
                continue
            if not self._buffer:
                await self._fill()
                continue
            msg = self._buffer.pop(0)
            if self._store_id is not None:
                check_message_store(self._consumer.stream, msg.headers, self._store_id)
            try:
                envelope = decode_envelope(msg.data)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                log.error(
                    "terminating a message on %s that is not an event envelope: %s",
                    msg.subject,
                    exc,
                )
                await msg.term()
                self.skipped += 1
                continue
            seen = self._ordered and envelope.position <= self._last
            if seen or not self._selection.wants(envelope):
                await msg.ack()
                self.skipped += 1
                continue
            self._last = max(self._last, envelope.position)
            return Delivery(envelope, msg, self)
        raise StopAsyncIteration

    def _backfill_from(self, after: int) -> AsyncIterator[EventEnvelope | int]:
        assert self._source is not None
        log.info(
            "%s: the stream no longer holds the events after position %d; reading them "
            "from the backfill",
            self._consumer.durable,
            after,
        )
        return self._source.events(after, self._selection)

    async def _next_backfilled(self) -> Delivery | None:
        """The next backfilled event, or ``None`` after a head mark, a skipped event, or
        the end of the backfill (then the consumer resumes after its head)."""
        assert self._backfilling is not None
        item = await anext(self._backfilling, None)
        if item is None:
            await self._stop_backfill()
            await self._reposition(self._last)
            return None
        if isinstance(item, int):
            self._last = max(self._last, item)
            return None
        if item.position <= self._last or not self._selection.wants(item):
            self.skipped += 1
            return None
        self._last = item.position
        self.backfilled += 1
        return Delivery(item, None, self)

    async def _stop_backfill(self) -> None:
        backfilling, self._backfilling = self._backfilling, None
        close = getattr(backfilling, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()

    async def _reposition(self, after: int) -> None:
        """Consume from the stream's first event after ``after``, or from the backfill when
        the stream no longer holds it."""
        stream = self._consumer.stream
        state = (await self._js.stream_info(stream)).state
        try:
            start = await resume_sequence(self._js, stream, state, after)
        except EventsExpired:
            if self._source is None:
                raise
            self._backfilling = self._backfill_from(after)
            return
        if self._pull is not None:
            with contextlib.suppress(Exception):
                await self._pull.unsubscribe()
        self._pull = await open_pull(self._js, self._consumer, start)

    async def _fill(self) -> None:
        # What is waiting, up to a batch, or the first message published within the wait.
        # Trouble on the way (NATS reconnecting, a leader election) is waited out here, as
        # nats-py's own fetch did; only a consumer that is gone ends the iteration.
        durable = self._consumer.durable
        assert self._pull is not None  # not backfilling
        try:
            messages = await self._pull.fetch(self._batch, self._wait)
        except ConsumerGone:
            raise
        except (PullRefused, NatsError, TimeoutError) as exc:
            log.warning("pulling for %s failed, retrying: %r", durable, exc)
            await asyncio.sleep(self._wait)
            return
        self._buffer.extend(messages)

    async def _retry(self, delivery: Delivery, msg: Msg | None, delay: float | None) -> None:
        if not self._ordered and msg is not None:
            await msg.nak(delay=delay)
            return
        # Redelivery would come after newer events; start over from this one instead.
        if delay:
            await asyncio.sleep(delay)
        self._buffer.clear()
        self._last = delivery.envelope.position - 1
        if msg is None:
            await self._stop_backfill()
            await self._reposition(self._last)
            return
        if self._pull is not None:
            with contextlib.suppress(Exception):
                await self._pull.unsubscribe()
        self._pull = await open_pull(self._js, self._consumer, msg.metadata.sequence.stream)

    async def close(self) -> None:
        """Stop receiving; the durable consumer stays, and resumes where this one left."""
        if not self._closed:
            self._closed = True
            await self._stop_backfill()
            if self._pull is not None:
                with contextlib.suppress(Exception):
                    await self._pull.unsubscribe()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def subscribe(
    js: JetStreamContext,
    prefix: str,
    durable: str,
    *,
    program_id: UUID | None = None,
    stream_types: Iterable[str] | None = None,
    event_types: Iterable[str] | None = None,
    after_position: int | None = None,
    batch: int = 256,
    wait: float = 1.0,
    ack_wait: float = 30.0,
    max_ack_pending: int = 1024,
    backfill: Backfill | None = None,
    store_id: UUID | None = None,
) -> EventSubscription:
    """A durable pull consumer on the relay's stream for ``prefix``, filtered by program,
    stream type and event type (``None`` = all); see the module for ``after_position``
    and ``backfill`` (which needs ``after_position``).

    A durable of that name with other filters is a :class:`ConsumerConflict`, never a
    silent change of what it receives.

    ``store_id`` is the event store you mean to follow (``programledger status`` prints
    it): a stream marked as another store's is a :class:`ForeignStream` before any
    consumer is created or moved. Without it, the store the stream is marked with is
    taken. Either way, a message that another store's relay published raises
    :class:`ForeignStream` instead of being handed out.
    """
    validate_prefix(prefix)
    if batch < 1 or wait <= 0:
        raise ValueError("batch must be at least 1 and wait positive")
    if backfill is not None and after_position is None:
        raise ValueError("a backfill needs after_position: the position to read on from")
    streams = frozenset(stream_types) if stream_types is not None else None
    types = frozenset(event_types) if event_types is not None else None
    stream = stream_name(prefix)
    # Several filter subjects on one consumer need nats-server 2.10; older servers get one
    # wider filter and the rest is filtered here.
    version = js._nc.connected_server_version
    multiple = (version.major, version.minor) >= (2, 10)
    filters = subject_filters(prefix, program_id, streams, types, multiple=multiple)
    consumer = PullConsumer(
        stream,
        tuple(filters),
        AckPolicy.EXPLICIT,
        durable=durable,
        description=f"programledger subscriber {durable}",
        ack_wait=ack_wait,
        max_ack_pending=max_ack_pending,
        fixed_filters=True,
    )
    info = await js.stream_info(stream)
    if store_id is not None:
        check_stream_store(info, store_id)
    else:
        marked = stream_store(info)
        store_id = UUID(marked) if marked is not None else None
    start = None
    pull = None
    try:
        if after_position is not None:
            start = await resume_sequence(js, stream, info.state, after_position)
    except EventsExpired:
        if backfill is None:
            raise
    else:
        pull = await open_pull(js, consumer, start)
    return EventSubscription(
        js,
        consumer,
        pull,
        program_id=program_id,
        stream_types=streams,
        event_types=types,
        after_position=after_position,
        batch=batch,
        wait=wait,
        backfill=backfill,
        store_id=store_id,
    )
