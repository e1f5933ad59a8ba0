"""Who a request acts as: JWT bearer tokens (HS256), their roles, and what each role may do.

Tokens are verified by Litestar's JWT middleware for HTTP, and by :func:`authenticate_bearer`
for WebSockets, whose token travels in the ``connection_init`` payload because browsers
cannot set headers on a WebSocket handshake. Either way the result is an :class:`Identity`;
the actor written into events is its ``subject`` (the token's ``sub``) and nothing else.
A token is verified once and its identity reused until it expires
(:class:`VerifiedTokens`).

Roles are not a ladder: an auditor reads history but never writes, an editor writes but
does not audit. :data:`ROLES_WITH` is the whole policy, one line per capability.

Outside development mode the secret comes from ``PROGRAMLEDGER_JWT_SECRET`` (settings
refuse to start without one). In development, with none configured, a random secret is
created once in the data directory, readable by its owner only, so that the server and
``programledger mint-token`` agree without anyone choosing a weak shared default.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import secrets
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import strawberry
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from programledger.settings import Settings

__all__ = [
    "ALGORITHM",
    "DEV_SECRET_FILE",
    "ROLES_WITH",
    "AccessToken",
    "Capability",
    "Identity",
    "Role",
    "VerifiedTokens",
    "authenticate_bearer",
    "jwt_auth",
    "jwt_secret",
    "mint_token",
]

ALGORITHM = "HS256"
DEV_SECRET_FILE = "dev-jwt-secret"
_SUBJECT_MAX = 200
"""The event store's limit on an actor."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@strawberry.enum(name="Role", description="What a token allows; see docs/api.md.")
class Role(enum.StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Capability(enum.Enum):
    READ = "read"
    """Current state: programs, risks, resources as they are now."""
    WRITE = "write"
    """Commands: every mutation."""
    AUDIT = "audit"
    """History, audit trail, as-of views, verification, export."""
    OPERATE = "operate"
    """Operations such as rebuilding a projection."""


ROLES_WITH: Mapping[Capability, frozenset[Role]] = {
    Capability.READ: frozenset(Role),
    Capability.WRITE: frozenset({Role.EDITOR, Role.ADMIN}),
    Capability.AUDIT: frozenset({Role.AUDITOR, Role.ADMIN}),
    Capability.OPERATE: frozenset({Role.ADMIN}),
}


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller of one request, as its token says."""

    subject: str
    roles: frozenset[Role]
    expires_at: datetime

    def can(self, capability: Capability) -> bool:
        return not self.roles.isdisjoint(ROLES_WITH[capability])


@dataclass
class AccessToken(Token):
    """Litestar's token with our ``roles`` claim at the top level of the payload."""

    roles: list[str] = field(default_factory=list)


def _identity(token: AccessToken) -> Identity | None:
    """The identity a verified token names, or ``None`` when its subject cannot be an actor.

    Unknown role names are ignored rather than refused, so an identity provider may add
    roles of its own; a token without any known role is authenticated but may do nothing.
    """
    subject = token.sub
    if not subject.strip() or len(subject) > _SUBJECT_MAX or _CONTROL.search(subject):
        return None
    roles = frozenset(Role(name) for name in token.roles if name in Role._value2member_map_)
    return Identity(subject=subject, roles=roles, expires_at=token.exp)


async def _retrieve_identity(
    token: AccessToken, _connection: ASGIConnection[Any, Any, Any, Any]
) -> Identity | None:
    return _identity(token)


def authenticate_bearer(secret: str, authorization: object) -> Identity:
    """The identity of an ``Authorization`` value (``Bearer <token>``), for connections the
    middleware does not see (WebSockets); raises ``NotAuthorizedException`` like it."""
    if not isinstance(authorization, str):
        raise NotAuthorizedException("no bearer token")
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not encoded.strip():
        raise NotAuthorizedException("expected 'Bearer <token>'")
    encoded = encoded.strip()
    known = _VERIFIED.get(secret, encoded)
    if known is not None:
        return known[1]
    token = AccessToken.decode(encoded, secret, ALGORITHM, require_claims=["exp", "sub"])
    identity = _identity(token)
    if identity is None:
        raise NotAuthorizedException("Invalid token")
    _VERIFIED.put(secret, encoded, token, identity)
    return identity


class VerifiedTokens:
    """Tokens already verified, by secret and encoded token, until they expire.

    A client sends the same token with every request, and checking its signature and
    claims again each time costs more than the rest of authentication. A token that
    verified once stays valid until its ``exp`` (no other claim we check can change its
    verdict, and there is no revocation list), so its identity is reused until then. The
    secret is part of the key, so apps with different secrets never share a verdict.
    Bounded, least recently used first out.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._found: OrderedDict[tuple[str, str], tuple[AccessToken, Identity]] = OrderedDict()

    def get(self, secret: str, encoded: str) -> tuple[AccessToken, Identity] | None:
        key = (secret, encoded)
        found = self._found.get(key)
        if found is None:
            return None
        if found[1].expires_at <= datetime.now(UTC):
            del self._found[key]
            return None
        self._found.move_to_end(key)
        return found

    def put(self, secret: str, encoded: str, token: AccessToken, identity: Identity) -> None:
        self._found[(secret, encoded)] = (token, identity)
        if len(self._found) > self._size:
            self._found.popitem(last=False)


_VERIFIED = VerifiedTokens()


class _BearerAuthMiddleware(JWTAuthenticationMiddleware):
    """Litestar's JWT middleware, except that a browser loading a page without a token gets
    through anonymously: that is how GraphiQL's page is served, whose header editor then
    carries the token. Every GraphQL operation still needs one (no identity, no access)."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        if not connection.headers.get(self.auth_header) and _is_page_load(connection):
            return AuthenticationResult(user=None, auth=None)
        return await super().authenticate_request(connection)

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        known = _VERIFIED.get(self.token_secret, encoded_token)
        if known is not None:
            return AuthenticationResult(user=known[1], auth=known[0])
        result = await super().authenticate_token(encoded_token, connection)
        if isinstance(result.auth, AccessToken) and isinstance(result.user, Identity):
            _VERIFIED.put(self.token_secret, encoded_token, result.auth, result.user)
        return result


def _is_page_load(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return (
        connection.scope.get("method") == "GET"
        and "query" not in connection.query_params
        and "text/html" in connection.headers.get("accept", "")
    )


def jwt_auth(secret: str) -> JWTAuth[Identity, AccessToken]:
    """HTTP bearer authentication for every route not marked ``exclude_from_auth``.

    WebSockets are left to the GraphQL ``connection_init`` (see module docstring).
    """
    return JWTAuth[Identity, AccessToken](
        token_secret=secret,
        retrieve_user_handler=_retrieve_identity,
        token_cls=AccessToken,
        algorithm=ALGORITHM,
        scopes={ScopeType.HTTP},
        require_claims=["exp", "sub"],
        authentication_middleware_class=_BearerAuthMiddleware,
    )


def mint_token(secret: str, subject: str, roles: Iterable[Role | str], ttl: timedelta) -> str:
    """A signed token for ``subject`` with ``roles``, valid for ``ttl``.

    Raises ``ValueError`` for a subject that cannot be an actor, an unknown role or a
    non-positive lifetime, so a typo fails when minting rather than at the first request.
    """
    if not subject.strip() or len(subject) > _SUBJECT_MAX or _CONTROL.search(subject):
        raise ValueError(f"subject must be 1-{_SUBJECT_MAX} characters without control characters")
    try:
        names = sorted({Role(role).value for role in roles})
    except ValueError as exc:
        known = ", ".join(role.value for role in Role)
        raise ValueError(f"{exc}; roles are {known}") from None
    if not names:
        raise ValueError("give at least one role")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    now = datetime.now(UTC).replace(microsecond=0)
    claims = {"sub": subject, "roles": names, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def jwt_secret(settings: Settings) -> str:
    """The configured secret; in development mode without one, the data directory's own."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret
    if settings.mode != "development":
        # Settings.from_env refuses this already; a hand-built Settings must not slip by.
        raise ValueError("a JWT secret is required outside development mode")
    return _development_secret(settings.data_dir / DEV_SECRET_FILE)


def _development_secret(path: Path) -> str:
    """Read the secret at ``path``, creating it (mode 0600) on first use.

    The file is written completely under a temporary name (``mkstemp`` creates it 0600)
    and then linked into place, so two processes starting together agree on one secret
    and never read a half-written one.
    """
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".dev-jwt-secret.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):  # another process won: use its secret
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret; delete it to create a new one")
    return secret
