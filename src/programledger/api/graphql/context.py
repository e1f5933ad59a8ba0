"""What every resolver can reach: the app-wide services and this request's caller.

One :class:`ApiContext` is built per HTTP request, and one per WebSocket connection (its
identity is set when ``connection_init`` carries a valid token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias
from uuid import UUID

import asyncpg
from strawberry.litestar import BaseContext
from strawberry.types import Info

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.api.auth import Identity, TokenVerifier
from programledger.api.events import EventFeed
from programledger.api.metrics import ApiMetrics
from programledger.application.handlers import Application

__all__ = ["ApiContext", "ApiInfo", "Services", "WaitForPosition"]

WaitForPosition: TypeAlias = Callable[[int, float], Awaitable[bool]]
"""``(position, timeout_seconds) -> reached``: whether the read models include every event
up to ``position`` before the timeout (the projections' read-your-writes wait)."""


@dataclass(frozen=True, slots=True)
class Services:
    application: Application
    pool: asyncpg.Pool
    """The read models' pool (they share the event store's schema)."""
    store: PostgresEventStore
    """For the reads that are event-store reads by design: history and verification."""
    feed: EventFeed
    metrics: ApiMetrics
    tokens: TokenVerifier
    wait_for_position: WaitForPosition | None
    projection_wait: float
    """Seconds a mutation with ``waitForProjections`` waits at most."""


class ApiContext(BaseContext, kw_only=True):
    services: Services
    request_id: str
    identity: Identity | None = None
    idempotency_key: str | None = None
    """The ``Idempotency-Key`` header of an HTTP request."""
    correlation_id: UUID | None = None
    """Shared by every command of one HTTP request; ``None`` on WebSockets, where each
    command gets its own."""
    connection_params: dict[str, object] | None = None
    """The ``connection_init`` payload of a WebSocket (set by strawberry)."""


ApiInfo: TypeAlias = Info[ApiContext, None]
