"""An identity provider's signing keys (a JWKS), by key id, kept fresh as the provider
rotates them.

Keycloak, Auth0, Okta and Entra ID publish their public keys at a URL and start signing
with a new key (a new ``kid``) whenever they rotate. The keys are fetched when first
needed and kept for :attr:`JwksKeys.max_age`; a token naming a ``kid`` not held causes a
refetch at once, so a rotation is picked up by its first token. Refetches are
rate-limited (:attr:`JwksKeys.max_fetches` per :attr:`JwksKeys.window`): tokens with made-up
key ids, which anyone can send, must not turn the API into a load generator against the
provider. When the provider cannot be reached, the keys already held keep working.

A JWKS file is read the same way (when first needed, and again for an unknown ``kid``),
for deployments that copy the keys rather than reach the provider.

Only public signature keys are taken: ``use: enc`` keys and symmetric (``oct``) keys are
skipped, so that no key from the set can verify an HS256 token (algorithm confusion).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientError, PyJWTError

from programledger.application.errors import OperationalError

__all__ = ["JwksKeys", "JwksUnavailable", "UnknownKey"]

log = logging.getLogger(__name__)


class UnknownKey(LookupError):
    """The token names a key the JWKS does not hold, even after a refetch."""


class JwksUnavailable(OperationalError):
    """No keys are held and the JWKS cannot be read."""


class JwksKeys:
    """The signature keys of one JWKS (a URL or a file), by ``kid``."""

    def __init__(
        self,
        source: str | Path,
        *,
        max_age: float = 600.0,
        max_fetches: int = 5,
        window: float = 60.0,
        timeout: float = 5.0,
    ) -> None:
        self.source = source
        self.max_age = max_age
        """Seconds the keys are used before they are fetched again."""
        self.max_fetches = max_fetches
        self.window = window
        """At most ``max_fetches`` reads of the source in any ``window`` seconds."""
        self._read: Callable[[], Any]
        if isinstance(source, Path):
            self._read = lambda: json.loads(source.read_text(encoding="utf-8"))
        else:
            client = PyJWKClient(source, cache_jwk_set=False, cache_keys=False, timeout=timeout)
            self._read = client.fetch_data
        self._keys: dict[str | None, dict[str, Any]] = {}
        """The JWKs as published, by ``kid``; each one is known to make a key."""
        self._fetched_at: float | None = None
        self._fetches: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.fetch_count = 0
        """Reads of the source so far (for tests and metrics)."""

    async def key(self, kid: str | None, algorithm: str) -> PyJWK:
        """The key a token's ``kid`` names (a set of one key may be used without a ``kid``),
        for the token's ``algorithm``: a key that names its ``alg`` keeps it (a token with
        another is refused when verified); one that does not serves its key type's family
        (an RSA key, RS256 or PS256).

        Raises :class:`UnknownKey` when the set does not hold it, and
        :class:`JwksUnavailable` when no keys could be read at all.
        """
        found = self._find(kid)
        if found is None or self._stale():
            found = await self._refreshed(kid)
        try:
            return PyJWK(found, None if "alg" in found else algorithm)
        except PyJWTError:
            raise UnknownKey(
                f"the token's signing key (kid {kid!r}) is not a {algorithm} key"
            ) from None

    async def _refreshed(self, kid: str | None) -> dict[str, Any]:
        async with self._lock:
            found = self._find(kid)  # another request may have refetched meanwhile
            if found is None or self._stale():
                await self._refresh()
                found = self._find(kid)
        if found is None:
            if self._fetched_at is None:
                # The operator finds the cause in the log; the caller learns only this.
                raise JwksUnavailable(
                    "the identity provider's signing keys cannot be read; try again later"
                )
            held = ", ".join(sorted(repr(k) for k in self._keys if k is not None)) or "none"
            raise UnknownKey(
                f"the token's signing key (kid {kid!r}) is not in the identity provider's "
                f"JWKS (it holds {held})"
            )
        return found

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at > self.max_age

    async def _refresh(self) -> None:
        """Read the source unless the rate limit says not now; keep the old keys if the
        source fails."""
        now = time.monotonic()
        while self._fetches and now - self._fetches[0] > self.window:
            self._fetches.popleft()
        if len(self._fetches) >= self.max_fetches:
            return
        self._fetches.append(now)
        self.fetch_count += 1
        try:
            document = await asyncio.to_thread(self._read)
            keys = _signature_keys(document)
        except (OSError, ValueError, PyJWKClientError) as exc:
            log.warning("cannot read the JWKS at %s: %s", self.source, exc)
            return
        self._keys = keys
        self._fetched_at = time.monotonic()


def _signature_keys(document: object) -> dict[str | None, dict[str, Any]]:
    """The public signature keys of a JWKS document, by ``kid``; others are skipped."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS: expected an object with a 'keys' list")
    keys: dict[str | None, dict[str, Any]] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") == "oct" or "d" in entry:  # secret or private: never trusted
            continue
        try:
            PyJWK(dict(entry))
        except PyJWTError:
            continue  # a key type this library does not know; others may still be usable
        kid = entry.get("kid")
        keys[kid if isinstance(kid, str) else None] = dict(entry)
    if not keys:
        raise ValueError("the JWKS holds no public signature key")
    return keys
