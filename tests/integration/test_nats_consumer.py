"""The one consumer builder against a real JetStream server: where each kind of consumer
starts, what a durable with fixed filters refuses, and an ephemeral one removed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy
from nats.js.errors import NotFoundError

from programledger.adapters.nats.consumer import (
    ConsumerConflict,
    PullConsumer,
    discard,
    open_pull,
)
from programledger.adapters.nats.pull import BatchPuller


@pytest_asyncio.fixture
async def nc(nats_url: str, subject_prefix: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await js.add_stream(name=_stream(subject_prefix), subjects=[f"{subject_prefix}.>"])
    for n in range(1, 11):
        await js.publish(f"{subject_prefix}.{'even' if n % 2 == 0 else 'odd'}", str(n).encode())
    yield client
    await js.delete_stream(_stream(subject_prefix))
    await client.close()


def _stream(prefix: str) -> str:
    return f"{prefix.upper()}_CONSUMER"


async def _numbers(puller: BatchPuller, ack: bool = True) -> list[int]:
    batch = await puller.fetch(100, 1.0)
    if batch and ack:
        await batch[-1].ack()
    return [int(m.data) for m in batch]


def _durable(
    prefix: str, filters: tuple[str, ...] | None = None, *, fixed_filters: bool = False
) -> PullConsumer:
    return PullConsumer(
        _stream(prefix),
        filters or (f"{prefix}.>",),
        AckPolicy.ALL,
        durable="reader",
        ack_wait=30,
        fixed_filters=fixed_filters,
    )


async def test_a_durable_is_repositioned_at_start_or_resumed_without_one(
    nc: NatsClient, subject_prefix: str
) -> None:
    js = nc.jetstream()
    consumer = _durable(subject_prefix)
    puller = await open_pull(js, consumer)
    assert await _numbers(puller) == list(range(1, 11))
    await puller.unsubscribe()
    # Without a start, an existing durable goes on where it was acknowledged.
    await js.publish(f"{subject_prefix}.odd", b"11")
    puller = await open_pull(js, consumer)
    assert await _numbers(puller) == [11]
    await puller.unsubscribe()
    # With one, it starts exactly there, whatever was acknowledged before.
    puller = await open_pull(js, consumer, 4)
    assert await _numbers(puller) == list(range(4, 12))
    info = await js.consumer_info(_stream(subject_prefix), "reader")
    assert info.config.max_deliver == -1
    await puller.unsubscribe()


async def test_fixed_filters_refuse_a_change_and_other_durables_follow_it(
    nc: NatsClient, subject_prefix: str
) -> None:
    js = nc.jetstream()
    odd = (f"{subject_prefix}.odd",)
    puller = await open_pull(js, _durable(subject_prefix, odd))
    await puller.unsubscribe()
    with pytest.raises(ConsumerConflict, match="reader"):
        await open_pull(js, _durable(subject_prefix, fixed_filters=True), 1)
    with pytest.raises(ConsumerConflict):
        await open_pull(js, _durable(subject_prefix, fixed_filters=True))
    # A consumer that follows its definition is recreated with the new filters.
    puller = await open_pull(js, _durable(subject_prefix, (f"{subject_prefix}.even",)), 1)
    assert await _numbers(puller) == [2, 4, 6, 8, 10]
    await puller.unsubscribe()


async def test_an_ephemeral_consumer_reads_from_its_start_and_is_discarded(
    nc: NatsClient, subject_prefix: str
) -> None:
    js = nc.jetstream()
    consumer = PullConsumer(
        _stream(subject_prefix),
        (f"{subject_prefix}.even", f"{subject_prefix}.odd"),
        AckPolicy.NONE,
    )
    puller = await open_pull(js, consumer, 7)
    assert await _numbers(puller, ack=False) == [7, 8, 9, 10]
    info = await js.consumer_info(_stream(subject_prefix), puller.consumer)
    assert info.config.mem_storage
    assert info.config.durable_name is None
    await discard(js, puller)
    with pytest.raises(NotFoundError):
        await js.consumer_info(_stream(subject_prefix), puller.consumer)
    await discard(js, puller)  # twice is fine


def test_a_consumer_needs_a_filter() -> None:
    with pytest.raises(ValueError, match="filter"):
        PullConsumer("S", (), AckPolicy.NONE)
