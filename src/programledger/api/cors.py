"""Which browser pages on other origins may use the API (CORS, and the WebSocket's Origin).

Browsers enforce CORS for ``fetch``; they do not for WebSockets, so the same list is
checked again on the WebSocket upgrade (by strawberry's controller, 403 for an origin not
listed). Tokens travel in the ``Authorization`` header or the ``connection_init`` payload,
never in cookies, so credentials mode is not needed and ``*`` does not expose a session.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar.config.cors import CORSConfig

__all__ = ["ALLOWED_HEADERS", "EXPOSED_HEADERS", "cors_config"]

ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Accept",
    "Idempotency-Key",
    "X-Request-Id",
    "Programledger-Min-Position",
)
"""Request headers a page may send: the token, the idempotency key, its own request id,
and the read-your-writes position."""
EXPOSED_HEADERS = (
    "X-Request-Id",
    "Programledger-Position",
    "Programledger-Projections-Behind",
    "WWW-Authenticate",
    "Retry-After",
)
"""Response headers a page may read besides the CORS-safelisted ones: the request id to
quote in a bug report, the store position reached, the read models a read-your-writes
wait gave up on, why a token was refused, when to retry."""


def cors_config(origins: Sequence[str]) -> CORSConfig | None:
    """CORS for ``origins`` (exact, as browsers send them; ``*`` for any); ``None`` (no
    CORS headers at all) when there are none, so only same-origin pages can read answers."""
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        max_age=600,
    )
