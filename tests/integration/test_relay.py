"""The relay against real PostgreSQL and NATS: order, headers, envelope, resume, failover."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from programledger.adapters.nats.envelope import EventEnvelope, _Outgoing, decode_event
from programledger.adapters.nats.publisher import AckedPublisher, PublishRefused
from programledger.adapters.nats.relay import _LAG_SQL, Relay, RelayState, relay_lag
from programledger.adapters.nats.stream import StreamSettings, ensure_stream, stream_name
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.domain.events import EventRegistry
from tests.support.events import Noted, Renamed, raw_append
from tests.support.ledger import settled
from tests.support.plans import rows_read
from tests.support.relay_process import (
    append_notes,
    delete_stream,
    eventually,
    fast_settings,
    stored_messages,
    wait_for_messages,
)

P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
P2 = uuid.UUID("22222222-2222-4222-8222-222222222222")


@pytest_asyncio.fixture
async def js(nats_url: str, subject_prefix: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    context = nc.jetstream()
    yield context
    await delete_stream(context, subject_prefix)
    await nc.close()


class Relays:
    """Relays started by a test, stopped at teardown whatever the test did."""

    def __init__(self, store: PostgresEventStore, pg_url: str, nats_url: str, prefix: str):
        self.store, self.pg_url, self.nats_url, self.prefix = store, pg_url, nats_url, prefix
        self.tasks: dict[Relay, asyncio.Task[None]] = {}

    def start(self, **overrides: object) -> Relay:
        relay = Relay(
            self.store,
            database_url=self.pg_url,
            nats_servers=self.nats_url,
            settings=fast_settings(self.prefix, **overrides),
        )
        self.tasks[relay] = asyncio.create_task(relay.run())
        return relay

    async def stop(self, relay: Relay) -> None:
        relay.stop()
        await asyncio.wait_for(self.tasks.pop(relay), 15)

    async def stop_all(self) -> None:
        for relay in list(self.tasks):
            await self.stop(relay)


@pytest_asyncio.fixture
async def relays(
    event_store: PostgresEventStore, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[Relays]:
    started = Relays(event_store, pg_url, nats_url, subject_prefix)
    yield started
    await started.stop_all()


async def test_concurrent_writers_arrive_once_each_in_position_order_with_headers(
    event_store: PostgresEventStore, relays: Relays, js: JetStreamContext, subject_prefix: str
) -> None:
    relay = relays.start()
    written = await append_notes(
        event_store, writers=8, appends=30, per_append=2, program_ids=[P1, P2, None]
    )
    await wait_for_messages(js, subject_prefix, written, within=20)
    messages = await stored_messages(js, subject_prefix)
    stored = await event_store.read_all(0, 10_000)

    assert len(messages) == written, "each event exactly once in the stream"
    assert [m.envelope.position for m in messages] == [e.position for e in stored]
    for message, event in zip(messages, stored, strict=True):
        envelope = message.envelope
        program = str(event.metadata.program_id) if event.metadata.program_id else "_"
        assert message.subject == f"{subject_prefix}.{program}.note.TestNoted"
        assert message.headers["Nats-Msg-Id"] == str(event.event_id)
        assert message.headers["Programledger-Position"] == str(event.position)
        assert message.headers["Programledger-Stream-Id"] == event.stream_id
        assert message.headers["Programledger-Version"] == str(event.version)
        assert message.headers["Programledger-Event-Type"] == "TestNoted"
        assert message.headers["Programledger-Schema-Version"] == "1"
        assert message.headers["Programledger-Correlation-Id"] == str(event.metadata.correlation_id)
        assert (envelope.event_id, envelope.stream_id, envelope.version) == (
            event.event_id,
            event.stream_id,
            event.version,
        )
        assert envelope.recorded_at == event.recorded_at
        assert (envelope.actor, envelope.program_id) == ("test", event.metadata.program_id)
        assert envelope.correlation_id == event.metadata.correlation_id
        assert decode_event(envelope, event_store.codec.registry) == event.data

    await relay.wait_published(stored[-1].position)
    lag = await relay.lag()
    assert (lag.positions, lag.seconds, lag.head_position) == (0, 0.0, stored[-1].position)
    assert relay.stats.published == written
    assert relay.stats.duplicates == 0


async def test_old_schema_versions_are_published_upcast(
    event_store: PostgresEventStore,
    pool: asyncpg.Pool,
    relays: Relays,
    js: JetStreamContext,
    subject_prefix: str,
    registry: EventRegistry,
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
    relays.start()
    await wait_for_messages(js, subject_prefix, 1, within=10)
    [message] = await stored_messages(js, subject_prefix)
    assert message.subject == f"{subject_prefix}._.person.TestRenamed"
    assert message.headers["Programledger-Schema-Version"] == "2"
    assert message.envelope.schema_version == 2
    assert msgspec.json.decode(message.envelope.data) == {"first": "Ada", "last": "Lovelace"}
    assert decode_event(message.envelope, registry) == Renamed(first="Ada", last="Lovelace")
    assert message.envelope.correlation_id is None
    assert "Programledger-Correlation-Id" not in message.headers


async def test_stop_records_the_checkpoint_and_a_new_relay_publishes_only_new_events(
    event_store: PostgresEventStore,
    pool: asyncpg.Pool,
    relays: Relays,
    js: JetStreamContext,
    subject_prefix: str,
) -> None:
    first = relays.start()
    written = await append_notes(event_store, writers=2, appends=10)
    await wait_for_messages(js, subject_prefix, written, within=10)
    await relays.stop(first)
    assert first.state is RelayState.STOPPED
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT position FROM relay_checkpoints") == written

    second = relays.start()
    await append_notes(event_store, writers=1, appends=5)
    await wait_for_messages(js, subject_prefix, written + 5, within=10)
    await second.wait_published(written + 5)
    assert second.stats.published == 5
    assert len(await stored_messages(js, subject_prefix)) == written + 5


async def test_events_that_trickle_in_cost_one_checkpoint_write_per_interval(
    event_store: PostgresEventStore, pool: asyncpg.Pool, relays: Relays
) -> None:
    """Idle after every event, the relay wrote its checkpoint every time: a second commit
    for each append. Now the interval holds idle too, and a write left for later is made
    without waiting for another event."""
    relay = relays.start(checkpoint_interval=2.0)
    meta = EventMetadata(actor="alice")
    await event_store.append("note-t", ExpectedVersion.NO_STREAM, [Noted(text="first")], meta)
    await asyncio.wait_for(relay.wait_published(1), 10)
    await eventually(lambda: _checkpoint_is(pool, 1))
    written_at = asyncio.get_running_loop().time()
    for n in range(2, 6):
        await event_store.append("note-t", n - 1, [Noted(text="more", n=n)], meta)
        await asyncio.wait_for(relay.wait_published(n), 10)
    if asyncio.get_running_loop().time() - written_at < 2.0:
        assert await _checkpoint_is(pool, 1), "the checkpoint was written within the interval"
    await eventually(lambda: _checkpoint_is(pool, 5))


async def _checkpoint_is(pool: asyncpg.Pool, position: int) -> bool:
    return bool(await pool.fetchval("SELECT position FROM relay_checkpoints") == position)


async def test_a_checkpoint_behind_the_stream_is_not_republished(
    event_store: PostgresEventStore,
    pool: asyncpg.Pool,
    relays: Relays,
    js: JetStreamContext,
    subject_prefix: str,
) -> None:
    """A crash between JetStream's ack and the checkpoint write leaves the checkpoint
    behind; the relay must continue from the stream's tail, not publish those again (which
    JetStream would store twice once the duplicate window has passed)."""
    first = relays.start()
    written = await append_notes(event_store, writers=2, appends=10)
    await wait_for_messages(js, subject_prefix, written, within=10)
    await relays.stop(first)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE relay_checkpoints SET position = 3")

    second = relays.start()
    await eventually(lambda: second.is_active)
    await append_notes(event_store, writers=1, appends=1)
    await asyncio.wait_for(second.wait_published(written + 1), 10)
    assert (second.stats.published, second.stats.duplicates) == (1, 0)

    async def checkpointed() -> bool:
        return (await relay_lag(pool)).published_position == written + 1

    await eventually(checkpointed)
    assert [m.envelope.position for m in await stored_messages(js, subject_prefix)] == list(
        range(1, written + 2)
    )


async def test_lag_counts_unpublished_events_and_their_age(
    event_store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    await append_notes(event_store, writers=1, appends=4)
    await settled(event_store)
    lag = await relay_lag(pool)
    assert (lag.head_position, lag.published_position, lag.positions) == (4, 0, 4)
    assert lag.seconds >= 0.0
    await asyncio.sleep(0.2)
    assert (await relay_lag(pool)).seconds >= 0.2
    assert (await relay_lag(pool, published=4)).positions == 0


@pytest.mark.parametrize("analyzed", [False, True], ids=["unanalyzed", "analyzed"])
async def test_lag_reads_a_few_events_however_many_are_stored(
    event_store: PostgresEventStore, pool: asyncpg.Pool, analyzed: bool
) -> None:
    """``/metrics`` and ``/ready`` ask for the lag every few seconds: it must not cost a
    pass over the log, with or without statistics."""
    written = await append_notes(event_store, writers=4, appends=50, per_append=10)
    await settled(event_store)
    if analyzed:
        await pool.execute("ANALYZE events")
    async with pool.acquire() as conn:
        for published in (None, written // 2):
            read = await rows_read(conn, _LAG_SQL, "default", published, relation="events")
            assert read <= 2, f"the lag read {read} of {written} events"
    lag = await relay_lag(pool, published=written // 2)
    assert (lag.head_position, lag.positions) == (written, written - written // 2)


async def test_two_relays_only_one_publishes_and_the_standby_takes_over_on_stop(
    event_store: PostgresEventStore, relays: Relays, js: JetStreamContext, subject_prefix: str
) -> None:
    a, b = relays.start(), relays.start()
    await eventually(lambda: {a.state, b.state} == {RelayState.ACTIVE, RelayState.STANDBY})
    active, standby = (a, b) if a.is_active else (b, a)
    written = await append_notes(event_store, writers=4, appends=10)
    await wait_for_messages(js, subject_prefix, written, within=10)
    await eventually(lambda: active.stats.published == written)
    assert standby.stats.published == 0
    assert standby.state is RelayState.STANDBY

    await relays.stop(active)
    await eventually(lambda: standby.is_active)
    await append_notes(event_store, writers=2, appends=10)
    await wait_for_messages(js, subject_prefix, written + 20, within=10)
    await eventually(lambda: standby.stats.published == 20)
    positions = [m.envelope.position for m in await stored_messages(js, subject_prefix)]
    assert positions == list(range(1, written + 21))


async def test_a_relay_whose_lock_connection_dies_stands_down_while_one_takes_over(
    event_store: PostgresEventStore,
    pool: asyncpg.Pool,
    relays: Relays,
    js: JetStreamContext,
    subject_prefix: str,
) -> None:
    """The process stays alive but its lock connection is killed (as a network partition
    would): it must stop publishing, since the standby may now hold the lock. Either may be
    the active one afterwards (the survivor reconnects and competes), never both."""
    a, b = relays.start(), relays.start()
    await eventually(lambda: {a.state, b.state} == {RelayState.ACTIVE, RelayState.STANDBY})
    active = a if a.is_active else b
    writing = asyncio.create_task(append_notes(event_store, writers=4, appends=50))
    await eventually(lambda: active.stats.published > 20)
    async with pool.acquire() as conn:
        killed = await conn.fetchval(
            """
            SELECT pg_terminate_backend(l.pid) FROM pg_locks l
            JOIN pg_stat_activity s ON s.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND s.application_name = 'programledger-relay:default'
              AND s.datname = current_database()
              AND l.objid::bigint = (hashtextextended($1, 0) & 4294967295)
            """,
            f"programledger.relay:{event_store.schema}:default",
        )
    assert killed
    await eventually(lambda: active.stats.failures >= 1)
    written = await writing
    await wait_for_messages(js, subject_prefix, written, within=15)
    await eventually(lambda: a.is_active != b.is_active)
    assert a.stats.activations + b.stats.activations == 2
    positions = [m.envelope.position for m in await stored_messages(js, subject_prefix)]
    assert positions == list(range(1, written + 1)), "no gap, no duplicate, in order"


async def test_a_relay_that_cannot_connect_to_nats_keeps_retrying_and_stops_cleanly(
    event_store: PostgresEventStore, pg_url: str, subject_prefix: str
) -> None:
    relay = Relay(
        event_store,
        database_url=pg_url,
        nats_servers="nats://127.0.0.1:1",
        settings=fast_settings(subject_prefix),
    )
    task = asyncio.create_task(relay.run())
    await append_notes(event_store, writers=1, appends=3)
    await eventually(lambda: relay.stats.failures >= 2)
    assert relay.is_active
    relay.stop()
    await asyncio.wait_for(task, 10)
    assert relay.state is RelayState.STOPPED
    await settled(event_store)
    assert (await relay_lag(event_store.pool)).positions == 3


async def test_appends_by_an_expected_version_are_published_in_stream_version_order(
    event_store: PostgresEventStore, relays: Relays, js: JetStreamContext, subject_prefix: str
) -> None:
    relays.start()
    meta = EventMetadata(actor="test", program_id=P1)
    version = 0
    for i in range(20):
        result = await event_store.append(
            "note-one", version, [Noted(text=str(i)), Noted(text=f"{i}b")], meta
        )
        version = result.last_version
    await event_store.append("note-other", ExpectedVersion.NO_STREAM, [Noted(text="x")], meta)
    await wait_for_messages(js, subject_prefix, 41, within=10)
    messages = await stored_messages(js, subject_prefix)
    one = [m.envelope.version for m in messages if m.envelope.stream_id == "note-one"]
    assert one == list(range(1, 41))
    assert stream_name(subject_prefix) == f"{subject_prefix.upper()}_EVENTS"


@pytest.mark.parametrize("batch", [1, 7])
async def test_small_batches_and_pipelines_keep_the_order(
    event_store: PostgresEventStore,
    relays: Relays,
    js: JetStreamContext,
    subject_prefix: str,
    batch: int,
) -> None:
    written = await append_notes(event_store, writers=3, appends=15)
    relays.start(batch_size=batch, max_in_flight=batch)
    await wait_for_messages(js, subject_prefix, written, within=10)
    positions = [m.envelope.position for m in await stored_messages(js, subject_prefix)]
    assert positions == list(range(1, written + 1))


async def test_a_foreign_message_in_the_stream_costs_a_resync_not_the_order(
    event_store: PostgresEventStore, relays: Relays, js: JetStreamContext, subject_prefix: str
) -> None:
    """Only the relay should publish under the prefix (use NATS permissions); if something
    else does, the relay's next publish is refused on its expected sequence and it resyncs."""
    relay = relays.start()
    await append_notes(event_store, writers=1, appends=10)
    await wait_for_messages(js, subject_prefix, 10, within=10)
    await eventually(lambda: relay.published_position == 10)
    await js.publish(f"{subject_prefix}.foreign", b"not an event")
    await append_notes(event_store, writers=2, appends=10)
    await wait_for_messages(js, subject_prefix, 31, within=10)
    messages = await js_positions(js, subject_prefix)
    assert messages == [*range(1, 11), None, *range(11, 31)]
    assert relay.stats.resyncs >= 2


async def js_positions(js: JetStreamContext, prefix: str) -> list[int | None]:
    name = stream_name(prefix)
    info = await js.stream_info(name)
    found: list[int | None] = []
    for sequence in range(1, info.state.last_seq + 1):
        headers = (await js.get_msg(name, sequence)).headers or {}
        position = headers.get("Programledger-Position")
        found.append(int(position) if position else None)
    return found


async def test_the_publisher_reports_refusals_at_once(
    nats_url: str, js: JetStreamContext, subject_prefix: str
) -> None:
    """nats-py's publish_async leaves the future pending when JetStream refuses; the relay
    relies on hearing about a refused expected sequence immediately."""
    await ensure_stream(js, StreamSettings(subject_prefix))
    nc = await nats.connect(nats_url)
    publisher = await AckedPublisher.open(nc)
    try:
        subject = f"{subject_prefix}._.note.TestNoted"
        ok = await publisher.publish(subject, b"{}", {"Nats-Msg-Id": "a"})
        assert (await asyncio.wait_for(ok, 2)).seq == 1
        again = await publisher.publish(subject, b"{}", {"Nats-Msg-Id": "a"})
        assert (await asyncio.wait_for(again, 2)).duplicate
        wrong = await publisher.publish(subject, b"{}", {"Nats-Expected-Last-Sequence": "7"})
        with pytest.raises(PublishRefused) as refused:
            await asyncio.wait_for(wrong, 2)
        assert refused.value.err_code == PublishRefused.WRONG_LAST_SEQUENCE
        nowhere = await publisher.publish(f"x{subject_prefix}.nothing", b"{}", {})
        with pytest.raises(PublishRefused, match="no stream"):
            await asyncio.wait_for(nowhere, 2)
    finally:
        await publisher.close()
        await nc.close()


def test_the_outgoing_envelope_encodes_as_the_documented_one() -> None:
    assert _Outgoing.__struct_fields__ == EventEnvelope.__struct_fields__


async def test_the_relay_goes_on_past_events_it_cannot_decode(
    event_store: PostgresEventStore,
    relays: Relays,
    js: JetStreamContext,
    subject_prefix: str,
) -> None:
    """A type newer than this code (catalogued by a later release's migrate) and an old
    schema version whose upcaster fails: both are published as stored, in their place,
    and the events after them follow."""
    await event_store.append(
        "note-1", ExpectedVersion.NO_STREAM, [Noted(text="before")], EventMetadata(actor="t")
    )
    async with event_store.pool.acquire() as conn:
        await conn.execute("INSERT INTO event_catalogue VALUES ('FromTheFuture', 1)")
        await raw_append(conn, "person-1", "FromTheFuture", 1, b'{"novel": true}')
        await raw_append(conn, "person-1", "TestRenamed", 1, b'{"nom": "no name field"}')
    await event_store.append("note-1", 1, [Noted(text="after")], EventMetadata(actor="t"))
    relay = relays.start()
    await wait_for_messages(js, subject_prefix, 4, within=15)
    messages = await stored_messages(js, subject_prefix)
    assert [m.envelope.event_type for m in messages] == [
        "TestNoted",
        "FromTheFuture",
        "TestRenamed",
        "TestNoted",
    ]
    assert [m.envelope.position for m in messages] == sorted(m.envelope.position for m in messages)
    future, renamed = messages[1], messages[2]
    assert future.subject == f"{subject_prefix}._.person.FromTheFuture"
    assert "UnknownEventType" in future.headers["Programledger-Undecodable"]
    assert msgspec.json.decode(future.envelope.data) == {"novel": True}
    assert (renamed.envelope.schema_version, renamed.headers["Programledger-Schema-Version"]) == (
        1,
        "1",
    )
    assert "KeyError" in renamed.headers["Programledger-Undecodable"]
    assert "Programledger-Undecodable" not in messages[3].headers
    assert relay.stats.undecodable == 2
    assert relay.stats.failures == 0
    await eventually(lambda: relay.published_position == messages[3].envelope.position)
    await relays.stop(relay)
    row = await event_store.pool.fetchrow(
        "SELECT undecodable, last_undecodable_position FROM relay_checkpoints"
    )
    assert tuple(row or ()) == (2, renamed.envelope.position)
