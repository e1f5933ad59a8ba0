"""What an event costs on disk: each table and index of a schema, per event stored.

An event is written once to ``events`` and then again, in another shape, by every read
model that handles it (row versions, states, audit rows), each with its indexes. Knowing
the bytes each of those adds per event is how an operator sizes a database and how a
developer decides whether an index earns its place (see ``bench/storage.py``, which
writes ``docs/storage.md`` from this).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from programledger.adapters.postgres.connection import validate_schema

__all__ = ["RelationSize", "StorageReport", "storage_report"]

_SIZES = """
SELECT t.relname AS table_name, t.relname AS name, 'table' AS kind,
       pg_relation_size(t.oid) + coalesce(pg_total_relation_size(t.reltoastrelid), 0) AS bytes,
       t.reltuples::bigint AS rows
FROM pg_class t
WHERE t.relnamespace = $1::regnamespace AND t.relkind IN ('r', 'p')
UNION ALL
SELECT t.relname, i.relname, 'index', pg_relation_size(i.oid), i.reltuples::bigint
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
WHERE t.relnamespace = $1::regnamespace AND t.relkind IN ('r', 'p')
ORDER BY 1, 3 DESC, 2
"""


@dataclass(frozen=True, slots=True)
class RelationSize:
    table: str
    name: str
    """The table's name for its heap (TOAST included), else the index's."""
    kind: str
    """``table`` or ``index``."""
    bytes: int
    rows: int
    """PostgreSQL's estimate (``reltuples``; -1 before the first ANALYZE or VACUUM)."""


@dataclass(frozen=True, slots=True)
class StorageReport:
    schema: str
    events: int
    relations: list[RelationSize]

    @property
    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.relations)

    def per_event(self, size: int) -> float:
        return size / self.events if self.events else 0.0

    def table_bytes(self, table: str) -> int:
        """The table with its indexes and TOAST."""
        return sum(r.bytes for r in self.relations if r.table == table)

    def lines(self) -> list[str]:
        """The report as aligned text, tables (largest first) each followed by its heap
        and indexes, in bytes per event."""
        tables = sorted({r.table for r in self.relations}, key=lambda t: -self.table_bytes(t))
        out = [
            f"schema {self.schema}: {self.events:,} events, {self.total_bytes:,} bytes, "
            f"{self.per_event(self.total_bytes):,.0f} bytes per event",
            f"{'relation':<44} {'bytes':>14} {'per event':>10}",
        ]
        for table in tables:
            size = self.table_bytes(table)
            out.append(f"{table:<44} {size:>14,} {self.per_event(size):>10,.1f}")
            for r in self.relations:
                if r.table == table:
                    label = f"  {'(heap)' if r.kind == 'table' else r.name}"
                    out.append(f"{label:<44} {r.bytes:>14,} {self.per_event(r.bytes):>10,.1f}")
        return out


async def storage_report(pool: asyncpg.Pool, schema: str) -> StorageReport:
    """Sizes of every table and index in ``schema``, and the events stored there."""
    events = await pool.fetchval(f'SELECT count(*) FROM "{validate_schema(schema)}".events')
    rows = await pool.fetch(_SIZES, schema)
    return StorageReport(
        schema=schema,
        events=int(events),
        relations=[
            RelationSize(r["table_name"], r["name"], r["kind"], int(r["bytes"]), int(r["rows"]))
            for r in rows
        ],
    )
