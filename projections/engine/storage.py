"""Creating, replacing and locking a projection's tables and its status row.

The live tables carry their plain names; a rebuild builds ``<name>__rebuild`` beside them
and :func:`swap_tables` replaces the live ones in the caller's transaction, indexes
renamed along, so readers see the old tables or the new ones and never a mix. Every DDL
on a projection's tables takes the same transaction-scoped advisory lock, so a runner
creating its tables and a rebuild swapping them never interleave.

The status row (``projection_status``) is the projection's checkpoint. A transaction
that writes read-model rows locks it (:func:`lock_status`; a runner's batch claims it
with the same ``FOR UPDATE``), which is also how a rebuild's swap waits for the live
runner's batch in flight and then holds the next one until the new tables are in place;
``generation`` tells the runner they changed.

Lock order: the live tables, then the status row. A runner's batch is mostly one statement
(``commit``), and a statement locks the tables it names before it runs, so before the row;
a bigger batch's transaction locks them first explicitly, and a swap first takes
:func:`lock_tables` (which holds writers back, not readers). Taken the other way round by
either side, a swap and a batch could each wait for the other.
"""

from __future__ import annotations

import msgspec

from programledger.projections.engine.core import Connection, Projection
from programledger.projections.engine.tables import Table

__all__ = [
    "REBUILD_SUFFIX",
    "StatusRow",
    "create_tables",
    "drop_tables",
    "ensure_status",
    "lock_ddl",
    "lock_status",
    "lock_tables",
    "missing_tables",
    "prepare_tables",
    "projection_channel",
    "swap_tables",
]

REBUILD_SUFFIX = "__rebuild"


def projection_channel(schema: str) -> str:
    """The LISTEN channel a runner notifies after each commit (``<name>:<position>``, with
    ``:failed`` appended when it stopped at a poison event)."""
    return f"{schema}_projections"


def wanted_channel(schema: str) -> str:
    """The channel a reader waiting for a position notifies (the position, in decimal):
    runners behind it stop gathering a trickle of events (``commit_interval``) and commit
    what they have at once."""
    return f"{schema}_projections_wanted"


class StatusRow(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    position: int
    generation: int
    state: str
    definition: str | None


async def lock_ddl(conn: Connection, projection: Projection) -> None:
    """Serialise DDL on this projection's tables until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended("
        "'programledger.projection-ddl:' || current_schema() || ':' || $1, 0))",
        projection.name,
    )


async def ensure_status(conn: Connection, projection: Projection) -> StatusRow:
    row = await conn.fetchrow(
        """
        INSERT INTO projection_status (name) VALUES ($1)
        ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
        RETURNING name, position, generation, state, definition
        """,
        projection.name,
    )
    assert row is not None
    return StatusRow(**dict(row))


async def lock_tables(conn: Connection, projection: Projection) -> None:
    """Hold back writes to the projection's live tables (a runner's batches) until the
    transaction ends, in the order a batch locks them (see the module); readers go on.
    Tables missing (a rebuild that creates them) are skipped: call it under
    :func:`lock_ddl`, so none is created meanwhile."""
    missing = set(await missing_tables(conn, projection))
    present = [t.name for t in projection.all_tables if t.name not in missing]
    if present:
        await conn.execute(f"LOCK TABLE {', '.join(present)} IN SHARE MODE")


async def lock_status(conn: Connection, projection: Projection) -> StatusRow:
    """Lock the status row until the transaction ends (see the module)."""
    row = await conn.fetchrow(
        "SELECT name, position, generation, state, definition FROM projection_status "
        "WHERE name = $1 FOR UPDATE",
        projection.name,
    )
    if row is None:
        return await ensure_status(conn, projection)
    return StatusRow(**dict(row))


async def missing_tables(conn: Connection, projection: Projection) -> list[str]:
    names = [t.name for t in projection.all_tables]
    found = await conn.fetch(
        "SELECT c.relname FROM pg_class c WHERE c.relname = ANY($1::text[]) "
        "AND c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'",
        names,
    )
    present = {r[0] for r in found}
    return [n for n in names if n not in present]


async def create_tables(
    conn: Connection, projection: Projection, *, suffix: str = "", indexes: bool = True
) -> None:
    """Create the tables (``IF NOT EXISTS``) with their essential indexes, and with the
    secondary ones unless ``indexes=False`` (a rebuild adds those after loading)."""
    for table in projection.all_tables:
        name = table.name + suffix
        await conn.execute(table.create_sql(name))
        chosen = table.all_indexes() if indexes else table.essential_indexes()
        for index in chosen:
            await conn.execute(Table.index_sql(name, index))


async def drop_tables(conn: Connection, projection: Projection, *, suffix: str = "") -> None:
    for table in projection.all_tables:
        await conn.execute(f"DROP TABLE IF EXISTS {table.name + suffix}")


async def swap_tables(conn: Connection, projection: Projection) -> None:
    """Replace the live tables with the rebuilt ones, in the caller's transaction."""
    await lock_ddl(conn, projection)
    for table in projection.all_tables:
        rebuilt = table.name + REBUILD_SUFFIX
        await conn.execute(f"DROP TABLE IF EXISTS {table.name}")
        await conn.execute(f"ALTER TABLE {rebuilt} RENAME TO {table.name}")
        for index in table.all_indexes():
            await conn.execute(
                f"ALTER INDEX IF EXISTS {rebuilt}_{index.suffix} "
                f"RENAME TO {table.name}_{index.suffix}"
            )


async def prepare_tables(conn: Connection, projection: Projection) -> bool:
    """Make the live tables match the projection's definition.

    Creates them when the projection has consumed nothing yet (recreating leftovers of an
    older definition, which are empty). Returns ``False`` when the tables hold data built
    by another definition, or some are missing: only a rebuild can make those right.
    """
    async with conn.transaction():
        await lock_ddl(conn, projection)
        status = await ensure_status(conn, projection)
        missing = await missing_tables(conn, projection)
        definition = projection.definition()
        if status.definition == definition and not missing:
            return True
        if status.position > 0:
            return False
        await drop_tables(conn, projection)
        await create_tables(conn, projection)
        await conn.execute(
            "UPDATE projection_status SET definition = $2, generation = generation + 1, "
            "updated_at = now() WHERE name = $1",
            projection.name,
            definition,
        )
        return True
