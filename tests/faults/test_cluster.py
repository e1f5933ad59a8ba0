"""A three-node JetStream cluster loses a server mid-stream, and no event is lost or doubled.

The stream is replicated on all three servers (R3). While writers append and the relay
publishes, the server leading the stream is killed (SIGKILL, no goodbye): the other two
elect a new leader, the relay's in-flight publishes fail and it resyncs, clients fail over.
A consumer that reads throughout, resubscribing from its own position after any error
exactly as a projection does, must receive every appended event exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from programledger.adapters.embedded.nats import EmbeddedNats, start_cluster
from programledger.adapters.nats.relay import Relay
from programledger.adapters.nats.stream import StreamSettings, stream_name
from programledger.adapters.nats.subscriber import subscribe
from programledger.adapters.postgres.eventstore import PostgresEventStore
from tests.support.relay_process import (
    append_notes,
    eventually,
    fast_settings,
    stored_messages,
)

REPLICAS = 3
HALF = 4 * 75 * 2
"""Events appended before the kill, and again after it."""


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[list[EmbeddedNats]]:
    nodes = await asyncio.to_thread(start_cluster, tmp_path / "cluster", REPLICAS)
    yield nodes
    for node in nodes:
        await asyncio.to_thread(node.stop)


@pytest_asyncio.fixture
async def client(cluster: list[EmbeddedNats]) -> AsyncIterator[NatsClient]:
    async def quiet(exc: Exception) -> None:
        """Reconnect attempts to the killed server are expected."""

    nc = await nats.connect(
        [node.url for node in cluster],
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.1,
        error_cb=quiet,
    )
    yield nc
    await nc.close()


async def _append_half(store: PostgresEventStore) -> int:
    return await append_notes(store, writers=4, appends=75, per_append=2)


async def _has(js: JetStreamContext, name: str, count: int) -> bool:
    """Whether the stream holds ``count`` messages; False while the cluster cannot answer
    (during a leader election)."""
    try:
        return int((await js.stream_info(name)).state.messages) >= count
    except Exception:
        return False


async def _consume(js: JetStreamContext, prefix: str, seen: list[int], expected: int) -> None:
    """Read until ``expected`` events arrived; after any failure, resubscribe after the last
    position received, which is how a consumer that tracks its position recovers."""
    while len(seen) < expected:
        try:
            subscription = await subscribe(
                js, prefix, "cluster-check", after_position=seen[-1] if seen else 0, wait=0.5
            )
            async with subscription:
                async for delivery in subscription:
                    seen.append(delivery.envelope.position)
                    await delivery.ack()
                    if len(seen) >= expected:
                        return
        except Exception:
            await asyncio.sleep(0.2)


async def test_killing_the_stream_leader_mid_stream_loses_and_duplicates_nothing(
    event_store: PostgresEventStore,
    pg_url: str,
    cluster: list[EmbeddedNats],
    client: NatsClient,
    subject_prefix: str,
) -> None:
    js = client.jetstream(timeout=2)
    name = stream_name(subject_prefix)
    relay = Relay(
        event_store,
        database_url=pg_url,
        nats_servers=[node.url for node in cluster],
        settings=fast_settings(
            subject_prefix,
            stream=StreamSettings(subject_prefix, replicas=REPLICAS),
            batch_size=50,
            max_in_flight=50,
        ),
    )
    relaying = asyncio.create_task(relay.run())
    written = 2 * HALF
    seen: list[int] = []
    # Half the events before the kill (still being published when it happens), half after
    # (they can only get through the new leader).
    before = asyncio.create_task(_append_half(event_store))
    consuming: asyncio.Task[None] | None = None
    try:
        await eventually(lambda: _has(js, name, HALF // 4), within=30)
        info = await js.stream_info(name)
        assert info.config.num_replicas == REPLICAS
        assert info.cluster is not None
        leader = next(node for node in cluster if node.server_name == info.cluster.leader)
        consuming = asyncio.create_task(_consume(js, subject_prefix, seen, written))

        await asyncio.to_thread(leader.kill)
        await before
        await _append_half(event_store)

        await asyncio.wait_for(consuming, 60)
        await eventually(lambda: _has(js, name, written), within=30)
    finally:
        relay.stop()
        await asyncio.wait_for(relaying, 15)
        if consuming is not None and not consuming.done():
            consuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consuming

    stored = [e.position for e in await event_store.read_all(0, written + 1)]
    assert len(stored) == written
    assert seen == stored, "the consumer got every event exactly once, in position order"
    in_stream = [m.envelope.position for m in await stored_messages(js, subject_prefix)]
    assert in_stream == stored, "the stream holds every event exactly once, in order"
    survivors = [n for n in cluster if n is not leader]
    assert all(n.is_running for n in survivors)
