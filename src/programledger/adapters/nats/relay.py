"""The relay: committed events from PostgreSQL to JetStream, in order, none lost, none twice.

How each guarantee is kept:

- **Order and no gaps.** Events are read with the store's safe read (only transactions
  older than every running one, so a page is a gap-free prefix in position order).
- **Order in the stream, even with publishes pipelined.** Every publish says what the
  stream must end with for it to be stored: ``Nats-Expected-Last-Sequence`` (the sequence
  the message before it got) and, after the first of a run, ``Nats-Expected-Last-Msg-Id``
  (the event before it). If one publish is lost (a dropped connection, a leader change)
  or anything else lands in the stream, every later one in flight is refused instead of
  being stored out of place. Without this, retrying the lost event would store it *after*
  its successors, and a consumer that skips positions it has passed would lose it. The
  sequence alone is not enough: a foreign message shifts the count so that the *next*
  event matches again, skipping one. The first publish of a run has only the sequence,
  because a restarted server may no longer know its last message id.
- **Nothing lost, nothing twice.** After any failure, and at start, the relay *resyncs*: it
  reads the stream's last message (its ``Programledger-Position`` header says how far the
  stream got, and the order guarantee says everything before it is there too) and
  continues right after it; only a stream holding none of our events (new, or purged)
  leaves the choice to the checkpoint. An event whose ack was lost is therefore not
  published again, and one that a killed server lost is. Each message also carries
  ``Nats-Msg-Id`` (the event id), so JetStream drops a duplicate from a second relay that
  briefly overlaps with this one.
- **Pipelining.** Up to ``max_in_flight`` publishes are on the wire (see ``publisher``);
  their acks are taken strictly in order, and one missing for ``ack_timeout`` counts as a
  failure.
- **Checkpoint.** Written to ``relay_checkpoints`` only up to the last position whose ack
  arrived with every ack before it, and never backwards; at most once per
  ``checkpoint_interval``, busy or idle. When events trickle in, the relay idles after
  each, and a write per idle was a second commit (a WAL flush) for every append; the
  checkpoint decides nothing while the stream holds our events (see resync), so it may lag.
- **One active relay.** :class:`~programledger.adapters.postgres.leadership.Leadership`:
  a session advisory lock per relay name, held on a dedicated connection that also
  carries LISTEN and the checkpoint writes. Standbys poll for the lock; when the active
  relay dies its connection drops and the lock with it. The holder checks its connection
  every ``lock_check_interval`` and stops publishing as soon as it fails, since a standby
  may already have taken over.
- **One store per stream.** The stream's metadata names the store (its id from
  ``store_identity``) and so does every message (``Programledger-Store-Id``); a stream
  that names another store stops the relay before it publishes anything
  (:class:`~programledger.adapters.nats.stream.ForeignStream`).
- **Appends never wait for NATS.** Nothing on the append path touches NATS; while NATS is
  down the relay retries with backoff and catches up when it returns.

One module over 500 lines: it is one class, :class:`Relay`, whose guarantees above share one
loop and its state (next sequence, acks in flight, checkpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple

import asyncpg
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from programledger.adapters.nats import client as nats_client
from programledger.adapters.nats.envelope import (
    HEADER_MSG_ID,
    HEADER_POSITION,
    HEADER_STORE_ID,
    OutgoingMessage,
    encode_message,
    encode_undecodable,
)
from programledger.adapters.nats.publisher import Ack, AckedPublisher
from programledger.adapters.nats.stream import StreamConfigConflict, StreamSettings, ensure_stream
from programledger.adapters.postgres.eventstore import PostgresEventStore, RawEvent
from programledger.adapters.postgres.leadership import (
    DB_ERRORS,
    Backoff,
    Leadership,
    LeadershipLost,
    LeaderState,
)

__all__ = [
    "Relay",
    "RelayLag",
    "RelaySettings",
    "RelayState",
    "RelayStats",
    "relay_lag",
]

log = logging.getLogger(__name__)

HEADER_EXPECTED_LAST_SEQUENCE: Final = "Nats-Expected-Last-Sequence"
HEADER_EXPECTED_LAST_MSG_ID: Final = "Nats-Expected-Last-Msg-Id"
_RECHECK_MAX = 0.05
"""Longest wait between reads while a notified append is not readable yet."""


@dataclass(frozen=True, slots=True)
class RelaySettings:
    prefix: str
    name: str = "default"
    """Relays with the same name (and schema) share one lock and one checkpoint."""
    stream: StreamSettings | None = None
    """The stream to publish into; by default the one derived from ``prefix``."""
    batch_size: int = 500
    """Events read from PostgreSQL per query."""
    max_in_flight: int = 1000
    """Publishes sent and not yet acknowledged, at most."""
    ack_timeout: float = 5.0
    """How long an ack may take before the relay treats the publish as failed and resyncs."""
    poll_interval: float = 1.0
    """Fallback for a lost NOTIFY (or one sent by an append that is not yet readable)."""
    checkpoint_interval: float = 0.25
    """At most one checkpoint write per this many seconds; the longest it lags the acks."""
    standby_poll_interval: float = 0.5
    """How often a standby tries the lock: the longest a takeover waits after a crash."""
    lock_check_interval: float = 1.0
    """How often the active relay proves its lock connection is alive."""
    retry_initial: float = 0.1
    retry_max: float = 5.0
    nats_reconnect_wait: float = 0.5
    nats_connect_timeout: float = 5.0
    """How long a first connection to NATS may take before it counts as a failure."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_in_flight < 1:
            raise ValueError("batch_size and max_in_flight must be at least 1")
        if min(self.ack_timeout, self.poll_interval, self.standby_poll_interval) <= 0:
            raise ValueError("timeouts and intervals must be positive")
        if self.stream is not None and self.stream.prefix != self.prefix:
            raise ValueError("the stream settings are for another subject prefix")

    @property
    def stream_settings(self) -> StreamSettings:
        return self.stream if self.stream is not None else StreamSettings(self.prefix)


RelayState = LeaderState
"""A relay is exactly as active as its leadership."""


@dataclass(slots=True)
class RelayStats:
    """Counters for metrics; they only grow, and only on the active instance."""

    published: int = 0
    """Messages acknowledged by JetStream (duplicates included)."""
    duplicates: int = 0
    """Acks that said JetStream already had the message."""
    resyncs: int = 0
    failures: int = 0
    last_error: str | None = None
    activations: int = 0
    undecodable: int = 0
    """Events published as stored because this code could not decode them (see
    :meth:`Relay._encode`); each is also logged as an error, and counted in its relay's
    ``relay_checkpoints`` row once checkpointed (the API's ``/metrics`` reports it)."""


@dataclass(frozen=True, slots=True)
class RelayLag:
    head_position: int
    """The highest position readers can see now."""
    published_position: int
    positions: int
    """Events committed and not yet acknowledged by JetStream."""
    seconds: float
    """Age of the oldest such event; 0 when there is none."""


class _AckTimeout(Exception):
    pass


class _Pending(NamedTuple):
    position: int
    future: asyncio.Future[Ack]
    deadline: float


_LAG_SQL = """
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
     published AS (
        SELECT coalesce($2::bigint,
                        (SELECT position FROM relay_checkpoints WHERE name = $1), 0) AS position
     )
SELECT published.position AS published,
       coalesce((SELECT e.position FROM events e WHERE e.tx_id < (SELECT xmin FROM horizon)
                 ORDER BY e.position DESC LIMIT 1), 0) AS head,
       (SELECT e.recorded_at FROM events e
        WHERE e.position > published.position AND e.tx_id < (SELECT xmin FROM horizon)
        ORDER BY e.position LIMIT 1) AS oldest,
       clock_timestamp() AS now
FROM published
"""
"""Each event read is found from one end of the position index: the horizon is a scalar
subquery, not a joined row, because ``max()`` over a join is no longer PostgreSQL's
index lookup but an aggregate over every event (a sequential scan that took 12 ms at
10,000 events and 29 ms at 50,000, for ``/metrics``, ``/ready`` and the relay alike)."""


async def relay_lag(
    pool: asyncpg.Pool, name: str = "default", published: int | None = None
) -> RelayLag:
    """How far the relay ``name`` is behind, from its checkpoint (or ``published``).

    Works from any process (an API's ``/ready``), whether or not a relay runs there.
    """
    async with pool.acquire() as conn:
        row = await conn.fetchrow(_LAG_SQL, name, published)
    assert row is not None
    head, done = int(row["head"]), int(row["published"])
    oldest: datetime | None = row["oldest"]
    seconds = max(0.0, (row["now"] - oldest).total_seconds()) if oldest is not None else 0.0
    return RelayLag(
        head_position=head,
        published_position=done,
        positions=max(0, head - done),
        seconds=seconds,
    )


class Relay:
    """Run with :meth:`run`; :meth:`stop` ends it cleanly.

    ``database_url`` is used for the dedicated lock connection; reads go through the store's
    pool. The relay owns its NATS connection so that it can reconnect on its own terms.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        *,
        database_url: str,
        nats_servers: str | Sequence[str],
        settings: RelaySettings,
        nats_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._store = store
        self._database_url = database_url
        self._nats_servers = [nats_servers] if isinstance(nats_servers, str) else list(nats_servers)
        self._settings = settings
        self._stream = settings.stream_settings
        self._nats_options = dict(nats_options or {})
        self.stats = RelayStats()
        self._backoff = Backoff(settings.retry_initial, settings.retry_max)
        self._leader = Leadership(
            f"programledger.relay:{store.schema}:{settings.name}",
            database_url=database_url,
            schema=store.schema,
            application_name=f"programledger-relay:{settings.name}",
            on_failure=self._note_failure,
            backoff=self._backoff,
            standby_poll_interval=settings.standby_poll_interval,
            check_interval=settings.lock_check_interval,
            fatal=(StreamConfigConflict,),
        )
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._publisher: AckedPublisher | None = None
        self._stream_ready = False
        self._acked = 0
        self._saved = 0
        self._saved_at = 0.0
        self._undecodable: set[int] = set()
        """Positions published as stored, counted in the checkpoint row once it passes them."""
        self._notified = 0
        self._idle_delay = 0.0

    @property
    def state(self) -> RelayState:
        return self._leader.state

    @property
    def is_active(self) -> bool:
        return self._leader.state is LeaderState.ACTIVE

    @property
    def published_position(self) -> int:
        """Every event up to here is in the stream (as far as this instance knows)."""
        return self._acked

    @property
    def settings(self) -> RelaySettings:
        return self._settings

    def stop(self) -> None:
        """Ask the relay to finish: in-flight publishes are awaited and checkpointed."""
        self._leader.stop()
        self._wake.set()

    async def lag(self) -> RelayLag:
        published = self._acked if self.is_active else None
        return await relay_lag(self._store.pool, self._settings.name, published)

    async def wait_published(self, position: int) -> None:
        """Wait until this instance has published up to ``position`` (bound it with
        ``asyncio.timeout``)."""
        while self._acked < position:
            self._progress.clear()
            await self._progress.wait()

    # --- leadership --------------------------------------------------------------------

    async def run(self) -> None:
        """Standby until the lock is ours, relay until stopped; back to standby if the lock
        connection fails. Returns after :meth:`stop`; raises only
        :class:`StreamConfigConflict` (a human must act)."""
        try:
            await self._leader.run(self._lead)
        finally:
            await self._close_nats()

    async def _lead(self, conn: asyncpg.Connection) -> None:
        await conn.add_listener(self._store.notify_channel, self._on_notify)
        self.stats.activations += 1
        log.info(
            "relay %s: active, publishing to stream %s", self._settings.name, self._stream.name
        )
        await self._work(conn)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        with contextlib.suppress(ValueError, TypeError):
            self._notified = max(self._notified, int(str(payload)))
        self._wake.set()

    # --- publishing --------------------------------------------------------------------

    async def _work(self, conn: asyncpg.Connection) -> None:
        while not self._leader.stopping:
            try:
                js, publisher = await self._jetstream()
                if not self._stream_ready:
                    await ensure_stream(js, self._stream, store_id=await self._store.store_id())
                    self._stream_ready = True
                await self._pump(conn, js, publisher)
            except (StreamConfigConflict, LeadershipLost):
                raise
            except Exception as exc:
                # Anything else is worth retrying: NATS or PostgreSQL away, a lost or
                # refused publish. (An event this code cannot decode is no failure: see
                # _encode.)
                self._note_failure("publishing failed; resyncing", exc)
                self._stream_ready = False
                await self._save_checkpoint(conn)
                await self._leader.pause(self._backoff.next())

    async def _pump(
        self, conn: asyncpg.Connection, js: JetStreamContext, publisher: AckedPublisher
    ) -> None:
        start, sequence = await self._resync(conn, js)
        store = str(await self._store.store_id())
        inflight: deque[_Pending] = deque()
        loop = asyncio.get_running_loop()
        batch = self._settings.batch_size
        read_from = start
        previous: str | None = None
        reading: asyncio.Task[list[RawEvent]] | None = None
        try:
            while not self._leader.stopping:
                if reading is None:
                    self._wake.clear()
                    reading = asyncio.create_task(self._store.read_all_raw(read_from, batch))
                events = await reading
                reading = None
                if not events:
                    await self._drain(inflight)
                    if self._checkpoint_due(loop):
                        await self._save_checkpoint(conn)
                    await self._idle(read_from)
                    continue
                self._idle_delay = 0.0
                read_from = events[-1].position
                if len(events) == batch:
                    # A full page: more is likely waiting. Read it while this one goes out.
                    self._wake.clear()
                    reading = asyncio.create_task(self._store.read_all_raw(read_from, batch))
                deadline = loop.time() + self._settings.ack_timeout
                for event in events:
                    if len(inflight) >= self._settings.max_in_flight:
                        await self._settle_first(inflight)
                        deadline = loop.time() + self._settings.ack_timeout
                    message = self._encode(event)
                    headers = message.headers
                    headers[HEADER_STORE_ID] = store
                    headers[HEADER_EXPECTED_LAST_SEQUENCE] = str(sequence)
                    if previous is not None:
                        headers[HEADER_EXPECTED_LAST_MSG_ID] = previous
                    previous = headers[HEADER_MSG_ID]
                    future = await publisher.publish(message.subject, message.payload, headers)
                    inflight.append(_Pending(event.position, future, deadline))
                    sequence += 1
                    if inflight[0].future.done():
                        self._harvest(inflight)
                if inflight and inflight[0].deadline < loop.time():
                    # A lost ack makes every later publish fail on its expected sequence:
                    # stop sending into that and resync now.
                    await self._settle_first(inflight)
                if self._checkpoint_due(loop):
                    await self._save_checkpoint(conn)
            await self._drain(inflight)
            await self._save_checkpoint(conn)
        finally:
            if reading is not None:
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading
            publisher.abandon()

    def _encode(self, event: RawEvent) -> OutgoingMessage:
        """The event's message; one this code cannot decode is published as stored, with
        the reason in a header, and logged as an error: the relay never stops on an event
        (the store's catalogue keeps such events out, but a relay older than the writer,
        or an upcaster that fails, still meets one), and a consumer that can read it still
        gets it in its place in the order."""
        try:
            return encode_message(self._stream.prefix, event, self._store.codec)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.stats.undecodable += 1
            self._undecodable.add(event.position)
            log.error(
                "relay %s: event at position %d (%s %s v%d, id %s) cannot be decoded by this "
                "code; published as stored: %s",
                self._settings.name,
                event.position,
                event.stream_id,
                event.event_type,
                event.schema_version,
                event.event_id,
                reason,
            )
            return encode_undecodable(self._stream.prefix, event, reason)

    async def _settle_first(self, inflight: deque[_Pending]) -> None:
        pending = inflight[0]
        remaining = pending.deadline - asyncio.get_running_loop().time()
        if not pending.future.done():
            await asyncio.wait({pending.future}, timeout=max(remaining, 0.0))
        if not pending.future.done():
            raise _AckTimeout(
                f"no ack for position {pending.position} within {self._settings.ack_timeout}s"
            )
        self._harvest(inflight)

    async def _drain(self, inflight: deque[_Pending]) -> None:
        while inflight:
            await self._settle_first(inflight)

    def _harvest(self, inflight: deque[_Pending]) -> None:
        """Take the acks that arrived, strictly in publish order, so ``_acked`` never passes
        a publish that failed or is still waiting; a failed one raises here."""
        count = duplicates = 0
        try:
            while inflight and inflight[0].future.done():
                pending = inflight[0]
                if pending.future.result().duplicate:
                    duplicates += 1
                inflight.popleft()
                self._acked = pending.position
                count += 1
        finally:
            if count:
                self.stats.published += count
                self.stats.duplicates += duplicates
                self._backoff.reset()
                self._progress.set()

    async def _idle(self, read_from: int) -> None:
        if self._leader.stopping:
            return
        poll = self._settings.poll_interval
        if self._notified > read_from:
            # Told about an append we cannot read yet: an older transaction is still open
            # (any writing transaction on the server holds the horizon back, not only
            # appends, and those others send no NOTIFY when they end). Look again soon.
            self._idle_delay = min(max(self._idle_delay * 2, 0.002), _RECHECK_MAX, poll)
            delay = self._idle_delay
        else:
            delay = poll
        if self._acked > self._saved:
            # Back in time to write the checkpoint the last idle left for later.
            unsaved = self._saved_at + self._settings.checkpoint_interval
            delay = min(delay, max(0.0, unsaved - asyncio.get_running_loop().time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _resync(self, conn: asyncpg.Connection, js: JetStreamContext) -> tuple[int, int]:
        """Where to continue, and the stream sequence the next publish must follow.

        The stream's last event is the truth about what it holds, since it is stored in
        position order: continue after it, whether the checkpoint is behind (acks that
        arrived just before a crash) or ahead (a NATS server that lost its last writes
        when it was killed; those events are published again). Only when the stream holds
        none of our events (new, or purged) does the checkpoint decide.
        """
        name = self._stream.name
        info = await js.stream_info(name)
        last_seq = int(info.state.last_seq)
        tail: int | None = None
        tail_id: str | None = None
        if last_seq > 0 and info.state.messages > 0:
            with contextlib.suppress(NotFoundError):
                last = await js.get_msg(name, last_seq)
                headers = last.headers or {}
                with contextlib.suppress(ValueError, TypeError):
                    tail = int(headers.get(HEADER_POSITION, ""))
                tail_id = headers.get("Nats-Msg-Id")
        checkpoint = await self._load_checkpoint(conn)
        start = checkpoint
        if tail is not None:
            await self._check_tail_is_ours(tail, tail_id)
            start = tail
            if tail < checkpoint:
                log.warning(
                    "relay %s: stream %s ends at position %d but the checkpoint is %d: the "
                    "server lost its last messages (killed without replication?); "
                    "publishing positions %d-%d again",
                    self._settings.name,
                    name,
                    tail,
                    checkpoint,
                    tail + 1,
                    checkpoint,
                )
            elif tail > checkpoint:
                log.info(
                    "relay %s: stream %s already holds events up to position %d, past the "
                    "checkpoint %d (stored before the ack or checkpoint was recorded); "
                    "continuing from there",
                    self._settings.name,
                    name,
                    tail,
                    checkpoint,
                )
        elif info.state.messages > 0:
            log.warning(
                "relay %s: the last message of stream %s was not published by a relay; "
                "continuing from the checkpoint %d",
                self._settings.name,
                name,
                checkpoint,
            )
        elif checkpoint > 0 and last_seq == 0:
            log.warning(
                "relay %s: stream %s is new but the checkpoint is %d: continuing from there; "
                "reset the checkpoint to publish the history again (docs/events.md)",
                self._settings.name,
                name,
                checkpoint,
            )
        self.stats.resyncs += 1
        self._acked = start
        self._progress.set()
        await self._save_checkpoint(conn)
        return start, last_seq

    async def _check_tail_is_ours(self, position: int, event_id: str | None) -> None:
        """A stream fed from another event store under the same prefix would make the relay
        skip events it never published; that is a configuration error, not a resync."""
        async with self._store.pool.acquire() as conn:
            stored = await conn.fetchval(
                "SELECT event_id FROM events WHERE position = $1", position
            )
        if stored is None or str(stored) != event_id:
            raise StreamConfigConflict(
                f"stream {self._stream.name!r} ends with event {event_id} at position "
                f"{position}, but this event store has {stored or 'no event'} there: another "
                "deployment publishes under the same subject prefix, or the database was "
                "restored to an earlier state. Use a prefix of its own per event store."
            )

    # --- checkpoint --------------------------------------------------------------------

    async def _load_checkpoint(self, conn: asyncpg.Connection) -> int:
        try:
            async with self._leader.guard:
                position = await conn.fetchval(
                    """
                    INSERT INTO relay_checkpoints (name, position) VALUES ($1, 0)
                    ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
                    RETURNING position
                    """,
                    self._settings.name,
                )
        except DB_ERRORS as exc:
            raise LeadershipLost(f"cannot read the checkpoint: {exc!r}") from exc
        self._saved = int(position)
        return self._saved

    def _checkpoint_due(self, loop: asyncio.AbstractEventLoop) -> bool:
        return loop.time() - self._saved_at >= self._settings.checkpoint_interval

    async def _save_checkpoint(self, conn: asyncpg.Connection) -> None:
        """On the lock connection, so a relay that lost the lock cannot write it."""
        if self._acked <= self._saved:
            return
        position = self._acked
        passed = {p for p in self._undecodable if p <= position}
        try:
            async with self._leader.guard:
                await conn.execute(
                    "UPDATE relay_checkpoints SET position = $2, updated_at = now(), "
                    "undecodable = undecodable + $3, "
                    "last_undecodable_position = coalesce($4, last_undecodable_position) "
                    "WHERE name = $1 AND position < $2",
                    self._settings.name,
                    position,
                    len({p for p in passed if p > self._saved}),
                    max(passed, default=None),
                )
        except DB_ERRORS as exc:
            raise LeadershipLost(f"cannot write the checkpoint: {exc!r}") from exc
        self._undecodable -= passed
        self._saved = position
        self._saved_at = asyncio.get_running_loop().time()

    # --- NATS connection ---------------------------------------------------------------

    async def _jetstream(self) -> tuple[JetStreamContext, AckedPublisher]:
        if (
            self._nc is not None
            and not self._nc.is_closed
            and self._js is not None
            and self._publisher is not None
        ):
            return self._js, self._publisher
        await self._close_nats()
        options: dict[str, Any] = {
            "name": f"programledger-relay:{self._settings.name}",
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": self._settings.nats_reconnect_wait,
            "connect_timeout": max(1, round(self._settings.nats_connect_timeout / 2)),
            "error_cb": self._on_nats_error,
            "disconnected_cb": self._on_nats_disconnected,
            "reconnected_cb": self._on_nats_reconnected,
            # Every subject is built from a validated prefix and validated tokens.
            "skip_subject_validation": True,
        }
        options.update(self._nats_options)
        # With unlimited reconnects nats-py retries a first connection forever; the bound
        # lets stop() and the backoff in _work take over while NATS is down.
        self._nc = await asyncio.wait_for(
            nats_client.connect(self._nats_servers, **options),
            self._settings.nats_connect_timeout,
        )
        self._js = self._nc.jetstream(timeout=self._settings.ack_timeout)
        self._publisher = await AckedPublisher.open(self._nc)
        self._stream_ready = False
        return self._js, self._publisher

    async def _close_nats(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if self._publisher is not None:
            self._publisher.abandon()
            self._publisher = None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)

    async def _on_nats_error(self, exc: Exception) -> None:
        log.debug("relay %s: NATS error: %r", self._settings.name, exc)

    async def _on_nats_disconnected(self) -> None:
        if self._leader.stopping:
            return
        log.warning("relay %s: disconnected from NATS; reconnecting", self._settings.name)

    async def _on_nats_reconnected(self) -> None:
        log.info("relay %s: reconnected to NATS", self._settings.name)

    # --- helpers -----------------------------------------------------------------------

    def _note_failure(self, what: str, exc: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{what}: {exc!r}"
        log.warning("relay %s: %s: %r", self._settings.name, what, exc)
