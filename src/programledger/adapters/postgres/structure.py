"""Checks of the log's shape that the per-stream hash chains cannot make.

``verification.py`` walks each stream's chain; this looks across the log, each check one
query in one repeatable-read snapshot (see :func:`check_structure`):

- **Positions.** Positions come from a sequence, and a transaction that reserved positions
  and then rolled back (a failed insert, a refused event type, a caller's transaction
  that appends and aborts, a crash) leaves a hole; so does crash recovery, which skips the
  sequence values it had logged ahead. Such holes are normal, and nothing recorded can
  tell one apart from a deleted event whose neighbours are other transactions' (a
  rollback leaves no trace, by definition). What the store *can* explain is bounded by
  how it appends: one call of ``append_batch`` is one transaction (one command or several
  combined), which takes one block of consecutive positions together with its transaction
  id and one recorded time, under one lock, and deals them out only to the commands it
  writes (a combined command that conflicts takes none). So
  these are unexplainable and reported: a hole between two events of one append (same
  transaction and recorded time: an event was deleted from an append; an import writes a
  store in one transaction but keeps the original times, so it leaves the holes between
  the original appends alone); a transaction id lower than the one before it in
  position order (positions were moved: append order is transaction order); a position
  above every value the sequence handed out (a forged row). Holes between appends are
  counted, not judged; the streams' chains find a deleted event that is not its stream's
  last, and the ledger-wide Merkle tree the rest.
- **Versions rise with positions** within a stream, and **recorded times never go back**
  within a stream (an append takes its time under the same lock as its positions; a
  database server whose clock was stepped back would show here too, and as-of answers
  would be wrong around it).
- **Checkpoints** of the relay and of every projection are not beyond the last event:
  one that is means events were removed from the tail (or the checkpoint is another
  store's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

__all__ = ["StructureProblem", "StructureReport", "check_structure"]


@dataclass(frozen=True, slots=True)
class StructureProblem:
    check: str
    """``positions``, ``versions``, ``times``, ``checkpoints`` or ``read-models``."""
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


@dataclass(slots=True)
class StructureReport:
    events: int = 0
    head: int = 0
    """The highest position stored (0: none)."""
    unused_positions: int = 0
    """Positions up to the head that hold no event: rolled-back appends, explained."""
    problems: list[StructureProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_LIMIT = 100
"""Problems reported per check: enough to act on, bounded however much was rewritten."""

_POSITIONS = f"""
SELECT position, prev_position, tx_id::text AS tx, prev_tx::text AS prev_tx,
       tx_id = prev_tx AS same_tx, tx_id < prev_tx AS tx_back
FROM (
    SELECT position, tx_id, recorded_at, lag(position) OVER w AS prev_position,
           lag(tx_id) OVER w AS prev_tx, lag(recorded_at) OVER w AS prev_recorded_at
    FROM events WINDOW w AS (ORDER BY position)
) e
WHERE prev_position IS NOT NULL
  AND ((tx_id = prev_tx AND recorded_at = prev_recorded_at AND position > prev_position + 1)
       OR tx_id < prev_tx)
ORDER BY position LIMIT {_LIMIT}
"""

_STREAMS = f"""
SELECT stream_id, version, position, prev_position, recorded_at, prev_recorded_at
FROM (
    SELECT stream_id, version, position, recorded_at,
           lag(position) OVER w AS prev_position, lag(recorded_at) OVER w AS prev_recorded_at
    FROM events WINDOW w AS (PARTITION BY stream_id ORDER BY version)
) e
WHERE position < prev_position OR recorded_at < prev_recorded_at
ORDER BY stream_id, version LIMIT {_LIMIT}
"""

_CHECKPOINTS = """
SELECT 'relay ' || quote_literal(name) AS what, position FROM relay_checkpoints
WHERE position > $1
UNION ALL
SELECT 'projection ' || quote_literal(name), position FROM projection_status
WHERE position > $1
UNION ALL
SELECT 'rebuild of projection ' || quote_literal(name), rebuild_position FROM projection_status
WHERE rebuild_position > $1
ORDER BY 1
"""


async def check_structure(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
) -> StructureReport:
    """Run every check on ``conn`` (the store's schema on its path) in one snapshot."""
    report = StructureReport()
    problems = report.problems
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        totals = await conn.fetchrow(
            "SELECT count(*) AS events, coalesce(max(position), 0) AS head FROM events"
        )
        assert totals is not None
        report.events, report.head = int(totals["events"]), int(totals["head"])
        report.unused_positions = report.head - report.events
        handed_out = await conn.fetchval(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_position_seq"
        )
        if report.head > handed_out:
            problems.append(
                StructureProblem(
                    "positions",
                    f"position {report.head} is beyond every position the store handed out "
                    f"({handed_out}): the row was not written by an append",
                )
            )
        for row in await conn.fetch(_POSITIONS):
            problems.append(StructureProblem("positions", _position_problem(row)))
        for row in await conn.fetch(_STREAMS):
            problems.append(_stream_problem(row))
        for row in await conn.fetch(_CHECKPOINTS, report.head):
            problems.append(
                StructureProblem(
                    "checkpoints",
                    f"the {row['what']} checkpoint is at position {row['position']}, beyond "
                    f"the last event ({report.head}): events were removed from the tail, or "
                    "the checkpoint is another store's",
                )
            )
    return report


def _position_problem(row: asyncpg.Record) -> str:
    if row["same_tx"]:
        first, last = row["prev_position"] + 1, row["position"] - 1
        missing = f"position {first} is" if first == last else f"positions {first}-{last} are"
        return (
            f"{missing} missing from the middle of one append (transaction {row['tx']}): "
            "an event was deleted"
        )
    return (
        f"position {row['position']} belongs to transaction {row['tx']}, older than "
        f"transaction {row['prev_tx']} at position {row['prev_position']}: appends take "
        "positions in transaction order, so events were moved"
    )


def _stream_problem(row: asyncpg.Record) -> StructureProblem:
    stream, version = row["stream_id"], row["version"]
    if row["position"] < row["prev_position"]:
        return StructureProblem(
            "versions",
            f"{stream}: version {version} is at position {row['position']}, before version "
            f"{version - 1} at position {row['prev_position']}",
        )
    return StructureProblem(
        "times",
        f"{stream}: version {version} was recorded at {row['recorded_at'].isoformat()}, before "
        f"version {version - 1} ({row['prev_recorded_at'].isoformat()})",
    )
