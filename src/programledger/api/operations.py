"""``/health``, ``/ready`` and ``/metrics``: what orchestrators and Prometheus poll.

- ``/health`` answers while the process serves requests: a failing one means restart it.
- ``/ready`` runs every readiness check concurrently, each bounded in time, and answers 503
  when one fails: stop sending traffic, but do not restart. Checks are plain coroutines
  returning ``(name, ok, detail)``; PostgreSQL and NATS are built in, and others (projection
  lag) are passed to ``create_app``.
- ``/metrics`` is the Prometheus text exposition of the app's registry.

``/ready`` also reports, under ``verification``, the last whole-store ``programledger
verify`` (when, what it checked, what it found; ``verification_runs``), without letting it
decide readiness: a broken chain is for the auditors and the alert on
``programledger_verification_last_ok``, and taking every replica out of service would not
repair it (history and exports of a broken stream refuse on their own).

They need no token: a probe has none. Keep ``/metrics`` off the public network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import asyncpg
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from programledger.adapters.postgres.verification_runs import last_run
from programledger.api.events import EventFeed
from programledger.api.metrics import ApiMetrics

__all__ = [
    "ReadinessCheck",
    "feed_check",
    "operations_routes",
    "postgres_check",
    "verification_report",
]

log = logging.getLogger(__name__)

ReadinessCheck: TypeAlias = Callable[[], Awaitable[tuple[str, bool, str]]]
"""Returns ``(name, ok, detail)``; a check that raises or times out is reported as failed
under its function's name."""


def postgres_check(pool: asyncpg.Pool, timeout: float = 2.0) -> ReadinessCheck:
    async def postgres() -> tuple[str, bool, str]:
        async with pool.acquire(timeout=timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout)
        return "postgres", True, "connected"

    return postgres


async def verification_report(pool: asyncpg.Pool) -> dict[str, Any]:
    """The last recorded verification, for ``/ready`` (``unknown`` if it cannot be read
    within two seconds)."""
    try:
        async with asyncio.timeout(2.0), pool.acquire() as conn:
            run = await last_run(conn)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        return {
            "result": "unknown",
            "detail": f"cannot read verification_runs: {type(exc).__name__}",
        }
    if run is None:
        return {"result": "never verified"}
    return {
        "result": "ok" if run.ok else "problems found",
        "at": run.finished_at.isoformat(),
        "started_at": run.started_at.isoformat(),
        "checks": run.checks,
        "streams": run.streams,
        "events": run.events,
        "problems": run.problems,
        "first_problem": run.first_problem,
    }


def feed_check(feed: EventFeed) -> ReadinessCheck:
    async def nats() -> tuple[str, bool, str]:
        ok, detail = await feed.check()
        return "nats", ok, detail

    return nats


async def _run(check: ReadinessCheck, limit: float) -> tuple[str, bool, str]:
    name = getattr(check, "__name__", "check")
    try:
        async with asyncio.timeout(limit):
            return await check()
    except TimeoutError:
        return name, False, f"no answer within {limit:g}s"
    except Exception as exc:
        log.warning("readiness check %s failed", name, exc_info=True)
        return name, False, f"failed: {type(exc).__name__}"


def operations_routes(
    checks: Sequence[ReadinessCheck],
    metrics: ApiMetrics,
    *,
    verification: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    timeout: float = 3.0,
) -> list[HTTPRouteHandler]:
    @get("/health", exclude_from_auth=True, sync_to_thread=False)
    def health() -> dict[str, str]:
        return {"status": "alive"}

    @get("/ready", exclude_from_auth=True)
    async def ready() -> Response[dict[str, Any]]:
        results = await asyncio.gather(*(_run(check, timeout) for check in checks))
        ready = all(ok for _, ok, _ in results)
        body: dict[str, Any] = {
            "status": "ready" if ready else "not ready",
            "checks": {name: {"ok": ok, "detail": detail} for name, ok, detail in results},
        }
        if verification is not None:
            body["verification"] = await verification()
        return Response(body, status_code=200 if ready else 503)

    @get("/metrics", exclude_from_auth=True, sync_to_thread=False)
    def prometheus() -> Response[bytes]:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return [health, ready, prometheus]
