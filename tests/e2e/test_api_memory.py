"""An open subscription's memory stays flat however many events it delivers.

The events go the production way, NATS to the API's feed to GraphQL execution to the
WebSocket; they are published straight onto the relay's subjects (not stored first) so that
tens of thousands can be delivered in a test's time. Memory is measured with tracemalloc
after a warm-up, over the code that executes and delivers an event.
"""

from __future__ import annotations

import json
import tracemalloc
import uuid
from datetime import UTC, datetime

import msgspec
import nats
import pytest
from websockets.asyncio.client import ClientConnection

from programledger.adapters.nats.envelope import EventEnvelope, subject_for
from programledger.api import Role
from tests.e2e.conftest import Api
from tests.e2e.test_api_subscriptions import _next, _subscribe

_BATCH = 500
"""Published, then all received, before the next: the feed cuts off a subscriber 1000 behind."""


def _payload(position: int, program: uuid.UUID) -> bytes:
    envelope = EventEnvelope(
        event_id=uuid.uuid4(),
        position=position,
        stream_id=f"program-{program}",
        stream_type="program",
        version=position,
        event_type="ProgramActivated",
        schema_version=1,
        recorded_at=datetime.now(UTC),
        actor="tia",
        correlation_id=uuid.uuid4(),
        causation_id=None,
        reason="go",
        program_id=program,
        data=msgspec.Raw(json.dumps({"programId": str(program), "n": position}).encode()),
    )
    return msgspec.json.encode(envelope)


def _held(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes held by allocations made in the API, graphql-core and strawberry."""
    filters = [
        tracemalloc.Filter(True, "*/programledger/api/*"),
        tracemalloc.Filter(True, "*/graphql/*"),
        tracemalloc.Filter(True, "*/strawberry/*"),
    ]
    return sum(stat.size for stat in snapshot.filter_traces(filters).statistics("filename"))


@pytest.mark.slow
async def test_a_subscription_holds_no_memory_per_delivered_event(
    api: Api, nats_url: str, subject_prefix: str
) -> None:
    program = uuid.uuid4()
    subject = subject_for(subject_prefix, program, "program", "ProgramActivated")
    nc = await nats.connect(nats_url)
    position = 0

    async def deliver(count: int, ws: ClientConnection) -> None:
        nonlocal position
        for _ in range(count // _BATCH):
            first = position + 1
            for _ in range(_BATCH):
                position += 1
                await nc.publish(subject, _payload(position, program))
            await nc.flush()
            for expected in range(first, position + 1):
                event = (await _next(ws))["data"]["events"]
                assert event["position"] == expected

    tracemalloc.start()
    try:
        async with api.websocket(api.token(Role.VIEWER, subject="val")) as ws:
            await _subscribe(api, ws, program=str(program))
            await deliver(2_000, ws)
            warm = _held(tracemalloc.take_snapshot())
            await deliver(20_000, ws)
            after = _held(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
        await nc.close()
    # A leak of even 20 bytes an event would show as 400 KB here.
    assert after - warm < 200_000, f"{after - warm} bytes more after 20,000 events"
