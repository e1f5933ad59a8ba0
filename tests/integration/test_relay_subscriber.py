"""The subscriber helper: filters by program and kind, dedupes by position, resumes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from programledger.adapters.nats.pull import ConsumerGone
from programledger.adapters.nats.relay import Relay
from programledger.adapters.nats.stream import stream_name
from programledger.adapters.nats.subscriber import (
    ConsumerConflict,
    Delivery,
    EventsExpired,
    EventSubscription,
    subject_filters,
    subscribe,
)
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from tests.support.events import Noted, Renamed
from tests.support.relay_process import (
    append_notes,
    delete_stream,
    fast_settings,
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


@pytest_asyncio.fixture
async def relay(
    event_store: PostgresEventStore, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[Relay]:
    running = Relay(
        event_store,
        database_url=pg_url,
        nats_servers=nats_url,
        settings=fast_settings(subject_prefix),
    )
    task = asyncio.create_task(running.run())
    yield running
    running.stop()
    await asyncio.wait_for(task, 15)


async def take(subscription: EventSubscription, count: int, *, ack: bool = True) -> list[Delivery]:
    got: list[Delivery] = []
    async with asyncio.timeout(15):
        async for delivery in subscription:
            got.append(delivery)
            if ack:
                await delivery.ack()
            if len(got) == count:
                break
    return got


async def nothing_more(subscription: EventSubscription, within: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(within):
            await anext(subscription)


async def test_a_subscriber_of_one_program_receives_that_programs_events_only(
    event_store: PostgresEventStore, relay: Relay, js: JetStreamContext, subject_prefix: str
) -> None:
    written = await append_notes(event_store, writers=3, appends=20, program_ids=[P1, P2, None])
    await wait_for_messages(js, subject_prefix, written, within=10)
    mine = [e for e in await event_store.read_all(0, 1000) if e.metadata.program_id == P1]

    subscription = await subscribe(js, subject_prefix, "p1-reader", program_id=P1)
    async with subscription:
        got = await take(subscription, len(mine))
        await nothing_more(subscription)
    assert [d.envelope.event_id for d in got] == [e.event_id for e in mine]
    assert all(d.envelope.program_id == P1 for d in got)
    assert subscription.last_position == mine[-1].position


async def test_filters_by_stream_type_and_event_type(
    event_store: PostgresEventStore, relay: Relay, js: JetStreamContext, subject_prefix: str
) -> None:
    meta = EventMetadata(actor="test", program_id=P1)
    await event_store.append("note-1", ExpectedVersion.ANY, [Noted(text="a")], meta)
    await event_store.append("person-1", ExpectedVersion.ANY, [Renamed(first="A", last="B")], meta)
    await event_store.append("person-2", ExpectedVersion.ANY, [Noted(text="b")], meta)
    await wait_for_messages(js, subject_prefix, 3, within=10)

    people = await subscribe(js, subject_prefix, "people", stream_types=["person"])
    async with people:
        got = await take(people, 2)
        await nothing_more(people)
    assert [d.envelope.stream_id for d in got] == ["person-1", "person-2"]

    # Two stream types and one event type: several filter subjects on nats-server 2.10+,
    # one wider filter plus client-side filtering on older servers; same result.
    notes = await subscribe(
        js, subject_prefix, "notes", stream_types=["note", "person"], event_types=["TestNoted"]
    )
    async with notes:
        got = await take(notes, 2)
        await nothing_more(notes)
    assert [d.envelope.stream_id for d in got] == ["note-1", "person-2"]
    assert got[0].event(event_store.codec.registry) == Noted(text="a")


async def test_a_restart_resumes_right_after_the_consumers_own_position(
    event_store: PostgresEventStore, relay: Relay, js: JetStreamContext, subject_prefix: str
) -> None:
    """An instance that committed positions 1-3 and crashed before acking them: the next
    instance starts at 4 at once, without waiting for JetStream to redeliver 1-3 (which
    would come after 4 and 5); one restored to an older checkpoint replays from there."""
    written = await append_notes(event_store, writers=1, appends=5)
    await wait_for_messages(js, subject_prefix, written, within=10)

    crashed = await subscribe(js, subject_prefix, "crashy", after_position=0, ack_wait=30)
    assert [d.envelope.position for d in await take(crashed, 3, ack=False)] == [1, 2, 3]
    await crashed.close()

    resumed = await subscribe(js, subject_prefix, "crashy", after_position=3, ack_wait=30)
    async with resumed:
        assert [d.envelope.position for d in await take(resumed, 2)] == [4, 5]
        await nothing_more(resumed)

    restored = await subscribe(js, subject_prefix, "crashy", after_position=1)
    async with restored:
        assert [d.envelope.position for d in await take(restored, 4)] == [2, 3, 4, 5]
        await nothing_more(restored)


async def test_redeliveries_of_positions_already_handed_out_are_skipped(
    event_store: PostgresEventStore, relay: Relay, js: JetStreamContext, subject_prefix: str
) -> None:
    written = await append_notes(event_store, writers=1, appends=4)
    await wait_for_messages(js, subject_prefix, written, within=10)
    # One message a pull, so the pull after the ack wait finds position 1 due again (with a
    # bigger batch the rest is already here, and acking 1 late cancels its redelivery).
    subscription = await subscribe(
        js, subject_prefix, "slow", after_position=0, ack_wait=1.0, batch=1
    )
    async with subscription:
        [slow] = await take(subscription, 1, ack=False)
        await asyncio.sleep(1.5)  # past the ack wait: JetStream redelivers position 1 first
        rest = await take(subscription, 3)
        await slow.ack()
        await nothing_more(subscription, within=1.5)
    assert [d.envelope.position for d in rest] == [2, 3, 4]
    assert subscription.skipped >= 1


async def test_a_nak_delivers_the_event_again_before_later_ones(
    event_store: PostgresEventStore, relay: Relay, js: JetStreamContext, subject_prefix: str
) -> None:
    await append_notes(event_store, writers=1, appends=3)
    await wait_for_messages(js, subject_prefix, 3, within=10)
    for after in (0, None):
        subscription = await subscribe(js, subject_prefix, f"r{after}", after_position=after)
        async with subscription:
            [first] = await take(subscription, 1)
            [second] = await take(subscription, 1, ack=False)
            await second.nak()
            again = [d.envelope.position for d in await take(subscription, 2)]
            await nothing_more(subscription)
        assert (first.envelope.position, second.envelope.position) == (1, 2)
        # Tracking its position, the consumer gets 2 again before 3; left to JetStream,
        # the redelivered 2 may come after 3, which is why such handlers must be idempotent.
        assert again == [2, 3] if after is not None else sorted(again) == [2, 3]


async def test_a_consumer_behind_the_streams_retention_is_told_to_rebuild(
    event_store: PostgresEventStore, relay: Relay, js: JetStreamContext, subject_prefix: str
) -> None:
    written = await append_notes(event_store, writers=1, appends=6)
    await wait_for_messages(js, subject_prefix, written, within=10)
    relay.stop()
    await js.purge_stream(stream_name(subject_prefix), keep=2)
    with pytest.raises(EventsExpired, match="position 5"):
        await subscribe(js, subject_prefix, "late", after_position=2)
    subscription = await subscribe(js, subject_prefix, "late", after_position=4)
    async with subscription:
        assert [d.envelope.position for d in await take(subscription, 2)] == [5, 6]


async def test_a_durable_with_other_filters_is_a_conflict(
    event_store: PostgresEventStore, relay: Relay, js: JetStreamContext, subject_prefix: str
) -> None:
    await append_notes(event_store, writers=1, appends=1)
    await wait_for_messages(js, subject_prefix, 1, within=10)
    await (await subscribe(js, subject_prefix, "shared", program_id=P1)).close()
    with pytest.raises(ConsumerConflict, match="filters"):
        await subscribe(js, subject_prefix, "shared", program_id=P2)


def test_subject_filters() -> None:
    assert subject_filters("pl") == ["pl.*.*.*"]
    assert subject_filters("pl", P1, ["risk"]) == [f"pl.{P1}.risk.*"]
    assert subject_filters("pl", None, ["a", "b"], ["X"]) == ["pl.*.a.X", "pl.*.b.X"]
    assert subject_filters("pl", None, ["a", "b"], ["X"], multiple=False) == ["pl.*.*.X"]
    with pytest.raises(ValueError, match="cannot be a subject token"):
        subject_filters("pl", None, ["a.b"])
    with pytest.raises(ValueError, match="must not be empty"):
        subject_filters("pl", None, [])


async def test_a_deleted_consumer_ends_the_iteration_with_consumer_gone(
    js: JetStreamContext, relay: Relay, event_store: PostgresEventStore, subject_prefix: str
) -> None:
    await append_notes(event_store, writers=1, appends=1)
    await wait_for_messages(js, subject_prefix, 1, within=10)
    subscription = await subscribe(js, subject_prefix, "gone", wait=0.2)
    async with subscription:
        first = await anext(subscription)
        await first.ack()
        await js.delete_consumer(stream_name(subject_prefix), "gone")
        with pytest.raises(ConsumerGone):
            async with asyncio.timeout(5):
                await anext(subscription)
