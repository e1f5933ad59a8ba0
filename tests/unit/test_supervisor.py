"""The supervisor: every service stops when one ends or the stop signal comes, and the first
failure is what the process reports."""

from __future__ import annotations

import asyncio

import pytest

from programledger.bootstrap.supervisor import Service, supervise, supervised


class Worker:
    """A service that runs until asked to stop, noting how it ended."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self.stopped_cleanly = False

    async def run(self) -> None:
        self.started.set()
        await self._stop.wait()
        self.stopped_cleanly = True

    def stop(self) -> None:
        self._stop.set()

    def service(self) -> Service:
        return Service(self.name, self.run, self.stop)


async def test_a_failing_service_stops_the_others_and_its_error_is_raised() -> None:
    worker = Worker("relay")

    async def fails() -> None:
        await worker.started.wait()
        raise OSError("connection refused")

    with pytest.raises(OSError, match="connection refused"):
        await supervise([worker.service(), Service("api", fails)], asyncio.Event())
    assert worker.stopped_cleanly


async def test_the_stop_signal_stops_every_service_cleanly() -> None:
    workers = [Worker("relay"), Worker("programs")]
    stop = asyncio.Event()

    async def up() -> None:
        for worker in workers:
            await worker.started.wait()
        stop.set()

    await supervise([w.service() for w in workers], stop, up=up)
    assert all(w.stopped_cleanly for w in workers)


async def test_a_service_without_stop_is_cancelled() -> None:
    worker = Worker("api")
    cancelled = asyncio.Event()

    async def gauges() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with supervised([worker.service(), Service("lag metrics", gauges)]):
        await worker.started.wait()
    assert worker.stopped_cleanly
    assert cancelled.is_set()


async def test_a_service_failing_before_it_is_up_fails_the_start() -> None:
    async def never_up() -> None:
        await asyncio.Event().wait()

    async def fails() -> None:
        raise ValueError("lifespan failed")

    with pytest.raises(ValueError, match="lifespan failed"):
        async with supervised([Service("api", fails)], up=never_up):
            pytest.fail("the block ran although the service never came up")
