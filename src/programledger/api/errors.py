"""Error responses outside GraphQL execution, in the GraphQL error shape.

Whatever fails before a GraphQL operation runs (no token, a body too large, malformed
JSON, an unknown path) answers with the body a GraphQL client already parses::

    {"errors": [{"message": "...", "extensions": {"code": "UNAUTHENTICATED",
                                                  "requestId": "..."}}]}

Messages of 4xx errors say what the client did wrong; 5xx errors say only that something
failed and give the request id, and the exception is logged with it (never sent).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from programledger.api.request_ids import request_id_of

__all__ = [
    "GRAPHQL_RESPONSE_MEDIA_TYPE",
    "INTERNAL_MESSAGE",
    "UNAVAILABLE_MESSAGE",
    "error_response",
    "exception_handlers",
    "is_unavailable",
    "response_media_type",
]

log = logging.getLogger("programledger.api")

GRAPHQL_RESPONSE_MEDIA_TYPE: Final = "application/graphql-response+json"
INTERNAL_MESSAGE: Final = "internal error; quote the request id when reporting it"
UNAVAILABLE_MESSAGE: Final = "the database is unavailable or too slow right now; retry shortly"

_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    OSError,
    TimeoutError,
)
"""A database that cannot be reached, dropped the connection, was shut down or cancelled
the statement (``statement_timeout``): the request may succeed when retried, so these
are ``UNAVAILABLE`` (HTTP 503), never ``INTERNAL``."""


def is_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the database is unavailable (see ``_UNAVAILABLE``)."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    # Using a connection that was closed under the caller: the same outage, seen later.
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


_CODES: Mapping[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def response_media_type(accept: str) -> str:
    """``application/graphql-response+json`` when the client accepts it, as the
    GraphQL-over-HTTP specification asks; ``application/json`` for older clients."""
    if GRAPHQL_RESPONSE_MEDIA_TYPE in accept:
        return GRAPHQL_RESPONSE_MEDIA_TYPE
    return "application/json"


def error_response(
    request: Request[Any, Any, Any],
    status: int,
    message: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[dict[str, Any]]:
    extensions = {
        "code": code or _CODES.get(status, f"HTTP_{status}"),
        "requestId": request_id_of(request.scope),
    }
    return Response(
        {"errors": [{"message": message, "extensions": extensions}]},
        status_code=status,
        media_type=response_media_type(request.headers.get("accept", "")),
        headers=dict(headers or {}),
    )


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        log.error(
            "request_id=%s failed with %d: %s",
            request_id_of(request.scope),
            exc.status_code,
            exc.detail,
        )
        return error_response(request, exc.status_code, INTERNAL_MESSAGE)
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="programledger"')
    return error_response(request, exc.status_code, exc.detail, headers=headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if is_unavailable(exc):
        log.warning("request_id=%s: database unavailable: %r", request_id_of(request.scope), exc)
        return error_response(request, 503, UNAVAILABLE_MESSAGE, headers={"Retry-After": "1"})
    log.error("request_id=%s failed", request_id_of(request.scope), exc_info=exc)
    return error_response(request, 500, INTERNAL_MESSAGE)


def exception_handlers() -> ExceptionHandlersMap:
    """The app's handlers: every error response is GraphQL-shaped and carries the id."""
    return {HTTPException: _http_exception, Exception: _unexpected}
