"""The cost of an event: every table and index of a store, per event, from the catalogue."""

from __future__ import annotations

import asyncpg
import pytest

from programledger.adapters.postgres.sizes import storage_report
from programledger.application.handlers import Application
from programledger.projections.engine.rebuild import rebuild
from programledger.projections.registry import PROJECTIONS
from tests.support.projection_process import Step, app_store, run_steps


async def test_bytes_per_event_by_table_and_index_after_a_rebuild(
    pool: asyncpg.Pool, schema: str
) -> None:
    store = app_store(pool, schema)
    history: list[Step] = [("propose", 0), ("activate", 0), ("identify", 0, 0, 3, 4, None)]
    await run_steps(Application(store), history)
    for name in PROJECTIONS:
        await rebuild(pool, store, name, progress=False)
    report = await storage_report(pool, schema)
    # A rebuild leaves statistics behind: the planner needs no autovacuum for its plans.
    analysed = await pool.fetch(
        "SELECT relname FROM pg_stat_user_tables WHERE schemaname = $1 "
        "AND relname LIKE 'rm\\_%' AND last_analyze IS NULL AND last_autoanalyze IS NULL",
        schema,
    )
    assert [r["relname"] for r in analysed] == []
    events = await pool.fetchval("SELECT count(*) FROM events")
    # The program code reservation is an event too.
    assert report.events == events == 4
    names = {(r.table, r.kind, r.name) for r in report.relations}
    assert ("events", "table", "events") in names
    assert ("rm_audit", "index", "rm_audit_stream") in names
    assert all(r.table not in {"pg_class"} for r in report.relations)
    assert report.total_bytes == sum(
        report.table_bytes(t) for t in {r.table for r in report.relations}
    )
    audit = report.table_bytes("rm_audit")
    assert audit > 0
    assert report.per_event(audit) == pytest.approx(audit / 4)
    text = "\n".join(report.lines())
    assert f"{report.events:,} events" in text
    assert "rm_audit_stream" in text
    with pytest.raises(ValueError, match="not allowed"):
        await storage_report(pool, "x; DROP TABLE events")
