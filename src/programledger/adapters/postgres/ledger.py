"""The Merkle tree and its signed heads in PostgreSQL (tables of migration 0006).

The sealer extends the tree through :meth:`LedgerStore.seal` on its lock connection; the
API, the CLI and ``verify`` read heads and proofs through the pool. The tree math is in
:mod:`programledger.domain.integrity`; here are only reads and writes. A proof is planned
there, its nodes fetched here in one query, and assembled there: O(log n) rows by primary
key, whatever the store's size.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from programledger.application.errors import OperationalError
from programledger.domain.integrity import (
    Frontier,
    NodeId,
    ProofPlan,
    SignedHead,
    TreeHead,
    assemble,
    consistency_plan,
    inclusion_plan,
)

__all__ = ["Connection", "Leaf", "LedgerStore", "ProofUnavailable", "head_of"]

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_HEAD_COLUMNS = "tree_size, root_hash, timestamp_ms, previous, key_id, signature"
# The safe read of 0001 (only transactions older than every running one), position and hash
# only: what the tree needs.
_UNSEALED = """
    SELECT position, hash FROM events
    WHERE position > $1 AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY position LIMIT $2
"""


class ProofUnavailable(OperationalError):
    """A proof was asked for a size, leaf or event the tree does not have."""


@dataclass(frozen=True, slots=True)
class Leaf:
    index: int
    position: int
    event_id: UUID
    event_hash: bytes


def head_of(row: asyncpg.Record) -> SignedHead:
    return SignedHead(
        head=TreeHead(
            size=row["tree_size"],
            root=bytes(row["root_hash"]),
            timestamp_ms=row["timestamp_ms"],
            previous=bytes(row["previous"]),
        ),
        key_id=bytes(row["key_id"]),
        signature=bytes(row["signature"]),
    )


class LedgerStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # --- the sealer's side -------------------------------------------------------------

    @staticmethod
    async def resume(conn: Connection) -> tuple[Frontier, int, SignedHead | None]:
        """The tree as stored: its frontier, the position of its last leaf, its last head."""
        row = await conn.fetchrow(
            "SELECT leaf_index, position FROM tree_leaves ORDER BY leaf_index DESC LIMIT 1"
        )
        size = 0 if row is None else row["leaf_index"] + 1
        last_position = 0 if row is None else row["position"]
        ids = Frontier.root_ids(size)
        nodes = await LedgerStore._nodes(conn, ids)
        missing = [i for i in ids if i not in nodes]
        if missing:
            raise OperationalError(
                f"the stored tree of {size} leaves lacks its nodes {missing}: it was "
                "tampered with or half restored; run `programledger verify`"
            )
        head_row = await conn.fetchrow(
            f"SELECT {_HEAD_COLUMNS} FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
        )
        head = None if head_row is None else head_of(head_row)
        return Frontier(size, [nodes[i] for i in ids]), last_position, head

    @staticmethod
    async def unsealed(conn: Connection, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await conn.fetch(_UNSEALED, after, limit)
        return [(r["position"], bytes(r["hash"])) for r in rows]

    @staticmethod
    async def seal(
        conn: Connection,
        first_leaf: int,
        positions: Sequence[int],
        nodes: Sequence[tuple[int, int, bytes]],
        signed: SignedHead,
    ) -> None:
        """Store new leaves, the nodes they completed and the head over them, atomically."""
        async with conn.transaction():
            await LedgerStore.insert_tree(conn, first_leaf, positions, nodes)
            await LedgerStore.insert_head(conn, signed)

    @staticmethod
    async def insert_tree(
        conn: Connection,
        first_leaf: int,
        positions: Sequence[int],
        nodes: Sequence[tuple[int, int, bytes]],
    ) -> None:
        """Leaves from ``first_leaf`` on (their events' positions), and the nodes they
        completed (``Frontier.extend``)."""
        await conn.execute(
            "INSERT INTO tree_leaves (leaf_index, position) "
            "SELECT $1 + i - 1, p FROM unnest($2::bigint[]) WITH ORDINALITY AS t(p, i)",
            first_leaf,
            list(positions),
        )
        await conn.execute(
            "INSERT INTO tree_nodes (level, node_index, hash) "
            "SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
            [n[0] for n in nodes],
            [n[1] for n in nodes],
            [n[2] for n in nodes],
        )

    @staticmethod
    async def insert_head(conn: Connection, signed: SignedHead) -> None:
        head = signed.head
        await conn.execute(
            f"INSERT INTO tree_heads ({_HEAD_COLUMNS}, digest) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            head.size,
            head.root,
            head.timestamp_ms,
            head.previous,
            signed.key_id,
            signed.signature,
            head.digest(),
        )

    @staticmethod
    async def register_key(conn: Connection, key_id: bytes, public_key: bytes) -> None:
        await conn.execute(
            "INSERT INTO signing_keys (key_id, public_key) VALUES ($1, $2) "
            "ON CONFLICT (key_id) DO NOTHING",
            key_id,
            public_key,
        )

    # --- readers -----------------------------------------------------------------------

    async def latest_head(self) -> SignedHead | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {_HEAD_COLUMNS} FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
            )
        return None if row is None else head_of(row)

    async def head(self, size: int | None = None) -> SignedHead | None:
        """The signed head of ``size`` leaves; ``None``: the last one."""
        return await (self.latest_head() if size is None else self.head_at(size))

    async def head_at(self, size: int) -> SignedHead | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {_HEAD_COLUMNS} FROM tree_heads WHERE tree_size = $1", size
            )
        return None if row is None else head_of(row)

    async def heads(self, *, after_size: int = -1, limit: int = 100) -> list[SignedHead]:
        """Signed heads by size, oldest first, after ``after_size``."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_HEAD_COLUMNS} FROM tree_heads WHERE tree_size > $1 "
                "ORDER BY tree_size LIMIT $2",
                after_size,
                limit,
            )
        return [head_of(r) for r in rows]

    async def count_heads(self) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM tree_heads"))

    async def public_keys(self) -> list[bytes]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT public_key FROM signing_keys ORDER BY first_used_at")
        return [bytes(r["public_key"]) for r in rows]

    async def leaf(self, *, position: int | None = None, event_id: UUID | None = None) -> Leaf:
        """The leaf of the event at ``position`` or with ``event_id``."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT l.leaf_index, e.position, e.event_id, e.hash FROM events e "
                "JOIN tree_leaves l ON l.position = e.position "
                "WHERE ($1::bigint IS NULL OR e.position = $1) "
                "AND ($2::uuid IS NULL OR e.event_id = $2)",
                position,
                event_id,
            )
        if row is None:
            what = f"position {position}" if event_id is None else f"event {event_id}"
            raise ProofUnavailable(f"no event at {what} is in the tree yet")
        return Leaf(row["leaf_index"], row["position"], row["event_id"], bytes(row["hash"]))

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        if not 0 <= index < size:
            raise ProofUnavailable(f"leaf {index} is not in a tree of size {size}")
        return await self._proof(inclusion_plan(index, size), size)

    async def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        if not 0 < old_size <= new_size:
            raise ProofUnavailable(
                f"no consistency proof from size {old_size} to {new_size}: "
                "sizes must satisfy 0 < fromSize <= toSize"
            )
        return await self._proof(consistency_plan(old_size, new_size), new_size)

    async def leaf_positions(self, size: int) -> int:
        async with self.pool.acquire() as conn:
            position = await conn.fetchval(
                "SELECT position FROM tree_leaves WHERE leaf_index = $1", size - 1
            )
        if position is None:
            raise ProofUnavailable(f"the tree does not reach size {size}")
        return int(position)

    async def inclusion_proofs(
        self, positions: Sequence[int], size: int
    ) -> dict[int, tuple[int, list[bytes]]]:
        """Many events' proofs in two queries: their leaves, then every node the proofs
        need (shared nodes read once)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT position, leaf_index FROM tree_leaves WHERE position = ANY($1::bigint[])",
                list(positions),
            )
            leaves = {r["position"]: r["leaf_index"] for r in rows}
            missing = [p for p in positions if leaves.get(p, size) >= size]
            if missing:
                raise ProofUnavailable(
                    f"positions {missing[:5]} are not in the tree of size {size}"
                )
            plans = {p: inclusion_plan(leaves[p], size) for p in positions}
            nodes = await self._nodes(conn, set().union(*(plan.nodes for plan in plans.values())))
        return {p: (leaves[p], assemble(plan, nodes)) for p, plan in plans.items()}

    async def _proof(self, plan: ProofPlan, size: int) -> list[bytes]:
        wanted = plan.nodes
        async with self.pool.acquire() as conn:
            nodes = await self._nodes(conn, wanted)
        if len(nodes) != len(wanted):
            raise ProofUnavailable(f"the tree does not reach size {size} yet")
        return assemble(plan, nodes)

    @staticmethod
    async def _nodes(conn: Connection, ids: Collection[NodeId]) -> dict[NodeId, bytes]:
        if not ids:
            return {}
        levels, indexes = zip(*ids, strict=True)
        rows = await conn.fetch(
            "SELECT n.level, n.node_index, n.hash FROM tree_nodes n "
            "JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, node_index) "
            "USING (level, node_index)",
            list(levels),
            list(indexes),
        )
        return {(r["level"], r["node_index"]): bytes(r["hash"]) for r in rows}
