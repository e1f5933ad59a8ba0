"""One webhook request: signed per Standard Webhooks, only to addresses allowed.

Signing uses the ``standardwebhooks`` package (the specification's reference library):
``webhook-id`` is the event's id, the same on every retry and redelivery so a receiver
drops what it already has; ``webhook-timestamp`` the attempt's time in seconds;
``webhook-signature`` ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.

Server-side request forgery: unless private addresses are allowed, the host is resolved
and *every* address it resolves to must be public (``application.webhooks
.is_public_address``); the request then goes to the address that was checked, with the
URL's host in ``Host`` and in TLS (SNI, certificate check), never to a second resolution
that a DNS rebinding attack could point elsewhere. Redirects are not followed.

Requests go through ``httpcore``'s connection pool (the transport under ``httpx``), kept
alive per address: ``httpx``'s client around it (request and response models, cookies,
auth and redirect steps) cost about a third of the delivery's CPU per event, for nothing
a webhook uses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpcore
from standardwebhooks import Webhook

from programledger.application.webhooks import is_public_address

__all__ = ["Attempt", "WebhookSender"]

_USER_AGENT = "programledger-webhooks/1"
_DNS_TTL = 30.0
_KEEPALIVE = 5.0
"""Seconds an idle connection is kept (``httpx``'s default)."""


class _Blocked(Exception):
    """The URL's host is, or resolves to, an address deliveries may not go to."""


@dataclass(frozen=True, slots=True)
class Attempt:
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int


_NETWORK_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    OSError,
)


class WebhookSender:
    """Sends over one connection pool (connections kept alive per address)."""

    def __init__(self, *, timeout: float, allow_private: bool, max_connections: int = 256) -> None:
        self._allow_private = allow_private
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=_KEEPALIVE,
        )
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        self._signers: dict[str, Webhook] = {}
        self._resolved: OrderedDict[tuple[str, int], tuple[float, str]] = OrderedDict()

    async def close(self) -> None:
        await self._pool.aclose()

    async def send(self, url: str, secret: str, message_id: str, body: bytes) -> Attempt:
        started = time.perf_counter()
        try:
            target, host_header, host = await self._target(url)
            now = datetime.now(UTC)
            signature = self._signer(secret).sign(message_id, now, body)
            response = await self._pool.request(
                "POST",
                target,
                content=body,
                headers=[
                    ("Host", host_header),
                    ("User-Agent", _USER_AGENT),
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("webhook-id", message_id),
                    ("webhook-timestamp", str(int(now.timestamp()))),
                    ("webhook-signature", signature),
                ],
                extensions={"timeout": self._timeouts, "sni_hostname": host},
            )
        except _Blocked as exc:
            return Attempt(False, None, str(exc), _ms(started))
        except httpcore.TimeoutException:
            return Attempt(False, None, "timed out", _ms(started))
        except _NETWORK_ERRORS as exc:
            return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
        ok = 200 <= response.status < 300
        error = None if ok else f"answered {response.status}"
        return Attempt(ok, response.status, error, _ms(started))

    def _signer(self, secret: str) -> Webhook:
        signer = self._signers.get(secret)
        if signer is None:
            signer = self._signers[secret] = Webhook(secret)
        return signer

    async def _target(self, url: str) -> tuple[str, str, str]:
        """The URL to connect to (the checked address), its ``Host`` header, the host."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._address(host, port)
        shown = f"[{address}]" if ":" in address else address
        netloc = f"{shown}:{parts.port}" if parts.port else shown
        host_header = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=netloc)), host_header, host

    async def _address(self, host: str, port: int) -> str:
        key = (host, port)
        cached = self._resolved.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            literal = ipaddress.ip_address(host)
            addresses = [literal]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                raise _Blocked(f"cannot resolve {host}: {exc}") from None
            addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise _Blocked(f"{host} resolves to no address")
        if not self._allow_private:
            blocked = [str(a) for a in addresses if not is_public_address(a)]
            if blocked:
                raise _Blocked(
                    f"{host} resolves to {', '.join(blocked)}: not a public address "
                    "(PROGRAMLEDGER_WEBHOOK_ALLOW_PRIVATE allows it)"
                )
        chosen = str(addresses[0])
        self._resolved[key] = (time.monotonic() + _DNS_TTL, chosen)
        if len(self._resolved) > 4096:
            self._resolved.popitem(last=False)
        return chosen


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
