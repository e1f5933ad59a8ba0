"""The operation commands: one-shot work on a deployment (``migrate``, ``rebuild``,
``verify``, ``export``, ``demo``, ``schema``, ``mint-token``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

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

if TYPE_CHECKING:
    from programledger.adapters.postgres.eventstore import PostgresEventStore
    from programledger.adapters.postgres.verification import VerificationSummary
    from programledger.application.eventstore import StreamVerification
    from programledger.application.ledger_audit import LedgerReport

from programledger.cli.common import (
    Failure,
    app,
    load_settings,
    projection_names,
    run_command,
    stderr_console,
)
from programledger.redaction import redact

__all__ = [
    "demo",
    "export_command",
    "migrate_command",
    "mint_token_command",
    "rebuild_command",
    "schema",
    "status",
    "verify",
]


@app.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the database schema (idempotent; safe to run from many processes).

    Run it as the schema's owner before starting a new version; the other commands
    refuse to start on a configured database that lacks migrations.
    """
    from programledger.bootstrap import open_runtime

    settings = load_settings()

    async def go() -> None:
        async with open_runtime(settings, need_nats=False, apply_migrations=True) as runtime:
            typer.echo(f"schema {runtime.settings.schema!r} is up to date")

    run_command("migrate", go)


@app.command()
def status() -> None:
    """Show what runs on the embedded servers of PROGRAMLEDGER_DATA_DIR: the process,
    the API, PostgreSQL and NATS URLs (no secrets), the store's id and its NATS stream.

    Read from running.json in the data directory, which `programledger run` keeps. Exit
    code 1 when no programledger process runs embedded servers there.
    """
    from programledger.adapters.embedded.running import read_running
    from programledger.adapters.nats.stream import stream_name

    settings = load_settings()
    record = read_running(settings.data_dir)
    if record is None:
        typer.echo(f"no programledger process runs embedded servers in {settings.data_dir}")
        raise typer.Exit(1)
    alive = record.owner_alive
    typer.echo(f"data directory: {settings.data_dir}")
    typer.echo(
        f"process: pid {record.pid}, "
        + (
            "running"
            if alive
            else "gone (killed): the next `programledger run` takes over the servers it left"
        )
    )
    for label, url in (("API", record.api), ("PostgreSQL", record.postgres), ("NATS", record.nats)):
        if url is not None:
            typer.echo(f"{label}: {redact(url)}")
    database_url = record.postgres
    if database_url is not None and alive:
        store = run_command("status", lambda: _store_id(database_url, settings.schema))
        typer.echo(f"store id: {store}")
    typer.echo(
        f"NATS stream: {stream_name(settings.subject_prefix)} "
        f"(subjects {settings.subject_prefix}.>)"
    )
    if not alive:
        raise typer.Exit(1)


async def _store_id(database_url: str, schema: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        value = await conn.fetchval(f'SELECT store_id FROM "{schema}".store_identity')
    finally:
        await conn.close()
    return str(value)


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

    name = projection_names([projection], "PROJECTION")[0]
    settings = load_settings()

    async def go() -> RebuildReport:
        async with open_runtime(settings, need_nats=False) as runtime:
            try:
                return await rebuild(
                    runtime.pool,
                    runtime.store,
                    name,
                    progress=stderr_console().is_terminal,
                    workers=workers,
                    database_url=runtime.servers.database_url,
                )
            except (RebuildFailed, RebuildInProgress) as exc:
                raise Failure(str(exc)) from exc

    report = run_command("rebuild", go)
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
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="Your copy of the tree heads' public key (PEM)."),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="A signed head or an export kept earlier: prove today's ledger extends it.",
        ),
    ] = None,
    offline: Annotated[
        Path | None,
        typer.Option(
            "--offline",
            help="Check a ledger export (export-ledger) with no database; needs --public-key.",
        ),
    ] = None,
    read_models: Annotated[
        bool,
        typer.Option(
            "--read-models", help="Also check that the audit trail read model equals the events."
        ),
    ] = False,
) -> None:
    """Check that no recorded event was altered, removed or reordered.

    Walks the hash chain of every stream (or of --stream) and prints the first broken
    link of each broken stream; then (without --stream) rebuilds the Merkle tree from the
    events and checks every signed tree head against it, its signature and the head
    before it (docs/integrity.md), and the log's shape (positions, versions, recorded
    times, checkpoints; docs/operations.md), and records the outcome, which /ready and
    /metrics report. With --offline, checks an export file the same way with no database.
    Exit code 1 when anything does not hold.
    """
    from programledger.adapters.postgres.verification import (
        VerificationSummary,
        count_streams,
        verify_streams,
    )
    from programledger.bootstrap import open_runtime
    from programledger.cli.integrity import check_ledger, verify_offline

    if offline is not None:
        if not ledger_ok(verify_offline(offline, public_key, against)):
            raise typer.Exit(1)
        return

    settings = load_settings()

    async def go() -> tuple[VerificationSummary, LedgerReport | None, list[str]]:
        summary = VerificationSummary()
        async with open_runtime(settings, need_nats=False) as runtime:
            if stream is not None:
                summary.add(await runtime.store.verify(stream))
                return summary, None, []
            started = datetime.now(UTC)

            async def chains() -> None:
                total = await count_streams(runtime.store)
                with _progress() as progress:
                    task = progress.add_task("verifying streams", total=total)
                    async for result in verify_streams(runtime.store):
                        summary.add(result)
                        progress.advance(task)

            # The chains and the log's shape are checked by PostgreSQL, the tree rebuilt
            # here: side by side.
            _, ledger, problems = await asyncio.gather(
                chains(),
                check_ledger(runtime, public_key, against),
                _check_shape(runtime.store, read_models=read_models),
            )
            await _record(
                runtime.store, summary, ledger, problems, started, read_models=read_models
            )
        return summary, ledger, problems

    summary, ledger, problems = run_command("verify", go)
    for broken in summary.broken:
        typer.echo(_broken_line(broken))
    checked = f"verified {_count(summary.streams, 'stream')}, {_count(summary.events, 'event')}"
    if summary.ok:
        typer.echo(f"{checked}: every hash chain holds")
    else:
        typer.echo(f"{checked}: {len(summary.broken)} broken")
    if stream is None:
        for problem in problems:
            typer.echo(f"PROBLEM {problem}")
        shape = "positions, versions, recorded times and checkpoints" + (
            ", the audit trail" if read_models else ""
        )
        verdict = "the log is whole" if not problems else _count(len(problems), "problem")
        typer.echo(f"checked {shape}: {verdict}")
    if ledger is not None and not ledger_ok(ledger):
        raise typer.Exit(1)
    if not summary.ok or problems:
        raise typer.Exit(1)


async def _check_shape(store: PostgresEventStore, *, read_models: bool) -> list[str]:
    """The log's shape (and the audit trail): the problems found."""
    from programledger.adapters.postgres.connection import unbounded_statements
    from programledger.adapters.postgres.structure import check_structure

    async with store.pool.acquire() as conn, unbounded_statements(conn):
        problems = [str(p) for p in (await check_structure(conn)).problems]
        if read_models:
            from programledger.projections.audit import check_audit_trail

            problems += [str(p) for p in await check_audit_trail(conn, store)]
    return problems


async def _record(
    store: PostgresEventStore,
    summary: VerificationSummary,
    ledger: LedgerReport | None,
    problems: list[str],
    started: datetime,
    *,
    read_models: bool,
) -> None:
    """The whole run's outcome, recorded in ``verification_runs``."""
    from programledger.adapters.postgres.verification_runs import VerificationRun, record_run

    checks = ["chains", "structure"] + (["ledger"] if ledger is not None else [])
    checks += ["read-models"] if read_models else []
    everything = [_broken_line(b) for b in summary.broken] + problems
    everything += [f"ledger: {p}" for p in (ledger.problems if ledger is not None else [])]
    async with store.pool.acquire() as conn:
        await record_run(
            conn,
            VerificationRun(
                started_at=started,
                finished_at=datetime.now(UTC),
                checks=",".join(checks),
                ok=not everything,
                streams=summary.streams,
                events=summary.events,
                problems=len(everything),
                first_problem=everything[0] if everything else None,
            ),
        )


def ledger_ok(report: LedgerReport) -> bool:
    """Print the tree's and the heads' verdict; whether everything held."""
    for problem in report.problems:
        typer.echo(f"BROKEN ledger: {problem}")
    for note in report.notes:
        typer.echo(f"note: {note}")
    checked = (
        f"verified the Merkle tree of {_count(report.tree_size, 'event')} against "
        f"{_count(report.heads, 'signed head')}"
        + (f" ({report.unsealed} newer events not sealed yet)" if report.unsealed else "")
    )
    if report.ok:
        typer.echo(f"{checked}: every head holds")
        return True
    typer.echo(f"{checked}: {_count(len(report.problems), 'problem')}")
    return False


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _broken_line(result: StreamVerification) -> str:
    return (
        f"BROKEN {result.stream_id}: first broken link at version {result.broken_at_version}: "
        f"{result.problem}"
    )


def _progress() -> Progress:
    console = stderr_console()
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
    from programledger.adapters.postgres.ledger import LedgerStore
    from programledger.application.export import (
        ProgramExport,
        ProgramNotFound,
        export_program,
        resolve_program,
    )
    from programledger.bootstrap import open_runtime

    settings = load_settings()

    async def go() -> ProgramExport:
        async with open_runtime(settings, need_nats=False) as runtime:
            try:
                program_id = await resolve_program(runtime.store, program)
                return await export_program(runtime.store, program_id, LedgerStore(runtime.pool))
            except ProgramNotFound as exc:
                raise Failure(str(exc)) from None

    exported = run_command("export", go)
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

    settings = load_settings()

    async def go() -> DemoSummary:
        async with open_runtime(settings, need_nats=False) as runtime:
            try:
                return await load_demo(Application(runtime.store))
            except DemoError as exc:
                raise Failure(str(exc)) from exc

    summary = run_command("demo", go)
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

    settings = load_settings()
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
        typer.Option(
            "--role", help="viewer, editor, auditor, admin or subscriber; repeat for several."
        ),
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

    settings = load_settings()
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
