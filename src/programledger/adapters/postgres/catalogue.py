"""The store's event catalogue: which (event type, schema version) pairs it accepts.

``append_events`` refuses an event outside ``event_catalogue`` (migration 0008), so every
event stored can be decoded by the code that runs the relay and the projections. The
catalogue follows the code: :func:`sync_catalogue` adds every pair the registry can read
(each type's current version, and each older version an upcaster chain lifts to it), and
``migrate`` calls it. Pairs are never removed: stored events keep their meaning.
"""

from __future__ import annotations

import asyncpg

from programledger.domain.events import EventRegistry

__all__ = [
    "catalogue_pairs",
    "catalogued_event_types",
    "missing_from_catalogue",
    "sync_catalogue",
]

_Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


def catalogue_pairs(registry: EventRegistry) -> list[tuple[str, int]]:
    """Every (event type, schema version) ``registry`` can decode, sorted."""
    pairs: list[tuple[str, int]] = []
    for cls in registry:
        version = cls.schema_version
        pairs.append((cls.event_type, version))
        while version > 1 and registry.has_upcaster(cls.event_type, version - 1):
            version -= 1
            pairs.append((cls.event_type, version))
    return sorted(pairs)


async def sync_catalogue(conn: _Connection, registry: EventRegistry) -> int:
    """Add the pairs of ``registry`` the catalogue lacks (the connection's schema);
    returns how many were added. Idempotent, and safe to run from several processes."""
    pairs = catalogue_pairs(registry)
    status = await conn.execute(
        "INSERT INTO event_catalogue (event_type, schema_version) "
        "SELECT * FROM unnest($1::text[], $2::integer[]) ON CONFLICT DO NOTHING",
        [t for t, _ in pairs],
        [v for _, v in pairs],
    )
    return int(status.rsplit(" ", 1)[-1])


async def missing_from_catalogue(
    conn: _Connection, registry: EventRegistry
) -> list[tuple[str, int]]:
    """The current pairs of ``registry`` the store would refuse: code newer than the last
    ``migrate``."""
    pairs = [(cls.event_type, cls.schema_version) for cls in registry]
    rows = await conn.fetch(
        "SELECT t.event_type, t.schema_version "
        "FROM unnest($1::text[], $2::integer[]) AS t(event_type, schema_version) "
        "WHERE NOT EXISTS (SELECT FROM event_catalogue c WHERE c.event_type = t.event_type "
        "AND c.schema_version = t.schema_version) ORDER BY 1, 2",
        [t for t, _ in pairs],
        [v for _, v in pairs],
    )
    return [(r["event_type"], r["schema_version"]) for r in rows]


async def catalogued_event_types(conn: _Connection) -> frozenset[str]:
    """Every event type the store accepts or ever accepted: no other type can be in it, so
    a filter naming another one is a mistake to report, not a filter that never matches."""
    rows = await conn.fetch("SELECT DISTINCT event_type FROM event_catalogue")
    return frozenset(r["event_type"] for r in rows)
