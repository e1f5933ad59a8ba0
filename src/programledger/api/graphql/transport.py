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
    error_response,
    response_media_type,
)
from programledger.api.graphiql import graphiql_page
from programledger.api.graphql.context import ApiContext, Services
from programledger.api.request_ids import request_id_of

__all__ = ["GRAPHQL_PATH", "graphql_controller"]

GRAPHQL_PATH = "/graphql"
_REQUEST_ERROR = "graphql_request_error"
"""Set in the request's state when the result is a request error (no ``data``)."""


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
        await _wait_for_min_position(request, services)
        return ApiContext(
            request=request,
            services=services,
            request_id=request_id,
            identity=user if isinstance(user, Identity) else None,
            idempotency_key=request.headers.get("idempotency-key"),
            correlation_id=_correlation_id(request_id),
        )

    async def websocket_context(socket: WebSocket[Any, Any, Any], root_value: None) -> ApiContext:
        return ApiContext(
            websocket=socket, services=services, request_id=request_id_of(socket.scope)
        )

    async def no_root_value() -> None:
        return None

    async def sub_response(context: ApiContext) -> Response[Any]:
        return Response({}, background=BackgroundTasks([]))

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
                response["errors"] = [_checked(error, request_id) for error in errors]
            if result.data is None and result.errors and all(e.path is None for e in result.errors):
                response.pop("data", None)  # a request error: the operation never ran
                request.state[_REQUEST_ERROR] = True
            return response

        async def execute_request(
            self, request: Request[Any, Any, Any], context: Any, root_value: Any
        ) -> Response[Any]:
            try:
                response = await self.run(request, context=context, root_value=root_value)
            except ProtocolError as exc:
                headers = {"Allow": "POST"} if exc.status_code == 405 else None
                return error_response(request, exc.status_code, exc.reason, headers=headers)
            if response.media_type == "application/json":  # a GraphQL result, not the IDE page
                response.media_type = response_media_type(request.headers.get("accept", ""))
                if response.media_type == GRAPHQL_RESPONSE_MEDIA_TYPE and request.state.get(
                    _REQUEST_ERROR
                ):
                    response.status_code = 400
            return response

    Controller.schema = schema
    Controller.allowed_origins = normalize_allowed_origins(allowed_origins)
    return Controller


MIN_POSITION_HEADER = "programledger-min-position"


async def _wait_for_min_position(request: Request[Any, Any, Any], services: Services) -> None:
    """Read your writes: with ``Programledger-Min-Position: <position>`` (the ``position``
    a mutation returned), the request waits briefly until the read models have reached it.
    Past the wait it runs anyway; ``projectionStatus`` tells how far they are."""
    raw = request.headers.get(MIN_POSITION_HEADER)
    if raw is None:
        return
    if not raw.strip().isdigit() or len(raw.strip()) > 18:
        raise HTTPException(
            status_code=400,
            detail=f"{MIN_POSITION_HEADER} must be a global position (a whole number >= 0)",
        )
    if services.wait_for_position is not None:
        await services.wait_for_position(int(raw), services.projection_wait)


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
