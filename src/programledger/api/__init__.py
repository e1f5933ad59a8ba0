"""The HTTP and WebSocket entry point: a Litestar app serving GraphQL (``docs/api.md``).

``create_app`` builds the app over its ports (:class:`ApiPorts`) and ``server.http_server``
serves it; ``mint_token`` signs development and service tokens; ``export_sdl`` prints the
schema that ``schema.graphql`` holds.
"""

from programledger.api.app import ApiPorts, create_app
from programledger.api.auth import Capability, Identity, Role, jwt_secret, mint_token
from programledger.api.graphql.context import WaitForPosition
from programledger.api.graphql.schema import build_schema, export_sdl
from programledger.api.limits import ApiLimits
from programledger.api.metrics import ApiMetrics
from programledger.api.operations import ReadinessCheck

__all__ = [
    "ApiLimits",
    "ApiMetrics",
    "ApiPorts",
    "Capability",
    "Identity",
    "ReadinessCheck",
    "Role",
    "WaitForPosition",
    "build_schema",
    "create_app",
    "export_sdl",
    "jwt_secret",
    "mint_token",
]
