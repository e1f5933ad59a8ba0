"""Planner statistics for the read models that do not depend on autovacuum.

A read model's plans (which index a page walks, whether a sort is needed) come from its
tables' statistics. A rebuild leaves them fresh (``VACUUM ANALYZE`` before the swap), but a
runner that consumed a backlog into new tables, or hours of live events, leaves them as old
as the last ``ANALYZE``; with autovacuum off, or behind, that is never: an indexed page then
chose a full sort (7 ms against 0.08 ms). Each runner therefore checks its tables now and
then, and analyzes those that changed as much since their last analysis as autovacuum's
defaults would have waited for (``autovacuum_analyze_threshold`` 50 rows plus
``autovacuum_analyze_scale_factor`` 0.1 of the table). Where autovacuum keeps up, it resets
the same counter (``pg_stat_user_tables.n_mod_since_analyze``) first, and this does nothing.

Those defaults analyze a growing read model every few tens of seconds under a steady load
(each event changes two or three rows of ``audit`` and ``programs``), and an ``ANALYZE`` at
PostgreSQL's default statistics target samples 30,000 rows: 540 ms of a core for
``rm_audit`` at 50,000 rows, 310 ms for ``rm_programs``. Eleven runners doing that on the
same beat froze a 2-core machine for a second every 30 s (the soak's command p99 of those
windows: 200-800 ms, against 25-40 ms between them). The keeper therefore analyzes at a
statistics target of :data:`ANALYZE_TARGET` (a 3,000-row sample: 39 and 40 ms for the
same tables; what the read models' plans choose between, an index order or a sort, a key
lookup, needs no finer histogram), and each keeper's checks are spread at random around
its interval so that the runners of one process do not analyze at once. An autovacuum
that keeps up analyzes at the server's own target instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

import asyncpg

from programledger.projections.engine.core import Connection

__all__ = [
    "ANALYZE_SCALE",
    "ANALYZE_TARGET",
    "ANALYZE_THRESHOLD",
    "StatisticsKeeper",
    "analyze_stale",
]

log = logging.getLogger(__name__)

ANALYZE_THRESHOLD = 50
"""Rows changed since the last analysis before a table is analyzed, plus..."""
ANALYZE_SCALE = 0.1
"""... this share of its live rows (PostgreSQL's own defaults for autovacuum)."""
ANALYZE_TARGET = 10
"""``default_statistics_target`` of the keeper's analyses (PostgreSQL's default: 100)."""

_STALE = """
SELECT relname FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND relname = ANY($1::text[])
  AND n_mod_since_analyze > $2 + $3 * n_live_tup
ORDER BY relname
"""


async def analyze_stale(
    conn: Connection,
    tables: Sequence[str],
    *,
    threshold: int = ANALYZE_THRESHOLD,
    scale: float = ANALYZE_SCALE,
) -> list[str]:
    """``ANALYZE`` each of ``tables`` (in the connection's schema) that changed by more
    than ``threshold + scale * live rows`` since its last analysis; the ones analyzed.

    ``ANALYZE`` reads a sample and takes a lock that readers and writers do not wait
    for, so it can run beside the runner's batches and the API's reads.
    """
    stale = [r[0] for r in await conn.fetch(_STALE, list(tables), threshold, scale)]
    for name in stale:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL default_statistics_target = {ANALYZE_TARGET}")
            await conn.execute(f'ANALYZE "{name}"')
    return stale


class StatisticsKeeper:
    """Checks a projection's tables every ``interval`` seconds or so (at random between
    half and one and a half of it, after a first check at once), in the background on a
    pooled connection, so a runner's batches never wait for an ``ANALYZE``."""

    def __init__(self, tables: Sequence[str], *, interval: float = 30.0) -> None:
        self._tables = list(tables)
        self._interval = interval
        self._due: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.analyzed = 0
        """Tables analyzed so far."""

    def poke(self, pool: asyncpg.Pool) -> None:
        """Start a check unless one runs or the next is not due yet."""
        now = asyncio.get_running_loop().time()
        if self._task is not None and not self._task.done():
            return
        if self._due is not None and now < self._due:
            return
        self._due = now + self._interval * random.uniform(0.5, 1.5)
        self._task = asyncio.create_task(self._check(pool))

    async def _check(self, pool: asyncpg.Pool) -> None:
        try:
            async with pool.acquire() as conn:
                analyzed = await analyze_stale(conn, self._tables)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("cannot refresh the statistics of %s: %s", self._tables, exc)
            return
        if analyzed:
            self.analyzed += len(analyzed)
            log.info("analyzed %s: changed since their last statistics", ", ".join(analyzed))

    async def close(self) -> None:
        """Cancel a check in progress (its ``ANALYZE`` is rolled back) and wait for it."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
