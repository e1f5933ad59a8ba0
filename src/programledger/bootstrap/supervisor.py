"""One way to run a process's long-lived parts: start them, watch them, stop them together.

``run``, ``serve``, ``relay`` and ``project`` differ only in which services they start; the
e2e tests and benchmarks serve the API through the same :func:`supervised`. A service that
ends, failed or not, ends the others: a process with its relay or its API gone should exit
and be restarted by its own supervisor, not limp on half-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["Service", "stop_on_signals", "supervise", "supervised"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    run: Callable[[], Awaitable[None]]
    """Runs until stopped (or failed)."""
    stop: Callable[[], None] | None = None
    """Asks :attr:`run` to finish cleanly (finishing requests in flight, releasing locks);
    a service without one is cancelled."""


def stop_on_signals() -> asyncio.Event:
    """Set on SIGINT or SIGTERM. Install it before anything starts, so that a signal that
    comes early still leads to a clean shutdown of what did start."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def supervise(
    services: Sequence[Service],
    stop: asyncio.Event,
    *,
    up: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run ``services`` until one of them ends or ``stop`` is set, then stop them all.

    ``up`` runs once they are started: it waits until they serve and says so (it is
    abandoned if a service ends or ``stop`` is set first). The first failure, of a service
    or else of ``up``, is raised once every service has stopped.
    """
    tasks = {asyncio.create_task(_run(s.run), name=s.name): s for s in services}
    stopping = asyncio.create_task(stop.wait(), name="stop signal")
    try:
        if up is not None:
            announcing = asyncio.create_task(_run(up), name="up")
            await asyncio.wait([announcing, *tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
            if announcing.done():
                announcing.result()
            else:
                announcing.cancel()
        await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("stopping")
        stopping.cancel()
        for task, service in tasks.items():
            if service.stop is not None:
                service.stop()
            else:
                task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result


async def _run(start: Callable[[], Awaitable[None]]) -> None:
    await start()


@contextlib.asynccontextmanager
async def supervised(
    services: Sequence[Service], *, up: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[None]:
    """``services`` supervised in the background for the block, which starts once ``up``
    has returned; stopped at its end, their first failure raised then (or at once, if one
    fails before they are up)."""
    stop = asyncio.Event()
    ready = asyncio.Event()

    async def announce() -> None:
        if up is not None:
            await up()
        ready.set()

    supervising = asyncio.create_task(supervise(services, stop, up=announce))
    started = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait([supervising, started], return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            await supervising
            raise RuntimeError("the services ended before they were up")
        yield
    finally:
        started.cancel()
        stop.set()
        await supervising
