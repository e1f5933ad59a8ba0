"""End-to-end fixtures: the real app, served on a free loopback port as ``serve`` serves it.

Each test gets its own PostgreSQL schema and NATS subject prefix (``tests/conftest.py``),
an app built by ``create_app`` over ports on them, and an :class:`Api` client that
speaks GraphQL over HTTP and ``graphql-transport-ws`` the way a frontend does. The relay,
which subscriptions depend on, runs only for tests that ask for the ``relay`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import nats
import pytest
import pytest_asyncio
from strawberry.types.base import get_object_definition
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from programledger.adapters.codec import EventCodec
from programledger.adapters.nats.relay import Relay
from programledger.adapters.postgres.connection import connect as pg_connect
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.api import (
    ApiLimits,
    ApiMetrics,
    ApiPorts,
    ReadinessCheck,
    Role,
    create_app,
    mint_token,
)
from programledger.api.auth import token_verifier
from programledger.api.events import EventFeed
from programledger.api.graphql.context import WaitForPosition
from programledger.api.graphql.mutations import COMMANDS, errors_of
from programledger.api.server import http_server
from programledger.application.handlers import Application
from programledger.bootstrap import event_registry, http_service
from programledger.bootstrap.supervisor import supervised
from programledger.projections.engine.progress import ProgressWatch
from programledger.settings import Settings
from tests.support.relay_process import delete_stream, fast_settings

SECRET = "e2e-secret-" + "x" * 40


@dataclass
class Api:
    """A client of one running app."""

    base_url: str
    http: httpx.AsyncClient
    store: PostgresEventStore
    metrics: ApiMetrics
    watch: ProgressWatch | None = None
    """The read-your-writes watch, when the app was built with ``watch=True``."""

    def token(self, *roles: Role, subject: str = "alice@example.com", ttl: float = 600.0) -> str:
        return mint_token(SECRET, subject, roles or (Role.EDITOR,), timedelta(seconds=ttl))

    def token_without_roles(self) -> str:
        """A valid token that names no role this API knows."""
        now = datetime.now(UTC)
        claims = {
            "sub": "nobody",
            "roles": ["intern"],
            "iat": now,
            "exp": now + timedelta(minutes=5),
        }
        return jwt.encode(claims, SECRET, algorithm="HS256")

    def auth(self, *roles: Role, subject: str = "alice@example.com") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*roles, subject=subject)}"}

    async def post(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A GraphQL POST; ``headers`` replace the default editor token when given."""
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = dict(variables)
        return await self.http.post(
            "/graphql", json=body, headers=dict(headers if headers is not None else self.auth())
        )

    async def mutate(
        self,
        name: str,
        values: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Run mutation ``name`` with ``values`` as its input; the payload, with every
        field of whichever member came back."""
        kind = name[:1].upper() + name[1:]
        fields = payload_fields(name)
        query = f"mutation Run($input: {kind}Input!) {{ {name}(input: $input) {{ {fields} }} }}"
        response = await self.post(query, {"input": dict(values)}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        payload: dict[str, Any] = body["data"][name]
        return payload

    async def accepted(self, name: str, values: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        payload = await self.mutate(name, values, **kwargs)
        assert payload["__typename"].endswith("Success"), payload
        return payload

    @contextlib.asynccontextmanager
    async def websocket(
        self, token: str | None, *, origin: str | None = None
    ) -> AsyncIterator[ClientConnection]:
        """A ``graphql-transport-ws`` connection, initialised (with ``token`` if given), as
        a page on ``origin`` would open it."""
        url = self.base_url.replace("http://", "ws://") + "/graphql"
        async with connect(
            url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            origin=None if origin is None else Origin(origin),
        ) as ws:
            payload = {} if token is None else {"authorization": f"Bearer {token}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            yield ws


_ERROR_FIELDS = {
    "ValidationError": "issues { path message }",
    "ConflictError": "streamId expectedVersion currentVersion",
    "InvalidTransitionError": "entity entityId fromStatus attempted hint",
    "OverAllocationError": "resourceKey "
    "conflicts { start end totalPercentage capacity programIds allocationIds }",
    "NotFoundError": "entity entityId",
    "AlreadyExistsError": "entity entityId",
    "BudgetExceededError": "programId",
    "NotProgramOwnerError": "programId owner actor",
    "ForbiddenError": "requiredRoles",
    "IdempotencyKeyReusedError": "key",
}
_COMMANDS = {c.__name__[:1].lower() + c.__name__[1:]: c for c in COMMANDS}


def payload_fields(name: str) -> str:
    """Every field of every member of mutation ``name``'s payload: its success and the
    errors the command can return (a fragment on any other would not validate)."""
    names = [get_object_definition(e, strict=True).name for e in errors_of(_COMMANDS[name])]
    errors = " ".join(f"... on {error} {{ {_ERROR_FIELDS[error]} }}" for error in names)
    return (
        "__typename ... on CommandAccepted { entityId streamId version position replayed "
        "eventIds eventTypes projectionsCaughtUp } ... on UserError { code message path } " + errors
    )


@contextlib.asynccontextmanager
async def running_api(
    pg_url: str,
    schema: str,
    nats_url: str,
    prefix: str,
    data_dir: Path,
    *,
    application: Callable[[PostgresEventStore], Application] = Application,
    readiness_checks: Sequence[ReadinessCheck] = (),
    wait_for_position: WaitForPosition | None = None,
    limits: ApiLimits = ApiLimits(),  # noqa: B008 - frozen
    allowed_origins: Sequence[str] = (),
    graphiql: bool = True,
    settings: Mapping[str, Any] | None = None,
    watch: bool = False,
    max_waiting: int = 500,
    pool_size: int = 10,
    database_url: str | None = None,
    statement_timeout: float | None = None,
    application_name: str = "programledger",
    allow_private_webhooks: bool = False,
) -> AsyncIterator[Api]:
    """The app over this test's schema and prefix, served; options as for ``create_app``,
    and ``settings`` replacing fields of its :class:`Settings` (the tokens it accepts).

    ``watch``: read your writes through a ``ProgressWatch`` (as ``build_api`` wires it),
    at most ``max_waiting`` waiters. ``database_url`` (default ``pg_url``) is where the
    app's pool connects, e.g. through a proxy; ``statement_timeout`` and a connect timeout
    of the same length are then set on it."""
    configured = Settings(
        database_url=pg_url,
        nats_url=nats_url,
        schema=schema,
        data_dir=data_dir,
        jwt_secret=SECRET,
        subject_prefix=prefix,
    )
    configured = dataclasses.replace(configured, **(settings or {}))
    url = database_url or pg_url
    timeouts: dict[str, Any] = {}
    if statement_timeout is not None:
        timeouts = {"statement_timeout": statement_timeout, "connect_timeout": statement_timeout}
    pool = await create_pool(
        url,
        schema,
        min_size=1,
        max_size=pool_size,
        application_name=application_name,
        **timeouts,
    )
    progress: ProgressWatch | None = None
    try:
        store = PostgresEventStore(pool, EventCodec(event_registry()), schema=schema)
        ports = ApiPorts(
            commands=application(store),
            reads=pool,
            history=store,
            feed=EventFeed([nats_url], prefix, store_id=await store.store_id()),
            tokens=token_verifier(configured),
        )
        if watch:
            progress = ProgressWatch(
                pool,
                functools.partial(pg_connect, url, schema, connect_timeout=5),
                schema=schema,
                events_channel=store.notify_channel,
                max_waiters=max_waiting,
            )
            wait_for_position = progress.wait
        metrics = ApiMetrics()
        app = create_app(
            ports,
            metrics=metrics,
            readiness_checks=readiness_checks,
            wait_for_position=wait_for_position,
            limits=limits,
            allowed_origins=allowed_origins,
            graphiql=graphiql,
            allow_private_webhooks=allow_private_webhooks,
        )
        server = http_server(app, "127.0.0.1", 0)
        async with (
            supervised([http_service(server)], up=server.wait_started),
            httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        ):
            yield Api(base_url=server.url, http=http, store=store, metrics=metrics, watch=progress)
    finally:
        if progress is not None:
            await progress.close()
        await pool.close()


@pytest_asyncio.fixture
async def api(
    pg_url: str, schema: str, nats_url: str, subject_prefix: str, tmp_path: Path
) -> AsyncIterator[Api]:
    async with running_api(pg_url, schema, nats_url, subject_prefix, tmp_path) as client:
        yield client


ApiFactory = Callable[..., contextlib.AbstractAsyncContextManager[Api]]


@pytest.fixture
def api_with(
    pg_url: str, schema: str, nats_url: str, subject_prefix: str, tmp_path: Path
) -> ApiFactory:
    """``async with api_with(limits=...) as api``: an app built with other options."""
    return functools.partial(running_api, pg_url, schema, nats_url, subject_prefix, tmp_path)


@pytest_asyncio.fixture
async def relay(api: Api, pg_url: str, nats_url: str, subject_prefix: str) -> AsyncIterator[Relay]:
    """The relay publishing this test's events to NATS, as in production."""
    async with running_relay(api, pg_url, nats_url, subject_prefix) as running:
        yield running


@contextlib.asynccontextmanager
async def running_relay(
    api: Api, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[Relay]:
    """The relay over ``api``'s store, for tests that build their app with ``api_with``;
    its stream is deleted afterwards."""
    relay = Relay(
        api.store,
        database_url=pg_url,
        nats_servers=nats_url,
        settings=fast_settings(subject_prefix),
    )
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        relay.stop()
        await task
        nc = await nats.connect(nats_url)
        try:
            await delete_stream(nc.jetstream(), subject_prefix)
        finally:
            await nc.close()


def new_id() -> str:
    return str(uuid.uuid4())


def program_input(program_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid ``proposeProgram`` input with a code of its own."""
    values: dict[str, Any] = {
        "programId": program_id,
        "code": f"P{uuid.uuid4().int % 10**8:08d}",
        "name": "Payments platform",
        "objective": "Take card payments in every market",
        "sponsor": "Sam Sponsor",
        "owner": "Tia Owner",
        "priority": 2,
        "startDate": "2027-01-01",
        "targetEndDate": "2027-12-31",
        "plannedBudget": {"amountMinor": 250_000_000_00, "currency": "EUR"},
    }
    values.update(overrides)
    return values


def resource_input(key: str, capacity: int = 100) -> dict[str, Any]:
    return {
        "resourceKey": key,
        "name": "Alice Martin",
        "kind": "PERSON",
        "department": "ENGINEERING",
        "role": "Engineer",
        "capacity": capacity,
    }
