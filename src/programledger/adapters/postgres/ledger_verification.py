"""Verify the ledger-wide Merkle tree against the events, and every signed head.

The stream chains (``verification.py``) prove each stream's events are intact *relative to
each other*; they cannot see a stream deleted whole, a truncated store, a stream's last
events removed with its head reset, or a tail rewritten with recomputed hashes. The tree
can: this walks every event in position order in one snapshot, rebuilds the tree from the
events' hashes, and checks that

- the tree's leaves are exactly the events in position order (none missing, added, moved),
- at every signed head's size the rebuilt root equals the signed root (so heads are also
  consistent with each other: they are prefixes of one sequence of leaves),
- every head is signed by a trusted key and names the head before it,
- the stored nodes that proofs are served from equal the rebuilt ones,
- the last signed head covers what the tree holds, and an earlier head an auditor kept
  (``against``) is a prefix of today's tree.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from programledger.adapters.postgres.ledger import head_of
from programledger.application.ledger_audit import LedgerReport, head_roots
from programledger.domain.integrity import Frontier, SignedHead

__all__ = ["verify_ledger"]

_PAGE = 50_000


async def verify_ledger(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    keys: Sequence[Ed25519PublicKey],
    *,
    against: Sequence[SignedHead] = (),
) -> LedgerReport:
    """Check the tree, the heads and ``against`` (heads kept outside the store) on one
    repeatable-read snapshot of ``conn``."""
    report = LedgerReport()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        # Compiling the walk's large queries costs more than they run (seconds, measured).
        await conn.execute("SET LOCAL jit = off")
        heads = [
            head_of(r) for r in await conn.fetch("SELECT * FROM tree_heads ORDER BY tree_size")
        ]
        roots = head_roots(heads, keys, against, report)
        await _walk(conn, roots, report)
    last = heads[-1].head.size if heads else 0
    if report.tree_size != last:
        report.problem(
            f"the tree holds {report.tree_size} leaves but the last signed head covers {last}"
        )
    if not heads and report.events:
        report.notes.append(
            "no signed tree head yet: only the stream chains vouch for these events "
            "(is a sealer running?)"
        )
    return report


async def _walk(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    roots: dict[int, list[tuple[str, bytes]]],
    report: LedgerReport,
) -> None:
    """Events and leaves merged in position order, the tree rebuilt as it goes.

    Once the leaves stop lining up with the events, every later node and root differs
    too: the first difference is reported, not each consequence.
    """
    frontier = Frontier()
    last = await conn.fetchrow(
        "SELECT leaf_index, position FROM tree_leaves ORDER BY leaf_index DESC LIMIT 1"
    )
    tree_size = 0 if last is None else last["leaf_index"] + 1
    last_sealed = 0 if last is None else last["position"]
    report.tree_size = tree_size
    state = _Walk(roots)
    state.compare(frontier, report)
    after = -(2**63)
    while True:
        rows = await conn.fetch(
            """
            SELECT coalesce(e.position, l.position) AS position, e.hash, l.leaf_index
            FROM (SELECT position, hash FROM events WHERE position > $1
                  ORDER BY position LIMIT $2) e
            FULL JOIN (SELECT leaf_index, position FROM tree_leaves WHERE position > $1
                       ORDER BY position LIMIT $2) l USING (position)
            ORDER BY 1 LIMIT $2
            """,
            after,
            _PAGE,
        )
        if not rows:
            break
        state.start_page(frontier)
        for position, event_hash, leaf in rows:
            if event_hash is None:
                state.aligned = False
                report.problem(
                    f"leaf {leaf} of the tree is the event at position {position}, which "
                    "is gone (an event was deleted)"
                )
                continue
            report.events += 1
            if leaf is None:
                if position < last_sealed:
                    state.aligned = False
                    report.problem(
                        f"the event at position {position} is not in the tree though later "
                        "events are (it was inserted or its position changed)"
                    )
                else:
                    report.unsealed += 1
                continue
            due = frontier.size + len(state.pending)
            if leaf != due and state.aligned:
                state.aligned = False
                report.problem(
                    f"the event at position {position} is leaf {leaf} of the tree where leaf "
                    f"{due} was due (events removed, inserted or reordered)"
                )
            state.pending.append(event_hash)
            if due + 1 in roots:
                state.flush(frontier, report)
        state.flush(frontier, report)
        after = rows[-1]["position"]
        if state.aligned:
            await _compare_nodes(conn, state.first, state.levels, report)
    for size, entries in sorted(roots.items()):
        if size > frontier.size:
            for what, _ in entries:
                report.problem(
                    f"{what} covers {size} events but only {frontier.size} of them are left "
                    "(events were removed: a stream deleted or the store truncated)"
                )


class _Walk:
    def __init__(self, roots: dict[int, list[tuple[str, bytes]]]) -> None:
        self.roots = roots
        self.aligned = True
        self.store_heads_hold = True
        self.pending: list[bytes] = []
        """Leaf inputs not yet added: the tree grows a run at a time, up to a head's size."""
        self.first = 0
        self.levels: list[list[bytes]] = []
        """Per level, the nodes the current page completed (from leaf ``first`` on), to
        compare with the stored ones."""

    def start_page(self, frontier: Frontier) -> None:
        self.first = frontier.size
        self.levels = []

    def flush(self, frontier: Frontier, report: LedgerReport) -> None:
        levels = frontier.grow(self.pending)
        self.pending.clear()
        if self.aligned:
            self.levels.extend([] for _ in range(len(levels) - len(self.levels)))
            for mine, done in zip(self.levels, levels, strict=False):
                mine += done
        self.compare(frontier, report)

    def compare(self, frontier: Frontier, report: LedgerReport) -> None:
        """The rebuilt root against the heads of this size: the first store head that
        differs, and every kept head."""
        for what, root in self.roots.get(frontier.size, ()):
            kept = what.startswith("the kept")
            if (kept or self.store_heads_hold) and frontier.root() != root:
                report.problem(
                    f"{what}: the events give another root (an event under it was changed, "
                    "removed, added or reordered)"
                )
                self.store_heads_hold = self.store_heads_hold and kept


async def _compare_nodes(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    first: int,
    levels: list[list[bytes]],
    report: LedgerReport,
) -> None:
    """The stored nodes over the leaves from ``first`` on against the rebuilt ones: per
    level, PostgreSQL concatenates the stored hashes in index order (one index range scan)
    and one comparison of bytes stands for every node of it; only a level that differs is
    read node by node, to name its first wrong node."""
    wanted = [(level, first >> level, len(done)) for level, done in enumerate(levels) if done]
    if not wanted:
        return
    rows = await conn.fetch(
        """
        SELECT l.level, n.hashes
        FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS l(level, lo, n)
        CROSS JOIN LATERAL (
            SELECT string_agg(hash, ''::bytea ORDER BY node_index) AS hashes
            FROM tree_nodes
            WHERE level = l.level AND node_index >= l.lo AND node_index < l.lo + l.n
        ) n
        ORDER BY l.level
        """,
        [w[0] for w in wanted],
        [w[1] for w in wanted],
        [w[2] for w in wanted],
    )
    for (level, lo, count), row in zip(wanted, rows, strict=True):
        if (row["hashes"] or b"") != b"".join(levels[level]):
            stored: dict[int, bytes] = {
                r[0]: r[1]
                for r in await conn.fetch(
                    "SELECT node_index, hash FROM tree_nodes "
                    "WHERE level = $1 AND node_index >= $2 AND node_index < $3",
                    level,
                    lo,
                    lo + count,
                )
            }
            index = next(lo + i for i, h in enumerate(levels[level]) if stored.get(lo + i) != h)
            report.problem(
                f"stored tree node (level {level}, index {index}) is missing or differs from "
                "the events: proofs served from it would fail"
            )
            return
