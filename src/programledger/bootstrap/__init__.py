"""The composition root: the one place that picks and wires the concrete adapters.

Servers are started here only when no URL is configured (the embedded default); past this
point the code path is the same for embedded and configured servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg
from nats.aio.client import Client as NatsClient
from prometheus_client import CollectorRegistry

from programledger.adapters.codec import EventCodec
from programledger.adapters.embedded import EmbeddedNats, EmbeddedPostgres
from programledger.adapters.embedded.running import (
    RunningServers,
    clear_running,
    read_running,
    write_running,
)
from programledger.adapters.keys import signing_key
from programledger.adapters.nats import client as nats_client
from programledger.adapters.nats.relay import Relay, RelaySettings
from programledger.adapters.nats.sealer import Sealer, SealerSettings
from programledger.adapters.nats.stream import StreamSettings
from programledger.adapters.postgres.catalogue import missing_from_catalogue
from programledger.adapters.postgres.connection import connect, create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.migrations import available_migrations, migrate
from programledger.application.errors import OperationalError
from programledger.application.registry import application_registry
from programledger.application.signing import HeadSigner
from programledger.bootstrap.supervisor import Service
from programledger.domain.events import EventRegistry
from programledger.gc_tuning import GcMetrics, GcTuning, tune_gc
from programledger.settings import Settings

if TYPE_CHECKING:
    # The API and the read side load lazily, in the functions that wire them: `migrate`,
    # `verify` or `export` need neither, and loading GraphQL would double their start time.
    from litestar import Litestar

    from programledger.adapters.webhooks.worker import WebhookWorker
    from programledger.api import ReadinessCheck
    from programledger.api.metrics import LagGauges
    from programledger.api.server import HttpServer
    from programledger.projections.engine.progress import ProgressWatch
    from programledger.projections.engine.runner import ProjectionRunner

__all__ = [
    "Api",
    "Runtime",
    "SchemaNotReady",
    "Servers",
    "api_services",
    "build_api",
    "build_relay",
    "build_runners",
    "build_sealer",
    "build_webhooks",
    "command_connections",
    "connect_nats",
    "event_registry",
    "http_service",
    "open_runtime",
    "progress_watch",
    "projections_check",
    "relay_service",
    "runner_services",
    "sealer_service",
    "servers",
    "tune_garbage_collection",
    "webhook_service",
]

log = logging.getLogger(__name__)


def tune_garbage_collection(settings: Settings) -> None:
    """Freeze what this process holds and set the collector's thresholds, as ``settings``
    say (``programledger.gc_tuning``): each role calls it once built, before it serves."""
    tune_gc(GcTuning(freeze=settings.gc_freeze, thresholds=settings.gc_thresholds))


def event_registry() -> EventRegistry:
    """Every event type the application knows, with its upcasters: built once per process
    (:func:`open_runtime` gives it to the store's codec, which the runners and the rebuild
    decode with) and handed to the catalogue by ``programledger schema``."""
    return application_registry()


class SchemaNotReady(OperationalError):
    """The store's schema lacks migrations and this process was not asked to apply them."""


@dataclass(frozen=True, slots=True)
class Servers:
    database_url: str
    nats_url: str
    """As configured (possibly several comma-separated URLs); empty when NATS is not used."""

    @property
    def nats_servers(self) -> list[str]:
        """The NATS URLs one by one, as a client that fails over between them needs."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]


@contextlib.asynccontextmanager
async def servers(settings: Settings, *, need_nats: bool = True) -> AsyncIterator[Servers]:
    """The configured servers, or embedded ones in ``settings.data_dir`` for the duration.

    An embedded PostgreSQL already running on the data directory is left running when the
    process that started it still runs (another ``programledger`` process, such as ``run``):
    only what this call started is stopped on the way out. One whose starter is gone (a
    ``run`` that was SIGKILLed, as ``running.json`` tells) is taken over and stopped on the
    way out like one started here. The embedded NATS is only ever started by ``run``
    (``need_nats``), since a second nats-server cannot share its store; one a killed
    ``run`` left behind is stopped and started again on the same port.

    The URLs of what this call started are written to ``running.json`` in the data
    directory (``programledger status`` prints them) and the file is removed on the way out.
    """
    started: list[EmbeddedPostgres | EmbeddedNats] = []
    data_dir = settings.data_dir
    try:
        database_url = settings.database_url
        if database_url is None:
            database_url = await _embedded_postgres(settings, started)
        nats_url = settings.nats_url or ""
        if need_nats and settings.nats_url is None:
            nats = EmbeddedNats(data_dir / "nats", port=settings.embedded_nats_port, log=log)
            log.info(
                "no PROGRAMLEDGER_NATS_URL: starting the embedded NATS in %s", data_dir / "nats"
            )
            nats_url = await asyncio.to_thread(nats.start)
            started.append(nats)
        if started:
            write_running(
                data_dir,
                RunningServers.for_this_process(
                    postgres=database_url if settings.database_url is None else None,
                    nats=nats_url if settings.nats_url is None and need_nats else None,
                ),
            )
        yield Servers(database_url=database_url, nats_url=nats_url)
    finally:
        for server in reversed(started):
            await asyncio.to_thread(server.stop)
        if started:
            clear_running(data_dir)


async def _embedded_postgres(
    settings: Settings, started: list[EmbeddedPostgres | EmbeddedNats]
) -> str:
    """The embedded PostgreSQL's URL: the one running if its starter still runs, else
    one this process starts or takes over (and appends to ``started``)."""
    data = settings.data_dir / "postgres"
    pg = EmbeddedPostgres(data, port=settings.embedded_postgres_port, log=log)
    running = pg.running_url()
    if running is not None:
        record = read_running(settings.data_dir)
        if record is None or record.postgres != running or record.owner_alive:
            log.info(
                "using the embedded PostgreSQL that another programledger process "
                "runs in %s, and leaving it running",
                data,
            )
            return running
        log.warning(
            "taking over the embedded PostgreSQL in %s that programledger pid %d started "
            "and can no longer stop (it was killed); it is stopped on exit",
            data,
            record.pid,
        )
    else:
        log.info("no PROGRAMLEDGER_DATABASE_URL: starting the embedded PostgreSQL in %s", data)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = await asyncio.to_thread(pg.start)
    started.append(pg)
    return url


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    servers: Servers
    pool: asyncpg.Pool
    store: PostgresEventStore
    store_id: UUID
    """The store's identity (``store_identity``): what its stream and messages carry."""


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    need_nats: bool = True,
    apply_migrations: bool | None = None,
    commands: bool = False,
) -> AsyncIterator[Runtime]:
    """Servers up, schema ready, pool and store open; all closed again on exit.

    ``apply_migrations``: ``None`` applies them to an embedded database (this machine's
    own) and only checks a configured one, where migrations are a deployment step of
    their own run by the schema's owner (``programledger migrate``) and the application
    role may not create tables.

    ``commands``: this process answers commands (the API), so its pool opens warm with
    the connections they use at once (:func:`command_connections`) and keeps them: opened
    on demand, each new connection's first statements made the commands that waited for
    it stall, at start and again after every idle spell (asyncpg closes connections idle
    for 5 minutes down to its minimum).
    """
    apply = settings.embedded_postgres if apply_migrations is None else apply_migrations
    async with servers(settings, need_nats=need_nats) as found:
        conn = await asyncpg.connect(found.database_url)
        try:
            if apply:
                for migration in await migrate(conn, settings.schema, registry=event_registry()):
                    log.info("applied migration %04d_%s", migration.version, migration.name)
            else:
                await _check_migrated(conn, settings.schema)
        finally:
            await conn.close()
        pool = await create_pool(
            found.database_url,
            settings.schema,
            min_size=command_connections(settings) if commands else 1,
            max_size=settings.db_pool_size,
            connect_timeout=settings.db_connect_timeout,
            statement_timeout=settings.db_statement_timeout,
            warm=PostgresEventStore.warm if commands else None,
        )
        try:
            store = PostgresEventStore(
                pool,
                EventCodec(event_registry()),
                schema=settings.schema,
                appends_in_flight=settings.appends_in_flight,
                reads_in_flight=settings.reads_in_flight,
            )
            try:
                yield Runtime(
                    settings=settings,
                    servers=found,
                    pool=pool,
                    store=store,
                    store_id=await store.store_id(),
                )
            finally:
                # The last append's NOTIFY goes out after its commit, on the pool.
                await store.notifier.flush()
        finally:
            await pool.close()


def command_connections(settings: Settings) -> int:
    """Connections a process answering commands holds open: its append transactions and
    stream loads at once, and one for the notification after a commit, within the pool."""
    return min(settings.db_pool_size, settings.appends_in_flight + settings.reads_in_flight + 1)


async def _check_migrated(conn: asyncpg.Connection, schema: str) -> None:
    wanted = {m.version: m.name for m in available_migrations()}
    try:
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        rows = []
    missing = sorted(set(wanted) - {r["version"] for r in rows})
    if missing:
        names = ", ".join(f"{v:04d}_{wanted[v]}" for v in missing)
        raise SchemaNotReady(
            f"schema {schema!r} is missing migrations {names}: run `programledger migrate` "
            "as the schema's owner first"
        )
    await conn.execute(f'SET search_path TO "{schema}"')
    uncatalogued = await missing_from_catalogue(conn, event_registry())
    if uncatalogued:
        names = ", ".join(f"{t} v{v}" for t, v in uncatalogued)
        raise SchemaNotReady(
            f"the event catalogue of schema {schema!r} lacks {names}, which this release "
            "writes: run `programledger migrate` as the schema's owner first"
        )


def build_relay(runtime: Runtime) -> Relay:
    """The relay for this deployment: its subject prefix and its stream's replicas."""
    prefix = runtime.settings.subject_prefix
    return Relay(
        runtime.store,
        database_url=runtime.servers.database_url,
        nats_servers=runtime.servers.nats_servers,
        settings=RelaySettings(
            prefix=prefix,
            stream=StreamSettings(prefix, replicas=runtime.settings.stream_replicas),
        ),
    )


@contextlib.asynccontextmanager
async def connect_nats(
    runtime: Runtime, name: str, *, first_connect_timeout: float = 15.0
) -> AsyncIterator[NatsClient]:
    """A NATS connection that fails over between the configured servers and keeps
    reconnecting while they are away, closed on exit.

    Unlimited reconnects would make nats-py retry a *first* connection for ever; bounded,
    a process started while NATS is down fails with ``TimeoutError`` and its supervisor
    starts it again, instead of hanging before its signal handlers are in place.
    """

    async def note(exc: Exception) -> None:
        log.debug("NATS connection %s: %r", name, exc)

    nc = await asyncio.wait_for(
        nats_client.connect(
            runtime.servers.nats_servers,
            name=f"programledger-{name}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=note,
        ),
        first_connect_timeout,
    )
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)


def build_runners(runtime: Runtime, nc: NatsClient, names: Iterable[str]) -> list[ProjectionRunner]:
    """One runner per named projection, sharing ``nc``; each holds its own lock."""
    from programledger.projections.engine.runner import ProjectionRunner, RunnerSettings
    from programledger.projections.registry import get_projection

    settings = RunnerSettings(
        prefix=runtime.settings.subject_prefix,
        state_cache_limit=runtime.settings.projection_state_cache,
        state_cache_bytes=runtime.settings.projection_state_cache_mb * 1024 * 1024,
        commit_interval=runtime.settings.projection_commit_interval_ms / 1000,
    )
    return [
        ProjectionRunner(
            get_projection(name),
            store=runtime.store,
            database_url=runtime.servers.database_url,
            nc=nc,
            settings=settings,
        )
        for name in names
    ]


def build_webhooks(runtime: Runtime, nc: NatsClient) -> WebhookWorker:
    """The webhook delivery worker, reading NATS over ``nc``; it holds its own lock."""
    from programledger.adapters.webhooks.worker import WebhookSettings, WebhookWorker

    settings = runtime.settings
    return WebhookWorker(
        runtime.store,
        database_url=runtime.servers.database_url,
        nc=nc,
        settings=WebhookSettings(
            prefix=settings.subject_prefix,
            timeout=settings.webhook_timeout,
            allow_private=settings.webhook_allow_private,
            disable_after=settings.webhook_disable_after,
            retry_max=settings.webhook_retry_max,
        ),
    )


def projections_check(pool: asyncpg.Pool, max_lag_seconds: int | None) -> ReadinessCheck:
    """``/ready``'s view of the read side: every projection's lag, and a failure only when
    one is further behind than ``max_lag_seconds`` (when set).

    A projection stopped at a poison event or rebuilding after a release would otherwise
    take every API replica out of service at once, while serving slightly stale reads is
    usually the better outage; operators who disagree set the limit.
    """
    from programledger.projections.engine.status import projection_status

    async def projections() -> tuple[str, bool, str]:
        statuses = await projection_status(pool)
        late = [
            s.name
            for s in statuses
            if max_lag_seconds is not None and s.lag_seconds > max_lag_seconds
        ]
        detail = ", ".join(
            f"{s.name} {s.state} {s.lag_positions} behind ({s.lag_seconds:.1f}s)" for s in statuses
        )
        return "projections", not late, detail

    return projections


@dataclass(frozen=True, slots=True)
class Api:
    app: Litestar
    gauges: LagGauges
    """Run :meth:`LagGauges.run` beside the server."""
    registry: CollectorRegistry
    """What ``/metrics`` shows: other parts of the process add their collectors here."""


def progress_watch(runtime: Runtime) -> ProgressWatch:
    """The process's read-your-writes watch: one LISTEN connection of its own, bounded
    waiters (``PROGRAMLEDGER_MAX_WAITING_REQUESTS``)."""
    from programledger.projections.engine.progress import ProgressWatch

    settings = runtime.settings
    return ProgressWatch(
        runtime.pool,
        functools.partial(
            connect,
            runtime.servers.database_url,
            settings.schema,
            application_name="programledger-progress",
            connect_timeout=settings.db_connect_timeout,
        ),
        schema=settings.schema,
        events_channel=runtime.store.notify_channel,
        max_waiters=settings.max_waiting_requests,
        statement_timeout=settings.db_statement_timeout,
    )


def build_api(runtime: Runtime) -> Api:
    """The HTTP API over ``runtime``: commands through the application, reads waiting for
    the projections when asked to, readiness and metrics including lag."""
    from programledger.api import ApiLimits, ApiMetrics, ApiPorts, create_app
    from programledger.api.auth import token_verifier
    from programledger.api.events import EventFeed
    from programledger.api.metrics import LagGauges, combining_metrics
    from programledger.application.handlers import Application

    metrics = ApiMetrics()
    settings = runtime.settings
    watch = progress_watch(runtime)
    ports = ApiPorts(
        commands=Application(runtime.store),
        reads=runtime.pool,
        history=runtime.store,
        feed=EventFeed(
            runtime.servers.nats_servers, settings.subject_prefix, store_id=runtime.store_id
        ),
        tokens=token_verifier(settings),
    )
    app = create_app(
        ports,
        readiness_checks=[projections_check(runtime.pool, settings.ready_max_lag_seconds)],
        wait_for_position=watch.wait,
        metrics=metrics,
        limits=ApiLimits(
            introspection=settings.introspection,
            database_seconds=settings.db_statement_timeout + 2.0,
        ),
        graphiql=settings.graphiql,
        allowed_origins=settings.cors_origins,
        allow_private_webhooks=settings.webhook_allow_private,
    )
    app.on_shutdown.append(watch.close)
    metrics.registry.register(GcMetrics())
    for collector in combining_metrics(
        lambda: runtime.store.combiner.sizes, lambda: runtime.store.stream_reads.sizes
    ):
        metrics.registry.register(collector)
    return Api(app, LagGauges(runtime.pool, metrics.registry), metrics.registry)


def http_service(http: HttpServer) -> Service:
    """The API's server as a supervised service (``run``, ``serve``, tests, benchmarks)."""
    return Service("api", http.serve, http.stop)


def api_services(api: Api, http: HttpServer) -> list[Service]:
    """``api`` served by ``http``, its lag gauges refreshed beside it."""
    return [http_service(http), Service("lag metrics", api.gauges.run)]


def relay_service(relay: Relay) -> Service:
    return Service("relay", relay.run, relay.stop)


def build_sealer(runtime: Runtime) -> Sealer:
    """The sealer for this deployment, signing with the key from settings (in development,
    the data directory's own)."""
    settings = runtime.settings
    return Sealer(
        runtime.store,
        HeadSigner(signing_key(settings)),
        database_url=runtime.servers.database_url,
        nats_servers=runtime.servers.nats_servers,
        settings=SealerSettings(prefix=settings.subject_prefix, replicas=settings.stream_replicas),
    )


def sealer_service(sealer: Sealer) -> Service:
    return Service("sealer", sealer.run, sealer.stop)


def webhook_service(worker: WebhookWorker) -> Service:
    return Service("webhooks", worker.run, worker.stop)


def runner_services(runners: Sequence[ProjectionRunner]) -> list[Service]:
    return [Service(runner.projection.name, runner.run, runner.stop) for runner in runners]
