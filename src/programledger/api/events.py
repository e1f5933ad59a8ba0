"""The live event feed behind GraphQL subscriptions: the relay's messages, from NATS.

One NATS connection per API process serves every subscription. Each subscription is a core
NATS subscription on the relay's subjects (``<prefix>.<program>.<stream type>.<EventType>``),
so NATS filters by program and a subscriber receives what the relay publishes the moment
JetStream gets it; PostgreSQL is never polled.

A subscriber that was cut off can resume without a gap: ``after_position`` first replays
what the stream holds after that position (an ephemeral JetStream consumer, filtered like
the live subscription, read up to the stream's last message when the subscription
started), then goes on with the live messages, skipping what the replay delivered.

A live feed must not lose events silently. When the connection to NATS drops, or a
subscriber falls so far behind that its buffer fills, its subscription ends with
:class:`FeedUnavailable`: the client subscribes again and refetches what it shows. Events
published twice (a relay retrying after a lost acknowledgement) are delivered once, because
the relay publishes in position order and a position already delivered is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Self
from uuid import UUID

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy
from nats.js.errors import NotFoundError

from programledger.adapters.nats import client as nats_client
from programledger.adapters.nats.consumer import PullConsumer, discard, open_pull
from programledger.adapters.nats.envelope import EventEnvelope, decode_envelope
from programledger.adapters.nats.pull import (
    BatchPuller,
    EventsExpired,
    PullRefused,
    resume_sequence,
)
from programledger.adapters.nats.stream import (
    ForeignStream,
    check_message_store,
    check_stream_store,
    stream_name,
)
from programledger.adapters.nats.subscriber import EventSelection, subject_filters
from programledger.application.errors import OperationalError

__all__ = ["EventFeed", "EventSelection", "EventStream", "FeedUnavailable"]

log = logging.getLogger(__name__)

_REPLAY_BATCH = 500

_INTERRUPTED = "the event feed was interrupted (connection to NATS lost); subscribe again"
_SHUTDOWN = "the server is shutting down; subscribe again"


class FeedUnavailable(OperationalError):
    """The feed cannot deliver (any more) to this subscriber; the message says why."""


class _Listener:
    """One subscriber's buffer; ``failure`` ends its subscription at the next event."""

    __slots__ = ("failure", "queue")

    def __init__(self, backlog: int) -> None:
        self.queue: asyncio.Queue[Msg | None] = asyncio.Queue(backlog)
        self.failure: str | None = None

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)  # wake the subscriber (a full queue wakes it anyway)


class EventFeed:
    """Run with :meth:`start` and :meth:`close` (the app's lifespan does both).

    ``backlog`` is how many events one subscriber may have waiting before it is cut off;
    ``max_subscribers`` how many subscriptions the process serves at once (each may buffer
    ``backlog`` events), so that memory is bounded however many a client opens. With
    ``store_id`` (the API's event store), a stream or a message of another store ends the
    subscription with :class:`FeedUnavailable` saying so, instead of serving another
    deployment's events.
    """

    def __init__(
        self,
        servers: Sequence[str],
        prefix: str,
        *,
        store_id: UUID | None = None,
        backlog: int = 1000,
        max_subscribers: int = 1000,
        connect_timeout: float = 5.0,
    ) -> None:
        self._servers = list(servers)
        self._prefix = prefix
        self._store_id = store_id
        self._backlog = backlog
        self.max_subscribers = max_subscribers
        self._connect_timeout = connect_timeout
        self._nc: NatsClient | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._listeners: set[_Listener] = set()

    @property
    def prefix(self) -> str:
        """The relay's subject prefix this feed reads."""
        return self._prefix

    async def start(self) -> None:
        """Connect in the background: the API serves (and reports not ready) while NATS is
        down, and subscriptions work as soon as it is reachable."""
        self._connecting = asyncio.create_task(self._connect(), name="event-feed-connect")

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        for listener in list(self._listeners):
            listener.fail(_SHUTDOWN)
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)

    @property
    def subscribers(self) -> int:
        """Subscriptions served now."""
        return len(self._listeners)

    @property
    def buffered(self) -> tuple[int, int]:
        """Events waiting in the subscribers' buffers, and the most they may hold."""
        return sum(n.queue.qsize() for n in self._listeners), self._backlog * self.max_subscribers

    async def check(self) -> tuple[bool, str]:
        """Whether NATS answers a round trip now (for ``/ready``)."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            return False, "not connected"
        try:
            await _round_trip(nc, 2)
        except Exception as exc:
            return False, f"no answer: {type(exc).__name__}"
        return True, "connected"

    async def open(
        self,
        selection: EventSelection,
        *,
        until: datetime | None = None,
        after_position: int | None = None,
    ) -> EventStream:
        """A stream of the selected events published from now on (or, with
        ``after_position``, recorded after that position), in position order; it ends at
        ``until``. Once this returns, NATS has registered the subscription, so no event
        published afterwards is missed."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise FeedUnavailable("the event feed is not connected to NATS; try again shortly")
        if len(self._listeners) >= self.max_subscribers:
            raise FeedUnavailable(
                f"this API process already serves {self.max_subscribers} subscriptions, its "
                "limit; try again later (another replica may have room)"
            )
        subject = subject_filters(
            self._prefix,
            selection.program_id,
            selection.stream_types,
            selection.event_types,
            multiple=False,  # one subject keeps NATS' delivery order; the rest is filtered here
        )[0]
        listener = _Listener(self._backlog)

        async def receive(msg: Msg) -> None:
            try:
                listener.queue.put_nowait(msg)
            except asyncio.QueueFull:
                listener.fail(
                    "the subscriber fell too far behind and events were dropped; subscribe again"
                )

        try:
            subscription = await nc.subscribe(subject, cb=receive)
        except nats.errors.Error as exc:
            raise FeedUnavailable("the event feed is not available; try again shortly") from exc
        self._listeners.add(listener)
        on_close = functools.partial(self._close, listener, subscription)
        stream = EventStream(
            selection, listener, until, on_close=on_close, check=self._check_message
        )
        try:
            await self._check_stream(nc)
            await _round_trip(nc, 5)
            if after_position is not None:
                stream.replay = await self._replay(nc, subject, after_position)
        except (nats.errors.Error, TimeoutError) as exc:
            await stream.close()
            raise FeedUnavailable("the event feed did not answer; try again shortly") from exc
        except FeedUnavailable:
            await stream.close()
            raise
        return stream

    async def _check_stream(self, nc: NatsClient) -> None:
        """A stream marked as another store's is refused before anything is read from it."""
        if self._store_id is None:
            return
        try:
            check_stream_store(
                await nc.jetstream().stream_info(stream_name(self._prefix)), self._store_id
            )
        except NotFoundError:
            return
        except ForeignStream as exc:
            log.error("event feed: %s", exc)
            raise FeedUnavailable(str(exc)) from None

    def _check_message(self, msg: Msg) -> None:
        if self._store_id is None:
            return
        try:
            check_message_store(stream_name(self._prefix), msg.headers, self._store_id)
        except ForeignStream as exc:
            log.error("event feed: %s", exc)
            raise FeedUnavailable(str(exc)) from None

    async def _replay(self, nc: NatsClient, subject: str, after: int) -> AsyncIterator[Msg]:
        """The stream's messages on ``subject`` after position ``after``, up to its last
        message now (the live subscription, already in place, has what comes later)."""
        js = nc.jetstream()
        name = stream_name(self._prefix)
        try:
            state = (await js.stream_info(name)).state
        except NotFoundError:
            return _no_messages()
        try:
            start = await resume_sequence(js, name, state, after)
        except EventsExpired as exc:
            raise FeedUnavailable(
                f"events after position {after} are no longer all in the stream (its oldest "
                f"is {exc.first_available}); refetch what you show and subscribe without "
                "afterPosition"
            ) from None
        if start > state.last_seq:
            return _no_messages()
        puller = await open_pull(js, PullConsumer(name, (subject,), AckPolicy.NONE), start)
        return _replayed(js, puller, state.last_seq)

    async def _close(self, listener: _Listener, subscription: Subscription) -> None:
        self._listeners.discard(listener)
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()

    async def _connect(self) -> None:
        delay = 0.2
        while True:
            try:
                # nats-py retries a first connection forever when reconnects are unlimited;
                # the bound hands control back here, where failures are logged.
                self._nc = await asyncio.wait_for(
                    nats_client.connect(
                        self._servers,
                        name="programledger-api",
                        allow_reconnect=True,
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=0.5,
                        connect_timeout=max(1, round(self._connect_timeout / 2)),
                        disconnected_cb=self._on_disconnected,
                        reconnected_cb=self._on_reconnected,
                        error_cb=self._on_error,
                    ),
                    self._connect_timeout,
                )
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                log.warning(
                    "event feed: cannot connect to NATS (%r); retrying in %.1fs", exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            log.info("event feed: connected to NATS")
            return

    async def _on_disconnected(self) -> None:
        if self._listeners:
            log.warning(
                "event feed: NATS connection lost; ending %d subscriptions", len(self._listeners)
            )
        for listener in list(self._listeners):
            listener.fail(_INTERRUPTED)

    async def _on_reconnected(self) -> None:
        log.info("event feed: reconnected to NATS")

    async def _on_error(self, exc: Exception) -> None:
        log.debug("event feed: NATS error: %r", exc)


async def _round_trip(nc: NatsClient, within: float) -> None:
    """Wait until the server has processed everything sent before (like ``nc.flush``).

    Not ``nc.flush(timeout)``: in nats-py (2.16 included) a flush that times out cancels its
    PONG future but leaves it queued, and the late PONG then raises ``InvalidStateError`` in
    the read loop, which stops reading: every subscription on the connection goes silent
    until the connection is found stale and dropped. A request to an inbox nobody
    subscribes to is answered by the server itself (no responders), and a late answer to a
    timed-out request finds no waiter and is dropped.
    """
    try:
        await nc.request(nc.new_inbox(), timeout=within)
    except nats.errors.NoRespondersError:
        return


async def _no_messages() -> AsyncIterator[Msg]:
    return
    yield


async def _replayed(js: JetStreamContext, puller: BatchPuller, last: int) -> AsyncIterator[Msg]:
    try:
        while True:
            batch = await puller.fetch(_REPLAY_BATCH, 1.0)
            for msg in batch:
                yield msg
            if not batch:
                return
            meta = batch[-1].metadata
            if meta.sequence.stream >= last or meta.num_pending == 0:
                return
    finally:
        await discard(js, puller)


class EventStream:
    """What :meth:`EventFeed.open` returns: iterate it, and close it (``async with``)."""

    def __init__(
        self,
        selection: EventSelection,
        listener: _Listener,
        until: datetime | None,
        *,
        on_close: Callable[[], Awaitable[None]],
        check: Callable[[Msg], None],
    ) -> None:
        self._selection = selection
        self._check = check
        self._listener = listener
        self._on_close: Callable[[], Awaitable[None]] | None = on_close
        self._deadline = None
        if until is not None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.time() + (until - datetime.now(UTC)).total_seconds()
        self._last = 0
        self.replay: AsyncIterator[Msg] | None = None
        """Replayed messages, delivered before the live ones."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> EventEnvelope:
        while self.replay is not None:
            try:
                async with asyncio.timeout_at(self._deadline):
                    msg = await anext(self.replay, None)
            except TimeoutError:
                raise StopAsyncIteration from None
            except (PullRefused, nats.errors.Error) as exc:
                raise FeedUnavailable("replaying past events failed; subscribe again") from exc
            if msg is None:
                self.replay = None
                break
            envelope = self._take(msg)
            if envelope is not None:
                return envelope
        listener = self._listener
        while True:
            if listener.failure is not None:
                raise FeedUnavailable(listener.failure)
            try:
                async with asyncio.timeout_at(self._deadline):
                    msg = await listener.queue.get()
            except TimeoutError:
                raise StopAsyncIteration from None
            envelope = self._take(msg)
            if envelope is not None:
                return envelope

    def _take(self, msg: Msg | None) -> EventEnvelope | None:
        """The envelope of ``msg`` if it is new (replay and live overlap) and selected;
        :class:`FeedUnavailable` if another store published it."""
        if msg is not None:
            self._check(msg)
        envelope = _envelope(msg)
        if envelope is None or envelope.position <= self._last:
            return None
        self._last = envelope.position
        return envelope if self._selection.wants(envelope) else None

    async def close(self) -> None:
        replay, self.replay = self.replay, None
        if isinstance(replay, AsyncGenerator):
            await replay.aclose()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            await on_close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _envelope(msg: Msg | None) -> EventEnvelope | None:
    if msg is None:
        return None
    try:
        return decode_envelope(msg.data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        log.warning(
            "event feed: skipping a message on %s that is not an event envelope: %s",
            msg.subject,
            exc,
        )
        return None
