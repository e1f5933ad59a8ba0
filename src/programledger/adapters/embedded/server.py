"""What the embedded servers (:mod:`.postgres`, :mod:`.nats`) share: the error they raise,
the ports and URLs they choose, their logs, and being stopped when the process exits.

Every server started by this process and not stopped yet is stopped at exit, newest
first: NATS, usually started after PostgreSQL, goes before it, as it did when each module
kept its own list.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from programledger.application.errors import OperationalError

__all__ = [
    "EmbeddedServer",
    "EmbeddedServerError",
    "LoggerLike",
    "free_port",
    "log_tail",
    "port_is_free",
    "url_host",
]


class EmbeddedServerError(OperationalError):
    """An embedded server could not be prepared, started or stopped."""


class LoggerLike(Protocol):
    """Both ``logging.Logger`` and structlog loggers fit, so callers can pass either."""

    def debug(self, msg: str, /) -> Any: ...

    def info(self, msg: str, /) -> Any: ...

    def warning(self, msg: str, /) -> Any: ...

    def error(self, msg: str, /) -> Any: ...


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for an unused port; a small race remains, so callers retry on bind errors."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """SO_REUSEADDR mirrors what the servers do, so TIME_WAIT leftovers do not count as busy."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def url_host(host: str) -> str:
    """IPv6 literals need brackets inside a URL."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a server log is what explains a failed start; a missing log is not an error."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    return "\n".join(data.splitlines()[-lines:])


_running: dict[EmbeddedServer, None] = {}
"""Servers to stop at exit, in the order they started (a dict keeps it)."""


@atexit.register
def _stop_all_at_exit() -> None:
    for server in reversed(list(_running)):
        with contextlib.suppress(Exception):
            server.stop()


class EmbeddedServer(ABC):
    """A server process this one starts and must not leave behind: usable as a context
    manager, stopped at exit if still running, with a log read from an offset."""

    @property
    @abstractmethod
    def log_path(self) -> Path: ...

    @abstractmethod
    def start(self) -> str:
        """Start (or adopt) the server; its URL."""

    @abstractmethod
    def stop(self) -> None: ...

    def _stop_at_exit(self) -> None:
        _running[self] = None

    def _forget(self) -> None:
        _running.pop(self, None)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
