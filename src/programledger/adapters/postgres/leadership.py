"""One active worker per name: a PostgreSQL session advisory lock, and the loop around it.

The relay and every projection runner must each run exactly once per deployment, however
many replicas are started. Failover is the riskiest code in the system, so it is written
once, here, in the shape of Marten's async daemon coordination: every instance competes
for a named lock; the holder works, the others stand by.

The guarantees, and how each is kept:

- **At most one active holder per name.** The holder is the session that got
  ``pg_try_advisory_lock(hashtextextended(name, 0))``; PostgreSQL grants a session lock
  to one session at a time. Names are per database, so a name includes the schema.
- **A holder that lost the lock cannot write.** The work runs on the lock's own
  connection: a session lock is released only when its session ends, so once another
  instance may hold it, every statement the old holder sends fails with its connection.
  Write what must not be written twice (a checkpoint, a batch) on that connection.
- **Connection loss.** When the lock connection ends (a server restart, a network
  partition, ``pg_terminate_backend``) the lock is released with it, and the holder
  learns so at its next statement. With ``check_interval`` it also learns within that
  interval while it sends nothing (a termination notice, else a ``SELECT 1``): the work
  is cancelled and :class:`LeadershipLost` reported. Either way it closes the connection,
  waits a backoff and competes again as a standby; work it does off that connection
  (publishing to NATS) stops with it.
- **Takeover.** A standby tries the lock every ``standby_poll_interval`` on a connection
  of its own, so it takes over at most that long after the holder stopped, crashed or
  lost its connection (plus the time to notice a dead peer: PostgreSQL's TCP keepalives).
- **Failures are retried, never fatal.** Connecting, trying the lock and the work itself
  may fail; each failure is reported to ``on_failure`` and retried after a jittered
  exponential backoff (:class:`Backoff`, shared with the work, which resets it when it
  makes progress). Only the ``fatal`` exceptions end :meth:`Leadership.run`: those a
  human must resolve.
- **Quiet stop.** :meth:`Leadership.stop` ends a standby's wait at once and tells the work
  (which watches :attr:`Leadership.stopping`) to finish; the connection is then closed,
  which releases the lock for a standby, and :meth:`Leadership.run` returns without
  reporting a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from programledger.adapters.postgres.connection import connect
from programledger.application.errors import OperationalError

__all__ = ["DB_ERRORS", "Backoff", "LeaderState", "Leadership", "LeadershipLost"]

log = logging.getLogger(__name__)

DB_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a connection closed under a running query
    OSError,
    TimeoutError,
)
"""What a failing or lost PostgreSQL connection raises."""


class LeaderState(enum.Enum):
    STARTING = "starting"
    STANDBY = "standby"
    """Waiting for the lock that another instance holds (or for a retry)."""
    ACTIVE = "active"
    """Holding the lock; the work runs."""
    STOPPED = "stopped"


class LeadershipLost(OperationalError):
    """The lock connection failed: another instance may be active now."""


class Backoff:
    """Exponential delays from ``initial`` to ``maximum``, each jittered by ±20 % so that
    instances that failed together do not retry together."""

    def __init__(self, initial: float, maximum: float) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("the backoff needs 0 < initial <= maximum")
        self._initial = initial
        self._maximum = maximum
        self._delay = initial

    def next(self) -> float:
        delay = self._delay
        self._delay = min(delay * 2, self._maximum)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        """Progress was made: the next failure waits ``initial`` again."""
        self._delay = self._initial


Work = Callable[[asyncpg.Connection], Coroutine[Any, Any, None]]
"""What the holder does with the lock connection, until :attr:`Leadership.stopping`."""


class Leadership:
    """Competes for the lock ``name``; :meth:`run` does the work while holding it.

    ``application_name`` names the connections in ``pg_stat_activity``, so an operator
    sees which instance holds which lock.
    """

    def __init__(
        self,
        name: str,
        *,
        database_url: str,
        schema: str,
        application_name: str,
        on_failure: Callable[[str, BaseException], None],
        backoff: Backoff,
        standby_poll_interval: float = 0.5,
        check_interval: float | None = None,
        fatal: tuple[type[BaseException], ...] = (),
    ) -> None:
        if standby_poll_interval <= 0 or (check_interval is not None and check_interval <= 0):
            raise ValueError("standby_poll_interval and check_interval must be positive")
        self.name = name
        self._database_url = database_url
        self._schema = schema
        self._application_name = application_name
        self._on_failure = on_failure
        self._backoff = backoff
        self._standby_poll_interval = standby_poll_interval
        self._check_interval = check_interval
        self._fatal = fatal
        self._state = LeaderState.STARTING
        self._stop = asyncio.Event()
        self.guard = asyncio.Lock()
        """Hold it to use the lock connection while the liveness check may run (one
        statement at a time per connection); only needed with ``check_interval``."""

    @property
    def state(self) -> LeaderState:
        return self._state

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Stand by no longer, and ask the work to finish; :meth:`run` then returns."""
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if :meth:`stop` is called meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def run(self, work: Work) -> None:
        """Stand by until the lock is ours, run ``work`` on its connection, and compete
        again after any failure; returns after :meth:`stop`. Raises only ``fatal``."""
        try:
            while not self._stop.is_set():
                try:
                    conn = await connect(
                        self._database_url, self._schema, application_name=self._application_name
                    )
                except DB_ERRORS as exc:
                    self._on_failure("cannot connect to PostgreSQL", exc)
                    await self.pause(self._backoff.next())
                    continue
                try:
                    if await self._acquire(conn):
                        await self._hold(conn, work)
                except self._fatal:
                    raise
                except LeadershipLost as exc:
                    self._on_failure("lost the lock connection; standing by", exc)
                except DB_ERRORS as exc:
                    self._on_failure("the lock connection failed", exc)
                except Exception as exc:
                    # A worker must outlive surprises: it starts over from what it
                    # committed, which is always consistent.
                    self._on_failure("unexpected failure; starting over", exc)
                finally:
                    self._state = LeaderState.STANDBY
                    await _close_quietly(conn)
                if not self._stop.is_set():
                    await self.pause(self._backoff.next())
        finally:
            self._state = LeaderState.STOPPED

    async def _acquire(self, conn: asyncpg.Connection) -> bool:
        announced = False
        while not self._stop.is_set():
            if await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", self.name
            ):
                return True
            if not announced:
                self._state = LeaderState.STANDBY
                log.info(
                    "%s: standing by, another instance holds %s", self._application_name, self.name
                )
                announced = True
            await self.pause(self._standby_poll_interval)
        return False

    async def _hold(self, conn: asyncpg.Connection, work: Work) -> None:
        self._state = LeaderState.ACTIVE
        if self._check_interval is None:
            await work(conn)
            return
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        working = asyncio.create_task(work(conn), name=f"{self._application_name}-work")
        watching = asyncio.create_task(
            self._watch(conn, lost, self._check_interval), name=f"{self._application_name}-watch"
        )
        try:
            await asyncio.wait({working, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (working, watching):
                task.cancel()
            results = await asyncio.gather(working, watching, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event, interval: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), interval)
            if lost.is_set():
                raise LeadershipLost("the lock connection was closed")
            try:
                async with self.guard:
                    await conn.fetchval("SELECT 1", timeout=max(interval * 2, 1.0))
            except DB_ERRORS as exc:
                raise LeadershipLost(f"the lock connection failed: {exc!r}") from exc


async def _close_quietly(conn: asyncpg.Connection) -> None:
    """Closing releases the lock; a connection that cannot close cleanly is dropped."""
    try:
        await conn.close(timeout=2)
    except Exception:
        conn.terminate()
