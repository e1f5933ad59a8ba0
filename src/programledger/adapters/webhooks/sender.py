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

Requests go through ``httpcore`` (the transport under ``httpx``), connections kept alive
per address: ``httpx``'s client around it (request and response models, cookies, auth and
redirect steps) cost about a third of the delivery's CPU per event, for nothing a webhook
uses. Each connection is a pool of its own (``max_connections=1``), checked out for one
request at a time: one ``httpcore`` pool of many connections walks all of them, twice per
request, polling each socket and listing the idle ones for each (quadratic in the
connections), which with 16 connections to a receiver cost two thirds of the client's CPU
per request (about 1,350 against 455 microseconds, measured under load).
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

_Origin = tuple[str, str, str]
"""Where a connection goes: the scheme, the checked address and port, the TLS host."""


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
    """Sends over connections kept alive per address, at most ``max_connections`` open."""

    def __init__(self, *, timeout: float, allow_private: bool, max_connections: int = 256) -> None:
        self._allow_private = allow_private
        self._max_connections = max_connections
        self._open = asyncio.Semaphore(max_connections)
        self._idle: dict[_Origin, list[tuple[float, httpcore.AsyncConnectionPool]]] = {}
        self._idle_count = 0
        self._busy = 0
        self._next_sweep = 0.0
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        self._signers: dict[str, Webhook] = {}
        self._resolved: OrderedDict[tuple[str, int], tuple[float, str]] = OrderedDict()

    async def close(self) -> None:
        idle, self._idle, self._idle_count = self._idle, {}, 0
        for connections in idle.values():
            for _, connection in connections:
                await connection.aclose()

    async def send(self, url: str, secret: str, message_id: str, body: bytes) -> Attempt:
        started = time.perf_counter()
        try:
            target, host_header, origin = await self._target(url)
            now = datetime.now(UTC)
            signature = self._signer(secret).sign(message_id, now, body)
            async with self._open:
                connection = await self._checkout(origin)
                try:
                    response = await connection.request(
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
                        extensions={"timeout": self._timeouts, "sni_hostname": origin[2]},
                    )
                finally:
                    self._checkin(origin, connection)
        except _Blocked as exc:
            return Attempt(False, None, str(exc), _ms(started))
        except httpcore.TimeoutException:
            return Attempt(False, None, "timed out", _ms(started))
        except _NETWORK_ERRORS as exc:
            return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
        ok = 200 <= response.status < 300
        error = None if ok else f"answered {response.status}"
        return Attempt(ok, response.status, error, _ms(started))

    async def _checkout(self, origin: _Origin) -> httpcore.AsyncConnectionPool:
        """The connection to ``origin`` used last (the others expire first), or a new one,
        closing the connection idle longest when ``max_connections`` are open; connections
        idle past the keep-alive are closed on the way."""
        self._busy += 1
        try:
            now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + _KEEPALIVE
                await self._sweep(now - _KEEPALIVE)
            idle = self._idle.get(origin)
            if idle:
                self._idle_count -= 1
                return idle.pop()[1]
            if self._busy + self._idle_count > self._max_connections:
                oldest = min((c for c in self._idle.values() if c), key=lambda c: c[0][0])
                self._idle_count -= 1
                await oldest.pop(0)[1].aclose()
        except BaseException:
            self._busy -= 1
            raise
        # The pool reconnects when the receiver closed its keep-alive connection.
        return httpcore.AsyncConnectionPool(max_connections=1, keepalive_expiry=_KEEPALIVE)

    def _checkin(self, origin: _Origin, connection: httpcore.AsyncConnectionPool) -> None:
        self._busy -= 1
        self._idle.setdefault(origin, []).append((time.monotonic(), connection))
        self._idle_count += 1

    async def _sweep(self, before: float) -> None:
        for origin, idle in list(self._idle.items()):
            expired = 0
            while expired < len(idle) and idle[expired][0] < before:
                expired += 1
            stale = idle[:expired]
            del idle[:expired]
            self._idle_count -= expired
            if not idle and self._idle.get(origin) is idle:
                del self._idle[origin]
            for _, connection in stale:
                await connection.aclose()

    def _signer(self, secret: str) -> Webhook:
        signer = self._signers.get(secret)
        if signer is None:
            signer = self._signers[secret] = Webhook(secret)
        return signer

    async def _target(self, url: str) -> tuple[str, str, _Origin]:
        """The URL to connect to (the checked address), its ``Host`` header, and where the
        connection goes."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._address(host, port)
        shown = f"[{address}]" if ":" in address else address
        netloc = f"{shown}:{parts.port}" if parts.port else shown
        host_header = parts.netloc.rpartition("@")[2]
        origin = (parts.scheme, netloc, host)
        return urlunsplit(parts._replace(netloc=netloc)), host_header, origin

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
