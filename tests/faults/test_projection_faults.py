"""A projection worker killed with SIGKILL mid-batch, again and again while events keep
coming: after a restart its read models equal a fresh rebuild, row for row.

Each kill leaves batches applied in memory but not committed, and messages delivered but
not acknowledged; the restarted worker must neither lose those events nor apply any twice.
"""

from __future__ import annotations

import asyncio

import asyncpg

from programledger.application.handlers import Application
from programledger.projections.engine.rebuild import rebuild
from programledger.projections.engine.status import projection_status, wait_for_position
from programledger.projections.registry import PROJECTIONS
from tests.support.projection_process import (
    Ids,
    LiveSystem,
    ProjectionProcess,
    app_store,
    busy_history,
    run_steps,
    table_rows,
)
from tests.support.relay_process import eventually


async def test_sigkill_of_a_worker_mid_batch_then_restart_equals_a_rebuild(
    pool: asyncpg.Pool, schema: str, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    store = app_store(pool, schema)
    app = Application(store)
    worker = ProjectionProcess(pg_url, schema, nats_url, subject_prefix, batch=20)
    async with LiveSystem(store, pg_url, nats_url, subject_prefix, projections=[]):
        worker.start()
        try:
            writers = [
                asyncio.create_task(run_steps(app, busy_history(80), Ids())) for _ in range(4)
            ]
            done = 0
            kills_while_writing = 0
            for _ in range(3):

                async def moved(since: int = done) -> bool:
                    [audit] = await projection_status(pool, ["audit"])
                    return audit.position > since + 60

                await eventually(moved, within=30)
                kills_while_writing += not all(w.done() for w in writers)
                worker.kill()
                [audit] = await projection_status(pool, ["audit"])
                done = audit.position
                worker.start()
            assert kills_while_writing > 0
            written = sum(await asyncio.gather(*writers))
            head = int(await pool.fetchval("SELECT max(position) FROM events"))
            assert await wait_for_position(pool, head, 60)
        finally:
            assert worker.terminate() == 0
    built_live = {name: await table_rows(pool, p) for name, p in PROJECTIONS.items()}
    assert len(built_live["audit"]["rm_audit"]) == written
    for name in PROJECTIONS:
        await rebuild(pool, store, name, progress=False)
    assert {name: await table_rows(pool, p) for name, p in PROJECTIONS.items()} == built_live
