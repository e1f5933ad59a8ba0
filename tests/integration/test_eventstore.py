"""The event store's contract, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import ClassVar

import asyncpg
import pytest

from programledger.adapters.codec import EventCodec
from programledger.adapters.nats.relay import _LAG_SQL
from programledger.adapters.postgres.eventstore import (
    _HEAD_POSITION,
    _READ_ALL,
    PostgresEventStore,
    RawEvent,
    new_event_id,
)
from programledger.adapters.postgres.ledger import _UNSEALED
from programledger.adapters.postgres.migrations import available_migrations, migrate
from programledger.application.eventstore import (
    ConcurrencyConflict,
    EventMetadata,
    ExpectedVersion,
    IdempotencyKeyReused,
    InvalidAppend,
)
from programledger.domain.events import DomainEvent, EventRegistry
from tests.support.events import Noted, Renamed
from tests.support.ledger import settled

META = EventMetadata(actor="alice", reason="testing")


async def readable(store: PostgresEventStore, position: int) -> None:
    """Wait (up to 30 s) until the safe read reaches ``position``.

    The safe read also waits for transactions of others on the same server (the xmin
    horizon), so on a shared server a committed event becomes readable a little later.
    """
    for _ in range(3000):
        if await store.head_position() >= position:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"position {position} never became readable")


async def count_events(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM events"))


async def test_append_and_read_back_with_metadata(event_store: PostgresEventStore) -> None:
    correlation = uuid.uuid4()
    program = uuid.uuid4()
    meta = EventMetadata(
        actor="alice", correlation_id=correlation, reason="kick-off", program_id=program
    )
    result = await event_store.append(
        "note-1", ExpectedVersion.NO_STREAM, [Noted(text="a"), Noted(text="b", n=2)], meta
    )
    assert (result.first_version, result.last_version) == (1, 2)
    assert result.last_position == result.first_position + 1
    events = await event_store.read_stream("note-1")
    assert [e.data for e in events] == [Noted(text="a"), Noted(text="b", n=2)]
    assert [e.version for e in events] == [1, 2]
    assert [e.event_id for e in events] == result.event_ids
    first = events[0]
    assert first.stream_type == "note"
    assert first.event_type == "TestNoted"
    assert first.metadata == meta
    assert first.recorded_at == result.recorded_at
    assert await event_store.stream_version("note-1") == 2
    await readable(event_store, result.last_position)
    assert await event_store.head_position() == result.last_position


def test_event_ids_are_uuid_version_7_in_the_order_of_their_millisecond() -> None:
    """Time first (RFC 9562), as Python's own uuid module reads them: the unique index on
    event_id then takes new ids at its right edge."""
    before = time.time_ns() // 1_000_000
    first = new_event_id()
    after = time.time_ns() // 1_000_000
    assert (first.version, first.variant) == (7, uuid.RFC_4122)
    assert before <= first.int >> 80 <= after
    ids = [new_event_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    later = new_event_id()
    while later.int >> 80 == ids[-1].int >> 80:
        later = new_event_id()
    assert later > max(ids), "an id of a later millisecond sorts after every earlier one"


async def test_stored_event_ids_are_the_time_ordered_ones_appends_make(
    event_store: PostgresEventStore,
) -> None:
    result = await event_store.append(
        "note-ids", ExpectedVersion.NO_STREAM, [Noted(text="a"), Noted(text="b", n=2)], META
    )
    stored = [e.event_id for e in await event_store.read_stream("note-ids")]
    assert stored == result.event_ids
    assert {i.version for i in stored} == {7}
    recorded_ms = int(result.recorded_at.timestamp() * 1000)
    assert all(abs((i.int >> 80) - recorded_ms) < 60_000 for i in stored)


async def test_expected_version_rules(event_store: PostgresEventStore) -> None:
    await event_store.append("note-x", 0, [Noted(text="first")], META)
    with pytest.raises(ConcurrencyConflict) as no_stream:
        await event_store.append("note-x", ExpectedVersion.NO_STREAM, [Noted(text="b")], META)
    assert no_stream.value.actual_version == 1
    with pytest.raises(ConcurrencyConflict) as stale:
        await event_store.append("note-x", 5, [Noted(text="b")], META)
    assert stale.value.actual_version == 1
    with pytest.raises(ConcurrencyConflict) as missing:
        await event_store.append("note-none", 3, [Noted(text="b")], META)
    assert missing.value.actual_version == 0
    result = await event_store.append("note-x", ExpectedVersion.ANY, [Noted(text="c")], META)
    assert result.last_version == 2
    result = await event_store.append("note-x", 2, [Noted(text="d")], META)
    assert result.last_version == 3
    assert [
        e.data.text  # type: ignore[attr-defined]
        for e in await event_store.read_stream("note-x")
    ] == ["first", "c", "d"]


async def test_32_concurrent_appenders_on_one_stream(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    await event_store.append("note-race", ExpectedVersion.NO_STREAM, [Noted(text="seed")], META)
    start = asyncio.Event()

    async def appender(i: int) -> tuple[int, int | ConcurrencyConflict]:
        seen = await event_store.stream_version("note-race")
        await start.wait()
        try:
            result = await event_store.append("note-race", seen, [Noted(text=f"w{i}", n=i)], META)
        except ConcurrencyConflict as conflict:
            return i, conflict
        return i, result.last_version

    tasks = [asyncio.create_task(appender(i)) for i in range(32)]
    await asyncio.sleep(0.2)
    start.set()
    outcomes = await asyncio.gather(*tasks)

    winners = [i for i, o in outcomes if isinstance(o, int)]
    losers = [o for _, o in outcomes if isinstance(o, ConcurrencyConflict)]
    assert len(winners) >= 1
    assert len(winners) + len(losers) == 32
    events = await event_store.read_stream("note-race")
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    assert len(events) == 1 + len(winners)
    assert sorted(e.data.n for e in events[1:]) == sorted(winners)  # type: ignore[attr-defined]
    final_version = len(events)
    for conflict in losers:
        # The version a loser is told is one that really existed when it lost.
        assert 2 <= conflict.actual_version <= final_version
        assert conflict.stream_id == "note-race"
    assert await count_events(pool) == final_version


async def _naive_read(pool: asyncpg.Pool, after: int, limit: int) -> list[int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT position FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            after,
            limit,
        )
    return [r["position"] for r in rows]


async def _safe_read(store: PostgresEventStore, after: int, limit: int) -> list[int]:
    return [e.position for e in await store.read_all_raw(after, limit)]


async def _run_concurrent_scenario(
    store: PostgresEventStore, pool: asyncpg.Pool, reader: str, round_no: int, after: int = 0
) -> tuple[list[int], list[int]]:
    """8 writers x 500 events on many streams, one slow writer holding its transaction open,
    and a reader paging through everything while they write. Returns (seen, committed)."""
    writers_done = asyncio.Event()

    async def writer(w: int) -> None:
        for i in range(500):
            await store.append(
                f"note-r{round_no}w{w}s{i % 25}", ExpectedVersion.ANY, [Noted(text="x", n=i)], META
            )

    async def slow_writer() -> None:
        for k in range(3):
            async with pool.acquire() as conn, conn.transaction():
                await store.append(
                    f"note-r{round_no}slow{k}",
                    ExpectedVersion.ANY,
                    [Noted(text="slow", n=k)],
                    META,
                    connection=conn,
                )
                await conn.execute("SELECT pg_sleep(0.4)")

    async def run_writers() -> None:
        await asyncio.gather(slow_writer(), *(writer(w) for w in range(8)))
        writers_done.set()

    seen: list[int] = []
    last = after
    writing = asyncio.create_task(run_writers())
    head: int | None = None
    deadline = asyncio.get_running_loop().time() + 60
    # Stop once the reader reached the last committed position. An empty page alone proves
    # nothing: the safe read also waits for unrelated transactions elsewhere on the server.
    while head is None or last < head:
        if head is None and writers_done.is_set():
            async with pool.acquire() as conn:
                head = int(await conn.fetchval("SELECT max(position) FROM events"))
        if reader == "safe":
            page = await _safe_read(store, last, 100)
        else:
            page = await _naive_read(pool, last, 100)
        seen.extend(page)
        if page:
            last = page[-1]
        else:
            assert asyncio.get_running_loop().time() < deadline, "the reader stalled"
            await asyncio.sleep(0.002)
    await writing
    async with pool.acquire() as conn:
        committed = [
            r["position"]
            for r in await conn.fetch(
                "SELECT position FROM events WHERE position > $1 ORDER BY position", after
            )
        ]
    return seen, committed


async def test_reader_never_skips_an_event_that_commits_late(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    seen_total: list[int] = []
    last = 0
    for round_no in range(3):
        seen, committed = await _run_concurrent_scenario(event_store, pool, "safe", round_no, last)
        assert len(seen) == len(set(seen)), "an event was delivered twice"
        assert seen == sorted(seen), "events were delivered out of position order"
        assert seen == committed, "the reader missed events"
        seen_total.extend(seen)
        last = seen[-1]
    assert len(seen_total) == 3 * (8 * 500 + 3)


async def test_the_concurrency_scenario_catches_a_naive_reader(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """The scenario above has teeth: paging by "position > last" alone loses events."""
    seen, committed = await _run_concurrent_scenario(event_store, pool, "naive", 0)
    assert set(committed) - set(seen), "the naive reader should have skipped late commits"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET data = '{}'::jsonb",
        "DELETE FROM events",
        "TRUNCATE events",
        "TRUNCATE events CASCADE",
    ],
)
async def test_events_are_append_only_in_the_database(
    event_store: PostgresEventStore, pool: asyncpg.Pool, statement: str
) -> None:
    await event_store.append("note-ro", ExpectedVersion.ANY, [Noted(text="keep me")], META)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute(statement)
    assert [e.data for e in await event_store.read_stream("note-ro")] == [Noted(text="keep me")]


async def _tamper(pool: asyncpg.Pool, *statements: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            await conn.execute(statement)


async def _five(store: PostgresEventStore, stream: str) -> None:
    await store.append(
        stream, ExpectedVersion.NO_STREAM, [Noted(text=f"e{i}", n=i) for i in range(1, 6)], META
    )


async def test_verify_passes_an_untouched_stream(event_store: PostgresEventStore) -> None:
    await _five(event_store, "note-ok")
    await event_store.append("note-ok", 5, [Noted(text="six")], META)
    report = await event_store.verify("note-ok")
    assert report.ok
    assert report.events_checked == 6
    assert report.broken_at_version is None


async def test_verify_finds_edited_data(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    await _five(event_store, "note-edit")
    await _tamper(
        pool,
        """UPDATE events SET data = jsonb_set(data, '{text}', '"forged"')
                           WHERE stream_id = 'note-edit' AND version = 3""",
    )
    report = await event_store.verify("note-edit")
    assert not report.ok
    assert report.broken_at_version == 3
    assert report.events_checked == 2


async def test_verify_finds_edited_metadata(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    await _five(event_store, "note-meta")
    await _tamper(
        pool,
        """UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '"mallory"')
                           WHERE stream_id = 'note-meta' AND version = 4""",
    )
    report = await event_store.verify("note-meta")
    assert (report.ok, report.broken_at_version) == (False, 4)


async def test_verify_finds_a_deleted_middle_event(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    await _five(event_store, "note-del")
    await _tamper(pool, "DELETE FROM events WHERE stream_id = 'note-del' AND version = 2")
    report = await event_store.verify("note-del")
    assert (report.ok, report.broken_at_version) == (False, 2)
    assert report.problem == "version 2 is missing"


async def test_verify_finds_a_deleted_last_event(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    await _five(event_store, "note-tail")
    await _tamper(pool, "DELETE FROM events WHERE stream_id = 'note-tail' AND version = 5")
    report = await event_store.verify("note-tail")
    assert (report.ok, report.broken_at_version) == (False, 5)


async def test_verify_finds_two_swapped_events(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    await _five(event_store, "note-swap")
    await _tamper(
        pool,
        """UPDATE events SET version = version + 100
           WHERE stream_id = 'note-swap' AND version IN (3, 4)""",
        """UPDATE events SET version = CASE version WHEN 103 THEN 4 ELSE 3 END
           WHERE stream_id = 'note-swap' AND version IN (103, 104)""",
    )
    report = await event_store.verify("note-swap")
    assert (report.ok, report.broken_at_version) == (False, 3)


async def test_verify_an_unknown_stream(event_store: PostgresEventStore) -> None:
    report = await event_store.verify("note-never")
    assert not report.ok
    assert report.problem == "no such stream"


async def test_idempotent_retry_returns_the_first_result_and_writes_nothing(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    events: list[DomainEvent] = [Noted(text="once"), Noted(text="twice")]
    first = await event_store.append(
        "note-idem", ExpectedVersion.NO_STREAM, events, META, idempotency_key="cmd-1"
    )
    before = await count_events(pool)
    again = await event_store.append(
        "note-idem", ExpectedVersion.NO_STREAM, events, META, idempotency_key="cmd-1"
    )
    assert not first.replayed
    assert again.replayed
    assert (again.first_position, again.last_position) == (
        first.first_position,
        first.last_position,
    )
    assert again.event_ids == first.event_ids
    assert await count_events(pool) == before
    assert await event_store.find_idempotent("cmd-1") == again


async def test_concurrent_retries_with_one_key_write_once(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    results = await asyncio.gather(
        *(
            event_store.append(
                "note-idem2",
                ExpectedVersion.NO_STREAM,
                [Noted(text="x")],
                META,
                idempotency_key="cmd-2",
            )
            for _ in range(10)
        )
    )
    assert len({r.last_position for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert await count_events(pool) == 1


async def test_idempotency_key_reused_for_another_command_is_refused(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    await event_store.append(
        "note-k", ExpectedVersion.ANY, [Noted(text="a")], META, idempotency_key="cmd-3"
    )
    with pytest.raises(IdempotencyKeyReused):
        await event_store.append(
            "note-k", ExpectedVersion.ANY, [Noted(text="b")], META, idempotency_key="cmd-3"
        )
    with pytest.raises(IdempotencyKeyReused):
        await event_store.append(
            "note-other", ExpectedVersion.ANY, [Noted(text="a")], META, idempotency_key="cmd-3"
        )
    assert await count_events(pool) == 1


async def test_old_schema_version_is_read_through_the_upcaster(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "SELECT * FROM append_events('person-1', 'person', NULL, $1, $2, $3, $4, $5, "
            "NULL, NULL, NULL)",
            [uuid.uuid4()],
            ["TestRenamed"],
            [1],
            [b'{"name": "Ada Lovelace"}'],
            b'{"actor": "legacy-import"}',
        )
    await event_store.append("person-1", 1, [Renamed(first="Ada", last="King")], META)
    events = await event_store.read_stream("person-1")
    assert [e.data for e in events] == [
        Renamed(first="Ada", last="Lovelace"),
        Renamed(first="Ada", last="King"),
    ]
    assert [(e.stored_schema_version, e.schema_version) for e in events] == [(1, 2), (2, 2)]
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT data->>'name' FROM events WHERE version = 1")
    assert stored == "Ada Lovelace", "upcasting must never rewrite what is stored"
    assert (await event_store.verify("person-1")).ok


class NotRegistered(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "NotRegistered"
    text: str


@pytest.mark.parametrize(
    ("stream_id", "events", "expected_field", "message"),
    [
        ("note-1", [NotRegistered(text="x")], "events[0].event_type", "unknown event type"),
        (
            "note-1",
            [Noted(text="ok"), Noted(text=123)],  # type: ignore[arg-type]
            "events[1]",
            "does not match its schema",
        ),
        ("note-1", [Noted(text="x" * 300_000)], "events[0]", "over the limit"),
        ("note-1", [Noted(text="nul\x00byte")], "events[0].text", "NUL character"),
        ("", [Noted(text="x")], "stream_id", "malformed"),
        ("no_dash", [Noted(text="x")], "stream_id", "malformed"),
        ("note-1", [], "events", "at least one event"),
    ],
)
async def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_written(
    event_store: PostgresEventStore,
    pool: asyncpg.Pool,
    stream_id: str,
    events: list[DomainEvent],
    expected_field: str,
    message: str,
) -> None:
    with pytest.raises(InvalidAppend, match=message) as error:
        await event_store.append(stream_id, ExpectedVersion.ANY, events, META)
    assert error.value.field == expected_field
    assert await count_events(pool) == 0


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        (EventMetadata(actor=""), "metadata.actor"),
        (EventMetadata(actor="bob", reason="x\x00"), "metadata.reason"),
        (EventMetadata(actor="bob", reason="half \ud83d"), "metadata.reason"),
        (EventMetadata(actor="bob", reason="r" * 5000), "metadata.reason"),
    ],
)
async def test_bad_metadata_is_refused(
    event_store: PostgresEventStore, pool: asyncpg.Pool, metadata: EventMetadata, field: str
) -> None:
    with pytest.raises(InvalidAppend) as error:
        await event_store.append("note-1", ExpectedVersion.ANY, [Noted(text="x")], metadata)
    assert error.value.field == field
    assert await count_events(pool) == 0


async def test_bad_input_leaves_existing_events_untouched(
    event_store: PostgresEventStore,
) -> None:
    await event_store.append("note-keep", ExpectedVersion.NO_STREAM, [Noted(text="kept")], META)
    with pytest.raises(InvalidAppend):
        await event_store.append("note-keep", 1, [Noted(text="ok"), Noted(text="\x00")], META)
    with pytest.raises(ConcurrencyConflict):
        await event_store.append("note-keep", 0, [Noted(text="again")], META)
    assert [e.data for e in await event_store.read_stream("note-keep")] == [Noted(text="kept")]
    assert (await event_store.verify("note-keep")).ok


async def test_read_stream_up_to_a_version_and_a_time(event_store: PostgresEventStore) -> None:
    first = await event_store.append("note-t", 0, [Noted(text="a"), Noted(text="b")], META)
    await asyncio.sleep(0.01)
    await event_store.append("note-t", 2, [Noted(text="c")], META)
    upto = await event_store.read_stream("note-t", to_version=2)
    assert [e.version for e in upto] == [1, 2]
    middle = await event_store.read_stream("note-t", from_version=2, to_version=2)
    assert [e.version for e in middle] == [2]
    at_time = await event_store.read_stream("note-t", recorded_before=first.recorded_at)
    assert [e.version for e in at_time] == [1, 2]
    before = await event_store.read_stream(
        "note-t", recorded_before=first.recorded_at - timedelta(microseconds=1)
    )
    assert before == []


async def test_read_all_pages_in_position_order(event_store: PostgresEventStore) -> None:
    for i in range(25):
        result = await event_store.append(
            f"note-p{i % 3}", ExpectedVersion.ANY, [Noted(text="p", n=i)], META
        )
    await readable(event_store, result.last_position)
    seen: list[int] = []
    last = 0
    while page := await event_store.read_all(last, 7):
        seen.extend(e.position for e in page)
        last = page[-1].position
    assert seen == sorted(seen)
    assert len(seen) == 25
    assert [
        e.data.n  # type: ignore[attr-defined]
        for e in await event_store.read_all(0, 100)
    ] == list(range(25))


async def test_recorded_time_never_goes_back_in_position_order(
    event_store: PostgresEventStore,
) -> None:
    results = await asyncio.gather(
        *(
            event_store.append(f"note-c{i}", ExpectedVersion.ANY, [Noted(text="t")], META)
            for i in range(50)
        )
    )
    await readable(event_store, max(r.last_position for r in results))
    events = await event_store.read_all(0, 100)
    times = [e.recorded_at for e in events]
    assert times == sorted(times)


async def test_append_notifies_listeners_with_the_last_position(
    event_store: PostgresEventStore, pg_url: str, schema: str
) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.add_listener(
            event_store.notify_channel, lambda *args: received.put_nowait(args[3])
        )
        result = await event_store.append(
            "note-n", ExpectedVersion.ANY, [Noted(text="a"), Noted(text="b")], META
        )
        payload = await asyncio.wait_for(received.get(), timeout=5)
    finally:
        await conn.close()
    assert int(payload) == result.last_position
    # The only append in flight notified in its own transaction: announced by its commit.
    assert event_store.notifier.sent == result.last_position


async def test_appends_side_by_side_are_all_announced_and_replays_not_at_all(
    event_store: PostgresEventStore, pg_url: str
) -> None:
    received: asyncio.Queue[int] = asyncio.Queue()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.add_listener(
            event_store.notify_channel, lambda *args: received.put_nowait(int(args[3]))
        )
        side_by_side = await asyncio.gather(
            *(
                event_store.append(f"note-s{i}", ExpectedVersion.ANY, [Noted(text="s")], META)
                for i in range(8)
            )
        )
        last = max(r.last_position for r in side_by_side)
        while await asyncio.wait_for(received.get(), timeout=5) < last:
            pass
        await event_store.notifier.flush()
        keyed = await event_store.append(
            "note-s0", ExpectedVersion.ANY, [Noted(text="s")], META, idempotency_key="k-s"
        )
        repeated = await event_store.append(
            "note-s0", ExpectedVersion.ANY, [Noted(text="s")], META, idempotency_key="k-s"
        )
        assert repeated.replayed
        after = await event_store.append("note-s1", ExpectedVersion.ANY, [Noted(text="t")], META)
        # Announcements of the side-by-side appends may still trail in; a replay would
        # announce the keyed append's position a second time.
        announced: list[int] = []
        while not announced or announced[-1] < after.last_position:
            payload = await asyncio.wait_for(received.get(), timeout=5)
            if payload > last:
                announced.append(payload)
        assert announced == [keyed.last_position, after.last_position]
    finally:
        await conn.close()


async def test_writers_side_by_side_carry_the_notification_one_append_at_a_time(
    pool: asyncpg.Pool, registry: EventRegistry, schema: str, pg_url: str
) -> None:
    """Eight writers, nothing combined: one append transaction at a time carries the
    process's NOTIFY, the next carrier starting after the last one ended, so the
    announcements rise, and the last names the last position written. The notifier sends
    a transaction of its own only when a writer's last append ends with nobody starting
    another at once: at most once a writer (with its own after every commit, as before,
    it sent one for every four to six appends)."""
    store = PostgresEventStore(pool, EventCodec(registry), schema=schema, appends_in_flight=None)
    received: list[int] = []
    arrivals: asyncio.Queue[int] = asyncio.Queue()
    listener = await asyncpg.connect(pg_url)
    try:
        await listener.add_listener(
            store.notify_channel, lambda *args: arrivals.put_nowait(int(args[3]))
        )

        async def writer(w: int) -> int:
            last = 0
            for i in range(40):
                result = await store.append(
                    f"note-w{w}", ExpectedVersion.ANY, [Noted(text=f"{w}/{i}")], META
                )
                last = result.last_position
            return last

        last = max(await asyncio.gather(*(writer(w) for w in range(8))))
        await store.notifier.flush()
        while not received or received[-1] != last:
            received.append(await asyncio.wait_for(arrivals.get(), timeout=10))
    finally:
        await listener.close()
    assert received == sorted(set(received)), received
    assert store.notifier.transactions <= 8
    assert store.notifier.sent == last


async def test_an_append_that_could_not_carry_is_announced_by_the_next_carrier_or_alone(
    event_store: PostgresEventStore, pg_url: str
) -> None:
    """While another notifying transaction is in flight an append commits unannounced;
    when that one ends, an append starting at once carries the announcement, and with
    none starting the notifier sends one of its own."""
    notifier = event_store.notifier
    received: asyncio.Queue[int] = asyncio.Queue()
    listener = await asyncpg.connect(pg_url)
    try:
        await listener.add_listener(
            event_store.notify_channel, lambda *args: received.put_nowait(int(args[3]))
        )
        assert notifier.begin()  # as an append carrying the notification would
        quiet = await event_store.append("note-q", ExpectedVersion.ANY, [Noted(text="q")], META)
        assert notifier.sent < quiet.last_position
        notifier.end(carried=True, position=0)
        carrier = await event_store.append("note-c", ExpectedVersion.ANY, [Noted(text="c")], META)
        assert await asyncio.wait_for(received.get(), timeout=10) == carrier.last_position
        await notifier.flush()
        assert notifier.transactions == 0

        assert notifier.begin()
        alone = await event_store.append("note-a", ExpectedVersion.ANY, [Noted(text="a")], META)
        notifier.end(carried=True, position=0)
        await notifier.flush()
        assert await asyncio.wait_for(received.get(), timeout=10) == alone.last_position
        assert notifier.transactions == 1
        assert received.empty()
    finally:
        await listener.close()


async def test_append_inside_a_transaction_that_already_wrote_is_refused(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("CREATE TEMP TABLE scratch (x int)")
        await conn.execute("INSERT INTO scratch VALUES (1)")
        with pytest.raises(asyncpg.PostgresError, match="first write"):
            await event_store.append(
                "note-tx", ExpectedVersion.ANY, [Noted(text="x")], META, connection=conn
            )
        await tx.rollback()
    assert await count_events(pool) == 0


async def test_rolled_back_append_leaves_nothing_and_readers_move_on(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await event_store.append(
            "note-rb", ExpectedVersion.ANY, [Noted(text="gone")], META, connection=conn
        )
        await tx.rollback()
    after = await event_store.append(
        "note-rb", ExpectedVersion.NO_STREAM, [Noted(text="kept")], META
    )
    await readable(event_store, after.last_position)
    events = await event_store.read_all(0, 10)
    assert [e.position for e in events] == [after.last_position]
    assert (await event_store.verify("note-rb")).ok


async def test_migrations_are_idempotent_and_guard_their_history(pg_url: str, schema: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await migrate(conn, schema) == []
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(Exception, match="was changed after it was applied"):
            await migrate(conn, schema)
    finally:
        await conn.close()


async def test_concurrent_migrators_apply_each_migration_once(pg_url: str) -> None:
    name = f"t_{uuid.uuid4().hex[:16]}"
    conns = [await asyncpg.connect(pg_url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(c, name) for c in conns))
        assert sum(len(a) for a in applied) == len(available_migrations())
        total = await conns[0].fetchval(f'SELECT count(*) FROM "{name}".schema_migrations')
        assert total == len(available_migrations())
    finally:
        await conns[0].execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        for c in conns:
            await c.close()


def test_codec_refuses_a_schema_version_newer_than_the_code() -> None:
    from tests.support.events import store_test_registry

    codec = EventCodec(store_test_registry())
    with pytest.raises(ValueError, match="newer than this code"):
        codec.decode("TestNoted", 2, b'{"text": "from the future"}')


@pytest.mark.parametrize("stream_id", ["note-\x00", "", "NOTE-1", "note-" + "x" * 300])
async def test_a_malformed_stream_id_reads_as_no_stream(
    event_store: PostgresEventStore, stream_id: str
) -> None:
    assert await event_store.read_stream(stream_id) == []
    assert await event_store.stream_version(stream_id) == 0
    report = await event_store.verify(stream_id)
    assert (report.ok, report.problem) == (False, "no such stream")


async def test_shares_of_the_log_are_disjoint_and_together_all_of_it(
    event_store: PostgresEventStore,
) -> None:
    """What a rebuild in shares reads: each stream whole in one share, every event once."""
    for n in range(30):
        await event_store.append(
            f"note-s{n}",
            ExpectedVersion.ANY,
            [Noted(text="a"), Noted(text="b", n=n)],
            EventMetadata(actor="alice"),
        )
    through = await settled(event_store)
    everything = await event_store.read_all_raw(0, 1000)
    shares = [await _share(event_store, through, share) for share in range(3)]
    positions = [[e.position for e in share] for share in shares]
    assert all(p == sorted(p) and p for p in positions)
    assert sorted(p for share in positions for p in share) == [e.position for e in everything]
    streams = [{e.stream_id for e in share} for share in shares]
    assert sum(len(s) for s in streams) == len(set.union(*streams)) == 30
    with pytest.raises(ValueError, match="share"):
        await event_store.read_share(
            0, through, event_types={"TestNoted"}, key="stream", shares=3, share=3
        )


async def _share(store: PostgresEventStore, through: int, share: int) -> list[RawEvent]:
    """Every event of one share, in pages of 7."""
    found: list[RawEvent] = []
    while page := await store.read_share(
        found[-1].position if found else 0,
        through,
        event_types={"TestNoted"},
        key="stream",
        shares=3,
        share=share,
        limit=7,
    ):
        found.extend(page)
    return found


async def test_the_reads_below_the_oldest_running_transaction_go_by_position(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """Nothing indexes the writing transaction (0053 dropped the index every event paid
    for): each read that stays below the oldest running transaction reads in position
    order, and the primary key must serve it, never a scan of every event."""
    for s in range(200):
        await event_store.append(
            f"note-x{s}", ExpectedVersion.NO_STREAM, [Noted(text="x", n=n) for n in range(10)], META
        )
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE events")
        indexes = await conn.fetch(
            "SELECT indexname FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = 'events'"
        )
        assert "events_tx_position" not in {r["indexname"] for r in indexes}
        reads: list[tuple[str, list[object]]] = [
            (_READ_ALL, [100, 50]),
            (_HEAD_POSITION, []),
            (_UNSEALED, [1500, 100]),
            (_LAG_SQL, ["relay", None]),
        ]
        for query, args in reads:
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {query}", *args))
            assert "events_pkey" in plan, plan
            assert "Seq Scan on events" not in plan, plan
