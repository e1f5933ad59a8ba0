"""The projection runner: events from JetStream into one read model, each exactly once.

How each guarantee is kept:

- **Effects and checkpoint together.** A batch's row changes, its handler states and the
  checkpoint (the last global position done) are written in one PostgreSQL transaction,
  which claims the projection's status row (locks it where it still holds the checkpoint
  and generation the runner works from). A live batch's few rows make that one statement
  (``commit``: one round trip, which read-your-writes waits for); a bigger batch's, a
  transaction that ends with that statement. An event at or below the checkpoint is
  skipped, so a redelivery is never applied twice; messages are acknowledged only after
  the commit (``AckAll`` on the batch's last message).
- **Pipelined.** While one batch's transaction runs, the next batch is fetched and
  applied in memory (handlers are pure), so Python's CPU and PostgreSQL's commit overlap;
  a small batch (a live runner's) is committed at once instead, sooner.
  Its writes start only after that commit; if the commit fails, everything applied since
  is dropped and consuming restarts from the checkpoint.
- **In order, nothing skipped.** At every start the durable pull consumer is recreated at
  the first stream sequence after the checkpoint (a binary search over the positions the
  relay stores in order), so what an earlier instance left unacknowledged comes again in
  order, never after newer events. A consumer sequence that jumps (a delivery lost on the
  way) restarts the same way. Events the stream no longer has (expired, or a stream
  recreated) are read from the event store instead.
- **Filters.** The consumer has one filter subject: the projection's stream type, or
  every event when it handles several; events of other types still move the checkpoint.
  When idle, the runner moves the checkpoint over the events it does not handle up to
  the stream's last event (the event store says which those are), so lag and
  read-your-writes see a projection that merely has nothing to do as caught up.
- **Only its store's stream.** A stream whose metadata, or a message whose
  ``Programledger-Store-Id`` header, names another event store stops the runner with
  :class:`~programledger.adapters.nats.stream.ForeignStream` before anything is applied
  or any consumer touched; the durable consumer's name includes the store's id.
- **Poison events.** A handler that raises (or a row PostgreSQL refuses, found by
  retrying the batch one event at a time) stops the projection at that event: the
  events before it are committed, the status row records the position, event and
  error, and the runner waits until :func:`~programledger.projections.engine.status.clear_failure`
  or a rebuild clears it. Nothing is skipped silently.
- **One active runner per projection.**
  :class:`~programledger.adapters.postgres.leadership.Leadership`: a session advisory
  lock per projection, held on the connection that also runs every batch transaction, so
  a runner that lost it cannot write. Standbys poll for it.
- **Rebuilds.** A rebuild swaps new tables in under the status-row lock and bumps
  ``generation``; the runner notices (its batch refuses to commit, or its idle check),
  drops its caches and resumes after the rebuild's checkpoint. A runner that finds its
  tables built by another definition (a new release) rebuilds before consuming.

One module over 500 lines: it is one class, :class:`ProjectionRunner`, whose guarantees
above share one state machine (checkpoint, batch in flight, resync, generation), and its
cache metrics, which read that class's private counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy
from nats.js.errors import NotFoundError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from programledger.adapters.nats.consumer import PullConsumer, open_pull
from programledger.adapters.nats.envelope import decode_envelope
from programledger.adapters.nats.pull import (
    BatchPuller,
    EventsExpired,
    PullRefused,
    position_at,
    resume_sequence,
)
from programledger.adapters.nats.stream import (
    ForeignStream,
    check_message_store,
    check_stream_store,
    stream_name,
)
from programledger.adapters.nats.subscriber import subject_filters
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.leadership import (
    DB_ERRORS,
    Backoff,
    Leadership,
    LeaderState,
)
from programledger.projections.engine.commit import Checkpoint, Claim, claim_sql, commit_batch
from programledger.projections.engine.core import (
    DEFAULT_STATE_CACHE_BYTES,
    DEFAULT_STATE_CACHE_LIMIT,
    Applier,
    CacheCounts,
    Closes,
    Inserts,
    Poison,
    ProjectedEvent,
    Projection,
    ProjectionBug,
    StateStore,
    TableWrites,
    from_envelope,
    from_stored,
    poison_of,
)
from programledger.projections.engine.rebuild import rebuild
from programledger.projections.engine.statistics import StatisticsKeeper
from programledger.projections.engine.storage import (
    StatusRow,
    prepare_tables,
    projection_channel,
    wanted_channel,
)

__all__ = [
    "ProjectionRunner",
    "RunnerSettings",
    "RunnerState",
    "RunnerStats",
    "StateCacheMetrics",
    "durable_name",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    prefix: str
    """The relay's subject prefix."""
    batch_size: int = 500
    """Messages per fetch, and so per transaction at most."""
    fetch_wait: float = 0.5
    """How long a fetch waits for a first message; also how often an idle runner checks
    its status (a rebuild, a cleared failure) and its lock connection."""
    commit_interval: float = 0.2
    """After a batch smaller than ``batch_size`` (events trickling in, not a backlog), the
    next fetch waits until this many seconds have passed, so that a steady trickle is
    written in one transaction per interval instead of one per event or two: a commit
    costs the runner and PostgreSQL more than the rows it writes. The first event after a
    quiet spell is fetched at once; 0 fetches again at once always."""
    ack_wait: float = 60.0
    idle_check_interval: float = 2.0
    """While idle, how often to move the checkpoint past events of other types even
    without a NOTIFY saying something was appended."""
    standby_poll_interval: float = 0.5
    retry_initial: float = 0.1
    retry_max: float = 5.0
    state_cache_limit: int = DEFAULT_STATE_CACHE_LIMIT
    """Handler states kept in memory between batches (the least recently used are
    evicted, and read back from their table when needed)."""
    state_cache_bytes: int = DEFAULT_STATE_CACHE_BYTES
    """The most bytes of memory the states kept between batches take (a second bound:
    states grow with their programs)."""
    durable_prefix: str = "projection"
    rebuild_workers: int = field(default_factory=lambda: min(os.cpu_count() or 1, 4))
    """Processes a rebuild before consuming (tables of another definition, as after a
    release that changed the read model) may split its work across (see ``rebuild``)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or min(self.fetch_wait, self.ack_wait) <= 0:
            raise ValueError("batch_size must be at least 1, fetch_wait and ack_wait positive")
        if self.commit_interval < 0:
            raise ValueError("commit_interval must be 0 or more")
        if self.rebuild_workers < 1:
            raise ValueError("rebuild_workers must be at least 1")
        if min(self.state_cache_limit, self.state_cache_bytes) < 1:
            raise ValueError("state_cache_limit and state_cache_bytes must be at least 1")


class RunnerState(enum.Enum):
    STARTING = "starting"
    STANDBY = "standby"
    ACTIVE = "active"
    FAILED = "failed"
    """Stopped at a poison event; waiting for the failure to be cleared."""
    STOPPED = "stopped"


@dataclass(slots=True)
class RunnerStats:
    applied: int = 0
    skipped: int = 0
    """Deliveries at or below the checkpoint (redeliveries), or not events at all."""
    batches: int = 0
    resyncs: int = 0
    failures: int = 0
    activations: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class _Batch:
    """A batch applied in memory, as its commit writes it."""

    checkpoint: Checkpoint
    ack: Msg | None
    states: tuple[list[str], list[bytes]]
    """The keys and encoded values of the handler states the batch changed."""
    tables: list[TableWrites]
    """Its writes to each table, in the projection's order."""
    parts: list[tuple[Closes | None, Inserts | None]] | None
    """The same as parts of the one statement that commits it, when they fit in one."""


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A batch applied in memory whose transaction is running."""

    task: asyncio.Task[None]
    items: Sequence[Any]
    convert: Callable[[Any], ProjectedEvent]


def durable_name(durable_prefix: str, projection: str, store_id: UUID) -> str:
    """The projection's durable consumer: named after its store too, so that deployments
    sharing a NATS account can never take over (delete, reposition) each other's."""
    return f"{durable_prefix}_{projection}_{store_id.hex}"


class _Resync(Exception):
    """Start over from the checkpoint in the status row."""


class _NoStream(Exception):
    """The relay has not created the stream yet."""


_NATS_ERRORS = (nats.errors.Error, PullRefused, TimeoutError, OSError)
_POISONOUS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, ProjectionBug)
"""Failures of a batch's writes that the same events will always cause again."""

_APPLY_CHUNK = 50
"""Events applied between two yields to the batch being committed."""

_PIPELINE_FROM = 50
"""Batches of more events than this are committed in a task while the next one is
applied; smaller ones (a live runner's, mostly one event) at once: a task would start
its first statement only after everything else the event loop has ready (the other
runners' batches of the same events), a wait read-your-writes would add to each."""


class ProjectionRunner:
    """Runs one projection; :meth:`run` until :meth:`stop`. Several runners (one per
    projection) can share one NATS connection; each has its own PostgreSQL connection."""

    def __init__(
        self,
        projection: Projection,
        *,
        store: PostgresEventStore,
        database_url: str,
        nc: NatsClient,
        settings: RunnerSettings,
    ) -> None:
        self.projection = projection
        self._store = store
        self._database_url = database_url
        self._nc = nc
        self._settings = settings
        # The store's registry: the one the process built, with every event type the
        # application records (a narrower one would stop the runner at the first it lacks).
        self._from_envelope = from_envelope(store.codec.registry)
        self._from_stored = from_stored(store.codec)
        self._channel = projection_channel(store.schema)
        self._stream = stream_name(settings.prefix)
        self._store_id: UUID | None = None
        self._durable = ""
        """:func:`durable_name`, once the store's id is read (when the runner is active)."""
        self._phase = RunnerState.STARTING
        """What the runner does while it holds the lock."""
        self.stats = RunnerStats()
        self.cache_counts = CacheCounts()
        self._backoff = Backoff(settings.retry_initial, settings.retry_max)
        self._leader = Leadership(
            f"programledger.projection:{store.schema}:{projection.name}",
            database_url=database_url,
            schema=store.schema,
            application_name=f"programledger-projection:{projection.name}",
            on_failure=self._failure,
            backoff=self._backoff,
            standby_poll_interval=settings.standby_poll_interval,
            fatal=(ForeignStream,),
        )
        self._position = 0
        self._staged = 0
        """The last position applied in memory: ``_position`` or a batch being committed."""
        self._inflight: _InFlight | None = None
        self._generation = -1
        self._applier = self._new_applier()
        self._sub: BatchPuller | None = None
        self._consumer_seq = 0
        self._check_gap = False
        self._notified = 0
        self._wanted = 0
        """The furthest position a reader has said it waits for (:meth:`_on_wanted`)."""
        self._hurry = asyncio.Event()
        self._idle_checked = 0.0
        self._statistics = StatisticsKeeper([t.name for t in projection.all_tables])

    @property
    def state(self) -> RunnerState:
        leader = self._leader.state
        return self._phase if leader is LeaderState.ACTIVE else RunnerState(leader.value)

    @property
    def durable(self) -> str:
        """Its durable consumer's name; empty until the runner was first active."""
        return self._durable

    @property
    def position(self) -> int:
        """The checkpoint as this runner last committed or read it."""
        return self._position

    def stop(self) -> None:
        """Finish the batch in hand, then stop; the durable consumer stays."""
        self._leader.stop()

    def _new_applier(self) -> Applier:
        table = self.projection.state_table.name
        states = StateStore(
            table,
            self.projection.states,
            limit=self._settings.state_cache_limit,
            max_bytes=self._settings.state_cache_bytes,
            counts=self.cache_counts,
        )
        return Applier(self.projection, states)

    @property
    def state_cache_limit(self) -> int:
        return self._settings.state_cache_limit

    @property
    def cached_states(self) -> int:
        """Handler states in memory now (at most the limit, plus one batch's)."""
        return len(self._applier.store)

    @property
    def state_cache_bytes(self) -> int:
        return self._settings.state_cache_bytes

    @property
    def cached_bytes(self) -> int:
        """Bytes of memory the states held now take, as the cache counts them (at most
        the byte limit, plus one batch's)."""
        return self._applier.store.bytes

    # --- leadership ----------------------------------------------------------------------

    async def run(self) -> None:
        """Standby until the projection's lock is ours, then consume until stopped."""
        try:
            await self._leader.run(self._lead)
        finally:
            await self._unsubscribe()
            await self._statistics.close()

    async def _lead(self, conn: asyncpg.Connection) -> None:
        self._phase = RunnerState.STARTING
        name = self.projection.name
        self._store_id = await self._store.store_id()
        self._durable = durable_name(self._settings.durable_prefix, name, self._store_id)
        if not await prepare_tables(conn, self.projection):
            log.warning(
                "projection %s: its tables were built by another definition or are "
                "missing; rebuilding before consuming",
                name,
            )
            rebuilding = rebuild(
                self._store.pool,
                self._store,
                name,
                progress=False,
                workers=self._settings.rebuild_workers,
                database_url=self._database_url,
            )
            if not await self._unless_stopped(rebuilding):
                return
        await conn.add_listener(self._store.notify_channel, self._on_append)
        await conn.add_listener(wanted_channel(self._store.schema), self._on_wanted)
        # A batch's effects and checkpoint commit together, so a commit that a PostgreSQL
        # crash loses only rewinds the projection to an earlier checkpoint, which it
        # consumes again from there: waiting for the WAL flush buys nothing.
        await conn.execute("SET synchronous_commit = off")
        self.stats.activations += 1
        await conn.execute(
            "UPDATE projection_status SET worker = $2, updated_at = now(), "
            "state = CASE WHEN state = 'failed' THEN state ELSE 'running' END WHERE name = $1",
            name,
            f"{socket.gethostname()}:{os.getpid()}",
        )
        log.info("projection %s: active", name)
        try:
            while not self._leader.stopping:
                status = await self._read_status(conn)
                if status.state == "failed":
                    self._phase = RunnerState.FAILED
                    await self._leader.pause(self._settings.fetch_wait)
                    continue
                self._phase = RunnerState.ACTIVE
                self._resync_from(status)
                try:
                    await self._consume(conn)
                except _Resync as why:
                    self.stats.resyncs += 1
                    log.info("projection %s: resyncing: %s", name, why)
                except _NoStream:
                    await self._leader.pause(self._settings.fetch_wait)
                except _NATS_ERRORS as exc:
                    if conn.is_closed():
                        raise
                    self._failure("consuming from NATS failed; resubscribing", exc)
                    await self._leader.pause(self._backoff.next())
        finally:
            await self._unsubscribe()
            if self._leader.stopping and not conn.is_closed():
                with contextlib.suppress(*DB_ERRORS):
                    await conn.execute(
                        "UPDATE projection_status SET state = 'stopped', updated_at = now() "
                        "WHERE name = $1 AND state = 'running'",
                        name,
                    )

    def _on_wanted(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            position = int(str(payload))
        except ValueError:
            return
        if position > self._wanted:
            self._wanted = position
            self._hurry.set()

    def _on_append(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        with contextlib.suppress(ValueError, TypeError):
            self._notified = max(self._notified, int(str(payload)))

    async def _read_status(self, conn: asyncpg.Connection) -> StatusRow:
        row = await conn.fetchrow(
            "SELECT name, position, generation, state, definition FROM projection_status "
            "WHERE name = $1",
            self.projection.name,
        )
        assert row is not None
        return StatusRow(**dict(row))

    def _resync_from(self, status: StatusRow) -> None:
        self._position = self._staged = status.position
        self._generation = status.generation
        self._applier = self._new_applier()

    # --- consuming -----------------------------------------------------------------------

    async def _consume(self, conn: asyncpg.Connection) -> None:
        js = self._nc.jetstream()
        sub = await self._subscribe(conn, js)
        # The next batch is fetched while this one is applied and committed: fetching costs
        # mostly client CPU, a commit mostly waiting for PostgreSQL.
        fetching = asyncio.create_task(self._fetch(sub))
        loop = asyncio.get_running_loop()
        try:
            while not self._leader.stopping:
                messages = await fetching
                trickle = 0 < len(messages) < self._settings.batch_size
                not_before = loop.time() + self._settings.commit_interval if trickle else 0.0
                fetching = asyncio.create_task(self._fetch(sub, not_before))
                self._statistics.poke(self._store.pool)
                if not messages:
                    await self._idle(conn, js)
                    continue
                await self._receive(conn, messages)
                if self._phase is RunnerState.FAILED:
                    return
        finally:
            fetching.cancel()
            await asyncio.wait({fetching})
            if not fetching.cancelled():
                fetching.exception()
            await self._drain()

    async def _fetch(self, sub: BatchPuller, not_before: float = 0.0) -> list[Msg]:
        """The next batch, fetched from ``not_before`` (the loop's clock; see
        ``commit_interval``), or at once when a reader waits for a position this runner
        has not applied (:func:`wanted_channel`); ``[]`` when none came within
        ``fetch_wait``."""
        wait = not_before - asyncio.get_running_loop().time()
        if wait > 0 and self._wanted <= self._staged:
            self._hurry.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._hurry.wait()
        return await sub.fetch(self._settings.batch_size, self._settings.fetch_wait)

    async def _subscribe(self, conn: asyncpg.Connection, js: JetStreamContext) -> BatchPuller:
        await self._unsubscribe()
        try:
            info = await js.stream_info(self._stream)
        except NotFoundError:
            raise _NoStream from None
        assert self._store_id is not None
        # Before the consumer is touched: another store's consumers are not ours to move.
        check_stream_store(info, self._store_id)
        state = info.state
        try:
            start = await resume_sequence(js, self._stream, state, self._position)
        except EventsExpired as gone:
            await self._catch_up(conn, gone.first_available - 1)
            start = state.first_seq
        # An empty stream says nothing of what was before it: the first delivery does.
        self._check_gap = state.messages == 0
        # One filter subject, wide when the projection handles several stream types: a
        # consumer with several filter subjects (NATS 2.10+) delivered a tenth as fast
        # here (nats-server 2.15, one subject per program and event type), and the
        # projections that handle several types handle most events anyway.
        filters = subject_filters(
            self._settings.prefix, stream_types=self.projection.stream_types, multiple=False
        )
        # Acknowledging a batch's last message acknowledges the batch.
        consumer = PullConsumer(
            self._stream,
            tuple(filters),
            AckPolicy.ALL,
            durable=self._durable,
            description=f"programledger projection {self.projection.name}",
            ack_wait=self._settings.ack_wait,
            max_ack_pending=self._settings.batch_size * 4,
        )
        self._sub = await open_pull(js, consumer, start)
        self._consumer_seq = 0
        return self._sub

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _receive(self, conn: asyncpg.Connection, messages: list[Msg]) -> None:
        # Deliveries are numbered one by one: a batch that does not continue the last one,
        # or has a hole, lost a delivery on the way. (Parsing every message's metadata
        # costs more than the rest of the check.)
        first = messages[0].metadata.sequence.consumer
        last_sequence = messages[-1].metadata.sequence.consumer
        if first != self._consumer_seq + 1 or last_sequence != first + len(messages) - 1:
            raise _Resync(
                f"deliveries {first}-{last_sequence} ({len(messages)} messages) after "
                f"{self._consumer_seq}"
            )
        self._consumer_seq = last_sequence
        envelopes = []
        last = self._staged
        assert self._store_id is not None
        for msg in messages:
            check_message_store(self._stream, msg.headers, self._store_id)
            try:
                envelope = decode_envelope(msg.data)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                log.error(
                    "projection %s: ignoring a message on %s that is not an event envelope: %s",
                    self.projection.name,
                    msg.subject,
                    exc,
                )
                self.stats.skipped += 1
                continue
            if envelope.position <= last:
                self.stats.skipped += 1
                continue
            last = envelope.position
            envelopes.append(envelope)
        if envelopes and self._check_gap:
            self._check_gap = False
            if envelopes[0].position > self._staged + 1:
                await self._catch_up(conn, envelopes[0].position - 1)
            envelopes = [e for e in envelopes if e.position > self._staged]
        if envelopes:
            await self._commit(conn, envelopes, self._from_envelope, ack=messages[-1])
        else:
            # AckAll: acknowledging this acknowledges the batch still being committed.
            await self._settle(conn)
            await messages[-1].ack()

    async def _catch_up(self, conn: asyncpg.Connection, until: int) -> None:
        """Apply events up to ``until`` read from the event store (not in the stream)."""
        log.info(
            "projection %s: reading positions %d-%d from the event store",
            self.projection.name,
            self._staged + 1,
            until,
        )
        while self._staged < until and not self._leader.stopping:
            page = await self._store.read_all_raw(self._staged, self._settings.batch_size)
            page = [e for e in page if e.position <= until]
            if not page:
                break
            await self._commit(conn, page, self._from_stored)
            if self._phase is RunnerState.FAILED:
                raise _Resync("stopped at a poison event")
        await self._settle(conn)

    async def _idle(self, conn: asyncpg.Connection, js: JetStreamContext) -> None:
        """Check the status row (and so the lock connection), and move the checkpoint
        past events this projection does not handle.

        Up to where? The stream's last event ``tail`` is published, so every position up
        to it is committed; the event store says which of those this projection handles.
        The checkpoint moves to just before the first such event it has not applied (or
        to ``tail`` if there is none), which that event's delivery will pass anyway.
        """
        await self._settle(conn)
        status = await self._read_status(conn)
        if status.generation != self._generation or status.position != self._position:
            raise _Resync("the status row changed (a rebuild was swapped in?)")
        if status.state == "failed":
            raise _Resync("marked failed")
        loop = asyncio.get_running_loop()
        if (
            self._notified <= self._position
            and loop.time() - self._idle_checked < self._settings.idle_check_interval
        ):
            return
        self._idle_checked = loop.time()
        state = (await js.stream_info(self._stream)).state
        if state.messages == 0:
            return
        if self._check_gap:
            self._check_gap = False
            oldest = await position_at(js, self._stream, state.first_seq)
            if oldest > self._position + 1:
                await self._catch_up(conn, oldest - 1)
        tail = await position_at(js, self._stream, state.last_seq)
        if tail <= self._position:
            return
        handled = await conn.fetchval(
            "SELECT min(position) FROM events WHERE position > $1 AND position <= $2 "
            "AND event_type = ANY($3::text[])",
            self._position,
            tail,
            list(self.projection.handles),
        )
        target = tail if handled is None else handled - 1
        if target <= self._position:
            return
        await self._commit_statement(conn, Checkpoint(target, None, 0))
        self._position = self._staged = target

    # --- committing ----------------------------------------------------------------------

    async def _commit(
        self,
        conn: asyncpg.Connection,
        items: Sequence[Any],
        convert: Callable[[Any], ProjectedEvent],
        *,
        ack: Msg | None = None,
    ) -> None:
        """Apply ``items`` (envelopes or stored events, after the checkpoint, in order) in
        memory, then start the transaction that writes their effects with the new
        checkpoint (and acknowledges ``ack``); :meth:`_settle` waits for it."""
        applier = self._applier
        applied_before = applier.applied
        poison = None
        for start in range(0, len(items), _APPLY_CHUNK):
            decoded, poison = applier.decode(items[start : start + _APPLY_CHUNK], convert)
            unloaded = applier.unloaded(decoded)
            if unloaded:
                # Read on another connection: this one is busy with the batch in flight,
                # which cannot have written these states (all it wrote is in the cache).
                await applier.store.load(self._store.pool, unloaded)
            poison = applier.apply(decoded) or poison
            if poison is not None:
                break
            if self._inflight is not None:
                # Let the batch in flight send its next statement: its transaction moves
                # one round trip each time this loop yields.
                await asyncio.sleep(0)
        if poison is None:
            position, recorded = items[-1].position, items[-1].recorded_at
        else:
            prior = [i for i in items if i.position < poison.position]
            position = poison.position - 1
            recorded = prior[-1].recorded_at if prior else None
        # What the batch writes is taken now, so the next batch can be applied meanwhile.
        tables = applier.take()
        parts = [t.parts() for t in tables]
        states = applier.store.encode(applier.batch_states)
        await self._settle(conn)
        # Nothing is in flight here, so trimming cannot drop a state not yet committed.
        applier.store.trim()
        applier.commit()
        batch = _Batch(
            Checkpoint(position, recorded, applier.applied - applied_before, poison),
            ack,
            states,
            tables,
            None if None in parts else [p for p in parts if p is not None],
        )
        self._staged = position
        if len(items) > _PIPELINE_FROM and poison is None:
            task = asyncio.create_task(self._write(conn, batch))
            self._inflight = _InFlight(task, items, convert)
        else:
            await self._written(conn, self._write(conn, batch), items, convert)

    async def _write(self, conn: asyncpg.Connection, batch: _Batch) -> None:
        if batch.parts is not None:
            await self._commit_statement(conn, batch.checkpoint, batch.states, batch.parts)
        else:
            async with self._transaction(conn):
                inline: list[Inserts] = []
                for table in batch.tables:
                    await table.write(conn, inline)
                parts = [(None, rows) for rows in inline]
                await self._commit_statement(conn, batch.checkpoint, batch.states, parts)
        self._position = batch.checkpoint.position
        self.stats.applied += batch.checkpoint.applied
        self.stats.batches += 1
        self._backoff.reset()
        if batch.checkpoint.poison is not None:
            self._stopped_at(batch.checkpoint.poison)
        if batch.ack is not None:
            await batch.ack.ack()

    async def _settle(self, conn: asyncpg.Connection) -> None:
        """Wait for the batch being committed. If its commit failed, nothing applied since
        can be trusted: the states are dropped, and a write PostgreSQL refuses is traced
        to its event (:meth:`_isolate`) before consuming restarts at the checkpoint."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await self._written(conn, inflight.task, inflight.items, inflight.convert)

    async def _written(
        self,
        conn: asyncpg.Connection,
        writing: Awaitable[None],
        items: Sequence[Any],
        convert: Callable[[Any], ProjectedEvent],
    ) -> None:
        """Wait for ``writing``, the transaction of ``items`` (see :meth:`_settle`)."""
        try:
            await writing
        except _POISONOUS as exc:
            self._applier.discard()
            self._staged = self._position
            await self._isolate(conn, items, convert, exc)
            raise _Resync("a batch's writes failed; it was committed event by event") from exc
        except BaseException:
            self._applier.discard()
            raise

    async def _drain(self) -> None:
        """On the way out: let the batch being committed finish (it is redone at the next
        start if it fails)."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return
        try:
            await inflight.task
        except Exception as exc:
            self._applier.discard()
            self._failure("the last batch was not committed; it will be redone", exc)

    async def _isolate(
        self,
        conn: asyncpg.Connection,
        items: Sequence[Any],
        convert: Callable[[Any], ProjectedEvent],
        exc: BaseException,
    ) -> None:
        """A write failed: find the event that causes it by going one event at a time."""
        if len(items) > 1:
            for item in items:
                await self._commit(conn, [item], convert)
                await self._settle(conn)
                if self._phase is RunnerState.FAILED:
                    return
            return
        poison = poison_of(items[0], exc)
        await self._commit_statement(conn, Checkpoint(poison.position - 1, None, 0, poison))
        self._position = self._staged = poison.position - 1
        self._stopped_at(poison)

    def _stopped_at(self, poison: Poison) -> None:
        self._phase = RunnerState.FAILED
        self.stats.last_error = poison.error
        log.error(
            "projection %s stopped at position %d (%s %s on %s): %s; fix the handler, "
            "then clear the failure or rebuild",
            self.projection.name,
            poison.position,
            poison.event_type,
            poison.event_id,
            poison.stream_id,
            poison.error,
        )

    def _claim(self) -> Claim:
        return Claim(self.projection.name, self._generation, self._position)

    async def _commit_statement(
        self,
        conn: asyncpg.Connection,
        checkpoint: Checkpoint,
        states: tuple[list[str], list[bytes]] = ([], []),
        parts: Sequence[tuple[Closes | None, Inserts | None]] = (),
    ) -> None:
        """Commit with one statement (``commit``), or end the transaction in progress with
        it; refuses (:class:`_Resync`) when the status row is no longer the checkpoint and
        generation this runner works from."""
        claimed = await commit_batch(
            conn,
            self._claim(),
            checkpoint,
            channel=self._channel,
            state_table=self.projection.state_table.name,
            states=states,
            writes=parts,
        )
        if not claimed:
            raise _Resync("the status row changed under this runner (a rebuild?)")

    @contextlib.asynccontextmanager
    async def _transaction(self, conn: asyncpg.Connection) -> AsyncIterator[None]:
        """A transaction for a batch too big for one statement: begun, its tables locked
        and the status row claimed in one round trip (``commit.claim_sql``: tables before
        the row, as everywhere); committed when the block ends, rolled back if it raises.
        Refuses (:class:`_Resync`) when the row is no longer the checkpoint and generation
        this runner works from."""
        claim = claim_sql(self._claim(), self.projection.all_tables)
        try:
            claimed = await conn.execute(claim)
            if claimed != "SELECT 1":
                raise _Resync("the status row changed under this runner (a rebuild?)")
            yield
        except BaseException:
            if not conn.is_closed() and conn.is_in_transaction():
                try:
                    await conn.execute("ROLLBACK")
                except BaseException:
                    # Never leave a transaction open on the connection that runs the
                    # next batch: without it, the lock goes too (a standby takes over).
                    conn.terminate()
            raise
        await conn.execute("COMMIT")

    # --- helpers -------------------------------------------------------------------------

    def _failure(self, what: str, exc: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{what}: {exc!r}"
        log.warning("projection %s: %s: %r", self.projection.name, what, exc, exc_info=exc)

    async def _unless_stopped(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Run ``work`` unless :meth:`stop` is called first, which cancels it (a rebuild
        of millions of events must not hold a shutdown); returns whether it finished."""
        task = asyncio.create_task(work)
        stopping = asyncio.create_task(self._leader.wait_stopped())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not task.done():
                task.cancel()
            await asyncio.wait({task})
        if task.cancelled():
            return False
        task.result()
        return True


class StateCacheMetrics(Collector):
    """The state caches of the runners in this process, for Prometheus: read when scraped
    (plain numbers kept by the runners, so a scrape never waits on them)."""

    def __init__(self, runners: Sequence[ProjectionRunner]) -> None:
        self._runners = list(runners)

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "programledger_projection_state_cache_states",
            "Handler states a projection runner holds in memory",
            labels=["projection"],
        )
        limit = GaugeMetricFamily(
            "programledger_projection_state_cache_limit",
            "The most states a runner keeps between batches",
            labels=["projection"],
        )
        size_bytes = GaugeMetricFamily(
            "programledger_projection_state_cache_bytes",
            "Bytes of memory the states a runner holds take (encoded, with keys and entries)",
            labels=["projection"],
        )
        limit_bytes = GaugeMetricFamily(
            "programledger_projection_state_cache_bytes_limit",
            "The most bytes of memory of states a runner keeps between batches",
            labels=["projection"],
        )
        hits = CounterMetricFamily(
            "programledger_projection_state_cache_hits",
            "States a batch found in memory",
            labels=["projection"],
        )
        misses = CounterMetricFamily(
            "programledger_projection_state_cache_misses",
            "States read from the state table (not cached, or evicted)",
            labels=["projection"],
        )
        evictions = CounterMetricFamily(
            "programledger_projection_state_cache_evictions",
            "States evicted, least recently used first, to stay within the limit",
            labels=["projection"],
        )
        for runner in self._runners:
            name = [runner.projection.name]
            counts = runner.cache_counts
            size.add_metric(name, runner.cached_states)
            limit.add_metric(name, runner.state_cache_limit)
            size_bytes.add_metric(name, runner.cached_bytes)
            limit_bytes.add_metric(name, runner.state_cache_bytes)
            hits.add_metric(name, counts.hits)
            misses.add_metric(name, counts.misses)
            evictions.add_metric(name, counts.evictions)
        yield from (size, limit, size_bytes, limit_bytes, hits, misses, evictions)
