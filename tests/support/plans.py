"""What a statement's plan reads, for tests that a query stays bounded as the store grows
(a test on time would depend on the machine; the rows a plan reads do not)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from programledger.adapters.postgres.connection import Connection


async def rows_read(conn: Connection, sql: str, *args: object, relation: str) -> int:
    """Rows that ``sql`` read from ``relation``, run under ``EXPLAIN ANALYZE``."""
    explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    plan = msgspec.json.decode(explained)[0]["Plan"]
    return sum(
        node.get("Actual Rows", 0) * node.get("Actual Loops", 1) for node in _scans(plan, relation)
    )


def _scans(node: dict[str, Any], relation: str) -> Iterator[dict[str, Any]]:
    if node.get("Relation Name") == relation:
        yield node
    for child in node.get("Plans", ()):
        yield from _scans(child, relation)
