"""Rebuild a read model from the PostgreSQL event store, and swap it in without a gap.

The steps, and why:

1. Fresh tables ``<table>__rebuild`` beside the live ones, with only the index that
   writing needs; the API keeps reading the live tables throughout.
2. Read every event in global order with the store's safe read (``read_all_raw``, not
   NATS: the stream may have expired old events), the next page read while this one is
   applied. Current row versions stay in memory until they are closed, so most rows
   are written once, complete, by ``COPY``.
3. Near the head: write what is held, build the query indexes (two at a time, on two
   connections), ``VACUUM ANALYZE``.
4. One transaction: lock the projection's status row (this waits for the live runner's
   batch in flight and holds its next one), read and apply the tail up to the head,
   rename the tables into place, set the checkpoint, bump ``generation`` (the runner
   drops its caches and resumes after the new checkpoint), clear a recorded failure.
   The transaction's own id holds the safe-read horizon, so the tail is a gap-free
   prefix that covers everything the runner can have applied.

Every stream's hash chain is verified while steps 1-3 run (a task of its own, a page of
streams per query); a broken one fails the rebuild with ``BrokenChain`` before step 4, so altered
data never replaces the live tables (nor does a poison event that altered data caused
pass for anything else).

Step 2 is where the time goes, nearly all of it in the handlers (Python, one core). A
projection whose rows and states never mix events of different streams (or programs)
declares that (``Projection.share_key``), and ``rebuild(workers=N)`` then splits step 2
across N processes, each reading its share of the events up to a safe position
(``PostgresEventStore.read_share``) into the same fresh tables; step 4 goes on from
there in this process, reading the states the workers wrote.

One rebuild per projection at a time (a session advisory lock). A poison event fails the
rebuild and leaves the live tables alone.

One module over 500 lines: the steps of one rebuild in order, with the worker processes that
split step 2 and the progress they report, which share its fresh tables and its report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

import programledger
from programledger.adapters.codec import EventCodec
from programledger.adapters.postgres.connection import changes_session, connect, create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore, RawEvent
from programledger.adapters.postgres.verification import verify_streams
from programledger.application.errors import OperationalError
from programledger.application.eventstore import BrokenChain
from programledger.domain.events import EventRegistry
from programledger.projections.engine.core import (
    Applier,
    Connection,
    Poison,
    ProjectedEvent,
    Projection,
    StateStore,
    from_stored,
)
from programledger.projections.engine.storage import (
    REBUILD_SUFFIX,
    create_tables,
    drop_tables,
    ensure_status,
    lock_ddl,
    lock_status,
    lock_tables,
    projection_channel,
    swap_tables,
)
from programledger.projections.engine.tables import Table
from programledger.projections.registry import get_projection

__all__ = [
    "RebuildFailed",
    "RebuildInProgress",
    "RebuildReport",
    "ShareReport",
    "ShareTask",
    "rebuild",
    "run_share",
]

log = logging.getLogger(__name__)

_HELD_LIMIT = 300_000
"""Row versions held open in memory before they are written as current rows."""

_STATES_HELD = 200_000
"""Handler states a rebuild keeps in memory, beyond the live runners' setting: a rebuild
is a job that ends (and frees them), and a rebuild whose states all fit reads none back
from its table. Past it, the least recently used are evicted once what is held is
written (a few hundred MB at most, for the length of the rebuild)."""


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


class RebuildInProgress(OperationalError):
    """Another rebuild of the same projection is running."""


class RebuildFailed(OperationalError):
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
    workers: int = 1,
    database_url: str | None = None,
) -> RebuildReport:
    """Rebuild ``projection_name`` from the event store and swap it in (see the module).

    ``pool`` must allow two connections besides the store's reads. With ``workers`` > 1
    and the ``database_url`` the workers connect to, a projection with a ``share_key`` is
    rebuilt by that many processes (others by this one alone). Raises
    :class:`RebuildInProgress` or :class:`RebuildFailed`.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    projection = get_projection(projection_name)
    shares = (
        _Shares(database_url, workers)
        if workers > 1 and projection.share_key is not None and database_url is not None
        else None
    )
    async with pool.acquire() as conn:
        # A rebuild's statements (reading the store, building indexes) may take as long as
        # the data makes them: the pool's statement timeout is for requests. The lock and
        # the lifted timeout go with the session when the pool resets it.
        changes_session(conn)
        await conn.execute("SET statement_timeout = 0")
        key = f"programledger.rebuild:{store.schema}:{projection.name}"
        if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key):
            raise RebuildInProgress(f"a rebuild of {projection.name} is already running")
        try:
            run = _Rebuild(projection, store, conn, batch_size)
            try:
                return await run.run(progress, shares)
            except BaseException:
                await run.abandon()
                raise
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)


class _Rebuild:
    def __init__(
        self,
        projection: Projection,
        store: PostgresEventStore,
        conn: Connection,
        batch_size: int,
    ) -> None:
        self.projection = projection
        self.store = store
        self.conn = conn
        self.batch_size = batch_size
        states = StateStore(
            projection.state_table.name + REBUILD_SUFFIX,
            projection.states,
            complete=True,
            limit=_STATES_HELD,
            max_bytes=sys.maxsize,
        )
        self.applier = Applier(projection, states, suffix=REBUILD_SUFFIX)
        self.convert: Callable[[RawEvent], ProjectedEvent] = from_stored(store.codec)
        self.position = 0
        self.read = 0

    async def run(self, show: bool, shares: _Shares | None = None) -> RebuildReport:
        started = time.perf_counter()
        conn, projection = self.conn, self.projection
        async with conn.transaction():
            await lock_ddl(conn, projection)
            await ensure_status(conn, projection)
            await drop_tables(conn, projection, suffix=REBUILD_SUFFIX)
            await create_tables(conn, projection, suffix=REBUILD_SUFFIX, indexes=False)
        await self._note_progress(started_now=True)
        checking = asyncio.create_task(_require_intact_store(self.store))
        try:
            with _Bar(show, projection.name, await self.store.head_position()) as bar:
                try:
                    await self._bulk_and_index(bar, shares)
                except RebuildFailed:
                    await checking
                    raise
                await checking
                await self._swap(bar)
        finally:
            if not checking.done():
                checking.cancel()
                with contextlib.suppress(BaseException):
                    await checking
        seconds = time.perf_counter() - started
        log.info(
            "rebuilt %s: %d events to position %d in %.1fs",
            projection.name,
            self.read,
            self.position,
            seconds,
        )
        return RebuildReport(
            projection=projection.name,
            position=self.position,
            events_read=self.read,
            events_applied=self.applier.applied,
            seconds=seconds,
        )

    async def _bulk_and_index(self, bar: _Bar, shares: _Shares | None) -> None:
        if shares is None:
            await self._bulk(bar, self._read_all)
        else:
            await self._bulk_in_shares(bar, shares)
        bar.finishing()
        await self._write_held()
        await self._build_indexes()
        for table in self.projection.all_tables:
            # VACUUM too: a fresh table's visibility map is empty, and without it no
            # count can be answered from an index alone.
            await self.conn.execute(f"VACUUM ANALYZE {table.name + REBUILD_SUFFIX}")

    async def _build_indexes(self) -> None:
        """The query indexes, two builds at a time: each is one backend sorting, and the
        connection the bulk read with is idle now."""
        pending = iter(
            [
                Table.index_sql(table.name + REBUILD_SUFFIX, index)
                for table in self.projection.all_tables
                for index in table.secondary_indexes()
            ]
        )

        async def build(conn: Connection) -> None:
            for sql in pending:
                await conn.execute(sql)

        async with self.store.pool.acquire() as other:
            changes_session(other)
            await other.execute("SET statement_timeout = 0")
            await asyncio.gather(build(self.conn), build(other))

    async def _write_held(self) -> None:
        """Write every row version held in memory (open ones as current rows) and every
        state changed since the last such write."""
        await self.applier.flush(self.conn, write_states=False)
        await self.applier.store.write_dirty(self.conn)

    def _read_all(self, after: int) -> Coroutine[Any, Any, list[RawEvent]]:
        return self.store.read_all_raw(after, self.batch_size)

    async def _bulk(
        self, bar: _Bar | _Reporter, read: Callable[[int], Coroutine[Any, Any, list[RawEvent]]]
    ) -> None:
        """Everything up to (nearly) the head, outside any transaction."""
        applier = self.applier
        # Three things overlap: reading the next page, applying this one, and writing the
        # one before it (the connection serves one statement at a time, so anything else
        # on it waits for the writes first).
        reading = asyncio.create_task(read(0))
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
                    reading = asyncio.create_task(read(self.position))
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
                    await self._write_held()
                    applier.store.trim()
                self.read += len(page)
                bar.advance(self.read, self.position)
                if isinstance(bar, _Bar) and time.perf_counter() - last_note > 1.0:
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

    async def _bulk_in_shares(self, bar: _Bar, shares: _Shares) -> None:
        """Step 2 by ``shares.workers`` processes (``python -m
        programledger.projections.engine.rebuild_share``), each its share of the events up to
        the head as it is now; this process then knows no state but what they wrote."""
        through = await self.store.head_position()
        name = self.projection.name
        workers: list[asyncio.subprocess.Process] = []
        try:
            for share in range(shares.workers):
                worker = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "programledger.projections.engine.rebuild_share",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=_worker_environment(),
                )
                workers.append(worker)
                assert worker.stdin is not None
                # On stdin, not the command line, where anyone could read the URL.
                worker.stdin.write(
                    _task_encoder.encode(
                        ShareTask(
                            shares.database_url,
                            self.store.schema,
                            name,
                            share,
                            shares.workers,
                            through,
                            self.batch_size,
                        )
                    )
                )
                worker.stdin.close()
            reached: dict[int, tuple[int, int]] = {}
            last_note = time.perf_counter()

            def advance(share: int, read: int, position: int) -> None:
                reached[share] = (read, position)
                self.position = min(p for _, p in reached.values())
                bar.advance(sum(r for r, _ in reached.values()), self.position)

            async def note() -> None:
                nonlocal last_note
                if time.perf_counter() - last_note > 1.0:
                    last_note = time.perf_counter()
                    await self._note_progress()

            applied = await asyncio.gather(
                *(_follow(name, share, w, advance, note) for share, w in enumerate(workers))
            )
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                await worker.wait()
        self.position = through
        self.read = int(
            await self.conn.fetchval("SELECT count(*) FROM events WHERE position <= $1", through)
        )
        self.applier.applied = sum(applied)
        self.applier.store.clear()
        bar.advance(self.read, self.position)

    async def _apply(self, page: Sequence[RawEvent]) -> None:
        decoded, poison = self.applier.decode(page, self.convert)
        await self.applier.prepare(self.conn, decoded)
        poison = self.applier.apply(decoded) or poison
        if poison is not None:
            raise RebuildFailed(self.projection.name, poison)

    async def _swap(self, bar: _Bar) -> None:
        conn, projection, applier = self.conn, self.projection, self.applier
        async with conn.transaction():
            # The tables before the status row, as a runner's batch takes them (storage).
            await lock_ddl(conn, projection)
            await lock_tables(conn, projection)
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
            log.warning(
                "could not drop the abandoned rebuild tables of %s: %r", self.projection.name, exc
            )


async def _require_intact_store(store: PostgresEventStore) -> None:
    """Raise :class:`BrokenChain` for the first stream whose hash chain does not hold.

    Streams are checked a page of 64 per query, as ``verify`` checks them: with two per
    query a store of 100,000 events took 22 s (about 7,000 queries), longer than the
    rebuild it guards, which then waited for it; 64 take under 4 s."""
    async for result in verify_streams(store):
        if not result.ok:
            raise BrokenChain(result)


@dataclass(frozen=True, slots=True)
class _Shares:
    database_url: str
    workers: int


class ShareTask(msgspec.Struct, array_like=True):
    """What a worker of a rebuild in shares is to do."""

    database_url: str
    schema: str
    projection: str
    share: int
    shares: int
    through: int
    batch_size: int


class ShareReport(msgspec.Struct, array_like=True):
    """A line a worker writes: ``progress`` (events read, position reached), ``done``
    (events applied), ``poison`` or ``error``."""

    kind: str
    read: int = 0
    position: int = 0
    applied: int = 0
    poison: Poison | None = None
    error: str | None = None


_task_encoder = msgspec.json.Encoder()
_report_decoder = msgspec.json.Decoder(ShareReport)


def _worker_environment() -> dict[str, str]:
    """This process's environment, with the code it runs first on the path: a worker
    must apply the same handlers, whatever is installed.

    The folder that holds the package as this process imported it, links not followed:
    in an editable install that is the link tree, where ``programledger.projections``
    sits inside ``programledger`` (following the links would lead to ``src/``, which
    holds no ``projections``)."""
    code = str(Path(programledger.__file__).parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": code if not path else os.pathsep.join((code, path))}


async def _follow(
    name: str,
    share: int,
    worker: asyncio.subprocess.Process,
    advance: Callable[[int, int, int], None],
    note: Callable[[], Coroutine[Any, Any, None]],
) -> int:
    """Read one worker's reports to its end; the events it applied."""
    assert worker.stdout is not None
    async for line in worker.stdout:
        report = _report_decoder.decode(line)
        if report.kind == "progress":
            advance(share, report.read, report.position)
            await note()
        elif report.kind == "done":
            await worker.wait()
            return report.applied
        elif report.kind == "poison" and report.poison is not None:
            raise RebuildFailed(name, report.poison)
        else:
            raise RuntimeError(f"rebuild worker {share} of {name} failed: {report.error}")
    code = await worker.wait()
    raise RuntimeError(f"rebuild worker {share} of {name} exited with code {code}, unfinished")


async def run_share(
    task: ShareTask, registry: EventRegistry, report: Callable[[ShareReport], None]
) -> None:
    """A worker's part of a rebuild in shares: its share of step 2, then what it holds
    written out (open row versions as current rows, its states), then ``done``; events are
    decoded with ``registry``, the one the worker process builds at its start."""
    projection = get_projection(task.projection)
    key = projection.share_key
    if key is None:
        raise ValueError(f"{projection.name} cannot be rebuilt in shares")
    pool = await create_pool(task.database_url, task.schema, min_size=1, max_size=2)
    conn = await connect(task.database_url, task.schema)
    try:
        store = PostgresEventStore(pool, EventCodec(registry), schema=task.schema)
        run = _Rebuild(projection, store, conn, task.batch_size)

        def read(after: int) -> Coroutine[Any, Any, list[RawEvent]]:
            return store.read_share(
                after,
                task.through,
                event_types=projection.handles,
                key=key,
                shares=task.shares,
                share=task.share,
                limit=task.batch_size,
            )

        try:
            await run._bulk(_Reporter(report), read)
        except RebuildFailed as exc:
            report(ShareReport("poison", poison=exc.poison))
            return
        await run._write_held()
        report(ShareReport("done", applied=run.applier.applied))
    finally:
        await conn.close()
        await pool.close()


class _Reporter:
    """A worker's progress, reported a few times a second."""

    def __init__(self, report: Callable[[ShareReport], None]) -> None:
        self._report = report
        self._sent = 0.0

    def advance(self, read: int, position: int) -> None:
        if time.perf_counter() - self._sent > 0.25:
            self._sent = time.perf_counter()
            self._report(ShareReport("progress", read=read, position=position))


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
        self._task = (
            None
            if self._progress is None
            else self._progress.add_task(name, total=self._head, rate=0.0)
        )

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
