"""BatchPuller against a real JetStream server: batches in order, prompt delivery of new
messages, bounded waits, acknowledgements, and a deleted consumer reported."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig

from programledger.adapters.nats.pull import BatchPuller, ConsumerGone


@pytest_asyncio.fixture
async def nc(nats_url: str, subject_prefix: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url)
    await client.jetstream().add_stream(
        name=_stream(subject_prefix), subjects=[f"{subject_prefix}.>"]
    )
    yield client
    await client.jetstream().delete_stream(_stream(subject_prefix))
    await client.close()


def _stream(prefix: str) -> str:
    return f"{prefix.upper()}_PULL"


async def _puller(nc: NatsClient, prefix: str, durable: str = "puller") -> BatchPuller:
    config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.ALL, ack_wait=30)
    await nc.jetstream().add_consumer(_stream(prefix), config)
    puller = BatchPuller(nc, _stream(prefix), durable)
    await puller.start()
    return puller


async def _publish(nc: NatsClient, prefix: str, numbers: range) -> None:
    js = nc.jetstream()
    for n in numbers:
        await js.publish(f"{prefix}.n", str(n).encode())


async def test_batches_come_in_order_and_acknowledged_ones_do_not_come_again(
    nc: NatsClient, subject_prefix: str
) -> None:
    await _publish(nc, subject_prefix, range(25))
    puller = await _puller(nc, subject_prefix)
    seen: list[int] = []
    while len(seen) < 25:
        batch = await puller.fetch(10, 1.0)
        assert 0 < len(batch) <= 10
        seen += [int(m.data) for m in batch]
        await batch[-1].ack()
    assert seen == list(range(25))
    started = time.monotonic()
    assert await puller.fetch(10, 0.3) == []
    assert 0.2 < time.monotonic() - started < 2
    await puller.unsubscribe()
    # A new puller on the same durable consumer starts after what was acknowledged.
    await _publish(nc, subject_prefix, range(25, 27))
    again = BatchPuller(nc, _stream(subject_prefix), "puller")
    await again.start()
    assert [int(m.data) for m in await again.fetch(10, 1.0)] == [25, 26]
    await again.unsubscribe()


async def test_a_message_published_while_waiting_arrives_promptly(
    nc: NatsClient, subject_prefix: str
) -> None:
    puller = await _puller(nc, subject_prefix)
    fetching = asyncio.create_task(puller.fetch(100, 5.0))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await _publish(nc, subject_prefix, range(1))
    batch = await fetching
    assert [m.data for m in batch] == [b"0"]
    assert time.monotonic() - started < 1.0
    await puller.unsubscribe()


async def test_a_consumer_deleted_under_a_waiting_pull_is_reported(
    nc: NatsClient, subject_prefix: str
) -> None:
    puller = await _puller(nc, subject_prefix)
    fetching = asyncio.create_task(puller.fetch(10, 5.0))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await nc.jetstream().delete_consumer(_stream(subject_prefix), "puller")
    with pytest.raises(ConsumerGone, match="consumer deleted"):
        await fetching
    assert time.monotonic() - started < 2.0
    # A pull for a consumer that no longer exists gets no answer: the puller looks, within
    # the wait and a round trip.
    started = time.monotonic()
    with pytest.raises(ConsumerGone, match="is gone"):
        await puller.fetch(10, 0.3)
    assert time.monotonic() - started < 2.0
    await puller.unsubscribe()
