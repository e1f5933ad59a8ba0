"""Write-combining on real PostgreSQL: appends that wait share one transaction, each judged
on its own, in an order readers can trust, and all or nothing when the transaction dies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import asyncpg
import pytest_asyncio
from prometheus_client import CollectorRegistry

from programledger.adapters.codec import EventCodec
from programledger.adapters.postgres.combining import SPLIT_ABOVE
from programledger.adapters.postgres.eventstore import _READ_STREAMS, PostgresEventStore
from programledger.adapters.postgres.structure import check_structure
from programledger.api.errors import is_unavailable
from programledger.api.metrics import combining_metrics
from programledger.application.eventstore import (
    AppendResult,
    ConcurrencyConflict,
    EventMetadata,
    ExpectedVersion,
    InvalidAppend,
    RecordedEvent,
)
from programledger.domain.events import DomainEvent, EventRegistry
from programledger.domain.integrity import event_hash_v2
from tests.support.events import Noted

META = EventMetadata(actor="alice", reason="combining")

T = TypeVar("T")


class Uncatalogued(DomainEvent, frozen=True, kw_only=True):
    """Known to the code, never migrated into the store's catalogue: the guard refuses it."""

    event_type: ClassVar[str] = "TestUncatalogued"
    text: str


@pytest_asyncio.fixture
async def one_at_a_time(
    pool: asyncpg.Pool, registry: EventRegistry, schema: str
) -> AsyncIterator[PostgresEventStore]:
    """A store that runs one append transaction at a time: whatever arrives meanwhile is
    combined into the next one, so a test decides what goes together."""
    store = PostgresEventStore(pool, EventCodec(registry), schema=schema, appends_in_flight=1)
    yield store
    await store.notifier.flush()


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    for _ in range(3000):
        met = condition()
        if met if isinstance(met, bool) else await met:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def _lock_id(stream_id: str) -> str:
    return f"hashtextextended('stream:{stream_id}', 0)"


async def _queued(store: PostgresEventStore, count: int) -> None:
    await until(lambda: store.combiner.waiting == count, f"{count} appends wait")


async def combined(
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    calls: list[Coroutine[Any, Any, T]],
) -> list[T | BaseException]:
    """``calls`` queued behind one append held in flight, then let go together: with one
    transaction at a time, they go to PostgreSQL as the next combined transaction (those
    that cannot share it, as a repeated key, in the ones after)."""
    async with pool.acquire() as gate:
        # A session lock (no transaction held) on the stream of the first append keeps it
        # in flight while the others queue behind it.
        await gate.execute(f"SELECT pg_advisory_lock({_lock_id('note-gate')})")
        opening = asyncio.create_task(
            store.append("note-gate", ExpectedVersion.ANY, [Noted(text="gate")], META)
        )
        await until(lambda: store.combiner.in_flight == 1, "the gate's append runs")
        waiting = [asyncio.create_task(call) for call in calls]
        await _queued(store, len(waiting))
        await gate.execute(f"SELECT pg_advisory_unlock({_lock_id('note-gate')})")
        await opening
        return await asyncio.gather(*waiting, return_exceptions=True)


async def test_one_transaction_judges_each_command_on_its_own(
    one_at_a_time: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    store = one_at_a_time
    behind = await store.append("note-behind", ExpectedVersion.NO_STREAM, [Noted(text="v1")], META)
    first = await store.append(
        "note-keyed", ExpectedVersion.ANY, [Noted(text="once")], META, idempotency_key="k-1"
    )

    def new_keyed() -> Coroutine[Any, Any, AppendResult]:
        return store.append(
            "note-new", ExpectedVersion.NO_STREAM, [Noted(text="a")], META, idempotency_key="k-2"
        )

    calls = [
        store.append("note-behind", ExpectedVersion.NO_STREAM, [Noted(text="late")], META),
        store.append(
            "note-keyed", ExpectedVersion.ANY, [Noted(text="once")], META, idempotency_key="k-1"
        ),
        new_keyed(),
        store.append("note-other", 0, [Noted(text="b"), Noted(text="c", n=1)], META),
        # The same key again: it waits for the next transaction, which finds k-2 stored.
        new_keyed(),
    ]
    transactions = store.combiner.transactions
    conflict, replayed, new, other, repeat = await combined(store, pool, calls)
    assert store.combiner.transactions == transactions + 3, "the gate, four in one, the repeat"
    assert isinstance(conflict, ConcurrencyConflict)
    assert conflict.actual_version == 1
    assert isinstance(replayed, AppendResult)
    assert replayed.replayed
    assert replayed.event_ids == first.event_ids
    assert isinstance(new, AppendResult)
    assert not new.replayed
    assert isinstance(other, AppendResult)
    assert (other.first_version, other.last_version) == (1, 2)
    assert isinstance(repeat, AppendResult)
    assert repeat.replayed
    assert repeat.event_ids == new.event_ids
    # The two that were written share one transaction and one block of positions.
    positions = [new.first_position, other.first_position, other.last_position]
    assert sorted(positions) == list(range(min(positions), min(positions) + 3))
    async with pool.acquire() as conn:
        tx_ids = await conn.fetch(
            "SELECT DISTINCT tx_id FROM events WHERE stream_id = ANY($1)",
            ["note-new", "note-other"],
        )
        assert len(tx_ids) == 1
        assert await conn.fetchval(
            "SELECT (version, last_position) FROM streams WHERE stream_id = 'note-behind'"
        ) == (1, behind.last_position)
    for stream in ("note-behind", "note-keyed", "note-new", "note-other", "note-gate"):
        assert (await store.verify(stream)).ok, stream
    await _hashes_as_python_computes_them(pool)
    async with pool.acquire() as conn:
        # A combined transaction is one block, whatever it left out: verify's shape holds.
        shape = await check_structure(conn)
    assert shape.ok, shape.problems
    assert shape.unused_positions == 0


async def test_a_lone_event_and_several_chain_as_the_domain_hashes_them(
    pool: asyncpg.Pool, registry: EventRegistry, schema: str
) -> None:
    """append_events hashes a lone event in the INSERT that writes it (0054) and several
    in its loop over the shared segments (0052): both must write format 2 byte for byte
    and chain on the stream's head, with a program or without."""
    store = PostgresEventStore(pool, EventCodec(registry), schema=schema)
    in_program = EventMetadata(actor="alice", reason="hashing", program_id=UUID(int=7))
    await store.append("note-h", ExpectedVersion.NO_STREAM, [Noted(text="one")], META)
    await store.append("note-h", 1, [Noted(text="a", n=n) for n in range(3)], in_program)
    await store.append("note-h", 4, [Noted(text="two")], in_program)
    await store.append("note-h", 5, [Noted(text="three")], META)
    await _hashes_as_python_computes_them(pool)
    assert (await store.verify("note-h")).ok
    async with pool.acquire() as conn:
        chain = await conn.fetch(
            "SELECT prev_hash, hash FROM events WHERE stream_id = 'note-h' ORDER BY version"
        )
        head = await conn.fetchrow(
            "SELECT version, last_hash FROM streams WHERE stream_id = 'note-h'"
        )
    assert head is not None
    assert chain[0]["prev_hash"] == b""
    assert [e["prev_hash"] for e in chain[1:]] == [e["hash"] for e in chain[:-1]]
    assert (head["version"], head["last_hash"]) == (6, chain[-1]["hash"])


async def _hashes_as_python_computes_them(pool: asyncpg.Pool) -> None:
    """The hash built in place by append_batch is format 2 byte for byte, as the domain
    (and docs/integrity.md) define it; verify checks it against event_hash_v2 in SQL."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT position, event_id, stream_id, stream_type, version, program_id, "
            "event_type, schema_version, data::text AS data, metadata::text AS metadata, "
            "recorded_at, prev_hash, hash, hash_version FROM events ORDER BY position"
        )
    assert rows
    for r in rows:
        assert r["hash_version"] == 2
        assert r["hash"] == event_hash_v2(
            prev_hash=r["prev_hash"],
            position=r["position"],
            event_id=r["event_id"],
            stream_id=r["stream_id"],
            stream_type=r["stream_type"],
            version=r["version"],
            program_id=r["program_id"],
            event_type=r["event_type"],
            schema_version=r["schema_version"],
            data=r["data"].encode(),
            metadata=r["metadata"].encode(),
            recorded_at=r["recorded_at"],
        ), r["position"]


async def test_combined_writers_and_a_paging_reader_see_every_event_once_in_order(
    pool: asyncpg.Pool, registry: EventRegistry, schema: str
) -> None:
    """Writers on their own streams and writers sharing streams, combined two transactions
    at a time, while a reader pages ``read_all``: every event once, in position order."""
    store = PostgresEventStore(pool, EventCodec(registry), schema=schema, appends_in_flight=2)
    writers_done = asyncio.Event()
    appends = 60

    async def own_stream(w: int) -> None:
        for i in range(appends):
            await store.append(f"note-own{w}", i, [Noted(text="own", n=i)], META)

    async def shared_stream(w: int) -> None:
        for i in range(appends):
            await store.append(
                f"note-shared{w % 3}", ExpectedVersion.ANY, [Noted(text="s", n=i)], META
            )

    async def write() -> None:
        await asyncio.gather(
            *(own_stream(w) for w in range(10)), *(shared_stream(w) for w in range(9))
        )
        writers_done.set()

    writing = asyncio.create_task(write())
    seen: list[int] = []
    last = 0
    head: int | None = None
    deadline = asyncio.get_running_loop().time() + 120
    while head is None or last < head:
        if head is None and writers_done.is_set():
            async with pool.acquire() as conn:
                head = int(await conn.fetchval("SELECT max(position) FROM events"))
        page = await store.read_all(last, 50)
        seen.extend(e.position for e in page)
        if page:
            last = page[-1].position
        else:
            assert asyncio.get_running_loop().time() < deadline, "the reader stalled"
            await asyncio.sleep(0.005)
    await writing
    async with pool.acquire() as conn:
        committed = [
            r[0] for r in await conn.fetch("SELECT position FROM events ORDER BY position")
        ]
    assert len(seen) == len(set(seen)), "an event was delivered twice"
    assert seen == committed, "the reader missed events or read them out of order"
    assert len(committed) == 19 * appends
    assert store.combiner.transactions < store.combiner.commands, "nothing was combined"
    await _hashes_as_python_computes_them(pool)
    for stream in [f"note-own{w}" for w in range(10)] + [f"note-shared{s}" for s in range(3)]:
        verification = await store.verify(stream)
        assert verification.ok, stream
    assert [(await store.verify(f"note-shared{s}")).events_checked for s in range(3)] == [180] * 3


async def test_a_combined_transaction_killed_midway_applies_none_of_its_commands(
    one_at_a_time: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    store = one_at_a_time
    streams = ["note-a", "note-b", "note-c"]

    killed: set[int] = set()

    async def two_events(stream: str) -> AppendResult:
        return await store.append(
            stream,
            ExpectedVersion.NO_STREAM,
            [Noted(text=stream), Noted(text=stream, n=1)],
            META,
            idempotency_key=f"kill-{stream}",
        )

    async def stuck() -> list[int]:
        """Backends whose append has written its rows and waits on the catalogue."""
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT pid FROM pg_locks WHERE relation = 'event_catalogue'::regclass "
                "AND NOT granted"
            )
        return [r[0] for r in rows if r[0] not in killed]

    async def one_stuck() -> bool:
        return len(await stuck()) == 1

    async def kill_the_stuck_one() -> None:
        await until(one_stuck, "an append waits on the catalogue")
        async with pool.acquire() as conn:
            for pid in await stuck():
                killed.add(pid)
                await conn.execute("SELECT pg_terminate_backend($1)", pid)

    async with pool.acquire() as holder, holder.transaction():
        # The catalogue guard runs after the events are inserted: an exclusive lock on it
        # holds the append inside its transaction, rows written, until it is killed. LOCK
        # takes no transaction id, so it holds back nobody's safe reads.
        await holder.execute("LOCK TABLE event_catalogue IN ACCESS EXCLUSIVE MODE")
        opening = asyncio.create_task(
            store.append("note-first", ExpectedVersion.ANY, [Noted(text="0")], META)
        )
        await until(one_stuck, "the first append waits")
        batch = [asyncio.create_task(two_events(stream)) for stream in streams]
        await _queued(store, len(batch))
        await kill_the_stuck_one()
        first_error = await asyncio.gather(opening, return_exceptions=True)
        await kill_the_stuck_one()
        errors = await asyncio.gather(*batch, return_exceptions=True)
    for error in [*first_error, *errors]:
        assert isinstance(error, Exception), repr(error)
        assert is_unavailable(error), repr(error)
    async with pool.acquire() as conn:
        for table in ("events", "streams", "idempotency_keys"):
            found = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE stream_id = ANY($1)", [*streams, "note-first"]
            )
            assert found == 0, f"{table} kept rows of a killed transaction"
    retried = await asyncio.gather(*(two_events(stream) for stream in streams))
    assert [(r.first_version, r.last_version, r.replayed) for r in retried] == [(1, 2, False)] * 3
    for stream in streams:
        assert (await store.verify(stream)).ok


async def test_a_batch_the_catalogue_refuses_is_sent_again_one_by_one_and_only_the_culprit_fails(
    pool: asyncpg.Pool, schema: str
) -> None:
    codec = EventCodec(EventRegistry([Noted, Uncatalogued]))
    store = PostgresEventStore(pool, codec, schema=schema, appends_in_flight=1)
    calls = [
        store.append("note-a", ExpectedVersion.NO_STREAM, [Noted(text="a")], META),
        store.append("note-b", ExpectedVersion.NO_STREAM, [Uncatalogued(text="b")], META),
        store.append("note-c", ExpectedVersion.NO_STREAM, [Noted(text="c")], META),
    ]
    transactions = store.combiner.transactions
    first, refused, third = await combined(store, pool, calls)
    assert store.combiner.transactions == transactions + 5, "the gate, the three, each alone"
    assert isinstance(refused, InvalidAppend), repr(refused)
    assert "TestUncatalogued" in str(refused)
    for result in (first, third):
        assert isinstance(result, AppendResult), repr(result)
        assert (result.first_version, result.replayed) == (1, False)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE stream_id = 'note-b'") == 0
    await store.notifier.flush()


async def test_a_combined_transaction_alone_in_its_process_notifies_in_itself(
    one_at_a_time: PostgresEventStore, pool: asyncpg.Pool, pg_url: str
) -> None:
    """With one transaction in flight, a combined batch has no commit beside it to group
    with: it announces its last position in its own transaction (nothing is left for the
    notifier to send after it), and a batch that wrote nothing announces nothing."""
    store = one_at_a_time
    await store.append("note-taken", ExpectedVersion.NO_STREAM, [Noted(text="v1")], META)
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(pg_url)
    try:
        await listener.add_listener(
            store.notify_channel, lambda *args: received.put_nowait(args[3])
        )
        refused = await combined(
            store,
            pool,
            [
                store.append("note-taken", ExpectedVersion.NO_STREAM, [Noted(text="no")], META)
                for _ in range(3)
            ],
        )
        assert all(isinstance(r, ConcurrencyConflict) for r in refused), refused
        written = await combined(
            store,
            pool,
            [
                store.append(f"note-w{i}", ExpectedVersion.NO_STREAM, [Noted(text="w")], META)
                for i in range(3)
            ],
        )
        last = max(r.last_position for r in written if isinstance(r, AppendResult))
        assert store.notifier.sent == last
        announced = [await asyncio.wait_for(received.get(), timeout=10) for _ in range(3)]
    finally:
        await listener.close()
    async with pool.acquire() as conn:
        gates = await conn.fetch(
            "SELECT position FROM events WHERE stream_id = 'note-gate' ORDER BY version"
        )
    # Each gate's append ran alone too; the refused batch sent nothing between them.
    assert announced == [str(gates[0]["position"]), str(gates[1]["position"]), str(last)]


async def test_metrics_show_how_many_callers_each_transaction_and_read_carried(
    one_at_a_time: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    store = one_at_a_time
    registry = CollectorRegistry()
    for collector in combining_metrics(
        lambda: store.combiner.sizes, lambda: store.stream_reads.sizes
    ):
        registry.register(collector)
    # Four commands in one transaction, each loading its stream once it is answered: four
    # loads in one query (two of one stream: read once, both answered), then one alone.
    results = await combined(
        store, pool, [_append_then_load(store, f"note-m{i % 3}") for i in range(4)]
    )
    assert all(not isinstance(r, BaseException) for r in results), results
    await store.read_stream("note-m0")

    def sample(name: str, suffix: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"programledger_{name}_{suffix}", labels)

    # The gate alone, then the four in one transaction.
    appends = "append_commands_per_transaction"
    assert sample(appends, "count") == 2
    assert sample(appends, "sum") == 5
    les = ("1.0", "2.0", "4.0", "+Inf")
    assert [sample(appends, "bucket", le=le) for le in les] == [1, 1, 2, 2]
    reads = "stream_reads_per_query"
    assert sample(reads, "count") == 2
    assert sample(reads, "sum") == 5
    assert [sample(reads, "bucket", le=le) for le in les] == [1, 1, 2, 2]


async def test_the_next_transaction_goes_out_before_the_last_ones_callers_resume(
    one_at_a_time: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """With one transaction at a time, the slot is the bottleneck: the queue must not wait
    while the callers of the transaction that just ended finish their commands."""
    store = one_at_a_time
    resumed_at: list[int] = []

    async def note(stream: str) -> None:
        await store.append(stream, ExpectedVersion.ANY, [Noted(text=stream)], META)
        resumed_at.append(store.combiner.transactions)

    async with pool.acquire() as gate:
        # Session locks on two streams hold the first transaction, then the second, in
        # flight while the next one queues behind it.
        await gate.execute(f"SELECT pg_advisory_lock({_lock_id('note-gate')})")
        await gate.execute(f"SELECT pg_advisory_lock({_lock_id('note-gate-2')})")
        opening = asyncio.create_task(note("note-gate"))
        await until(lambda: store.combiner.in_flight == 1, "the first transaction runs")
        start = store.combiner.transactions
        second = [asyncio.create_task(note(s)) for s in ("note-gate-2", "note-x", "note-y")]
        await _queued(store, len(second))
        await gate.execute(f"SELECT pg_advisory_unlock({_lock_id('note-gate')})")
        await opening
        await until(
            lambda: store.combiner.transactions == start + 1 and store.combiner.waiting == 0,
            "the second transaction runs",
        )
        third = [asyncio.create_task(note(s)) for s in ("note-z", "note-w")]
        await _queued(store, len(third))
        resumed_at.clear()
        await gate.execute(f"SELECT pg_advisory_unlock({_lock_id('note-gate-2')})")
        await asyncio.gather(*second)
        assert resumed_at == [start + 2] * 3, "the second's callers resumed first"
        await asyncio.gather(*third)
    assert resumed_at[3:] == [start + 2] * 2


async def test_a_queue_of_most_of_the_commands_goes_as_two_halves(
    one_at_a_time: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """Behind a transaction of one, 40 waiting commands go as 21 and 19 (half of the 41
    cycling, rounded up, then the rest), so that one half decides while the other's
    transaction runs; a queue of up to ``SPLIT_ABOVE`` with the one answered goes whole."""
    store = one_at_a_time

    async def transactions_of(streams: list[str]) -> list[int]:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT count(*) AS n FROM events WHERE stream_id = ANY($1) GROUP BY tx_id "
                "ORDER BY min(position)",
                streams,
            )
        return [row["n"] for row in rows]

    many = [f"note-half{s}" for s in range(40)]
    results = await combined(
        store,
        pool,
        [store.append(s, ExpectedVersion.NO_STREAM, [Noted(text=s)], META) for s in many],
    )
    assert [getattr(r, "stream_id", r) for r in results] == many
    assert [getattr(r, "last_version", r) for r in results] == [1] * len(many)
    assert await transactions_of(many) == [21, 19]

    few = [f"note-whole{s}" for s in range(SPLIT_ABOVE - 1)]
    await combined(
        store,
        pool,
        [store.append(s, ExpectedVersion.NO_STREAM, [Noted(text=s)], META) for s in few],
    )
    assert await transactions_of(few) == [len(few)]


async def test_concurrent_loads_share_queries_and_each_gets_its_stream(
    pool: asyncpg.Pool, registry: EventRegistry, schema: str
) -> None:
    store = PostgresEventStore(pool, EventCodec(registry), schema=schema, reads_in_flight=1)
    for s in range(6):
        await store.append(
            f"note-r{s}",
            ExpectedVersion.NO_STREAM,
            [Noted(text=f"{s}", n=n) for n in range(s + 1)],
            META,
        )
    reads = [store.read_stream(f"note-r{s % 6}") for s in range(60)] + [
        store.read_stream("note-none")
    ]
    found = await asyncio.gather(*reads)
    assert store.stream_reads.queries < store.stream_reads.reads, "nothing was combined"
    for s, events in enumerate(found[:60]):
        assert [(e.stream_id, e.version, e.data) for e in events] == [
            (f"note-r{s % 6}", n + 1, Noted(text=f"{s % 6}", n=n)) for n in range(s % 6 + 1)
        ]
    assert found[60] == []
    # A read asked after an append sees it.
    after = await asyncio.gather(
        store.append("note-r0", 1, [Noted(text="later")], META), store.read_stream("note-r1")
    )
    assert after[0].last_version == 2
    assert len(await store.read_stream("note-r0")) == 2


async def _append_then_load(
    store: PostgresEventStore, stream_id: str
) -> tuple[AppendResult, list[RecordedEvent]]:
    """A command's append, then the load its next command begins with."""
    appended = await store.append(stream_id, ExpectedVersion.ANY, [Noted(text=stream_id)], META)
    return appended, await store.read_stream(stream_id)


async def test_the_loads_of_the_commands_one_transaction_answered_go_as_one_query(
    one_at_a_time: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """The commands one combined append answered resume in one step and each loads its
    stream there: with queries free, the first of them must not go alone (nor the second,
    with two in flight), or the loads take three queries where one does."""
    store = one_at_a_time
    streams = [f"note-s{s}" for s in range(5)]
    found = await combined(store, pool, [_append_then_load(store, s) for s in streams])
    assert store.combiner.sizes[len(streams)] == 1, "the five appends went as one"
    loads = [r[1] for r in found if not isinstance(r, BaseException)]
    assert [[e.data for e in events] for events in loads] == [[Noted(text=s)] for s in streams]
    assert (store.stream_reads.reads, store.stream_reads.queries) == (5, 1)


async def test_a_lone_read_goes_at_once_and_reads_its_callers_writes(
    pool: asyncpg.Pool, registry: EventRegistry, schema: str
) -> None:
    """A read that finds a query free and no commands resuming together is sent on its
    caller's task, before the callbacks already due in the event loop run: waiting for
    them cost a lone command a task and two turns of the loop for nothing to combine."""
    store = PostgresEventStore(pool, EventCodec(registry), schema=schema)
    await store.append("note-s0", ExpectedVersion.NO_STREAM, [Noted(text="first")], META)
    seen: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: seen.append(store.stream_reads.queries))
    assert [e.version for e in await store.read_stream("note-s0")] == [1]
    assert seen == [1], "the read was sent before the callbacks due in its step"
    await store.append("note-s0", 1, [Noted(text="again")], META)
    assert [e.version for e in await store.read_stream("note-s0")] == [1, 2]
    assert store.stream_reads.sizes == {1: 2}


@contextlib.asynccontextmanager
async def reads_queued_behind_a_lock(
    store: PostgresEventStore, pool: asyncpg.Pool, stream_id: str
) -> AsyncIterator[
    tuple[asyncio.Task[list[RecordedEvent]], list[asyncio.Task[list[RecordedEvent]]]]
]:
    """Inside the block, the events table is locked: a fresh store's first read of
    ``stream_id`` waits in flight (with one read at a time) and three more queue behind it."""
    async with pool.acquire() as gate, gate.transaction():
        await gate.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        first = asyncio.create_task(store.read_stream(stream_id))
        await until(lambda: store.stream_reads.queries == 1, "the first read is sent")
        waiting = [asyncio.create_task(store.read_stream(stream_id)) for _ in range(3)]
        await until(lambda: store.stream_reads.reads == 4, "three reads wait")
        yield first, waiting


async def test_a_caller_that_gives_up_on_a_combined_read_leaves_the_others_theirs(
    pool: asyncpg.Pool, registry: EventRegistry, schema: str
) -> None:
    store = PostgresEventStore(pool, EventCodec(registry), schema=schema, reads_in_flight=1)
    await store.append("note-c", ExpectedVersion.NO_STREAM, [Noted(text="kept")], META)
    async with reads_queued_behind_a_lock(store, pool, "note-c") as (first, waiting):
        waiting[1].cancel()
    assert [e.data for e in await first] == [Noted(text="kept")]
    assert [e.data for e in await waiting[0]] == [Noted(text="kept")]
    assert [e.data for e in await waiting[2]] == [Noted(text="kept")]
    assert waiting[1].cancelled()
    assert store.stream_reads.queries == 2, "the three waiting shared one query"


async def test_a_combined_read_that_fails_fails_its_callers_and_the_next_reads_go_on(
    pool: asyncpg.Pool, registry: EventRegistry, schema: str
) -> None:
    """The first read and then the combined read of those queued behind it each lose their
    connection (a server restart would do the same): each caller hears its own query's
    error, and the reads after them run on fresh connections."""
    store = PostgresEventStore(pool, EventCodec(registry), schema=schema, reads_in_flight=1)
    await store.append("note-f", ExpectedVersion.NO_STREAM, [Noted(text="kept")], META)

    killed: list[int] = []

    async def kill_the_read_waiting() -> None:
        # Not one killed before: its backend may still be listed while it exits.
        async def found() -> bool:
            async with pool.acquire() as conn:
                pid: int | None = await conn.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query = $1 AND pid <> ALL($2::int[])",
                    _READ_STREAMS,
                    killed,
                )
            if pid is not None:
                killed.append(pid)
            return pid is not None

        await until(found, "a read waits for the table")
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_terminate_backend($1)", killed[-1])

    async with reads_queued_behind_a_lock(store, pool, "note-f") as (first, waiting):
        await kill_the_read_waiting()
        await asyncio.wait([first])
        await until(lambda: store.stream_reads.queries == 2, "the three go as one read")
        await kill_the_read_waiting()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert is_unavailable(first.exception()), repr(first.exception())
    for outcome in outcomes:
        assert isinstance(outcome, BaseException), repr(outcome)
        assert is_unavailable(outcome), repr(outcome)
    after = await asyncio.gather(*(store.read_stream("note-f") for _ in range(3)))
    assert [[e.data for e in events] for events in after] == [[Noted(text="kept")]] * 3


async def test_a_combined_read_of_many_streams_uses_the_index_without_statistics(
    pool: asyncpg.Pool, registry: EventRegistry, schema: str
) -> None:
    """Autovacuum may be off or behind: with no statistics the planner takes each stream
    for 0.5% of the events, and read a growing table whole for a few dozen streams."""
    store = PostgresEventStore(pool, EventCodec(registry), schema=schema)
    for s in range(20):
        await store.append(
            f"note-i{s}",
            ExpectedVersion.NO_STREAM,
            [Noted(text="x", n=n) for n in range(100)],
            META,
        )
    wanted = [f"note-i{s}" for s in range(20)] + [f"note-none{s}" for s in range(180)]
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT reltuples < 0 FROM pg_class WHERE oid = 'events'::regclass"
        ), "the events were analyzed: this test needs a table without statistics"
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {_READ_STREAMS}", wanted))
    assert "Seq Scan on events" not in plan, plan
    found = await store._read_streams(wanted)
    assert sorted(found) == sorted(wanted[:20])
    assert all([r["version"] for r in rows] == list(range(1, 101)) for rows in found.values())


async def test_a_combined_append_of_many_streams_finds_their_heads_by_the_index_without_statistics(
    one_at_a_time: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """``append_batch`` reads the heads of all its streams in one statement; on a ``streams``
    table never analyzed, ``stream_id = ANY(...)`` was planned as a sequential scan from a
    few dozen streams (1.2M rows read per 2 s round at 128 concurrent commands)."""
    store = one_at_a_time
    streams = [f"note-h{s}" for s in range(200)]
    await asyncio.gather(
        *(store.append(s, ExpectedVersion.NO_STREAM, [Noted(text="v1")], META) for s in streams)
    )
    stats = "SELECT seq_scan, n_tup_upd FROM pg_stat_user_tables WHERE relid = 'streams'::regclass"
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT reltuples < 0 FROM pg_class WHERE oid = 'streams'::regclass"
        ), "the streams were analyzed: this test needs a table without statistics"
        before = await conn.fetchrow(stats)
        assert before is not None
        transactions = store.combiner.transactions
        results = await combined(
            store, pool, [store.append(s, 1, [Noted(text="v2")], META) for s in streams]
        )
        assert store.combiner.transactions == transactions + 3, "the gate, then two halves"
        assert [getattr(r, "last_version", r) for r in results] == [2] * len(streams)

        async def counted() -> bool:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            now = await conn.fetchrow(stats)
            assert now is not None
            return bool(now["n_tup_upd"] - before["n_tup_upd"] >= len(streams))

        await until(counted, "the appends' statistics are flushed")
        after = await conn.fetchrow(stats)
        assert after is not None
    assert after["seq_scan"] == before["seq_scan"], "the heads were read by a sequential scan"


async def test_the_hash_segments_a_command_shares_are_format_2_for_every_event(
    one_at_a_time: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """Both append functions encode what a command's events share (stream, program,
    metadata, time) once per command and hash each event's own fields between those
    segments: the bytes must stay format 2's, across a command left out in the middle of a
    batch, two commands chaining on one stream, and the one-command form."""
    store = one_at_a_time
    program = EventMetadata(
        actor="bob", reason="segments", program_id=UUID("5b0f6c1e-8a7d-4c1b-9f2e-3d4a5b6c7d8e")
    )
    alone = await store.append(
        "note-alone",
        ExpectedVersion.NO_STREAM,
        [Noted(text=f"a{i}", n=i) for i in range(3)],
        program,
    )
    assert (alone.first_version, alone.last_version) == (1, 3)
    results = await combined(
        store,
        pool,
        [
            store.append(
                "note-chain",
                ExpectedVersion.NO_STREAM,
                [Noted(text="x"), Noted(text="y", n=1)],
                program,
            ),
            store.append("note-alone", 1, [Noted(text="stale")], META),
            store.append("note-chain", 2, [Noted(text=f"z{i}", n=i) for i in range(3)], META),
            store.append("note-plain", ExpectedVersion.ANY, [Noted(text='\u00e9\\"\x01')], program),
        ],
    )
    first, stale, second, plain = results
    assert isinstance(stale, ConcurrencyConflict)
    assert isinstance(first, AppendResult)
    assert isinstance(second, AppendResult)
    assert isinstance(plain, AppendResult)
    assert (second.first_version, second.last_version) == (3, 5)
    assert second.first_position == first.last_position + 1
    for stream in ("note-alone", "note-chain", "note-plain"):
        assert (await store.verify(stream)).ok, stream
    await _hashes_as_python_computes_them(pool)
