"""What every ``programledger`` command shares: the Typer app, reading settings once,
running a command in a fresh event loop, and reporting an operational failure in one line.

Exit codes: 0 done; 1 failed (a server could not be reached, verification found a broken
link, a program does not exist...); 2 the configuration or the command line is wrong.

Settings are read and logging configured once per command, before anything else runs.
Operational failures are reported in one line, not a traceback: an operator needs to know
what to fix, and a traceback of a refused connection would print the database URL's
password in its locals.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import asyncpg
import typer
from rich.console import Console

from programledger.application.errors import OperationalError
from programledger.logging import configure_logging, log_context, new_request_id
from programledger.redaction import redact
from programledger.settings import Settings, SettingsError

_new_loop: Callable[[], asyncio.AbstractEventLoop]
try:
    import uvloop

    _new_loop = uvloop.new_event_loop
except ImportError:  # uvloop has no Windows build; asyncio's own loop serves there
    _new_loop = asyncio.new_event_loop

__all__ = [
    "Failure",
    "app",
    "fail_configuration",
    "load_settings",
    "log",
    "projection_names",
    "require_servers",
    "run_command",
    "stderr_console",
]

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


def load_settings() -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        fail_configuration(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    return settings


def fail_configuration(message: str) -> NoReturn:
    typer.echo(f"programledger: configuration error: {redact(message)}", err=True)
    raise typer.Exit(2)


def require_servers(settings: Settings, command: str) -> None:
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
        fail_configuration(
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


def run_command(command: str, make: Callable[[], Awaitable[T]], *, one_shot: bool = True) -> T:
    """Run ``make()`` in a fresh event loop, its log lines tagged with the command (and,
    for a one-shot command, one request id for the whole invocation).

    The loop is uvloop's where it is installed: asyncio's own loop runs its scheduling and
    socket reads in Python, about 8% of ``serve``'s CPU under 200 mutations/s
    (docs/operations.md, "The event loop and the HTTP parser").
    """

    async def wrapper() -> T:
        return await make()

    request_id = new_request_id() if one_shot else None
    try:
        with (
            log_context(request_id=request_id, command=command),
            asyncio.Runner(loop_factory=_new_loop) as runner,
        ):
            return runner.run(wrapper())
    except _OPERATIONAL_ERRORS as exc:
        log.debug("programledger %s failed", command, exc_info=True)
        typer.echo(f"programledger {command}: {redact(_describe(exc))}", err=True)
        raise typer.Exit(1) from None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ConnectionError | socket.gaierror | TimeoutError | asyncpg.InterfaceError):
        return f"cannot reach a server ({type(exc).__name__}{': ' + text if text else ''})"
    return text or type(exc).__name__


def stderr_console() -> Console:
    return Console(stderr=True)


def projection_names(chosen: list[str] | None, param_hint: str) -> list[str]:
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
