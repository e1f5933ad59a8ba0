"""Rebuild a read model from the PostgreSQL event store, and swap it in without a gap.

The steps, and why:

1. Fresh tables ``<table>__rebuild`` beside the live ones, with only the index that
   writing needs; the API keeps reading the live tables throughout.
2. Read every event in global order with the store's safe read (``read_all_raw``, not
   NATS: the stream may have expired old events), the next page read while this one is
   applied. Current row versions stay in memory until they are closed, so most rows
   are written once, complete, by ``COPY``.
3. Near the head: write what is held, build the query indexes, ``VACUUM ANALYZE``.
4. One transaction: lock the projection's status row (this waits for the live runner's
   batch in flight and holds its next one), read and apply the tail up to the head,
   rename the tables into place, set the checkpoint, bump ``generation`` (the runner
   drops its caches and resumes after the new checkpoint), clear a recorded failure.
   The transaction's own id holds the safe-read horizon, so the tail is a gap-free
   prefix that covers everything the runner can have applied.

One rebuild per projection at a time (a session advisory lock). A poison event fails the
rebuild and leaves the live tables alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from programledger.adapters.postgres.eventstore import PostgresEventStore, RawEvent
from programledger.projections.core import (
    Applier,
    Connection,
    Poison,
    ProjectedEvent,
    Projection,
    StateStore,
    from_stored,
)
from programledger.projections.registry import get_projection
from programledger.projections.storage import (
    REBUILD_SUFFIX,
    create_tables,
    drop_tables,
    ensure_status,
    lock_ddl,
    lock_status,
    projection_channel,
    secondary_indexes,
    swap_tables,
)

__all__ = ["RebuildFailed", "RebuildInProgress", "RebuildReport", "rebuild"]

log = logging.getLogger(__name__)

_HELD_LIMIT = 300_000
"""Row versions held open in memory before they are written as current rows."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    projection: str
    position: int
    """The checkpoint the rebuilt tables start from."""
    events_read: int
    events_applied: int
    """Events of the types the projection handles."""
    seconds: float

    @property
    def rate(self) -> float:
        """Events read per second."""
        return self.events_read / self.seconds if self.seconds > 0 else 0.0


class RebuildInProgress(RuntimeError):
    """Another rebuild of the same projection is running."""


class RebuildFailed(RuntimeError):
    """An event's handler failed; the live tables were left as they were."""

    def __init__(self, projection: str, poison: Poison) -> None:
        super().__init__(
            f"rebuilding {projection} failed at position {poison.position} "
            f"({poison.event_type} on {poison.stream_id}): {poison.error}"
        )
        self.poison = poison


async def rebuild(
    pool: asyncpg.Pool,
    store: PostgresEventStore,
    projection_name: str,
    progress: bool = True,
    *,
    batch_size: int = 5000,
) -> RebuildReport:
    """Rebuild ``projection_name`` from the event store and swap it in (see the module).

    ``pool`` must allow two connections besides the store's reads. Raises
    :class:`RebuildInProgress` or :class:`RebuildFailed`.
    """
    projection = get_projection(projection_name)
    async with pool.acquire() as conn:
        key = f"programledger.rebuild:{store.schema}:{projection.name}"
        if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key):
            raise RebuildInProgress(f"a rebuild of {projection.name} is already running")
        try:
            run = _Rebuild(projection, store, conn, batch_size)
            try:
                return await run.run(progress)
            except BaseException:
                await run.abandon()
                raise
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)


class _Rebuild:
    def __init__(
        self, projection: Projection, store: PostgresEventStore, conn: Connection,
        batch_size: int,
    ) -> None:  # fmt: skip
        self.projection = projection
        self.store = store
        self.conn = conn
        self.batch_size = batch_size
        states = StateStore(
            projection.state_table.name + REBUILD_SUFFIX, projection.states, complete=True
        )
        self.applier = Applier(projection, states, suffix=REBUILD_SUFFIX)
        self.convert: Callable[[RawEvent], ProjectedEvent] = from_stored(store.codec)
        self.position = 0
        self.read = 0

    async def run(self, show: bool) -> RebuildReport:
        started = time.perf_counter()
        conn, projection = self.conn, self.projection
        async with conn.transaction():
            await lock_ddl(conn, projection)
            await ensure_status(conn, projection)
            await drop_tables(conn, projection, suffix=REBUILD_SUFFIX)
            await create_tables(conn, projection, suffix=REBUILD_SUFFIX, indexes=False)
        await self._note_progress(started_now=True)
        with _Bar(show, projection.name, await self.store.head_position()) as bar:
            await self._bulk(bar)
            bar.finishing()
            await self.applier.flush(conn, write_states=False)
            await self.applier.store.write_dirty(conn)
            await secondary_indexes(conn, projection, suffix=REBUILD_SUFFIX)
            for table in projection.all_tables:
                # VACUUM too: a fresh table's visibility map is empty, and without it no
                # count can be answered from an index alone.
                await conn.execute(f"VACUUM ANALYZE {table.name + REBUILD_SUFFIX}")
            await self._swap(bar)
        seconds = time.perf_counter() - started
        log.info("rebuilt %s: %d events to position %d in %.1fs",
                 projection.name, self.read, self.position, seconds)  # fmt: skip
        return RebuildReport(
            projection=projection.name,
            position=self.position,
            events_read=self.read,
            events_applied=self.applier.applied,
            seconds=seconds,
        )

    async def _bulk(self, bar: _Bar) -> None:
        """Everything up to (nearly) the head, outside any transaction."""
        store, applier = self.store, self.applier
        # Three things overlap: reading the next page, applying this one, and writing the
        # one before it (the connection serves one statement at a time, so anything else
        # on it waits for the writes first).
        reading = asyncio.create_task(store.read_all_raw(0, self.batch_size))
        writing: asyncio.Task[None] | None = None
        last_note = time.perf_counter()
        try:
            while True:
                page = await reading
                if not page:
                    return
                self.position = page[-1].position
                full = len(page) == self.batch_size
                if full:
                    reading = asyncio.create_task(
                        store.read_all_raw(self.position, self.batch_size)
                    )
                if not applier.store.complete and writing is not None:
                    await writing
                await self._apply(page)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(
                    applier.flush(self.conn, keep_open=True, write_states=False)
                )
                applier.commit(dirty=True)
                if applier.pending() > _HELD_LIMIT:
                    await writing
                    await applier.flush(self.conn, write_states=False)
                    await applier.store.write_dirty(self.conn)
                    applier.store.trim()
                self.read += len(page)
                bar.advance(self.read, self.position)
                if time.perf_counter() - last_note > 1.0:
                    await writing
                    last_note = time.perf_counter()
                    await self._note_progress()
                if not full:
                    return
        finally:
            if not reading.done():
                reading.cancel()
            if writing is not None:
                await writing

    async def _apply(self, page: Sequence[RawEvent]) -> None:
        decoded, poison = self.applier.decode(page, self.convert)
        await self.applier.prepare(self.conn, decoded)
        poison = self.applier.apply(decoded) or poison
        if poison is not None:
            raise RebuildFailed(self.projection.name, poison)

    async def _swap(self, bar: _Bar) -> None:
        conn, projection, applier = self.conn, self.projection, self.applier
        async with conn.transaction():
            live = await lock_status(conn, projection)
            while True:
                page = await self.store.read_all_raw(self.position, self.batch_size)
                if not page:
                    break
                await self._apply(page)
                await applier.flush(conn)
                applier.commit()
                self.position = page[-1].position
                self.read += len(page)
                bar.advance(self.read, self.position)
            if live.position > self.position:
                raise RuntimeError(
                    f"{projection.name}: the live checkpoint {live.position} is past the "
                    f"event store's head {self.position}: is it another store's?"
                )
            await swap_tables(conn, projection)
            await conn.execute(
                """
                UPDATE projection_status SET position = $2,
                    position_recorded_at = (SELECT recorded_at FROM events WHERE position = $2),
                    generation = generation + 1, definition = $3, events_applied = $4,
                    state = CASE WHEN state = 'failed' THEN 'idle' ELSE state END,
                    error = NULL, failed_position = NULL, failed_event_id = NULL,
                    failed_event_type = NULL, failed_stream_id = NULL, failed_at = NULL,
                    rebuild_started_at = NULL, rebuild_position = NULL, rebuilt_at = now(),
                    updated_at = now()
                WHERE name = $1
                """,
                projection.name,
                self.position,
                projection.definition(),
                applier.applied,
            )
            await conn.execute(
                "SELECT pg_notify($1, $2)",
                projection_channel(self.store.schema),
                f"{projection.name}:{self.position}",
            )

    async def _note_progress(self, *, started_now: bool = False) -> None:
        started = ", rebuild_started_at = now()" if started_now else ""
        await self.conn.execute(
            f"UPDATE projection_status SET rebuild_position = $2{started} WHERE name = $1",
            self.projection.name,
            self.position,
        )

    async def abandon(self) -> None:
        """Leave no half-built tables behind (best effort: the connection may be gone)."""
        try:
            async with self.conn.transaction():
                await lock_ddl(self.conn, self.projection)
                await drop_tables(self.conn, self.projection, suffix=REBUILD_SUFFIX)
                await self.conn.execute(
                    "UPDATE projection_status SET rebuild_started_at = NULL, "
                    "rebuild_position = NULL WHERE name = $1",
                    self.projection.name,
                )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("could not drop the abandoned rebuild tables of %s: %r",
                        self.projection.name, exc)  # fmt: skip


class _Bar:
    """A rich progress bar with rate and time left, or nothing when not wanted."""

    def __init__(self, show: bool, name: str, head: int) -> None:
        self._progress = (
            Progress(
                TextColumn("[bold]rebuild {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>10,.0f} events/s"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
            )
            if show
            else None
        )
        self._name = name
        self._head = max(head, 1)
        self._started = time.perf_counter()
        self._task = None if self._progress is None else self._progress.add_task(
            name, total=self._head, rate=0.0
        )  # fmt: skip

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, read: int, position: int) -> None:
        if self._progress is None or self._task is None:
            return
        self._head = max(self._head, position)
        rate = read / max(time.perf_counter() - self._started, 1e-9)
        self._progress.update(self._task, completed=position, total=self._head, rate=rate)

    def finishing(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=f"{self._name} (indexes, swap)")
