"""The API served over HTTP by uvicorn: what ``serve`` and ``run`` start, and what the e2e
tests and benchmarks start too, so that all of them measure and test the same server."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from litestar import Litestar

from programledger.application.errors import OperationalError

__all__ = ["ApiStartFailed", "HttpServer", "http_server"]


class ApiStartFailed(OperationalError):
    """The HTTP API did not start (its lifespan failed)."""


class HttpServer:
    """``app`` under uvicorn on a socket bound beforehand; :meth:`serve` until :meth:`stop`."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self.server = server
        self.socket = sock
        self._ended = asyncio.Event()

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    async def serve(self) -> None:
        """Serve until :meth:`stop` (or a signal uvicorn handles); the socket is closed
        afterwards.

        Uvicorn ends a failed startup (the app's lifespan raised) with ``sys.exit``, which
        would escape the event loop; it becomes :class:`ApiStartFailed` here.
        """
        try:
            await self.server.serve(sockets=[self.socket])
        except SystemExit:
            raise ApiStartFailed("the API failed to start; the log above says why") from None
        finally:
            self.socket.close()
            self._ended.set()

    async def wait_started(self) -> None:
        """Return once the API accepts requests; raise if :meth:`serve` ended before that
        (its own error is what its caller reports)."""
        while not self.server.started:
            if self._ended.is_set():
                raise ApiStartFailed("the API stopped while starting (see the log above)")
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True


def http_server(app: Litestar, host: str, port: int, *, keep_alive: int = 5) -> HttpServer:
    """``app`` on ``host:port``, the socket bound here and now so that a taken port fails at
    start, and port 0 tells its real number at once.

    Uvicorn's own access log is off: the API logs each request with its request id.
    Requests are parsed by httptools (llhttp, in C), not h11 (pure Python), which with its
    uvicorn glue took about 7% of ``serve``'s CPU under load (docs/operations.md).
    ``keep_alive`` is the seconds an idle connection stays open.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says TCP, and without it every response waits ~40 ms for Nagle.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    config = uvicorn.Config(
        app,
        lifespan="on",
        http="httptools",
        access_log=False,
        log_config=None,
        ws_max_size=1 << 20,
        timeout_keep_alive=keep_alive,
    )
    return HttpServer(uvicorn.Server(config), sock)
