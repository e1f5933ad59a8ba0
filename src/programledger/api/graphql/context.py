"""What every resolver can reach: the app-wide services and this request's caller.

One :class:`ApiContext` is built per HTTP request, and one per WebSocket connection (its
identity is set when ``connection_init`` carries a valid token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeAlias
from uuid import UUID

import asyncpg
import msgspec
from strawberry.litestar import BaseContext
from strawberry.types import Info

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.api.auth import Identity, TokenVerifier
from programledger.api.events import EventFeed
from programledger.api.metrics import ApiMetrics
from programledger.application.handlers import Application
from programledger.application.webhooks import WebhookAdmin
from programledger.projections.engine.progress import WaitOutcome

__all__ = ["ApiContext", "ApiInfo", "Deadline", "Services", "WaitForPosition"]


class WaitForPosition(Protocol):
    """The read side's read-your-writes wait (``ProgressWatch.wait``): until each named
    read model (``None``: all) includes every event up to ``position``, at most
    ``timeout`` seconds; ``committed`` when the caller just wrote ``position``; a time
    for the last position recorded at or before it. Raises ``PositionAhead`` for a
    position beyond the store's head and ``TooManyWaiting`` when the process's bound on
    waiting requests is reached."""

    def __call__(
        self,
        position: int | datetime,
        timeout: float,
        projections: Collection[str] | None = None,
        *,
        committed: bool = False,
    ) -> Awaitable[WaitOutcome]: ...


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
    """Seconds a request waits for the read models at most."""
    database_seconds: float | None = None
    """The bound on an HTTP request's database work (``ApiLimits.database_seconds``)."""
    webhooks: WebhookAdmin | None = None
    """Webhook endpoints, for admins."""


@dataclass(slots=True)
class Deadline:
    """When an HTTP request's database work must be done (event loop time)."""

    at: float

    def extend(self, seconds: float) -> None:
        """Push the deadline out, by time spent on something other than the database."""
        self.at += seconds


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
    min_position: int | None = None
    """The ``Programledger-Min-Position`` header: the reads wait for this position."""
    projections_behind: set[str] | None = None
    """Read models a wait gave up on (reported as ``projectionsBehind``); ``None``: no
    wait happened."""
    deadline: Deadline | None = None
    """The bound on this request's database work; waits for the read models push it out."""

    loaders: dict[str, Any] = msgspec.field(default_factory=dict)
    """The DataLoaders of the links (``links.Link``), one per link, made when first used."""

    def waited(self, behind: Collection[str]) -> None:
        """Record a wait's outcome, for the response's ``projectionsBehind``."""
        if self.projections_behind is None:
            self.projections_behind = set()
        self.projections_behind.update(behind)


ApiInfo: TypeAlias = Info[ApiContext, None]
