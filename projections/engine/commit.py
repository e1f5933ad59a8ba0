"""The statement that commits a runner's batch: one round trip for a live batch.

A read-your-writes wait lasts until the runners have committed the write's events, so every
round trip of a batch's commit is time the waiting reader waits too (BEGIN, the status
row's lock, each table's writes, the checkpoint and COMMIT took 4 to 7 of them). A batch
whose writes fit in column arrays (a live runner's few rows) is therefore committed by one
statement, in a transaction of its own:

1. ``claim`` locks the status row (``FOR UPDATE``) if it still holds the checkpoint and
   generation the runner works from; every write below is gated on it (a one-time filter
   that runs it first), so after a rebuild's swap the statement writes nothing and says so;
2. per table, in the projection's order, the current versions the batch ends are closed,
   then its new rows inserted, gated on the closes having run (the partial unique index
   over current versions must never see the old and the new one both current);
3. the handler states are upserted, the checkpoint (or the failure) saved, and
   ``pg_notify`` sends ``<name>:<position>[:failed]`` to waiting readers, delivered at
   commit;
4. ``projection_closed_versions`` (migration 0050) checks that each close found exactly the
   versions the handler states say are current; its error aborts the statement, so a table
   and states that disagree (:class:`~programledger.projections.engine.core.ProjectionBug`)
   store nothing of the batch.

Lock order: a statement locks the tables it names when it is parsed or bound, before it
runs, so this one holds its read-model tables (in the projection's order: ``all_tables``)
before the status row. Everything else that locks both does the same: a batch too big for
one statement begins its transaction with ``LOCK TABLE ... IN ROW EXCLUSIVE MODE`` before
claiming the row (:func:`claim_sql`), and a rebuild's swap locks the live tables before
the status row (``storage.lock_tables``), so neither can wait for the other in a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from programledger.projections.engine.core import (
    Closes,
    Connection,
    Inserts,
    Poison,
    ProjectionBug,
)
from programledger.projections.engine.tables import Table

__all__ = ["Checkpoint", "Claim", "claim_sql", "commit_batch"]


@dataclass(frozen=True, slots=True)
class Claim:
    """The status row as the runner last read or wrote it: a batch commits only onto it."""

    name: str
    generation: int
    position: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a batch records in the status row besides its rows."""

    position: int
    recorded: datetime | None
    applied: int
    poison: Poison | None = None


_CLAIM = (
    "{lock}SELECT FROM projection_status WHERE name = {name} AND generation = {generation} "
    "AND position = {position} FOR UPDATE"
)


def _quoted(text: str) -> str:
    """A string literal (``standard_conforming_strings`` is on, as since PostgreSQL 9.1)."""
    return "'" + text.replace("'", "''") + "'"


def claim_sql(claim: Claim, tables: Sequence[Table]) -> str:
    """A transaction begun, ``tables`` locked against a swap and the status row claimed,
    in one round trip (a simple query, so the values are literals: a name from code,
    quoted, and two integers). It finds no row when the row changed since ``claim`` was
    read (a rebuild)."""
    names = ", ".join(t.name for t in tables)
    lock = f"BEGIN; LOCK TABLE {names} IN ROW EXCLUSIVE MODE; " if names else "BEGIN; "
    return _CLAIM.format(
        lock=lock,
        name=_quoted(claim.name),
        generation=int(claim.generation),
        position=int(claim.position),
    )


_STATEMENT = """
WITH claim AS (
    SELECT FROM projection_status
    WHERE name = $1 AND generation = $2 AND position = $3 FOR UPDATE
),
{writes}states AS (
    INSERT INTO {state_table} (key, state)
    SELECT * FROM unnest($13::text[], $14::bytea[]) WHERE EXISTS (SELECT FROM claim)
    ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state
),
saved AS (
    UPDATE projection_status SET
        position = $4,
        position_recorded_at = coalesce(
            $5, (SELECT recorded_at FROM events WHERE position = $4), position_recorded_at
        ),
        events_applied = events_applied + $6,
        state = CASE WHEN $7::text IS NULL THEN 'running' ELSE 'failed' END,
        error = $7, failed_position = $8, failed_event_id = $9, failed_event_type = $10,
        failed_stream_id = $11,
        failed_at = CASE WHEN $7::text IS NULL THEN NULL ELSE now() END,
        updated_at = now()
    WHERE name = $1 AND EXISTS (SELECT FROM claim)
    RETURNING name, position
)
SELECT EXISTS (SELECT FROM claim) AS claimed{checks},
    (SELECT count(*) FROM (
        SELECT pg_notify(
            $12, name || ':' || position || CASE WHEN $7::text IS NULL THEN '' ELSE ':failed' END
        ) FROM saved
    ) AS sent) AS notified
"""
_FIRST_WRITE_PARAMETER = 15

_CHECK = (
    ",\n    CASE WHEN EXISTS (SELECT FROM claim) THEN projection_closed_versions("
    "{table}, cardinality(${first}::{type}[]), (SELECT count(*) FROM {cte})) END"
)


async def commit_batch(
    conn: Connection,
    claim: Claim,
    checkpoint: Checkpoint,
    *,
    channel: str,
    state_table: str,
    states: tuple[list[str], list[bytes]] = ([], []),
    writes: Sequence[tuple[Closes | None, Inserts | None]] = (),
) -> bool:
    """Commit a batch onto ``claim`` (see the module): its ``writes`` per table (in the
    projection's order), its ``states`` (keys and encoded values) and ``checkpoint``, then
    notify ``channel``. Returns ``False``, having written nothing, when the status row no
    longer matches ``claim``; raises :class:`ProjectionBug` when a close found other
    versions than the states say are current.

    Run outside a transaction, the statement is one: the batch's own. Inside one (a big
    batch's, already claimed) it is its last statement.
    """
    ctes: list[str] = []
    checks: list[str] = []
    arrays: list[list[Any]] = []
    for n, (closes, inserts) in enumerate(writes):
        gate = "EXISTS (SELECT FROM claim)"
        if closes is not None:
            first = _FIRST_WRITE_PARAMETER + len(arrays)
            arrays.extend(closes.values)
            ctes.append(f"closed{n} AS ({closes.sql(first)} AND {gate} RETURNING 1),\n")
            checks.append(
                _CHECK.format(
                    table=_quoted(closes.table),
                    first=first,
                    type=closes.key[0].type,
                    cte=f"closed{n}",
                )
            )
            gate += (
                f" AND (SELECT count(*) FROM closed{n}) = "
                f"cardinality(${first}::{closes.key[0].type}[])"
            )
        if inserts is not None:
            insert = inserts.sql(_FIRST_WRITE_PARAMETER + len(arrays))
            arrays.extend(inserts.values)
            ctes.append(f"inserted{n} AS ({insert} WHERE {gate}),\n")
    sql = _STATEMENT.format(writes="".join(ctes), state_table=state_table, checks="".join(checks))
    p = checkpoint.poison
    try:
        row = await conn.fetchrow(
            sql,
            claim.name,
            claim.generation,
            claim.position,
            checkpoint.position,
            checkpoint.recorded,
            checkpoint.applied,
            None if p is None else p.error,
            None if p is None else p.position,
            None if p is None else p.event_id,
            None if p is None else p.event_type,
            None if p is None else p.stream_id,
            channel,
            *states,
            *arrays,
        )
    except asyncpg.RaiseError as exc:
        # Only projection_closed_versions raises in this statement.
        raise ProjectionBug(f"{exc.message}: the table and the handler states disagree") from exc
    assert row is not None
    return bool(row["claimed"])
