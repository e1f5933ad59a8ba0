"""The sealer on PostgreSQL and NATS: heads while events arrive, proofs any RFC 9162
verifier accepts, a copy of every head in JetStream, one active sealer."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from programledger.adapters.nats.sealer import head_stream_name
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.leadership import LeaderState
from programledger.adapters.postgres.ledger import LedgerStore, ProofUnavailable
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.application.signing import signature_holds
from programledger.domain.integrity import head_from_json
from tests.support import rfc9162
from tests.support.events import Noted
from tests.support.ledger import check_ledger, new_signer, sealer
from tests.support.relay_process import eventually

META = EventMetadata(actor="sealer-test")


async def _append(store: PostgresEventStore, n: int, streams: int = 5) -> None:
    for i in range(n):
        await store.append(
            f"note-{i % streams}", ExpectedVersion.ANY, [Noted(text=str(i), n=i)], META
        )


async def test_heads_follow_appends_and_proofs_verify_independently(
    event_store: PostgresEventStore, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    signer = new_signer()
    worker = sealer(event_store, signer, pg_url, nats_url=nats_url, prefix=subject_prefix)
    task = asyncio.create_task(worker.run())
    try:
        await _append(event_store, 30)
        async with asyncio.timeout(30):
            await worker.wait_sealed(30)
        await _append(event_store, 25)
        async with asyncio.timeout(30):
            await worker.wait_sealed(55)
    finally:
        worker.stop()
        await task

    ledger = LedgerStore(event_store.pool)
    heads = await ledger.heads()
    assert len(heads) >= 2
    assert heads[-1].head.size == 55
    assert all(signature_holds(signer.public_key, h) for h in heads)
    async with event_store.pool.acquire() as conn:
        hashes = [
            bytes(r["hash"]) for r in await conn.fetch("SELECT hash FROM events ORDER BY position")
        ]
    for signed in heads:
        assert signed.head.root == rfc9162.mth(hashes[: signed.head.size])
    for position in (1, 17, 55):
        leaf = await ledger.leaf(position=position)
        proof = await ledger.inclusion_proof(leaf.index, 55)
        assert rfc9162.inclusion_root(leaf.event_hash, leaf.index, 55, proof) == heads[-1].head.root
    old = heads[0].head
    proof = await ledger.consistency_proof(old.size, 55)
    assert rfc9162.consistency_roots(old.size, 55, old.root, proof) == (
        old.root,
        heads[-1].head.root,
    )
    with pytest.raises(ProofUnavailable, match="no event at position 56"):
        await ledger.leaf(position=56)
    with pytest.raises(ProofUnavailable, match="size 56"):
        await ledger.inclusion_proof(3, 56)

    report = await check_ledger(event_store, signer)
    assert report.ok, report.problems
    assert (report.events, report.tree_size, report.heads) == (55, 55, len(heads))

    # A copy of every head lives in its own JetStream stream.
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        name = head_stream_name(subject_prefix)
        info = await js.stream_info(name)
        assert info.state.messages == len(heads)
        last = await js.get_msg(name, info.state.last_seq)
        assert head_from_json(json.loads(last.data or b"")) == heads[-1]
        await js.delete_stream(name)
    finally:
        await nc.close()


async def test_one_sealer_is_active_and_a_standby_resumes_the_tree(
    event_store: PostgresEventStore, pg_url: str
) -> None:
    signer = new_signer()
    first = sealer(event_store, signer, pg_url)
    second = sealer(event_store, signer, pg_url)
    tasks = [asyncio.create_task(first.run())]
    await _append(event_store, 10)
    async with asyncio.timeout(30):
        await first.wait_sealed(10)
    tasks.append(asyncio.create_task(second.run()))
    await eventually(lambda: second.state is LeaderState.STANDBY)
    first.stop()
    await tasks[0]
    await _append(event_store, 7)
    try:
        async with asyncio.timeout(30):
            await second.wait_sealed(17)
    finally:
        second.stop()
        await tasks[1]
    report = await check_ledger(event_store, signer)
    assert report.ok, report.problems
    assert report.tree_size == 17


async def test_heads_are_signed_while_nats_is_away(
    event_store: PostgresEventStore, pg_url: str
) -> None:
    """Publishing waits for NATS; sealing does not."""
    signer = new_signer()
    worker = sealer(event_store, signer, pg_url, nats_url="nats://127.0.0.1:1")
    task = asyncio.create_task(worker.run())
    try:
        await _append(event_store, 6)
        async with asyncio.timeout(30):
            await worker.wait_sealed(6)
        await eventually(lambda: worker.stats.failures > 0)
        assert "publishing tree heads failed" in (worker.stats.last_error or "")
        await _append(event_store, 3)
        async with asyncio.timeout(30):
            await worker.wait_sealed(9)
    finally:
        worker.stop()
        await task
    assert (await check_ledger(event_store, signer)).ok
