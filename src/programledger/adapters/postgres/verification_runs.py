"""The record of whole-store verifications (``verification_runs``, migration 0009).

``programledger verify`` writes one row when it finishes; ``/ready`` and ``/metrics``
read the last one, from whichever process ran it. Verification itself runs where it is
scheduled (``infra/k8s/verify-cronjob.yaml``), never inside the API or the relay, whose
latency it would take: it reads every event.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

__all__ = ["VerificationRun", "last_run", "record_run"]

_Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class VerificationRun(msgspec.Struct, frozen=True, kw_only=True):
    started_at: datetime
    finished_at: datetime
    checks: str
    """What was checked, comma separated: ``chains``, ``structure``, ``read-models``..."""
    ok: bool
    streams: int
    events: int
    problems: int
    first_problem: str | None = None


async def record_run(conn: _Connection, run: VerificationRun) -> None:
    await conn.execute(
        "INSERT INTO verification_runs (started_at, finished_at, checks, ok, streams, events,"
        " problems, first_problem) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        run.started_at,
        run.finished_at,
        run.checks,
        run.ok,
        run.streams,
        run.events,
        run.problems,
        run.first_problem,
    )


async def last_run(conn: _Connection) -> VerificationRun | None:
    """The last recorded verification, or ``None`` when the store was never verified."""
    row = await conn.fetchrow(
        "SELECT started_at, finished_at, checks, ok, streams, events, problems, first_problem"
        " FROM verification_runs ORDER BY id DESC LIMIT 1"
    )
    return None if row is None else VerificationRun(**dict(row))
