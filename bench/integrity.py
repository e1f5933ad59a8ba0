"""The price of the audit proof: the sealer beside appends, verify, proofs, sealing delay.

Four questions, each against a reference measured in the same run:

1. **Appends with the sealer running** against appends without it: 8 writers, one event
   per append (``bench/append.py``'s workload), rounds alternating which goes first. The
   sealer runs in this process, as it would in ``run`` (conservative: it shares the
   client's CPU), and has sealed the earlier rounds' events before its round is timed
   (steady state). Goal: at least 0.95x.
2. **verify of the whole store**: every stream's hash chain, the Merkle tree against
   every signed head and the log's shape (``structure.py``), side by side as the CLI runs
   them, in events per second (goal: at least 100,000/s); the reference is one sequential
   read of the same rows' positions and hashes.
3. **An inclusion proof on a 1,000,000-event store** (``--events``): leaf lookup plus the
   proof's nodes, p99 over random events (goal: at most 10 ms); the reference is a
   primary-key SELECT of the event row.
4. **Commit to signed head**: appends at ``--rate`` per second with the sealer at its
   default interval; p99 of the time from an append's return to a signed head covering it
   (goal: at most 5 s); the reference is the sealer's interval.

Run: ``python bench/integrity.py [--events N] [--rounds N] [--seconds S] [--database-url URL]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.events import Noted, store_test_registry

from bench._common import (
    Target,
    add_common_arguments,
    drop_schemas,
    fresh_schema_name,
    median,
    percentile,
    positive_int,
    postgres_url,
    server_facts,
    timed_round,
)
from bench.append import Cell, Ours
from programledger.adapters.codec import EventCodec
from programledger.adapters.nats.sealer import Sealer, SealerSettings
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.ledger import LedgerStore
from programledger.adapters.postgres.ledger_verification import verify_ledger
from programledger.adapters.postgres.migrations import migrate
from programledger.adapters.postgres.structure import StructureReport, check_structure
from programledger.adapters.postgres.verification import VerificationSummary, verify_streams
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.application.ledger_audit import LedgerReport
from programledger.application.signing import HeadSigner

APPEND_GOAL = 0.95
VERIFY_GOAL = 100_000.0
PROOF_GOAL_MS = 10.0
SEAL_GOAL_S = 5.0
_META = EventMetadata(actor="bench", program_id=uuid.uuid4())


def _sealer(store: PostgresEventStore, url: str, signer: HeadSigner) -> Sealer:
    return Sealer(
        store,
        signer,
        database_url=url,
        nats_servers=None,
        settings=SealerSettings(prefix="benchintegrity"),
    )


async def _with_sealer(
    store: PostgresEventStore,
    url: str,
    signer: HeadSigner,
    work: Callable[[Sealer], Awaitable[None]],
) -> None:
    sealer = _sealer(store, url, signer)
    task = asyncio.create_task(sealer.run())
    try:
        await work(sealer)
    finally:
        sealer.stop()
        await task


async def _seal_everything(store: PostgresEventStore, url: str, signer: HeadSigner) -> None:
    async with store.pool.acquire() as conn:
        count = int(await conn.fetchval("SELECT count(*) FROM events"))

    async def wait(sealer: Sealer) -> None:
        await sealer.wait_sealed(count)

    await _with_sealer(store, url, signer, wait)


async def appends(
    store: PostgresEventStore, url: str, signer: HeadSigner, args: argparse.Namespace
) -> Target:
    """Rounds of 8 writers, with and without a sealer, alternating which goes first."""
    cell = Cell(events=1, writers=8)
    rates: dict[str, list[float]] = {"with": [], "without": []}
    for r in range(args.rounds):
        order = ["with", "without"] if r % 2 == 0 else ["without", "with"]
        for side in order:
            writers = Ours(store, cell, 4, f"r{r}{side}")
            if side == "with":
                rates[side].append(await _round_with_sealer(store, url, signer, writers, args))
            else:
                rates[side].append((await timed_round(8, args.seconds, writers.append)).items_per_s)
        print(
            f"  appends round {r + 1}/{args.rounds}: with sealer {rates['with'][-1]:,.0f} ev/s, "
            f"without {rates['without'][-1]:,.0f} ev/s",
            file=sys.stderr,
            flush=True,
        )
    return Target(
        "integrity_append_with_sealer", median(rates["with"]), median(rates["without"]), APPEND_GOAL
    )


async def _round_with_sealer(
    store: PostgresEventStore, url: str, signer: HeadSigner, writers: Ours, args: argparse.Namespace
) -> float:
    rate: list[float] = []

    async def go(sealer: Sealer) -> None:
        # Steady state, as in `run`: the sealer first catches up with the rounds before
        # (bounded: a transaction open elsewhere on the cluster holds the safe head back).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await sealer.wait_sealed(await _count(store))
        rate.append((await timed_round(8, args.seconds, writers.append)).items_per_s)

    await _with_sealer(store, url, signer, go)
    return rate[0]


async def fill(store: PostgresEventStore, events: int) -> None:
    """``events`` events in 100-event appends over 1,000-event streams, 8 at a time."""
    batch, per_stream = 100, 1000
    done = 0
    started = time.perf_counter()

    async def one(n: int) -> None:
        await store.append(
            f"bench-{n * batch // per_stream}",
            ExpectedVersion.ANY,
            [
                Noted(text="filled for the integrity benchmark", n=n * batch + i)
                for i in range(batch)
            ],
            _META,
        )

    while done < events:
        chunk = range(done // batch, min(events, done + 8 * batch) // batch)
        await asyncio.gather(*(one(n) for n in chunk))
        done += len(chunk) * batch
        if done % 100_000 < 8 * batch:
            rate = done / (time.perf_counter() - started)
            print(f"  filled {done:,} events ({rate:,.0f}/s)", file=sys.stderr, flush=True)


async def verify_rate(store: PostgresEventStore, signer: HeadSigner) -> tuple[float, float]:
    """Events per second of verify (chains, tree and the log's shape), and of a plain read
    of the same rows."""
    started = time.perf_counter()
    summary = VerificationSummary()

    async def chains() -> None:
        async for result in verify_streams(store):
            summary.add(result)

    async def tree() -> LedgerReport:
        async with store.pool.acquire() as conn:
            return await verify_ledger(conn, [signer.public_key])

    async def shape() -> StructureReport:
        async with store.pool.acquire() as conn:
            return await check_structure(conn)

    # As `programledger verify` runs them: side by side.
    _, report, structure = await asyncio.gather(chains(), tree(), shape())
    seconds = time.perf_counter() - started
    assert summary.ok, summary.broken[:3]
    assert report.ok, report.problems[:3]
    assert structure.ok, structure.problems[:3]
    started = time.perf_counter()
    async with store.pool.acquire() as conn, conn.transaction():
        rows = 0
        async for _ in conn.cursor(
            "SELECT position, hash FROM events ORDER BY position", prefetch=10_000
        ):
            rows += 1
    ref_seconds = time.perf_counter() - started
    print(
        f"  verify: {summary.events:,} events in {seconds:.1f}s (chains, tree, shape); "
        f"a plain read of them {ref_seconds:.1f}s",
        file=sys.stderr,
    )
    return summary.events / seconds, rows / ref_seconds


async def proof_latency(store: PostgresEventStore, samples: int) -> tuple[float, float]:
    ledger = LedgerStore(store.pool)
    head = await ledger.latest_head()
    assert head is not None
    size = head.head.size
    async with store.pool.acquire() as conn:
        positions = [
            r["position"]
            for r in await conn.fetch(
                "SELECT position FROM tree_leaves WHERE leaf_index = ANY($1::bigint[])",
                [random.randrange(size) for _ in range(samples)],
            )
        ]
    ours: list[float] = []
    ref: list[float] = []
    for position in positions:
        started = time.perf_counter()
        leaf = await ledger.leaf(position=position)
        await ledger.inclusion_proof(leaf.index, size)
        ours.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        async with store.pool.acquire() as conn:
            await conn.fetchrow("SELECT * FROM events WHERE position = $1", position)
        ref.append((time.perf_counter() - started) * 1000)
    return percentile(ours, 99), percentile(ref, 99)


async def seal_delay(
    store: PostgresEventStore, url: str, signer: HeadSigner, rate: float, seconds: float
) -> float:
    """p99 seconds from an append's return to a signed head covering it."""
    committed: dict[int, float] = {}
    delays: list[float] = []
    all_sealed = asyncio.Event()
    appending_done = asyncio.Event()

    async def work(sealer: Sealer) -> None:
        async def watch() -> None:
            while True:
                await sealer.wait_sealed(sealer.tree_size + 1)
                now = time.perf_counter()
                for position in [p for p in committed if p <= sealer.tree_size]:
                    delays.append(now - committed.pop(position))
                if not committed and appending_done.is_set():
                    all_sealed.set()

        watcher = asyncio.create_task(watch())
        await sealer.wait_sealed(await _count(store))
        deadline = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < deadline:
            result = await store.append(
                f"seal-{n % 50}", ExpectedVersion.ANY, [Noted(text="timed", n=n)], _META
            )
            committed[result.last_position] = time.perf_counter()
            n += 1
            await asyncio.sleep(1 / rate)
        appending_done.set()
        if not committed:
            all_sealed.set()
        async with asyncio.timeout(60):
            await all_sealed.wait()
        watcher.cancel()

    await _with_sealer(store, url, signer, work)
    return percentile(delays, 99)


async def _count(store: PostgresEventStore) -> int:
    async with store.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM events"))


async def bench(url: str, source: str, args: argparse.Namespace) -> list[str]:
    print(
        f"PostgreSQL from {source}; "
        + ", ".join(f"{k} {v}" for k, v in (await server_facts(url)).items())
    )
    signer = HeadSigner(Ed25519PrivateKey.generate())
    schemas = [fresh_schema_name("integrity"), fresh_schema_name("integrity")]
    conn = await asyncpg.connect(url)
    try:
        for schema in schemas:
            await migrate(conn, schema, registry=store_test_registry())
    finally:
        await conn.close()
    pools = [await create_pool(url, s, min_size=2, max_size=10) for s in schemas]
    try:
        codec = EventCodec(store_test_registry())
        small, large = (
            PostgresEventStore(p, codec, schema=s) for p, s in zip(pools, schemas, strict=True)
        )
        append_target = await appends(small, url, signer, args)
        delay = await seal_delay(small, url, signer, args.rate, args.seconds * 3)
        await fill(large, args.events)
        started = time.perf_counter()
        await _seal_everything(large, url, signer)
        print(
            f"  sealed {args.events:,} events in {time.perf_counter() - started:.1f}s",
            file=sys.stderr,
        )
        verify_ours, verify_ref = await verify_rate(large, signer)
        proof_p99, ref_p99 = await proof_latency(large, args.samples)
    finally:
        for pool in pools:
            await pool.close()
        await drop_schemas(url, schemas)
    verify_met = verify_ours >= VERIFY_GOAL
    return [
        append_target.line(),
        f"target integrity_verify_events_per_s: ours={verify_ours:.1f} "
        f"ref={verify_ref:.1f} ratio={verify_ours / verify_ref:.3f} goal=>={VERIFY_GOAL:g} "
        f"{'met' if verify_met else 'missed'}",
        f"target integrity_inclusion_proof_p99_at_{args.events}: ours={proof_p99:.2f} "
        f"ref={ref_p99:.2f} ratio={proof_p99 / ref_p99 if ref_p99 else float('nan'):.3f} "
        f"goal=<={PROOF_GOAL_MS:g}ms {'met' if proof_p99 <= PROOF_GOAL_MS else 'missed'}",
        f"target integrity_commit_to_signed_head_p99: ours={delay:.2f} ref=1.00 "
        f"ratio={delay:.3f} goal=<={SEAL_GOAL_S:g}s {'met' if delay <= SEAL_GOAL_S else 'missed'}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, rounds=7, seconds=5.0)
    parser.add_argument(
        "--events", type=positive_int, default=1_000_000, help="store size for verify and proofs"
    )
    parser.add_argument("--samples", type=positive_int, default=1000, help="inclusion proofs timed")
    parser.add_argument(
        "--rate", type=positive_int, default=200, help="appends per second for the sealing delay"
    )
    args = parser.parse_args(argv)
    with postgres_url(args.database_url) as (url, source):
        lines = asyncio.run(bench(url, source, args))
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
