"""GraphQL over HTTP and over WebSocket (``graphql-transport-ws``) at ``/graphql``.

Strawberry's Litestar controller does the protocol work; this subclass adds what the
GraphQL-over-HTTP specification and our security model ask for:

- **Media types and status codes.** A client that accepts
  ``application/graphql-response+json`` gets it, with status 400 for a request error (the
  document does not parse or validate, a variable is wrong: there is no ``data``). Other
  clients get ``application/json`` and status 200, as before that specification. Requests
  strawberry refuses before running (bad JSON, no query) answer in the GraphQL error shape,
  with 400, as do bodies that are not UTF-8 or not a JSON object; a mutation over GET gets
  405 with ``Allow: POST``.
- **WebSocket authentication.** Browsers cannot set headers on a WebSocket handshake, so
  the token comes in the ``connection_init`` payload, ``{"authorization": "Bearer …"}``;
  without a valid one the socket is closed with 4403 before any operation runs.
- **A last gate against leaks.** Every error leaving over HTTP has a code; one that does
  not (an error raised where the schema extensions cannot see it) is masked here.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

import msgspec
from cross_web import AsyncHTTPRequestAdapter
from cross_web import HTTPException as ProtocolError
from litestar import Request, Response, WebSocket
from litestar.background_tasks import BackgroundTasks
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.types import Dependencies
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.websocket_origin import normalize_allowed_origins
from strawberry.litestar.controller import GraphQLController
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from programledger.api.auth import Identity
from programledger.api.errors import (
    GRAPHQL_RESPONSE_MEDIA_TYPE,
    INTERNAL_MESSAGE,
    UNAVAILABLE_MESSAGE,
    error_response,
    response_media_type,
)
from programledger.api.graphiql import graphiql_page
from programledger.api.graphql.context import ApiContext, Deadline, Services
from programledger.api.request_ids import request_id_of

__all__ = ["GRAPHQL_PATH", "graphql_controller"]

log = logging.getLogger("programledger.api")

GRAPHQL_PATH = "/graphql"
_REQUEST_ERROR = "graphql_request_error"
"""Set in the request's state when the result is a request error (no ``data``)."""
_UNAVAILABLE = "graphql_unavailable"
"""Set in the request's state when an error says the database is unavailable: HTTP 503."""


def graphql_controller(
    schema: BaseSchema,
    services: Services,
    *,
    graphiql: bool = True,
    allowed_origins: Sequence[str] = (),
) -> type[GraphQLController]:
    """The controller class for one app; ``allowed_origins`` are the browser origins
    besides the API's own that may open a WebSocket."""

    # The dependencies form a chain (root_value, then the context, then the response), so
    # Litestar resolves them one after the other: dependencies it may resolve together it
    # runs in an anyio task group, a task each, which costs more than they do.

    async def http_context(request: Request[Any, Any, Any], root_value: None) -> ApiContext:
        request_id = request_id_of(request.scope)
        user = request.scope.get("user")
        return ApiContext(
            request=request,
            services=services,
            request_id=request_id,
            identity=user if isinstance(user, Identity) else None,
            idempotency_key=request.headers.get("idempotency-key"),
            correlation_id=_correlation_id(request_id),
            min_position=_min_position(request),
        )

    async def websocket_context(socket: WebSocket[Any, Any, Any], root_value: None) -> ApiContext:
        return ApiContext(
            websocket=socket, services=services, request_id=request_id_of(socket.scope)
        )

    async def no_root_value() -> None:
        return None

    async def sub_response(context: ApiContext) -> Response[Any]:
        # Kept on the context, so that what runs in the operation can set headers.
        context.response = Response({}, background=BackgroundTasks([]))
        return context.response

    class Controller(GraphQLController):
        path = GRAPHQL_PATH
        dependencies: ClassVar[Dependencies] = {  # type: ignore[misc]
            "context": Provide(http_context),
            "context_ws": Provide(websocket_context),
            "root_value": Provide(no_root_value),
            "response": Provide(sub_response),
        }
        graphql_ide = "graphiql" if graphiql else None
        allow_queries_via_get = True
        protocols = (GRAPHQL_TRANSPORT_WS_PROTOCOL,)
        connection_init_wait_timeout = timedelta(seconds=10)
        max_subscriptions_per_connection = 20

        async def on_ws_connect(self, context: Any) -> UnsetType | dict[str, object] | None:
            assert isinstance(context, ApiContext)
            params = context.connection_params or {}
            authorization = params.get("authorization", params.get("Authorization"))
            if authorization is None and context.websocket is not None:
                authorization = context.websocket.headers.get("authorization")
            try:
                context.identity = await services.tokens.authenticate(authorization)
            except NotAuthorizedException:
                raise ConnectionRejectionError(
                    {"message": "a valid bearer token is required"}
                ) from None
            return UnsetType()  # acknowledge without a payload

        @property
        def graphql_ide_html(self) -> str:
            return graphiql_page()

        def parse_json(self, data: str | bytes) -> Any:
            # A body of invalid UTF-8 or of JSON that is no request (a string, a number)
            # is the client's mistake: 400, not the 500 strawberry's parser would cause.
            try:
                parsed = super().parse_json(data)
            except UnicodeDecodeError:
                raise ProtocolError(400, "Unable to parse request body as UTF-8 JSON") from None
            if not isinstance(parsed, dict | list):
                raise ProtocolError(400, "The request body must be a JSON object")
            return parsed

        async def execute_single(
            self,
            request: Request[Any, Any, Any],
            request_adapter: AsyncHTTPRequestAdapter,
            sub_response: Response[Any],
            context: Any,
            root_value: Any,
            request_data: GraphQLRequestData,
        ) -> ExecutionResult:
            try:
                return await super().execute_single(
                    request, request_adapter, sub_response, context, root_value, request_data
                )
            except ProtocolError as exc:
                # A mutation over GET: the method is wrong, not the document (405, with
                # the method that would do, as the GraphQL-over-HTTP specification asks).
                if request_adapter.method == "GET" and isinstance(
                    exc.__cause__, InvalidOperationTypeError
                ):
                    raise ProtocolError(405, exc.reason) from exc
                raise

        def encode_json(self, data: object) -> str:
            # Answers are builtins (graphql-core serialised every scalar): msgspec writes
            # them several times faster than the json module strawberry uses. Text, as
            # strawberry's multipart and WebSocket senders expect.
            return msgspec.json.encode(data).decode()

        async def process_result(
            self, request: Request[Any, Any, Any], result: ExecutionResult
        ) -> GraphQLHTTPResponse:
            response = await super().process_result(request, result)
            errors = response.get("errors")
            if errors:
                request_id = request_id_of(request.scope)
                checked = [_checked(error, request_id) for error in errors]
                response["errors"] = checked
                if any(_code(error) == "UNAVAILABLE" for error in checked):
                    request.state[_UNAVAILABLE] = True
            if result.data is None and result.errors and all(e.path is None for e in result.errors):
                response.pop("data", None)  # a request error: the operation never ran
                request.state[_REQUEST_ERROR] = True
            return response

        async def execute_request(
            self, request: Request[Any, Any, Any], context: Any, root_value: Any
        ) -> Response[Any]:
            try:
                response = await self._within_deadline(request, context, root_value)
            except ProtocolError as exc:
                headers = {"Allow": "POST"} if exc.status_code == 405 else None
                return error_response(request, exc.status_code, exc.reason, headers=headers)
            except _DeadlinePassed:
                return error_response(
                    request, 503, UNAVAILABLE_MESSAGE, headers={"Retry-After": "1"}
                )
            if response.media_type == "application/json":  # a GraphQL result, not the IDE page
                response.media_type = response_media_type(request.headers.get("accept", ""))
                if request.state.get(_UNAVAILABLE):
                    response.status_code = 503
                    response.headers.setdefault("Retry-After", "1")
                elif response.media_type == GRAPHQL_RESPONSE_MEDIA_TYPE and request.state.get(
                    _REQUEST_ERROR
                ):
                    response.status_code = 400
            return response

        async def _within_deadline(
            self, request: Request[Any, Any, Any], context: Any, root_value: Any
        ) -> Response[Any]:
            """Run the operation, giving up on it at its deadline (``_DeadlinePassed``).

            Not ``asyncio.timeout``: that cancels once, and a request cancelled inside a
            statement then waits, unbounded, for asyncpg to hand its connection back to
            the pool, which a partitioned database never lets it do. The operation runs
            as a task that is cancelled and left to unwind on its own, while the client
            gets its answer now.
            """
            limit = services.database_seconds
            if limit is None or not isinstance(context, ApiContext):
                return await self.run(request, context=context, root_value=root_value)
            loop = asyncio.get_running_loop()
            context.deadline = deadline = Deadline(loop.time() + limit)
            untyped: Any = context  # strawberry's overloads type it as None
            task: asyncio.Future[Response[Any]] = asyncio.ensure_future(
                self.run(request, context=untyped, root_value=root_value)
            )
            try:
                while not task.done():
                    remaining = deadline.at - loop.time()
                    if remaining <= 0:
                        _abandon(task)
                        raise _DeadlinePassed
                    await asyncio.wait({task}, timeout=remaining)
            except asyncio.CancelledError:
                _abandon(task)
                raise
            return task.result()

    Controller.schema = schema
    Controller.allowed_origins = normalize_allowed_origins(allowed_origins)
    return Controller


MIN_POSITION_HEADER = "programledger-min-position"


class _DeadlinePassed(Exception):
    """The request's database work did not finish in time."""


_ABANDONED: set[asyncio.Future[Any]] = set()
"""Operations given up on, still unwinding (kept referenced until they have)."""


def _abandon(task: asyncio.Future[Any]) -> None:
    task.cancel()
    _ABANDONED.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Future[Any]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("an abandoned request ended with %r", task.exception())


def _min_position(request: Request[Any, Any, Any]) -> int | None:
    """Read your writes: ``Programledger-Min-Position: <position>`` (the ``position`` a
    mutation returned) makes the request wait until the read models its fields read
    have reached it (``freshness.ReadYourWrites``)."""
    raw = request.headers.get(MIN_POSITION_HEADER)
    if raw is None:
        return None
    if not raw.strip().isdigit() or len(raw.strip()) > 18:
        raise HTTPException(
            status_code=400,
            detail=f"{MIN_POSITION_HEADER} must be a global position (a whole number >= 0)",
        )
    return int(raw)


def _code(error: object) -> object:
    extensions = error.get("extensions") if isinstance(error, dict) else None
    return extensions.get("code") if isinstance(extensions, dict) else None


def _correlation_id(request_id: str) -> uuid.UUID:
    """The request id when it is a UUID (ours always are), so a request's events can be
    found by it; otherwise a new one."""
    try:
        return uuid.UUID(request_id)
    except ValueError:
        return uuid.uuid4()


def _checked(error: object, request_id: str) -> object:
    if not isinstance(error, dict):
        return error
    extensions = error.get("extensions") or {}
    if isinstance(extensions, dict) and "code" in extensions:
        return error
    masked = {
        "message": INTERNAL_MESSAGE,
        "extensions": {"code": "INTERNAL", "requestId": request_id},
    }
    if "locations" in error:
        masked["locations"] = error["locations"]
    return masked
