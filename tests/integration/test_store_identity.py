"""A store only consumes its own stream: two stores (two schemas) pointed at one NATS
stream. The first store's relay marks the stream and every message with its id; the
second store's relay, projection workers, webhook worker, API feed and subscriber refuse
it, and change nothing on it (no consumer deleted, created or moved, nothing delivered)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import asyncpg
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from programledger.adapters.nats.envelope import HEADER_STORE_ID, encode_message
from programledger.adapters.nats.relay import Relay
from programledger.adapters.nats.stream import (
    ForeignStream,
    StreamSettings,
    ensure_stream,
    stream_name,
    stream_store,
)
from programledger.adapters.nats.subscriber import subscribe
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore, RawEvent
from programledger.adapters.postgres.webhooks import PostgresWebhookStore
from programledger.adapters.webhooks.worker import WebhookSettings, WebhookWorker
from programledger.api.events import EventFeed, EventSelection, FeedUnavailable
from programledger.application.commands import CommandContext
from programledger.application.handlers import Application
from programledger.application.webhooks import WebhookAdmin
from programledger.projections.engine.runner import ProjectionRunner, durable_name
from programledger.projections.engine.status import projection_status, wait_for_position
from programledger.projections.registry import PROJECTIONS, get_projection
from tests.conftest import fresh_schema
from tests.support.projection_process import LiveSystem, app_store, fast_runner_settings
from tests.support.relay_process import eventually, fast_settings, stored_messages
from tests.support.webhook_receiver import Receiver, running_receiver
from tests.unit.examples import propose_program

REFUSED_WITHIN = 30.0


@pytest_asyncio.fixture
async def other_store(pg_url: str) -> AsyncIterator[PostgresEventStore]:
    """A second store: its own schema, migrated, so with its own id."""
    async with fresh_schema(pg_url) as name:
        pool = await create_pool(pg_url, name, min_size=1, max_size=10)
        try:
            yield app_store(pool, name)
        finally:
            await pool.close()


@pytest_asyncio.fixture
async def store(pool: asyncpg.Pool, schema: str) -> PostgresEventStore:
    return app_store(pool, schema)


async def _propose(store: PostgresEventStore) -> int:
    result = await Application(store).handle(
        propose_program(program_id=uuid4(), code=f"ID{uuid4().hex[:6].upper()}"),
        CommandContext(actor="tom"),
    )
    return result.last_position


async def _refused_webhooks(
    store: PostgresEventStore, pg_url: str, nc: NatsClient, prefix: str
) -> Receiver:
    """A webhook worker of ``store`` with an endpoint that wants every event from the
    start, run until it refuses the stream (:class:`ForeignStream`); the receiver it would
    have delivered to, for the test to check that nothing arrived."""
    async with running_receiver(Receiver()) as receiver:
        await WebhookAdmin(PostgresWebhookStore(store.pool), allow_private=True).register(
            "tom", url=receiver.url, head=await store.head_position(), from_position=0
        )
        worker = WebhookWorker(
            store,
            database_url=pg_url,
            nc=nc,
            settings=WebhookSettings(
                prefix=prefix,
                allow_private=True,
                poll_interval=0.1,
                fetch_wait=0.2,
                standby_poll_interval=0.1,
            ),
        )
        with pytest.raises(ForeignStream) as refused:
            await asyncio.wait_for(worker.run(), REFUSED_WITHIN)
        assert str(await store.store_id()) in str(refused.value)
    return receiver


def _runner(
    projection: str, store: PostgresEventStore, pg_url: str, nc: NatsClient, prefix: str
) -> ProjectionRunner:
    return ProjectionRunner(
        get_projection(projection),
        store=store,
        database_url=pg_url,
        nc=nc,
        settings=fast_runner_settings(prefix),
    )


async def _consumers(js: JetStreamContext, stream: str) -> dict[str, tuple[int, int]]:
    """Each consumer's name with its created time and delivered stream sequence: a
    deleted, recreated or moved consumer changes one of them."""
    found = {}
    for info in await js.consumers_info(stream):
        created = int(info.created.timestamp() * 1e6) if info.created is not None else 0
        found[info.name] = (created, info.delivered.stream_seq if info.delivered else 0)
    return found


async def test_migrate_gives_each_store_an_id_that_never_changes(
    store: PostgresEventStore, other_store: PostgresEventStore
) -> None:
    ours, theirs = await store.store_id(), await other_store.store_id()
    assert isinstance(ours, UUID)
    assert ours != theirs
    async with store.pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="never changes"):
            await conn.execute("UPDATE store_identity SET store_id = gen_random_uuid()")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="never changes"):
            await conn.execute("DELETE FROM store_identity")
        assert await conn.fetchval("SELECT store_id FROM store_identity") == ours


async def test_a_second_store_on_the_same_stream_is_refused_and_changes_nothing(
    store: PostgresEventStore,
    other_store: PostgresEventStore,
    pg_url: str,
    nats_url: str,
    subject_prefix: str,
) -> None:
    ours, theirs = await store.store_id(), await other_store.store_id()
    name = stream_name(subject_prefix)
    async with LiveSystem(store, pg_url, nats_url, subject_prefix) as live:
        head = await _propose(store)
        await _propose(store)
        head = await _propose(store)
        assert await wait_for_position(store.pool, head, 30)
        assert live.nc is not None
        js = live.nc.jetstream()

        # The first store's relay marked the stream and every message; its workers'
        # durables are named after it.
        info = await js.stream_info(name)
        assert stream_store(info) == str(ours)
        messages = await stored_messages(js, subject_prefix)
        assert len(messages) == head
        assert {m.headers[HEADER_STORE_ID] for m in messages} == {str(ours)}
        before = await _consumers(js, name)
        assert set(before) == {durable_name("projection", p, ours) for p in PROJECTIONS}

        # The second store's relay stops before publishing anything.
        await _propose(other_store)
        relay = Relay(
            other_store,
            database_url=pg_url,
            nats_servers=nats_url,
            settings=fast_settings(subject_prefix),
        )
        with pytest.raises(ForeignStream, match=str(ours)):
            await asyncio.wait_for(relay.run(), REFUSED_WITHIN)

        # Its projection workers stop before touching a consumer or a read model.
        for projection in ("programs", "audit"):
            runner = _runner(projection, other_store, pg_url, live.nc, subject_prefix)
            with pytest.raises(ForeignStream) as refused:
                await asyncio.wait_for(runner.run(), REFUSED_WITHIN)
            message = str(refused.value)
            assert str(ours) in message
            assert str(theirs) in message
            assert "PROGRAMLEDGER_SUBJECT_PREFIX" in message
            assert runner.durable == durable_name("projection", projection, theirs)
        statuses = {s.name: s.position for s in await projection_status(other_store.pool)}
        assert set(statuses.values()) <= {0}

        # Its webhook worker delivers nothing.
        receiver = await _refused_webhooks(other_store, pg_url, live.nc, subject_prefix)
        assert receiver.requests == 0

        # The API's feed and the subscriber helper refuse it too.
        feed = EventFeed([nats_url], subject_prefix, store_id=theirs)
        await feed.start()
        try:
            await eventually(lambda: feed._nc is not None and feed._nc.is_connected)
            with pytest.raises(FeedUnavailable, match="belongs to event store"):
                await feed.open(EventSelection())
        finally:
            await feed.close()
        with pytest.raises(ForeignStream):
            await subscribe(js, subject_prefix, "billing", store_id=theirs, after_position=0)

        # Nothing on the stream changed: same consumers, same places, same messages.
        assert await _consumers(js, name) == before
        assert len(await stored_messages(js, subject_prefix)) == head
        info = await js.stream_info(name)
        assert stream_store(info) == str(ours)

        # The stream's own store still consumes it, and a subscriber that names it too.
        head = await _propose(store)
        assert await wait_for_position(store.pool, head, 30)
        subscription = await subscribe(js, subject_prefix, "billing", store_id=ours)
        async with subscription:
            delivery = await asyncio.wait_for(anext(subscription), 10)
            assert delivery.envelope.position == 1
            await delivery.ack()


async def test_a_message_of_another_store_in_an_unmarked_stream_stops_the_worker(
    store: PostgresEventStore,
    other_store: PostgresEventStore,
    pg_url: str,
    nats_url: str,
    subject_prefix: str,
) -> None:
    """A stream made by hand (no mark) is read, but a message another store's relay put in
    it is refused before it is applied."""
    await _propose(other_store)
    theirs = await other_store.store_id()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, StreamSettings(subject_prefix))
        stored: list[RawEvent] = []

        async def readable() -> bool:
            # The store's safe read shows a commit once older transactions are done.
            stored[:] = await other_store.read_all_raw(0, 10)
            return bool(stored)

        await eventually(readable)
        event = stored[0]
        message = encode_message(subject_prefix, event, other_store.codec)
        await js.publish(
            message.subject,
            message.payload,
            headers={**message.headers, HEADER_STORE_ID: str(theirs)},
        )
        runner = _runner("audit", store, pg_url, nc, subject_prefix)
        with pytest.raises(ForeignStream, match=HEADER_STORE_ID):
            await asyncio.wait_for(runner.run(), REFUSED_WITHIN)
        statuses = {s.name: s.position for s in await projection_status(store.pool)}
        assert statuses.get("audit", 0) == 0
        receiver = await _refused_webhooks(store, pg_url, nc, subject_prefix)
        assert receiver.requests == 0
        subscription = await subscribe(
            js, subject_prefix, "reader", store_id=await store.store_id()
        )
        async with subscription:
            with pytest.raises(ForeignStream):
                await asyncio.wait_for(anext(subscription), 10)
    finally:
        await js.delete_stream(stream_name(subject_prefix))
        await nc.close()
