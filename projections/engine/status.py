"""Where each projection stands: lag behind the event store, failures, read-your-writes.

Everything here reads PostgreSQL only, so any process (an API's ``/ready`` and
``/metrics``, the CLI) can ask, whether or not a runner lives in it.

- **Lag**: positions behind the safe head of the event store, and seconds (the age of the
  oldest event the projection has not reached; 0 when caught up). It includes the relay's
  own lag, since projections consume what the relay publishes.
- **Read your writes**: a mutation returns the position it wrote; a query can call
  :func:`wait_for_position` first. It LISTENs on the channel runners notify after each
  commit, and polls as a fallback, and gives up early on a projection that has failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from programledger.projections.engine.storage import projection_channel, wanted_channel
from programledger.projections.registry import PROJECTIONS

__all__ = ["ProjectionStatus", "clear_failure", "projection_status", "wait_for_position"]


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str
    """``idle`` (never run), ``running``, ``stopped`` or ``failed``."""
    position: int
    """The checkpoint: every event up to here is in the read model."""
    position_recorded_at: datetime | None
    head_position: int
    lag_positions: int
    lag_seconds: float
    """Age of the oldest event not yet reached; 0 when caught up."""
    events_applied: int
    worker: str | None
    failed_position: int | None
    failed_event_id: UUID | None
    failed_event_type: str | None
    failed_stream_id: str | None
    error: str | None
    failed_at: datetime | None
    rebuild_started_at: datetime | None
    rebuild_position: int | None
    """How far a rebuild in progress has read."""
    rebuilt_at: datetime | None
    updated_at: datetime | None


_STATUS_SQL = """
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
     head AS (
        SELECT coalesce((SELECT e.position FROM events e
                         WHERE e.tx_id < (SELECT xmin FROM horizon)
                         ORDER BY e.position DESC LIMIT 1), 0) AS position
     ),
     wanted AS (SELECT unnest($1::text[]) AS name)
SELECT w.name, coalesce(s.state, 'idle') AS state, coalesce(s.position, 0) AS position,
       s.position_recorded_at, coalesce(s.events_applied, 0) AS events_applied, s.worker,
       s.failed_position, s.failed_event_id, s.failed_event_type, s.failed_stream_id,
       s.error, s.failed_at, s.rebuild_started_at, s.rebuild_position, s.rebuilt_at,
       s.updated_at, head.position AS head_position,
       (SELECT e.recorded_at FROM events e
        WHERE e.position > coalesce(s.position, 0) AND e.tx_id < (SELECT xmin FROM horizon)
        ORDER BY e.position LIMIT 1) AS oldest,
       clock_timestamp() AS now
FROM wanted w CROSS JOIN head LEFT JOIN projection_status s ON s.name = w.name
ORDER BY w.name
"""
"""The head and each oldest event are read from one end of the position index, as in the
relay's lag (:data:`programledger.adapters.nats.relay._LAG_SQL`): ``max()`` over a join
with the horizon would be an aggregate over every event."""


def _names(projections: Iterable[str] | None) -> list[str]:
    return list(PROJECTIONS) if projections is None else list(projections)


async def projection_status(
    pool: asyncpg.Pool, projections: Iterable[str] | None = None
) -> list[ProjectionStatus]:
    """Status and lag of each projection (default: every registered one)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(_STATUS_SQL, _names(projections))
    found = []
    for row in rows:
        data = dict(row)
        oldest, now = data.pop("oldest"), data.pop("now")
        head = data["head_position"]
        found.append(
            ProjectionStatus(
                **data,
                lag_positions=max(0, head - data["position"]),
                lag_seconds=0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()),
            )
        )
    return found


async def wait_for_position(
    pool: asyncpg.Pool,
    position: int,
    timeout: float,  # noqa: ASYNC109 - the API's contract: a bounded wait for a position
    projections: Iterable[str] | None = None,
    *,
    poll_interval: float = 0.5,
) -> bool:
    """Wait until every named projection (default: all) has reached ``position``.

    Returns ``False`` after ``timeout`` seconds, or at once when one of them has failed
    below ``position`` (it will not get there without an operator). Holds one pooled
    connection while it waits.
    """
    names = _names(projections)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    woke = asyncio.Event()

    def on_notify(*_args: object) -> None:
        woke.set()

    async with pool.acquire() as conn:
        schema = await conn.fetchval("SELECT current_schema()")
        channel = projection_channel(schema)
        await conn.add_listener(channel, on_notify)
        try:
            await conn.execute("SELECT pg_notify($1, $2)", wanted_channel(schema), str(position))
            while True:
                woke.clear()
                rows = await conn.fetch(
                    "SELECT name, position, state FROM projection_status WHERE name = ANY($1)",
                    names,
                )
                found = {r["name"]: r for r in rows}
                behind = [n for n in names if n not in found or found[n]["position"] < position]
                if not behind:
                    return True
                if any(n in found and found[n]["state"] == "failed" for n in behind):
                    return False
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woke.wait(), min(remaining, poll_interval))
        finally:
            await conn.remove_listener(channel, on_notify)


async def clear_failure(pool: asyncpg.Pool, name: str) -> bool:
    """Let a failed projection try its poison event again (after a fix was deployed);
    returns whether it was failed. Its runner resumes within a poll interval."""
    async with pool.acquire() as conn:
        status = await conn.execute(
            "UPDATE projection_status SET state = 'idle', failed_position = NULL, "
            "failed_event_id = NULL, failed_event_type = NULL, failed_stream_id = NULL, "
            "error = NULL, failed_at = NULL, updated_at = now() "
            "WHERE name = $1 AND state = 'failed'",
            name,
        )
    return status.endswith(" 1")
