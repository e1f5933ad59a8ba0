"""Who a request acts as: JWT bearer tokens, their roles, and what each role may do.

Tokens are verified by one :class:`TokenVerifier`, in a middleware for HTTP and in the
GraphQL ``connection_init`` for WebSockets, whose token travels in that payload because
browsers cannot set headers on a WebSocket handshake. Either way the result is an
:class:`Identity`; the actor written into events is its ``subject`` (the token's ``sub``)
and nothing else. A token is verified once and its identity reused until it expires
(:class:`VerifiedTokens`). Tokens are HS256 with a shared secret, or come from an identity
provider and are checked against its published keys (a JWKS, :mod:`.jwks`).

Roles are not a ladder: an auditor reads history but never writes, an editor writes but
does not audit. :data:`ROLES_WITH` is the whole policy, one line per capability.

Outside development mode the secret comes from ``PROGRAMLEDGER_JWT_SECRET`` (settings
refuse to start without one, unless a JWKS is configured). In development, with neither
configured, a random secret is created once in the data directory, readable by its owner
only, so that the server and ``programledger mint-token`` agree without anyone choosing a
weak shared default.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import strawberry
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import DefineMiddleware
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.types import ASGIApp

from programledger.adapters.keys import create_once
from programledger.api.jwks import JwksKeys, JwksUnavailable, UnknownKey
from programledger.settings import Settings

__all__ = [
    "ALGORITHM",
    "DEV_SECRET_FILE",
    "ROLES_WITH",
    "VERIFIED_TOKENS",
    "Capability",
    "Identity",
    "Role",
    "TokenVerifier",
    "VerifiedTokens",
    "bearer_auth",
    "jwt_secret",
    "mint_token",
    "token_verifier",
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
    SUBSCRIBER = "subscriber"


class Capability(enum.Enum):
    READ = "read"
    """Current state: programs, risks, resources as they are now."""
    WRITE = "write"
    """Commands: every mutation."""
    AUDIT = "audit"
    """History, audit trail, verification, export (as-of views are READ)."""
    OPERATE = "operate"
    """Operations such as rebuilding a projection, and webhook endpoints."""
    FEED = "feed"
    """The global event feed (every event since the first), for downstream services."""


ROLES_WITH: Mapping[Capability, frozenset[Role]] = {
    Capability.READ: frozenset(Role) - {Role.SUBSCRIBER},
    Capability.WRITE: frozenset({Role.EDITOR, Role.ADMIN}),
    Capability.AUDIT: frozenset({Role.AUDITOR, Role.ADMIN}),
    Capability.OPERATE: frozenset({Role.ADMIN}),
    Capability.FEED: frozenset({Role.SUBSCRIBER, Role.AUDITOR, Role.ADMIN}),
}


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller of one request, as its token says."""

    subject: str
    roles: frozenset[Role]
    expires_at: datetime

    def can(self, capability: Capability) -> bool:
        return not self.roles.isdisjoint(ROLES_WITH[capability])


_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Algorithms of tokens verified against the JWKS; HS256 only ever with the shared secret."""


class TokenVerifier:
    """Turns a bearer token into an :class:`Identity`, or refuses it with a message that
    says why (expired, wrong issuer, unknown key, ...), for HTTP and WebSockets alike.

    Two kinds of token are accepted, told apart by their ``alg``: HS256 tokens signed with
    the shared secret (``programledger mint-token``, service accounts), and tokens from an
    identity provider signed with one of its keys (``keys``, a JWKS), which must also carry
    ``issuer`` and one of ``audience`` when those are set. Every token needs ``sub`` and
    ``exp``; with ``max_lifetime``, ``exp`` may lie at most that far after ``iat`` (or after
    now, without ``iat``). Roles are a list of names or a single one, at ``roles`` in
    shared-secret tokens and at ``roles_claim`` in the provider's, a dotted path (Keycloak
    puts them at ``realm_access.roles``).

    A token verified once is not verified again until it expires (:class:`VerifiedTokens`).
    """

    def __init__(
        self,
        secret: str | None,
        keys: JwksKeys | None = None,
        *,
        issuer: str | None = None,
        audience: Sequence[str] = (),
        roles_claim: str = "roles",
        max_lifetime: timedelta | None = None,
    ) -> None:
        self._secret = secret
        self._keys = keys
        self._issuer = issuer
        self._audience = list(audience)
        self._roles_path = roles_claim.split(".")
        self._max_lifetime = max_lifetime

    async def authenticate(self, authorization: object) -> Identity:
        """The identity of an ``Authorization`` value (``Bearer <token>``); raises
        ``NotAuthorizedException`` (HTTP 401) saying what is wrong."""
        if not isinstance(authorization, str) or not authorization.strip():
            raise NotAuthorizedException("no bearer token: send 'Authorization: Bearer <token>'")
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not encoded.strip():
            raise NotAuthorizedException("expected 'Bearer <token>'")
        return await self.verify(encoded.strip())

    async def verify(self, encoded: str) -> Identity:
        known = VERIFIED_TOKENS.get(self, encoded)
        if known is not None:
            return known
        try:
            claims, roles_path = await self._claims(encoded)
        except jwt.PyJWTError as exc:
            raise NotAuthorizedException(_reason(exc)) from None
        identity = self._identity(claims, roles_path)
        VERIFIED_TOKENS.put(self, encoded, identity)
        return identity

    async def _claims(self, encoded: str) -> tuple[dict[str, Any], list[str]]:
        """The verified claims, and where their roles are."""
        header = jwt.get_unverified_header(encoded)
        algorithm = header.get("alg")
        required = ["exp", "sub"]
        if algorithm == ALGORITHM and self._secret is not None:
            claims = jwt.decode(
                encoded, self._secret, algorithms=[ALGORITHM], options={"require": required}
            )
            roles_path = ["roles"]  # where mint_token puts them
        elif algorithm in _ASYMMETRIC and self._keys is not None:
            kid = header.get("kid")
            try:
                key = await self._keys.key(kid if isinstance(kid, str) else None, algorithm)
            except (UnknownKey, JwksUnavailable) as exc:
                raise NotAuthorizedException(str(exc)) from None
            claims = jwt.decode(
                encoded,
                key,
                algorithms=[algorithm],
                issuer=self._issuer,
                audience=self._audience or None,
                options={
                    "require": [*required, *(["iss"] if self._issuer else [])],
                    "verify_aud": bool(self._audience),
                },
            )
            roles_path = self._roles_path
        else:
            raise NotAuthorizedException(self._refused_algorithm(algorithm))
        self._check_lifetime(claims)
        return claims, roles_path

    def _refused_algorithm(self, algorithm: object) -> str:
        accepted = [
            *([ALGORITHM + " (shared secret)"] if self._secret is not None else []),
            *(sorted(_ASYMMETRIC) if self._keys is not None else []),
        ]
        return f"tokens signed with {algorithm!r} are not accepted; accepted: {', '.join(accepted)}"

    def _check_lifetime(self, claims: Mapping[str, Any]) -> None:
        if self._max_lifetime is None:
            return
        issued = claims.get("iat")
        start = issued if isinstance(issued, int | float) else datetime.now(UTC).timestamp()
        lifetime = claims["exp"] - start
        if lifetime > self._max_lifetime.total_seconds():
            raise NotAuthorizedException(
                f"the token is valid for {int(lifetime)} s, longer than the "
                f"{int(self._max_lifetime.total_seconds())} s this API accepts; ask for a "
                "shorter-lived token"
            )

    def _identity(self, claims: Mapping[str, Any], roles_path: list[str]) -> Identity:
        subject = claims["sub"]
        if (
            not isinstance(subject, str)
            or not subject.strip()
            or len(subject) > _SUBJECT_MAX
            or _CONTROL.search(subject)
        ):
            raise NotAuthorizedException(
                f"the token's sub must be 1-{_SUBJECT_MAX} characters without control "
                "characters: it is written as the actor of every event"
            )
        found: object = claims
        for part in roles_path:
            found = found.get(part) if isinstance(found, Mapping) else None
        names = [found] if isinstance(found, str) else found if isinstance(found, list) else []
        # Unknown role names are ignored rather than refused, so an identity provider may
        # carry roles of its own; a token without any known role may do nothing.
        roles = frozenset(Role(n) for n in names if n in Role._value2member_map_)
        expires_at = datetime.fromtimestamp(claims["exp"], UTC)
        return Identity(subject=subject, roles=roles, expires_at=expires_at)


def _reason(exc: jwt.PyJWTError) -> str:
    """What to tell the caller whose token ``exc`` refused; specific where it helps them
    fix it, never echoing the token."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the token's issuer (iss) is not the identity provider this API trusts"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the token's audience (aud) is not this API"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token has no {exc.claim!r} claim"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token's signature does not verify"
    if isinstance(exc, jwt.DecodeError):
        return "the bearer value is not a JWT"
    return f"invalid token: {exc}"


class VerifiedTokens:
    """Identities of tokens already verified, by verifier and encoded token, until the
    tokens expire.

    A client sends the same token with every request, and checking its signature and
    claims again each time costs more than the rest of authentication. A token that
    verified once stays valid until its ``exp`` (no other claim we check can change its
    verdict, and there is no revocation list), so its identity is reused until then. The
    verifier is part of the key, so apps with different secrets or keys never share a
    verdict. Bounded, least recently used first out.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._found: OrderedDict[tuple[object, str], Identity] = OrderedDict()

    def __len__(self) -> int:
        return len(self._found)

    def get(self, verifier: object, encoded: str) -> Identity | None:
        key = (verifier, encoded)
        found = self._found.get(key)
        if found is None:
            return None
        if found.expires_at <= datetime.now(UTC):
            del self._found[key]
            return None
        self._found.move_to_end(key)
        return found

    def put(self, verifier: object, encoded: str, identity: Identity) -> None:
        self._found[(verifier, encoded)] = identity
        if len(self._found) > self.size:
            self._found.popitem(last=False)


VERIFIED_TOKENS = VerifiedTokens()


class _BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    """Bearer authentication for HTTP, except that a browser loading a page without a token
    gets through anonymously: that is how GraphiQL's page is served, whose header editor
    then carries the token. Every GraphQL operation still needs one (no identity, no
    access)."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        super().__init__(
            app,
            exclude_http_methods=["OPTIONS", "HEAD"],
            scopes={ScopeType.HTTP},
        )
        self._verifier = verifier

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        authorization = connection.headers.get("authorization")
        if not authorization and _is_page_load(connection):
            return AuthenticationResult(user=None, auth=None)
        identity = await self._verifier.authenticate(authorization)
        return AuthenticationResult(user=identity, auth=identity)


def _is_page_load(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return (
        connection.scope.get("method") == "GET"
        and "query" not in connection.query_params
        and "text/html" in connection.headers.get("accept", "")
    )


def bearer_auth(verifier: TokenVerifier) -> DefineMiddleware:
    """HTTP bearer authentication for every route not marked ``exclude_from_auth``.

    WebSockets are left to the GraphQL ``connection_init`` (see module docstring).
    """
    return DefineMiddleware(_BearerAuthMiddleware, verifier=verifier)


def token_verifier(settings: Settings) -> TokenVerifier:
    """The verifier ``settings`` describe: the shared secret (in development, the data
    directory's own when none is set and no JWKS is), and the JWKS with its rules."""
    source: str | Path | None = settings.jwks_url or settings.jwks_file
    secret = settings.jwt_secret
    if secret is None and source is None:
        secret = jwt_secret(settings)
    max_lifetime = settings.jwt_max_lifetime
    return TokenVerifier(
        secret,
        None if source is None else JwksKeys(source),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        roles_claim=settings.jwt_roles_claim,
        max_lifetime=None if max_lifetime is None else timedelta(seconds=max_lifetime),
    )


def mint_token(
    secret: str,
    subject: str,
    roles: Iterable[Role | str],
    ttl: timedelta,
    *,
    max_ttl: timedelta | None = None,
) -> str:
    """A signed token for ``subject`` with ``roles``, valid for ``ttl``.

    Raises ``ValueError`` for a subject that cannot be an actor, an unknown role, a
    non-positive lifetime or one beyond ``max_ttl`` (the server's maximum), so a mistake
    fails when minting rather than at the first request.
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
    if max_ttl is not None and ttl > max_ttl:
        raise ValueError(
            f"ttl must be at most {int(max_ttl.total_seconds())} s "
            "(PROGRAMLEDGER_JWT_MAX_LIFETIME): the server refuses longer-lived tokens"
        )
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
    """Read the secret at ``path``, creating it (mode 0600) on first use."""
    create_once(path, lambda: (secrets.token_urlsafe(48) + "\n").encode("ascii"))
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret; delete it to create a new one")
    return secret
