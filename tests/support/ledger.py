"""Running a sealer in a test until the tree covers every event, and tampering with the
store the way a superuser would (triggers off for the transaction)."""

from __future__ import annotations

import asyncio

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from programledger.adapters.nats.sealer import Sealer, SealerSettings
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.ledger_verification import verify_ledger
from programledger.application.ledger_audit import LedgerReport
from programledger.application.signing import HeadSigner
from programledger.domain.integrity import SignedHead
from tests.support.relay_process import eventually


def new_signer() -> HeadSigner:
    return HeadSigner(Ed25519PrivateKey.generate())


def sealer(
    store: PostgresEventStore,
    signer: HeadSigner,
    pg_url: str,
    *,
    nats_url: str | None = None,
    prefix: str = "tledger",
    seal_interval: float = 0.05,
) -> Sealer:
    return Sealer(
        store,
        signer,
        database_url=pg_url,
        nats_servers=nats_url,
        settings=SealerSettings(
            prefix=prefix,
            seal_interval=seal_interval,
            poll_interval=0.05,
            standby_poll_interval=0.1,
            nats_connect_timeout=1.0,
        ),
    )


async def settled(store: PostgresEventStore) -> int:
    """Wait until the safe head (what an export or a sealer reads up to) covers every event
    written; the last position.

    The global read only returns events of transactions older than every transaction
    still running on the cluster; on a server shared with other suites, one of theirs can
    hold it back for a while (docs/operations.md, the xmin-horizon caveat).
    """
    async with store.pool.acquire() as conn:
        last = int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events"))

    async def covered() -> bool:
        return await store.head_position() >= last

    await eventually(covered, within=60)
    return last


async def seal_all(
    store: PostgresEventStore, signer: HeadSigner, pg_url: str, *, within: float = 30
) -> None:
    """Run a sealer until its tree holds every event stored now, then stop it."""
    async with store.pool.acquire() as conn:
        count = int(await conn.fetchval("SELECT count(*) FROM events"))
    worker = sealer(store, signer, pg_url)
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(within):
            await worker.wait_sealed(count)
    finally:
        worker.stop()
        await task


async def tamper(pg_url: str, schema: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(sql, *args)
    finally:
        await conn.close()


async def check_ledger(
    store: PostgresEventStore, signer: HeadSigner, against: list[SignedHead] | None = None
) -> LedgerReport:
    async with store.pool.acquire() as conn:
        return await verify_ledger(conn, [signer.public_key], against=against or [])
