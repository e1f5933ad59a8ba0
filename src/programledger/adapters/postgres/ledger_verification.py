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
from programledger.domain.integrity import Frontier, NodeId, SignedHead

__all__ = ["verify_ledger"]

_PAGE = 10_000


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
        state.nodes = []
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
            await _compare_nodes(conn, state.nodes, report)
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
        self.nodes: list[tuple[int, int, bytes]] = []
        """Nodes the current page completed, to compare with the stored ones."""

    def flush(self, frontier: Frontier, report: LedgerReport) -> None:
        done = frontier.extend(self.pending)
        self.pending.clear()
        if self.aligned:
            self.nodes.extend(done)
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
    nodes: list[tuple[int, int, bytes]],
    report: LedgerReport,
) -> None:
    if not nodes:
        return
    first = min(n[1] for n in nodes if n[0] == 0)
    last = max(n[1] for n in nodes if n[0] == 0)
    # Every stored node over the leaves [first, last]: one index range scan per level.
    rows = await conn.fetch(
        """
        SELECT n.level, n.node_index, n.hash
        FROM generate_series(0, 62) AS l(level)
        CROSS JOIN LATERAL (
            SELECT level, node_index, hash FROM tree_nodes
            WHERE level = l.level AND node_index >= ($1::bigint >> l.level)
              AND node_index <= ($2::bigint >> l.level)
        ) n
        """,
        first,
        last,
    )
    stored: dict[NodeId, bytes] = {(r[0], r[1]): r[2] for r in rows}
    for level, index, expected in nodes:
        if stored.get((level, index)) != expected:
            report.problem(
                f"stored tree node (level {level}, index {index}) is missing or differs from "
                "the events: proofs served from it would fail"
            )
            return
