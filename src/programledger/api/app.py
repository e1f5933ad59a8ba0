"""The Litestar application: GraphQL at ``/graphql``, the global feed at ``/events``, plus
``/health``, ``/ready``, ``/metrics``.

The factory only wires, over the few ports the API uses (:class:`ApiPorts`), which the
composition root (``bootstrap.build_api``) opens; the one resource the API owns, its NATS
connection for subscriptions (the event feed), is opened in the lifespan and closed in
``finally``.

Layers of a request, outermost first: request id and access log, bearer authentication
(HTTP only; WebSockets authenticate in ``connection_init``), body size limit, the route.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
from litestar import Litestar
from litestar.datastructures import State

from programledger.adapters.feed import EventLog
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.webhooks import PostgresWebhookStore
from programledger.api.auth import TokenVerifier, bearer_auth
from programledger.api.cors import cors_config
from programledger.api.errors import exception_handlers
from programledger.api.events import EventFeed
from programledger.api.feed import feed_routes
from programledger.api.graphiql import graphiql_assets
from programledger.api.graphql.context import Services, WaitForPosition
from programledger.api.graphql.schema import build_schema
from programledger.api.graphql.transport import graphql_controller
from programledger.api.limits import ApiLimits
from programledger.api.metrics import ApiMetrics
from programledger.api.operations import (
    ReadinessCheck,
    feed_check,
    operations_routes,
    postgres_check,
    verification_report,
)
from programledger.api.request_ids import RequestContextMiddleware, add_request_id_header
from programledger.application.handlers import Application
from programledger.application.webhooks import WebhookAdmin

__all__ = ["ApiPorts", "create_app"]


@dataclass(frozen=True, slots=True)
class ApiPorts:
    """What the API reaches beyond itself; the caller opens and closes all but the feed."""

    commands: Application
    """The write side: every mutation goes through its handlers."""
    reads: asyncpg.Pool
    """The read models' pool (they share the event store's schema); ``/ready`` checks it."""
    history: PostgresEventStore
    """The reads that are event-store reads by design: integrity verification."""
    feed: EventFeed
    """Live events for subscriptions, from NATS; started and closed by the app."""
    tokens: TokenVerifier
    """Verifies bearer tokens (a shared secret or an identity provider's keys)."""


def create_app(
    ports: ApiPorts,
    *,
    readiness_checks: Sequence[ReadinessCheck] = (),
    wait_for_position: WaitForPosition | None = None,
    metrics: ApiMetrics | None = None,
    limits: ApiLimits = ApiLimits(),  # noqa: B008 - frozen
    graphiql: bool = True,
    allowed_origins: Sequence[str] = (),
    allow_private_webhooks: bool = False,
) -> Litestar:
    """The API over ``ports``.

    ``readiness_checks`` are added to ``/ready`` (PostgreSQL and NATS are built in);
    ``wait_for_position`` is the read side's read-your-writes wait, used by mutations with
    ``waitForProjections``; ``metrics`` carries the Prometheus registry to expose (a new one
    by default; ``app.state.metrics`` either way); ``allowed_origins`` are the browser
    origins, besides the API's own, that may call it (CORS) and open a GraphQL WebSocket;
    ``allow_private_webhooks`` lets admins register webhook URLs with private addresses.
    """
    metrics = metrics if metrics is not None else ApiMetrics()
    feed = ports.feed
    metrics.watch_feed(feed)
    services = Services(
        application=ports.commands,
        pool=ports.reads,
        store=ports.history,
        feed=feed,
        metrics=metrics,
        tokens=ports.tokens,
        wait_for_position=wait_for_position,
        projection_wait=limits.projection_wait,
        database_seconds=limits.database_seconds,
        webhooks=WebhookAdmin(
            PostgresWebhookStore(ports.reads), allow_private=allow_private_webhooks
        ),
    )
    checks = [postgres_check(ports.reads), feed_check(feed), *readiness_checks]

    @contextlib.asynccontextmanager
    async def event_feed(_app: Litestar) -> AsyncIterator[None]:
        await feed.start()
        try:
            yield
        finally:
            await feed.close()

    return Litestar(
        route_handlers=[
            graphql_controller(
                build_schema(limits), services, graphiql=graphiql, allowed_origins=allowed_origins
            ),
            *operations_routes(
                checks, metrics, verification=functools.partial(verification_report, ports.reads)
            ),
            *feed_routes(EventLog(ports.history, feed.prefix)),
            *([graphiql_assets()] if graphiql else []),
        ],
        middleware=[RequestContextMiddleware(metrics), bearer_auth(ports.tokens)],
        lifespan=[event_feed],
        before_send=[add_request_id_header],
        exception_handlers=exception_handlers(),
        request_max_body_size=limits.max_body_bytes,
        cors_config=cors_config(allowed_origins),
        state=State({"metrics": metrics}),
        openapi_config=None,  # schema.graphql is the contract; no REST docs to serve
        logging_config=None,  # the entry point configures logging for the whole process
    )
