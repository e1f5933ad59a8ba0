"""The ``programledger`` command line: one program, one subcommand per role."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from programledger.settings import Settings, SettingsError

__all__ = ["app", "main"]

app = typer.Typer(
    help="programledger: the event-sourced system of record for program management.",
    no_args_is_help=True,
    add_completion=False,
)
log = logging.getLogger("programledger")
T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        typer.echo(f"programledger: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return settings


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await make()

    return asyncio.run(wrapper())


def _stop_signal() -> asyncio.Event:
    """Set on SIGINT or SIGTERM; installed before anything starts, so a signal that comes
    early still leads to a clean shutdown of what did start."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (idempotent; safe to run from many processes)."""
    from programledger.bootstrap import open_runtime

    settings = _settings()

    async def go() -> None:
        async with open_runtime(settings, need_nats=False) as runtime:
            typer.echo(f"schema {runtime.settings.schema!r} is up to date")

    _run(go)


@app.command()
def run() -> None:
    """Run everything in one process, on embedded servers when no URLs are configured.

    Starts PostgreSQL and NATS from the wheels unless PROGRAMLEDGER_DATABASE_URL and
    PROGRAMLEDGER_NATS_URL are set, applies migrations, and serves until SIGINT or SIGTERM.
    """
    from programledger.bootstrap import open_runtime

    settings = _settings()

    async def go() -> None:
        stop = _stop_signal()
        async with open_runtime(settings) as runtime:
            log.info(
                "programledger is up: PostgreSQL %s, NATS %s; event store at position %d",
                runtime.servers.database_url,
                runtime.servers.nats_url,
                await runtime.store.head_position(),
            )
            await stop.wait()
            log.info("stopping")

    _run(go)


def main() -> None:
    app()
