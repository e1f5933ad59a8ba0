"""Read your writes in milliseconds: one LISTEN connection per process, fanned out.

A runner commits each batch with a ``pg_notify`` naming the projection and its new
checkpoint (``<name>:<position>``, ``:failed`` appended when it stopped at a poison
event). A :class:`ProgressWatch` keeps one connection of its own LISTENing to that
channel, remembers where every projection stands, and wakes exactly the waiters whose
read models reached their position: a wait costs no pooled connection and no polling,
and ends a fraction of a millisecond after the commit that satisfies it.

The watch also guards the process against waits that cannot end well:

- a position beyond the store's head is refused at once (:class:`PositionAhead`): no
  commit will ever satisfy it before the timeout, and holding the request would only
  tie up the replica;
- at most ``max_waiters`` requests wait at once (:class:`TooManyWaiting`), so a burst of
  waits that cannot be satisfied (a stopped projection) cannot pile up without bound;
- a projection that failed below the position ends its waiters at once: it will not get
  there without an operator.

Notifications can be missed (the listening connection drops and reconnects); while
anyone waits, the statuses are read again every ``refresh_interval`` on the same
connection, so a missed one costs at most that long, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from programledger.projections.engine.queries import resolve_position
from programledger.projections.engine.storage import projection_channel, wanted_channel
from programledger.projections.registry import PROJECTIONS

__all__ = [
    "PositionAhead",
    "ProgressWatch",
    "TooManyWaiting",
    "WaitOutcome",
    "projections_for_event_types",
    "projections_for_stream_type",
]

log = logging.getLogger(__name__)

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PositionAhead(ValueError):
    """The position asked for is beyond the last event the store holds."""

    def __init__(self, position: int, head: int) -> None:
        super().__init__(
            f"position {position} is beyond the event store's head ({head}): use a position "
            "a mutation returned"
        )
        self.position = position
        self.head = head


class TooManyWaiting(RuntimeError):
    """This process already has as many requests waiting for the read models as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} requests are already waiting for the read models on this server; "
            "retry shortly"
        )
        self.limit = limit


@dataclass(frozen=True, slots=True)
class WaitOutcome:
    behind: tuple[str, ...] = ()
    """The read models that had not reached the position when the wait ended."""

    @property
    def caught_up(self) -> bool:
        return not self.behind


def projections_for_event_types(event_types: Iterable[str]) -> frozenset[str]:
    """The read models whose rows an event of ``event_types`` can change: the only ones
    a write of them can change, so the only ones read-your-writes has to wait for (one
    that merely folds such an event into its states shows the same rows either way)."""
    wanted = set(event_types)
    return frozenset(name for name, p in PROJECTIONS.items() if p.changed_by & wanted)


def projections_for_stream_type(stream_type: str) -> frozenset[str]:
    """The read models fed by streams of ``stream_type`` (for a command that wrote
    nothing: what it saw was written by events of that stream)."""
    return frozenset(name for name, p in PROJECTIONS.items() if stream_type in p.stream_types)


@dataclass(eq=False, slots=True)
class _Waiter:
    position: int
    names: frozenset[str]
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ProgressWatch:
    """Where each projection stands, kept current by NOTIFY; waits for positions.

    ``pool`` is used only for the rare head check (a position beyond the last append
    announced on ``events_channel``, the store's NOTIFY channel) and to find the position
    of a time when the read models waited for lag; ``connect`` opens the watch's own
    listening connection. Started by the first :meth:`wait`, stopped by :meth:`close`.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        schema: str,
        events_channel: str | None = None,
        max_waiters: int = 500,
        refresh_interval: float = 1.0,
        statement_timeout: float = 5.0,
    ) -> None:
        self._pool = pool
        self._connect = connect
        self._channel = projection_channel(schema)
        self._wanted_channel = wanted_channel(schema)
        self._announced = 0
        self._announcing: set[asyncio.Task[None]] = set()
        self._events_channel = events_channel
        self.max_waiters = max_waiters
        self._refresh_interval = refresh_interval
        self._statement_timeout = statement_timeout
        self._positions: dict[str, int] = {}
        self._failed: set[str] = set()
        self._head = 0
        self._waiters: set[_Waiter] = set()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._someone_waits = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Requests waiting now."""
        return len(self._waiters)

    async def wait(
        self,
        position: int | datetime,
        timeout: float,  # noqa: ASYNC109 - the API's contract: a bounded wait
        projections: Iterable[str] | None = None,
        *,
        committed: bool = False,
    ) -> WaitOutcome:
        """Wait until each named read model (default: all) has reached ``position``, at
        most ``timeout`` seconds; the outcome names those that had not.

        ``committed`` says the caller knows ``position`` is in the store (it just wrote
        it), which spares the head check. A time stands for the last position recorded
        at or before it (what a read ``asOf`` that time reads as of). Raises
        :class:`PositionAhead` and :class:`TooManyWaiting` (see the module).
        """
        names = frozenset(PROJECTIONS if projections is None else projections)
        self._start()
        if isinstance(position, datetime):
            at = await self._position_at(position, names)
            if at is None:
                return WaitOutcome()
            position, committed = at, True
        if committed:
            self._head = max(self._head, position)
        elif position > self._head:
            await self._check_head(position)
        if not names or not self._behind(names, position):
            # The watch knows every one of them is there: no wait, no round trip.
            return WaitOutcome()
        with contextlib.suppress(TimeoutError):
            # A fresh watch has not read the statuses yet; a reconnecting one waits here.
            await asyncio.wait_for(self._connected.wait(), timeout)
        behind = self._behind(names, position)
        if not behind or behind & self._failed:
            return WaitOutcome(tuple(sorted(behind)))
        if len(self._waiters) >= self.max_waiters:
            raise TooManyWaiting(self.max_waiters)
        waiter = _Waiter(position, names)
        self._waiters.add(waiter)
        self._someone_waits.set()
        self._announce(position)
        try:
            # asyncio.timeout, not wait_for: no task between the commit's notification and
            # this request, which would cost it another turn of a busy event loop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await waiter.done.wait()
        finally:
            self._waiters.discard(waiter)
        return WaitOutcome(tuple(sorted(self._behind(names, position))))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiter in self._waiters:
            waiter.done.set()

    # --- internals -----------------------------------------------------------------------

    def _announce(self, position: int) -> None:
        """Tell the runners someone waits for ``position`` (:func:`wanted_channel`), so
        that they commit at once instead of gathering more events first. One
        notification per furthest position wanted: waiters for positions at or below it
        are served by the same hurry. Sent beside the wait, on a pooled connection; a
        lost one costs that wait at most the runners' commit interval."""
        if position <= self._announced:
            return
        self._announced = position
        task = asyncio.create_task(self._notify_wanted(position))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _notify_wanted(self, position: int) -> None:
        try:
            await self._pool.execute(
                "SELECT pg_notify($1, $2)", self._wanted_channel, str(position)
            )
        except _DB_ERRORS as exc:
            log.debug("could not ask the runners to hurry to %d: %s", position, exc)

    async def _position_at(self, at: datetime, names: frozenset[str]) -> int | None:
        """The position a read as of ``at`` reads at, when the read models might not have
        reached it; ``None`` when they have every event announced so far, which spares
        the query on the common path (a past moment, read models keeping up). Only a
        watch that hears the store's appends (``events_channel``) knows that head."""
        known = self._events_channel is not None and self._connected.is_set()
        if known and not self._behind(names, self._head):
            return None
        async with self._pool.acquire() as conn:
            position = await resolve_position(conn, at)
        return position or None

    def _behind(self, names: frozenset[str], position: int) -> set[str]:
        return {n for n in names if self._positions.get(n, 0) < position}

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="projection-progress-watch")

    async def _check_head(self, position: int) -> None:
        async with self._pool.acquire() as conn:
            head = await conn.fetchval(
                "SELECT coalesce(max(position), 0) FROM events",
                timeout=self._statement_timeout,
            )
        self._head = max(self._head, int(head))
        if position > self._head:
            raise PositionAhead(position, self._head)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        name, _, rest = str(payload).partition(":")
        position_text, _, state = rest.partition(":")
        try:
            position = int(position_text)
        except ValueError:
            return
        self._moved(name, position, failed=state == "failed")

    def _on_append(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        with contextlib.suppress(ValueError):
            self._head = max(self._head, int(str(payload)))

    def _moved(self, name: str, position: int, *, failed: bool) -> None:
        self._positions[name] = max(position, self._positions.get(name, 0))
        self._head = max(self._head, position)
        if failed:
            self._failed.add(name)
        else:
            self._failed.discard(name)
        for waiter in self._waiters:
            if name not in waiter.names:
                continue
            behind = self._behind(waiter.names, waiter.position)
            if not behind or behind & self._failed:
                waiter.done.set()

    def _on_lost(self, lost: asyncio.Event, _conn: object) -> None:
        lost.set()
        self._connected.clear()
        self._someone_waits.set()

    async def _refresh(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT name, position, state FROM projection_status",
            timeout=self._statement_timeout,
        )
        for row in rows:
            # A rebuild swapped in may set a checkpoint below the one notified last; the
            # status row is the truth.
            self._positions[row["name"]] = row["position"]
        for row in rows:
            self._moved(row["name"], row["position"], failed=row["state"] == "failed")

    async def _listen(self) -> None:
        """Keep a listening connection for as long as the watch runs, reconnecting with
        backoff; waiters keep waiting (up to their timeout) while it is away."""
        delay = 0.2
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._connect()
                lost = asyncio.Event()
                conn.add_termination_listener(functools.partial(self._on_lost, lost))
                await conn.add_listener(self._channel, self._on_notify)
                if self._events_channel is not None:
                    await conn.add_listener(self._events_channel, self._on_append)
                await self._refresh(conn)
                self._connected.set()
                delay = 0.2
                while not lost.is_set():
                    self._someone_waits.clear()
                    if self._waiters:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(lost.wait(), self._refresh_interval)
                        # Only for someone still waiting: those who waited a moment ago
                        # have their answer.
                        if not lost.is_set() and self._waiters:
                            await self._refresh(conn)
                    else:
                        await self._someone_waits.wait()
                raise ConnectionResetError("the listening connection was closed")
            except _DB_ERRORS as exc:
                self._connected.clear()
                log.warning("read-your-writes watch lost PostgreSQL, reconnecting: %s", exc)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 5.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(*_DB_ERRORS):
                        await asyncio.wait_for(conn.close(), 2)
