"""Write-combining: the appends waiting in one process go to PostgreSQL in one transaction.

A commit costs a WAL flush, and small commands (one to three events) spend most of their
time waiting for it: the commit rate, not the work, limits how many commands a process can
record. The combiner sends the first append at once, on its caller's own task, so an idle
store adds no latency. Appends that arrive while ``max_in_flight`` transactions are running
queue up, and as soon as one of those transactions ends, the queue goes out as the next one:
one call of ``append_batch``, one commit that answers every command in it.

Not all of the queue, though, when it holds most of the commands the process is running.
Then one transaction answers nearly all of them at once, they all go back to Python
together (wake, load, decide) while PostgreSQL idles, and come back together while Python
idles: the process and the server take turns instead of working side by side. At 128
concurrent commands the transactions alternated between ~126 commands and the 2 that had
missed the last one, and each side was busy half the time. So a transaction takes at most
half of the commands just answered and queued, and the other half decides while it runs:
the two halves alternate, and the same machine made 15-17k commands a second instead of
9.5-11k (bench/append.py, ``commands_128c``). A small queue is not halved
(``SPLIT_ABOVE``): there a transaction's fixed cost outweighs the overlap.

``append_batch`` judges each command on its own (stream lock, expected version, idempotency
key), so one conflict fails that command only. An error that fails the whole call (the
event catalogue, data PostgreSQL refuses, a duplicate key within one call) wrote nothing;
the commands are then sent again one by one, so that only the culprit fails. An error of the
connection or the server (a restart, ``pg_terminate_backend``, a statement timeout) reaches
every caller of the transaction, which was rolled back as a whole: each may retry.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

__all__ = [
    "MAX_BATCH_EVENTS",
    "MAX_BATCH_STREAMS",
    "SPLIT_ABOVE",
    "AppendCombiner",
    "PendingAppend",
    "StreamReads",
    "batch_arguments",
    "one_arguments",
    "splits_a_batch",
]

MAX_BATCH_EVENTS = 1000
"""A transaction carries commands up to this many events (one command may carry more)."""

SPLIT_ABOVE = 16
"""The queue is halved only when it and the commands just answered are more than this."""

MAX_BATCH_STREAMS = 200
"""A combined stream read asks for at most this many streams."""


@dataclass(eq=False, slots=True)
class PendingAppend:
    """One command's append as ``append_batch`` takes it, and where its outcome goes."""

    stream_id: str
    stream_type: str
    expected: int | None
    event_ids: list[Any]
    event_types: list[str]
    schema_versions: list[int]
    data: list[bytes]
    metadata: bytes
    program_id: Any
    idempotency_key: str | None
    fingerprint: bytes | None
    outcome: asyncio.Future[asyncpg.Record] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def one_arguments(pending: PendingAppend) -> tuple[Any, ...]:
    """``append_events``' eleven arguments: the one-command form, leaner for one command."""
    return (
        pending.stream_id,
        pending.stream_type,
        pending.expected,
        pending.event_ids,
        pending.event_types,
        pending.schema_versions,
        pending.data,
        pending.metadata,
        pending.program_id,
        pending.idempotency_key,
        pending.fingerprint,
    )


def batch_arguments(batch: Sequence[PendingAppend]) -> tuple[list[Any], ...]:
    """``append_batch``'s twelve arrays: per command, then per event."""
    return (
        [p.stream_id for p in batch],
        [p.stream_type for p in batch],
        [p.expected for p in batch],
        [p.metadata for p in batch],
        [p.program_id for p in batch],
        [p.idempotency_key for p in batch],
        [p.fingerprint for p in batch],
        [len(p.event_ids) for p in batch],
        [i for p in batch for i in p.event_ids],
        [t for p in batch for t in p.event_types],
        [v for p in batch for v in p.schema_versions],
        [d for p in batch for d in p.data],
    )


def splits_a_batch(exc: BaseException) -> bool:
    """Whether a batch that failed with ``exc`` should be sent again one command at a time:
    the failure lies in some command's content (data, a constraint, the catalogue, a size
    limit), which the others need not share. Anything else (connection, server, timeout)
    would fail them one by one just the same."""
    code = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and (
        code[:2] in {"22", "23", "54"} or code.startswith("PL4")
    )


class AppendCombiner:
    """Runs appends through ``execute``, combining those that wait into one transaction.

    ``execute(batch)`` runs one transaction and answers one row per command, in the
    batch's order (or raises, for a batch of one, the error that refused it).
    With ``max_in_flight=None`` nothing is combined: every append is its own transaction.
    ``answering()`` is called in the step that answers several commands of one
    transaction at once, whose callers then resume together (``StreamReads.resuming``).

    A transaction's slot is given up as soon as PostgreSQL has answered, before its
    callers resume: the queue goes out as the next transaction while this one's callers
    finish their commands, instead of after them (one transaction in flight, 32 concurrent
    commands: 11.6k a second with the callers first, 12.5k this way).
    """

    def __init__(
        self,
        execute: Callable[[Sequence[PendingAppend]], Awaitable[Sequence[asyncpg.Record]]],
        *,
        max_in_flight: int | None,
        answering: Callable[[], None] | None = None,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1 (or None: no combining)")
        self._execute = execute
        self._max = max_in_flight
        self._answering = answering
        self._queue: deque[PendingAppend] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.sizes: Counter[int] = Counter()
        """Transactions sent so far by the commands each carried: how combining behaves.
        Whole distributions, not means: a queue that moves as one wave shows as batches
        of 2 and of nearly all commands, whose mean looks like a healthy middle."""

    @property
    def transactions(self) -> int:
        """Transactions sent so far."""
        return self.sizes.total()

    @property
    def commands(self) -> int:
        """Commands those transactions carried."""
        return sum(size * n for size, n in self.sizes.items())

    @property
    def in_flight(self) -> int:
        """Append transactions running now."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Appends queued for the next transaction."""
        return len(self._queue)

    async def append(self, pending: PendingAppend) -> asyncpg.Record:
        """The row ``append_batch`` returned for ``pending``, or the batch's error."""
        if self._max is None or (self._in_flight < self._max and not self._queue):
            # Nobody is waiting: go now, on the caller's task.
            self._in_flight += 1
            await self._run([pending])
            return pending.outcome.result()
        self._queue.append(pending)
        return await pending.outcome

    def _start_next(self, answered: int) -> None:
        while self._max is not None and self._in_flight < self._max and self._queue:
            batch = self._take(answered)
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._drain(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self, answered: int) -> list[PendingAppend]:
        """The queue's head, up to ``MAX_BATCH_EVENTS`` and to half of the queue and the
        ``answered`` commands of the transaction that just ended (see the module's
        docstring), one command per idempotency key (a repeat waits for the next
        transaction, where it finds the first one's record)."""
        batch: list[PendingAppend] = []
        deferred: list[PendingAppend] = []
        keys: set[str] = set()
        events = 0
        cycling = len(self._queue) + answered
        most = (cycling + 1) // 2 if cycling > SPLIT_ABOVE else MAX_BATCH_EVENTS
        while self._queue:
            pending = self._queue[0]
            if batch and (len(batch) == most or events + len(pending.event_ids) > MAX_BATCH_EVENTS):
                break
            self._queue.popleft()
            if pending.outcome.done():  # its caller was cancelled while it waited
                continue
            key = pending.idempotency_key
            if key is not None and key in keys:
                deferred.append(pending)
                continue
            if key is not None:
                keys.add(key)
            batch.append(pending)
            events += len(pending.event_ids)
        self._queue.extendleft(reversed(deferred))
        return batch

    async def _run(self, batch: list[PendingAppend]) -> None:
        """``batch``, on its caller's task: the slot goes to a task of the combiner's as
        soon as PostgreSQL has answered, before the caller hears back."""
        try:
            settled = await self._attempt(batch)
        except asyncio.CancelledError:
            _cancel(batch)
            raise
        finally:
            self._in_flight -= 1
            self._start_next(len(batch))
        self._answer(settled)

    def _answer(
        self, settled: Sequence[tuple[PendingAppend, asyncpg.Record | BaseException]]
    ) -> None:
        _settle(settled)
        if len(settled) > 1 and self._answering is not None:
            self._answering()

    async def _drain(self, batch: list[PendingAppend]) -> None:
        """``batch``, then the queue's next and so on while there is one, in the slot taken
        for it: each transaction goes out in the step of the event loop that hears the last
        one's answer, where a task of its own would first wait behind every callback
        already queued in the loop (128 concurrent commands: 16.7k-17.0k a second against
        16.1k-16.6k, alternating; 32: 7.9k-8.1k against 7.6k-7.9k)."""
        try:
            while batch:
                try:
                    settled = await self._attempt(batch)
                except asyncio.CancelledError:
                    _cancel(batch)
                    raise
                self._answer(settled)
                batch = self._take(len(batch))
        finally:
            self._in_flight -= 1
            self._start_next(len(batch))

    async def _attempt(
        self, batch: list[PendingAppend]
    ) -> list[tuple[PendingAppend, asyncpg.Record | BaseException]]:
        """Each command's row or error, for the caller to settle; a batch sent again one
        command at a time settles each as it goes, so a cancellation midway (a shutdown)
        leaves the commands already written with their results."""
        self.sizes[len(batch)] += 1
        try:
            rows = await self._execute(batch)
        except Exception as exc:
            if len(batch) > 1 and splits_a_batch(exc):
                for pending in batch:
                    if not pending.outcome.done():
                        _settle(await self._attempt([pending]))
                return []
            return [(pending, exc) for pending in batch]
        return list(zip(batch, rows, strict=True))


def _cancel(batch: Sequence[PendingAppend]) -> None:
    for pending in batch:
        pending.outcome.cancel()


def _settle(settled: Sequence[tuple[PendingAppend, asyncpg.Record | BaseException]]) -> None:
    for pending, result in settled:
        if pending.outcome.done():
            continue
        if isinstance(result, BaseException):
            pending.outcome.set_exception(result)
        else:
            pending.outcome.set_result(result)


class StreamReads:
    """Whole-stream reads, combined like appends: one query for all the streams asked for,
    one per stream however many callers asked for it. A command loads its stream before it
    appends, so with only appends combined, a busy process would queue its loads for
    connections instead.

    A read that finds a query free goes at once, on its caller's task, as it would with
    nothing combined, except in a step where a combined append has just answered several
    commands (``resuming``): those all resume in the next step and each loads its stream
    for its next command there. Sent at once, the first of them went alone, the second too
    (two in flight) and the rest in a third query; so in that step a read goes at its end,
    and they go as one (32 concurrent commands, alternating runs: three read queries per
    append transaction became one, the client's CPU fell from 68-79% of a core to 63-72%,
    and 9.5-10.4k commands a second became 9.8-11.2k). Every read went at the end of its
    step before, which cost a lone command a task and two turns of the event loop: at 10
    random commands a second, 2.16 against 2.09 ms on average over a store with nothing
    combined, 2.32 against 2.31 ms since (docs/architecture.md). Reads that arrive while
    ``max_in_flight`` queries run wait for the next.

    Every caller asked before its query started, so it sees every commit made before it
    asked (a caller reads its own writes). Each waits on a future of its own, so one
    caller's cancellation leaves the others' shared read alone.
    """

    def __init__(
        self,
        fetch: Callable[[list[str]], Awaitable[dict[str, list[asyncpg.Record]]]],
        *,
        max_in_flight: int | None,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1 (or None: no combining)")
        self._fetch = fetch
        self._max = max_in_flight
        self._queue: dict[str, list[asyncio.Future[list[asyncpg.Record]]]] = {}
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.sizes: Counter[int] = Counter()
        """Queries sent so far by the reads each answered (callers, not streams): how
        combining behaves, as ``AppendCombiner.sizes`` shows it for appends."""
        self.reads = 0
        """Reads asked for so far, answered or waiting."""
        self._resuming = False

    @property
    def queries(self) -> int:
        """Queries sent so far."""
        return self.sizes.total()

    async def read(self, stream_id: str) -> list[asyncpg.Record]:
        """The stream's rows in version order."""
        self.reads += 1
        if self._max is None or (
            not self._queue and self._in_flight < self._max and not self._resuming
        ):
            return await self._alone(stream_id)
        loop = asyncio.get_running_loop()
        if not self._queue and self._in_flight < self._max:
            loop.call_soon(self._start_next)
        waiting: asyncio.Future[list[asyncpg.Record]] = loop.create_future()
        self._queue.setdefault(stream_id, []).append(waiting)
        return await waiting

    def resuming(self) -> None:
        """Several commands were answered in this step and resume together in the next:
        reads asked for there wait for its end and go as one query."""
        if not self._resuming:
            self._resuming = True
            # Queued behind the wake-ups of the callers just answered: runs after them.
            asyncio.get_running_loop().call_soon(self._resumed)

    def _resumed(self) -> None:
        self._resuming = False

    async def _alone(self, stream_id: str) -> list[asyncpg.Record]:
        """One stream, on the caller's task, in a slot of its own (with nothing combined,
        slots bound nothing)."""
        self._in_flight += 1
        self.sizes[1] += 1
        try:
            return (await self._fetch([stream_id])).get(stream_id, [])
        finally:
            self._in_flight -= 1
            self._start_next()

    def _start_next(self) -> None:
        while self._max is not None and self._in_flight < self._max and self._queue:
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._drain(self._take()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> dict[str, list[asyncio.Future[list[asyncpg.Record]]]]:
        return {
            stream_id: self._queue.pop(stream_id)
            for stream_id in list(self._queue)[:MAX_BATCH_STREAMS]
        }

    async def _drain(self, batch: dict[str, list[asyncio.Future[list[asyncpg.Record]]]]) -> None:
        """``batch``, then the queue's next and so on, in the slot taken for it: like the
        appends, the next query goes out in the step that hears the last one's answer."""
        try:
            while batch:
                self.sizes[sum(len(waiting) for waiting in batch.values())] += 1
                found: dict[str, list[asyncpg.Record]] | BaseException
                try:
                    found = await self._fetch(list(batch))
                except asyncio.CancelledError as exc:
                    _answer(batch, exc)
                    raise
                except Exception as exc:
                    found = exc
                _answer(batch, found)
                batch = self._take()
        finally:
            self._in_flight -= 1
            self._start_next()


def _answer(
    batch: dict[str, list[asyncio.Future[list[asyncpg.Record]]]],
    found: dict[str, list[asyncpg.Record]] | BaseException,
) -> None:
    """Every caller still waiting hears its stream's rows, the query's error, or that the
    read was cancelled (a shutdown); one that gave up waiting is skipped."""
    for stream_id, waiting in batch.items():
        for future in waiting:
            if future.done():
                continue
            if isinstance(found, asyncio.CancelledError):
                future.cancel()
            elif isinstance(found, BaseException):
                future.set_exception(found)
            else:
                future.set_result(found.get(stream_id, []))
