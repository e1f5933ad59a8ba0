"""The webhook delivery worker: every enabled endpoint gets its selected events, in order
per program, signed, retried until they arrive or the endpoint is disabled.

- **One active worker.** :class:`Leadership` (``programledger.webhooks:<schema>``), as the
  relay and the runners: replicas stand by, so two workers never deliver to the same
  endpoint at once. Positions, failure streaks and the delivery log are written on the lock
  connection, so a worker that lost the lock writes nothing more.
- **From NATS.** Each endpoint has a durable consumer (``webhook-<endpoint id>``) filtered
  like the endpoint and read through the subscriber helper from the endpoint's position;
  events the stream no longer holds come from the event store
  (:class:`~programledger.adapters.feed.StoreBackfill`), as a downstream consumer's come
  from the feed.
- **Order per program.** An endpoint's events go into one lane per program (events of no
  program share one): a lane sends one event at a time and the next only after it
  arrived, while lanes of other programs carry on. At most ``max_in_flight`` events are
  taken past the endpoint's position, and ``max_concurrent`` requests are open per
  endpoint.
- **At least once.** An endpoint's position moves only over events that arrived, so a
  restart sends again what was in flight; ``webhook-id`` is the event id, for receivers
  to drop what they have (Standard Webhooks says the same).
- **Retries.** A failed attempt (no 2xx within the timeout, a refused address) is retried
  after ``retry_initial * 2^n`` seconds up to ``retry_max``, each with jitter (50-100 %),
  until it succeeds; after ``disable_after`` failed attempts in a row the endpoint is
  disabled, with the reason, until an admin enables it again (it then resumes where it
  stopped). Every attempt is in the delivery log.
- **Admin changes** (enable, disable, rewind, remove) are seen within ``poll_interval``:
  each bumps the endpoint's revision, and the endpoint starts over from what is stored.
- **Only its own store's stream.** A stream marked as another store's, or a message
  another store's relay published, is a
  :class:`~programledger.adapters.nats.stream.ForeignStream` that ends :meth:`WebhookWorker.run`
  before anything is sent, a consumer touched or a position moved, as the projection
  workers do: another deployment's events must never reach this one's receivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import msgspec
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from programledger.adapters.feed import EventLog, StoreBackfill
from programledger.adapters.nats.envelope import EventEnvelope
from programledger.adapters.nats.stream import ForeignStream, check_stream_store, stream_name
from programledger.adapters.nats.subscriber import subscribe
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.leadership import Backoff, Leadership, LeaderState
from programledger.adapters.postgres.webhooks import DeliveryRecord, EndpointRow, WebhookProgress
from programledger.adapters.webhooks.sender import WebhookSender

__all__ = ["WebhookSettings", "WebhookWorker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    prefix: str
    timeout: float = 10.0
    """Seconds a receiver has to answer a request."""
    allow_private: bool = False
    """Deliver to private and loopback addresses too."""
    disable_after: int = 100
    """Failed attempts in a row after which an endpoint is disabled."""
    retry_initial: float = 1.0
    retry_max: float = 600.0
    max_in_flight: int = 4000
    """Events taken past the position: enough that a backlog of runs of one program (a
    lane each, one request at a time) still fills ``max_concurrent``; a restart sends
    these again."""
    max_concurrent: int = 16
    poll_interval: float = 1.0
    save_interval: float = 0.1
    fetch_wait: float = 0.5
    standby_poll_interval: float = 0.5
    lock_check_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.disable_after < 1 or self.max_concurrent < 1:
            raise ValueError("timeout, disable_after and max_concurrent must be positive")
        if not 0 < self.retry_initial <= self.retry_max:
            raise ValueError("the retries need 0 < retry_initial <= retry_max")


class _Body(msgspec.Struct, frozen=True):
    """The Standard Webhooks payload shape: the event type, a time, the data (the
    envelope, as NATS carries it)."""

    type: str
    timestamp: datetime
    data: EventEnvelope


_body_encoder = msgspec.json.Encoder()


class _Endpoint:
    """Delivery to one endpoint, from its stored position, until cancelled."""

    def __init__(
        self,
        row: EndpointRow,
        worker: WebhookWorker,
        sender: WebhookSender,
        nc: NatsClient,
        store_id: UUID,
    ) -> None:
        self.row = row
        self._store_id = store_id
        self.position = row.position
        self.streak = row.failure_streak
        self.dirty = False
        self.disabled_reason: str | None = None
        self._worker = worker
        self._settings = worker.settings
        self._sender = sender
        self._nc = nc
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._window = asyncio.Semaphore(self._settings.max_in_flight)
        self._requests = asyncio.Semaphore(self._settings.max_concurrent)
        self._lanes: dict[str, deque[EventEnvelope]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def durable(self) -> str:
        return f"webhook-{self.row.endpoint_id}"

    async def run(self) -> None:
        target = self.row.target
        try:
            subscription = await subscribe(
                self._nc.jetstream(),
                self._settings.prefix,
                self.durable,
                program_id=target.program_id,
                stream_types=target.stream_types,
                event_types=target.event_types,
                after_position=self.position,
                backfill=StoreBackfill(self._worker.log),
                wait=self._settings.fetch_wait,
                store_id=self._store_id,
            )
            async with subscription:
                async for delivery in subscription:
                    await delivery.ack()
                    await self._window.acquire()
                    self._take(delivery.envelope)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _take(self, envelope: EventEnvelope) -> None:
        self._pending.append(envelope.position)
        key = "_" if envelope.program_id is None else str(envelope.program_id)
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append(envelope)
            return
        lane = self._lanes[key] = deque([envelope])
        task = asyncio.create_task(self._drain(key, lane), name=f"{self.durable}:{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: str, lane: deque[EventEnvelope]) -> None:
        while lane:
            envelope = lane[0]
            await self._deliver(envelope)
            lane.popleft()
            self._arrived(envelope.position)
        del self._lanes[key]

    def _arrived(self, position: int) -> None:
        self._done.add(position)
        while self._pending and self._pending[0] in self._done:
            self.position = self._pending.popleft()
            self._done.discard(self.position)
            self.dirty = True
            self._window.release()

    async def _deliver(self, envelope: EventEnvelope) -> None:
        body = _body_encoder.encode(_Body(envelope.event_type, envelope.recorded_at, envelope))
        message_id = str(envelope.event_id)
        attempt = 0
        while True:
            attempt += 1
            async with self._requests:
                at = datetime.now(UTC)
                result = await self._sender.send(
                    self.row.target.url, self.row.secret, message_id, body
                )
            self._worker.record(
                DeliveryRecord(
                    delivery_id=0,
                    endpoint_id=self.row.endpoint_id,
                    event_id=envelope.event_id,
                    position=envelope.position,
                    event_type=envelope.event_type,
                    attempt=attempt,
                    succeeded=result.succeeded,
                    status_code=result.status_code,
                    error=result.error,
                    duration_ms=result.duration_ms,
                    attempted_at=at,
                )
            )
            self.dirty = True
            if result.succeeded:
                self.streak = 0
                return
            self.streak += 1
            if self.streak >= self._settings.disable_after:
                self.disabled_reason = (
                    f"{self.streak} failed attempts in a row; the last: {result.error}"
                )
                log.warning(
                    "webhook endpoint %s disabled: %s", self.row.endpoint_id, self.disabled_reason
                )
                self._worker.wake()
                await asyncio.Event().wait()  # until the worker stops this endpoint
            delay = min(self._settings.retry_max, self._settings.retry_initial * 2 ** (attempt - 1))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))


class WebhookWorker:
    """Run with :meth:`run`; :meth:`stop` ends it. ``nc`` is the process's NATS connection."""

    def __init__(
        self,
        store: PostgresEventStore,
        *,
        database_url: str,
        nc: NatsClient,
        settings: WebhookSettings,
    ) -> None:
        self.settings = settings
        self.log = EventLog(store, settings.prefix)
        self._store = store
        self._nc = nc
        self._progress = WebhookProgress()
        self._records: list[DeliveryRecord] = []
        self._running: dict[UUID, tuple[_Endpoint, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._leader = Leadership(
            f"programledger.webhooks:{store.schema}",
            database_url=database_url,
            schema=store.schema,
            application_name="programledger-webhooks",
            on_failure=self._note_failure,
            backoff=Backoff(0.1, 5.0),
            standby_poll_interval=settings.standby_poll_interval,
            check_interval=settings.lock_check_interval,
            fatal=(ForeignStream,),
        )

    @property
    def is_active(self) -> bool:
        return self._leader.state is LeaderState.ACTIVE

    def stop(self) -> None:
        self._leader.stop()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def record(self, attempt: DeliveryRecord) -> None:
        self._records.append(attempt)

    async def run(self) -> None:
        """Deliver until :meth:`stop`; raises :class:`ForeignStream` (and delivers nothing)
        when the stream belongs to another store."""
        await self._leader.run(self._lead)

    def _note_failure(self, what: str, exc: BaseException) -> None:
        log.warning("webhooks: %s: %r", what, exc)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        store_id = await self._store.store_id()
        # Before any consumer is touched: another store's consumers are not ours to move.
        with contextlib.suppress(NotFoundError):
            check_stream_store(
                await self._nc.jetstream().stream_info(stream_name(self.settings.prefix)), store_id
            )
        log.info("webhooks: active, delivering")
        sender = WebhookSender(
            timeout=self.settings.timeout, allow_private=self.settings.allow_private
        )
        loop = asyncio.get_running_loop()
        try:
            synced = 0.0
            while not self._leader.stopping:
                if loop.time() - synced >= self.settings.poll_interval:
                    await self._sync(conn, sender, store_id)
                    synced = loop.time()
                await self._save(conn)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.save_interval)
                if any(e.disabled_reason or t.done() for e, t in self._running.values()):
                    synced = 0.0
        finally:
            running = list(self._running.values())
            self._running.clear()
            for _, task in running:
                task.cancel()
            await asyncio.gather(*(t for _, t in running), return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._save(conn, [e for e, _ in running])
            await sender.close()

    async def _sync(self, conn: asyncpg.Connection, sender: WebhookSender, store_id: UUID) -> None:
        """Start, restart and stop endpoints as the table says; a finished task (a NATS
        failure) is started again, unless it met another store's stream or message."""
        async with self._leader.guard:
            rows = {row.endpoint_id: row for row in await self._progress.endpoints(conn)}
        # An endpoint stopped now starts again at the next sync, from a fresh row: its row
        # here may predate what stopping it wrote (a disabling).
        stopped = set()
        for endpoint_id, (endpoint, task) in list(self._running.items()):
            row = rows.get(endpoint.row.endpoint_id)
            if task.done() and not task.cancelled() and task.exception() is not None:
                failure = task.exception()
                if isinstance(failure, ForeignStream):
                    raise failure
                log.warning("webhooks: endpoint %s failed: %r", endpoint_id, failure)
            why = (
                "removed"
                if row is None
                else "disabled"
                if not row.enabled or endpoint.disabled_reason is not None
                else "changed by an admin"
                if row.revision != endpoint.row.revision
                else "stopped"
                if task.done()
                else None
            )
            if why is not None:
                log.info(
                    "webhooks: endpoint %s %s (revision %s, was %d); stopping its delivery",
                    endpoint_id,
                    why,
                    None if row is None else row.revision,
                    endpoint.row.revision,
                )
                await self._save(conn, [endpoint])
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                del self._running[endpoint_id]
                stopped.add(endpoint_id)
                if row is None:
                    await self._forget(endpoint.durable)
        for endpoint_id, row in rows.items():
            if row.enabled and endpoint_id not in self._running and endpoint_id not in stopped:
                endpoint = _Endpoint(row, self, sender, self._nc, store_id)
                task = asyncio.create_task(endpoint.run(), name=endpoint.durable)
                task.add_done_callback(lambda _: self.wake())
                self._running[endpoint_id] = (endpoint, task)

    async def _save(
        self, conn: asyncpg.Connection, endpoints: list[_Endpoint] | None = None
    ) -> None:
        chosen = endpoints if endpoints is not None else [e for e, _ in self._running.values()]
        progress = []
        disabled = []
        for endpoint in chosen:
            if endpoint.dirty:
                endpoint.dirty = False
                row = endpoint.row
                progress.append((row.endpoint_id, row.revision, endpoint.position, endpoint.streak))
            if endpoint.disabled_reason is not None:
                disabled.append(
                    (endpoint.row.endpoint_id, endpoint.row.revision, endpoint.disabled_reason)
                )
        records, self._records = self._records, []
        if not (progress or records or disabled):
            return
        try:
            async with self._leader.guard:
                await self._progress.save(conn, progress, records, disabled)
        except BaseException:
            self._records = records + self._records
            for endpoint in chosen:
                endpoint.dirty = True
            raise

    async def _forget(self, durable: str) -> None:
        with contextlib.suppress(NotFoundError, Exception):
            await self._nc.jetstream().delete_consumer(stream_name(self.settings.prefix), durable)
