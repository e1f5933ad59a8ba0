"""The event feed's round trips survive a late answer from NATS.

nats-py's ``flush(timeout)`` leaves the PONG future it cancelled on timeout queued; the
late PONG then raises ``InvalidStateError`` in the client's read loop, which stops reading.
A loopback proxy between the client and the real NATS holds back what the server sends, so
a round trip times out, then lets it through, so the answer arrives late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import msgspec
import nats
import pytest
import pytest_asyncio

from programledger.adapters.nats import client as nats_client
from programledger.adapters.nats.envelope import EventEnvelope, subject_for
from programledger.api.events import EventFeed, EventSelection, FeedUnavailable
from tests.support.relay_process import eventually


class HoldingProxy:
    """Forwards loopback TCP to NATS; while held, what the server sends waits here."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 4222
        self._released = asyncio.Event()
        self._released.set()
        self.holding = asyncio.Event()
        """Set once bytes from the server are waiting to be released."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"nats://127.0.0.1:{port}"

    def hold(self) -> None:
        self.holding.clear()
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        for task in (
            asyncio.create_task(self._pump(reader, up_writer, gated=False)),
            asyncio.create_task(self._pump(up_reader, writer, gated=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, gated: bool
    ) -> None:
        try:
            while data := await source.read(65536):
                if gated and not self._released.is_set():
                    self.holding.set()
                    await self._released.wait()
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()


class _Errors(logging.Handler):
    """Notices nats-py logging an ``InvalidStateError`` from its read loop."""

    def __init__(self) -> None:
        super().__init__()
        self.invalid_state = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and isinstance(record.exc_info[1], asyncio.InvalidStateError):
            self.invalid_state.set()


@pytest_asyncio.fixture
async def proxy(nats_url: str) -> AsyncIterator[HoldingProxy]:
    holding = HoldingProxy(nats_url)
    yield holding
    await holding.close()


@pytest.fixture
def nats_errors() -> Iterator[_Errors]:
    handler = _Errors()
    logger = logging.getLogger("nats.aio.client")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _event(position: int) -> bytes:
    return msgspec.json.encode(
        EventEnvelope(
            event_id=uuid.uuid4(),
            position=position,
            stream_id=f"task-{position}",
            stream_type="task",
            version=1,
            event_type="TaskCreated",
            schema_version=1,
            recorded_at=datetime.now(UTC),
            actor="test",
            correlation_id=None,
            causation_id=None,
            reason=None,
            program_id=None,
            data=msgspec.Raw(b"{}"),
        )
    )


def _ready(feed: EventFeed) -> Callable[[], Awaitable[bool]]:
    async def ready() -> bool:
        return (await feed.check())[0]

    return ready


async def test_raw_flush_timeout_stops_the_client_reading(
    proxy: HoldingProxy, nats_url: str, subject_prefix: str, nats_errors: _Errors
) -> None:
    """Documents the nats-py bug (2.16.0): when this fails, an upgrade fixed it, and
    ``programledger.api.events._round_trip`` may go back to ``flush``."""
    nc = await nats_client.connect(await proxy.start(), allow_reconnect=False)
    publisher = await nats.connect(nats_url)
    try:
        sub = await nc.subscribe(f"{subject_prefix}.raw")
        await nc.flush()
        proxy.hold()
        with pytest.raises(nats.errors.FlushTimeoutError):
            await nc.flush(timeout=0.2)  # type: ignore[arg-type]  # nats-py types it int
        assert proxy.holding.is_set()
        proxy.release()
        await asyncio.wait_for(nats_errors.invalid_state.wait(), 10)

        await publisher.publish(f"{subject_prefix}.raw", b"after")
        await publisher.flush()
        assert nc.is_connected  # nothing says so, but nothing is read any more
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=1)
    finally:
        await publisher.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)


async def test_feed_survives_late_answers_to_its_round_trips(
    proxy: HoldingProxy, nats_url: str, subject_prefix: str, nats_errors: _Errors
) -> None:
    feed = EventFeed([await proxy.start()], subject_prefix)
    publisher = await nats.connect(nats_url)
    await feed.start()
    try:
        await eventually(_ready(feed))
        stream = await feed.open(EventSelection())
        subject = subject_for(subject_prefix, None, "task", "TaskCreated")

        proxy.hold()
        ready, why = await feed.check()
        assert not ready
        assert why.startswith("no answer")
        with pytest.raises(FeedUnavailable, match="did not answer"):
            await feed.open(EventSelection())
        assert proxy.holding.is_set()
        proxy.release()

        assert await feed.check() == (True, "connected")
        await publisher.publish(subject, _event(1))
        async with stream:
            envelope = await asyncio.wait_for(anext(stream), 10)
        assert envelope.position == 1
        assert not nats_errors.invalid_state.is_set()
    finally:
        await publisher.close()
        await feed.close()
