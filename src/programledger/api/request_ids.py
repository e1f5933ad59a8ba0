"""Request ids: taken from ``X-Request-Id`` or drawn, echoed on every response, logged.

A frontend that shows "something went wrong (request 3f2c…)" lets an operator find the
request's log lines; every GraphQL error carries the same id in ``extensions.requestId``.

The id is stored in the ASGI scope (``scope["state"]["request_id"]``) the first time anyone
asks for it, so the access log, the error handlers and the GraphQL context agree on one id
even for responses produced outside the route (an authentication failure, an unknown path).
A drawn id comes from :func:`programledger.logging.new_request_id`, and while a request
runs it is bound with :func:`programledger.logging.log_context`, the one mechanism the
command line uses too: every line logged meanwhile carries it as ``request_id``.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from programledger.api.metrics import ApiMetrics
from programledger.logging import log_context, new_request_id

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestContextMiddleware",
    "add_request_id_header",
    "request_id_of",
]

log = logging.getLogger("programledger.api.access")

REQUEST_ID_HEADER = "X-Request-Id"
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
"""Client ids we echo: short and harmless in a log line or a header."""
_QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})
"""Probed every few seconds: logged at DEBUG so they do not drown the access log."""


def request_id_of(scope: Scope) -> str:
    """The request's id, assigned on first use: the client's ``X-Request-Id`` when it is
    acceptable, otherwise a new one (a UUID)."""
    state: dict[str, Any] = scope.setdefault("state", {})
    found = state.get("request_id")
    if isinstance(found, str):
        return found
    given = ""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            given = value.decode("latin-1").strip()
            break
    request_id = given if _ACCEPTED.match(given) else new_request_id()
    state["request_id"] = request_id
    return request_id


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """A ``before_send`` hook: every response carries its request id, including those
    produced before routing or by an exception handler."""
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = request_id_of(scope)


class RequestContextMiddleware(ASGIMiddleware):
    """Binds the request id for the request's duration, and logs and counts each request."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(self, metrics: ApiMetrics) -> None:
        self._metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request_id = request_id_of(scope)
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "websocket.accept":
                status = 101
            elif message["type"] == "websocket.close" and status != 101:
                status = 403  # closed before accepting: the handshake was refused
            await send(message)

        with log_context(request_id=request_id):
            try:
                await next_app(scope, receive, observe)
            except HTTPException as exc:
                status = exc.status_code  # raised by a middleware (authentication)
                raise
            finally:
                self._observe(scope, request_id, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        route = scope.get("path_template") or scope["path"]
        method = scope.get("method", "WS") if scope["type"] == ScopeType.HTTP else "WS"
        self._metrics.http_requests.labels(method, route, str(status)).inc()
        self._metrics.http_duration.labels(method, route).observe(seconds)
        level = logging.DEBUG if route in _QUIET_ROUTES and status < 400 else logging.INFO
        log.log(
            level,
            "%s %s -> %d in %.1f ms request_id=%s",
            method,
            scope["path"],
            status,
            seconds * 1000,
            request_id,
        )
