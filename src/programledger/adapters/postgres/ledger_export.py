"""The whole ledger out to a file and back (format: ``application.ledger_audit``).

The export reads in one repeatable-read snapshot: the last signed head, the heads up to
it, and every event below the safe head, so the file is one consistent cut. The import
restores into an empty store in one transaction: the same positions, times, hashes and
signed heads, the stream heads and the position sequence set after them, and the tree's
leaves and nodes rebuilt from the events, so ``verify`` holds on the copy and as-of
answers (positions and recorded times) are unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

import asyncpg
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from programledger.adapters.postgres.ledger import Connection, LedgerStore, head_of
from programledger.application.errors import OperationalError
from programledger.application.ledger_audit import (
    LEDGER_FORMAT,
    LedgerEvent,
    LedgerManifest,
    read_export,
)
from programledger.application.signing import key_id
from programledger.domain.integrity import Frontier, head_from_json, head_to_json, micros

__all__ = ["ImportRefused", "export_ledger", "import_ledger"]

_PAGE = 5_000
_encoder = msgspec.json.Encoder()
_EVENTS = """
    SELECT position, event_id, stream_id, stream_type, version, event_type, schema_version,
           program_id, recorded_at, hash_version, prev_hash, hash, data, metadata
    FROM events WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3
"""


class ImportRefused(OperationalError):
    """The file cannot be restored here (a store that holds events, a broken file)."""


async def export_ledger(pool: asyncpg.Pool) -> AsyncIterator[bytes]:
    """The manifest line, then every event line, each ending with a newline."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        heads = [
            head_of(r) for r in await conn.fetch("SELECT * FROM tree_heads ORDER BY tree_size")
        ]
        through = int(
            await conn.fetchval(
                "SELECT coalesce(max(position), 0) FROM events "
                "WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())"
            )
        )
        count = int(
            await conn.fetchval("SELECT count(*) FROM events WHERE position <= $1", through)
        )
        keys = [
            bytes(r["public_key"]).hex()
            for r in await conn.fetch("SELECT public_key FROM signing_keys ORDER BY first_used_at")
        ]
        manifest = LedgerManifest(
            format=LEDGER_FORMAT,
            exported_at=datetime.now(UTC),
            through_position=through,
            events=count,
            tree_head=head_to_json(heads[-1]) if heads else None,
            signed_heads=[head_to_json(h) for h in heads],
            public_keys=keys,
        )
        yield _encoder.encode(manifest) + b"\n"
        after = 0
        while rows := await conn.fetch(_EVENTS, after, through, _PAGE):
            for r in rows:
                yield (
                    _encoder.encode(
                        LedgerEvent(
                            position=r["position"],
                            event_id=r["event_id"],
                            stream_id=r["stream_id"],
                            stream_type=r["stream_type"],
                            version=r["version"],
                            event_type=r["event_type"],
                            schema_version=r["schema_version"],
                            program_id=r["program_id"],
                            recorded_at=r["recorded_at"],
                            recorded_at_us=micros(r["recorded_at"]),
                            hash_version=r["hash_version"],
                            prev_hash=bytes(r["prev_hash"]).hex(),
                            hash=bytes(r["hash"]).hex(),
                            data=msgspec.Raw(r["data"]),
                            metadata=msgspec.Raw(r["metadata"]),
                        )
                    )
                    + b"\n"
                )
            after = rows[-1]["position"]


async def import_ledger(conn: Connection, lines: Iterable[bytes]) -> int:
    """Restore an export into this connection's (empty) store; the number of events.

    Run ``programledger verify`` afterwards: the import copies, it does not vouch.
    """
    try:
        manifest, events = read_export(lines)
    except ValueError as exc:
        raise ImportRefused(str(exc)) from None
    async with conn.transaction():
        if await conn.fetchval("SELECT EXISTS (SELECT FROM events)"):
            raise ImportRefused("the store already holds events: import into an empty schema")
        batch: list[LedgerEvent] = []
        hashes: list[tuple[int, bytes]] = []
        total = 0
        try:
            for event in events:
                batch.append(event)
                hashes.append((event.position, bytes.fromhex(event.hash)))
                if len(batch) >= _PAGE:
                    total += await _insert(conn, batch)
                    batch = []
        except ValueError as exc:
            raise ImportRefused(str(exc)) from None
        total += await _insert(conn, batch)
        uncatalogued = await conn.fetchrow(
            """
            SELECT e.event_type, e.schema_version FROM events e
            WHERE NOT EXISTS (SELECT FROM event_catalogue c
                              WHERE c.event_type = e.event_type
                                AND c.schema_version = e.schema_version)
            ORDER BY e.position LIMIT 1
            """
        )
        if uncatalogued is not None:
            raise ImportRefused(
                f"event type {uncatalogued[0]!r} at schema version {uncatalogued[1]} is not in"
                " this store's catalogue: run `programledger migrate` with a release that"
                " reads it, then import again"
            )
        await conn.execute(
            """
            INSERT INTO streams (stream_id, stream_type, version, last_position, last_hash,
                                 created_at, updated_at)
            SELECT DISTINCT ON (stream_id) stream_id, stream_type, version, position, hash,
                   first_value(recorded_at) OVER (PARTITION BY stream_id ORDER BY version),
                   recorded_at
            FROM events ORDER BY stream_id, version DESC
            """
        )
        await conn.execute(
            "SELECT setval('event_position_seq', greatest((SELECT max(position) FROM events), 1),"
            " (SELECT count(*) > 0 FROM events))"
        )
        heads = [head_from_json(h) for h in manifest.signed_heads]
        for raw in manifest.public_keys:
            key = bytes.fromhex(raw)
            await LedgerStore.register_key(
                conn, key_id(Ed25519PublicKey.from_public_bytes(key)), key
            )
        size = heads[-1].head.size if heads else 0
        if size > len(hashes):
            raise ImportRefused(
                f"the last signed head covers {size} events; the file has {len(hashes)}"
            )
        frontier = Frontier()
        for start in range(0, size, _PAGE):  # statements of bounded size, as the sealer's
            chunk = hashes[start : min(start + _PAGE, size)]
            nodes = frontier.extend(h for _, h in chunk)
            await LedgerStore.insert_tree(conn, start, [p for p, _ in chunk], nodes)
        for signed in heads:
            await LedgerStore.insert_head(conn, signed)
    return total


async def _insert(conn: Connection, batch: list[LedgerEvent]) -> int:
    if not batch:
        return 0
    await conn.execute(
        """
        INSERT INTO events (position, tx_id, event_id, stream_id, stream_type, version,
            event_type, schema_version, program_id, data, metadata, recorded_at, prev_hash,
            hash, hash_version)
        SELECT e.position, pg_current_xact_id(), e.event_id, e.stream_id, e.stream_type,
            e.version, e.event_type, e.schema_version, e.program_id, e.data::jsonb,
            e.metadata::jsonb, 'epoch'::timestamptz + e.us * interval '1 microsecond',
            e.prev_hash, e.hash, e.hash_version
        FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[],
            $7::int[], $8::uuid[], $9::text[], $10::text[], $11::bigint[], $12::bytea[],
            $13::bytea[], $14::smallint[])
            AS e(position, event_id, stream_id, stream_type, version, event_type,
                 schema_version, program_id, data, metadata, us, prev_hash, hash, hash_version)
        """,
        [e.position for e in batch],
        [e.event_id for e in batch],
        [e.stream_id for e in batch],
        [e.stream_type for e in batch],
        [e.version for e in batch],
        [e.event_type for e in batch],
        [e.schema_version for e in batch],
        [e.program_id for e in batch],
        [bytes(e.data).decode() for e in batch],
        [bytes(e.metadata).decode() for e in batch],
        [e.recorded_at_us for e in batch],
        [bytes.fromhex(e.prev_hash) for e in batch],
        [bytes.fromhex(e.hash) for e in batch],
        [e.hash_version for e in batch],
    )
    return len(batch)
