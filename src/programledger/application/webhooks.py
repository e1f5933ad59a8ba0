"""Webhook endpoints: what admins register, check, enable, disable, rewind and remove.

These are operations records, not domain facts: registering an endpoint is not a command
and records no event. :class:`WebhookAdmin` checks what an admin asks for and says what is
wrong in terms they can fix; it keeps no state of its own, the :class:`WebhookStore` port
does (``adapters/postgres/webhooks.py``). The delivery worker
(``adapters/webhooks/worker.py``) reads the same store.

A URL must be ``http`` or ``https``, without credentials (they would show in every log);
a literal private or loopback address is refused unless the deployment allows them
(``PROGRAMLEDGER_WEBHOOK_ALLOW_PRIVATE``), and the worker checks every address a name
resolves to again at each delivery.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import msgspec

__all__ = [
    "SECRET_PREFIX",
    "InvalidWebhook",
    "Registered",
    "WebhookAdmin",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookError",
    "WebhookNotFound",
    "WebhookStore",
    "WebhookTarget",
    "check_secret",
    "is_public_address",
]

SECRET_PREFIX = "whsec_"
"""Standard Webhooks secrets: this prefix, then the key in base64."""
_MAX_URL = 2000
_MAX_DESCRIPTION = 500
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MAX_TYPES = 64


class WebhookError(Exception):
    """An admin's webhook request that cannot be done; the message says why."""


class InvalidWebhook(WebhookError):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class WebhookNotFound(WebhookError):
    def __init__(self, endpoint_id: UUID) -> None:
        super().__init__(f"no webhook endpoint {endpoint_id}")
        self.endpoint_id = endpoint_id


class WebhookTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where and what to deliver: an endpoint as registered."""

    url: str
    description: str | None = None
    program_id: UUID | None = None
    stream_types: tuple[str, ...] | None = None
    event_types: tuple[str, ...] | None = None


class WebhookEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint as stored (without its secret, which is shown once, at registration)."""

    endpoint_id: UUID
    target: WebhookTarget
    enabled: bool
    disabled_reason: str | None
    position: int
    """Every selected event up to here was delivered (or the endpoint was rewound here)."""
    failure_streak: int
    """Failed attempts since the last success."""
    revision: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class WebhookDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt to deliver one event."""

    delivery_id: int
    endpoint_id: UUID
    event_id: UUID
    position: int
    event_type: str
    attempt: int
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


class WebhookStore(Protocol):
    async def add(
        self, endpoint_id: UUID, target: WebhookTarget, secret: str, created_by: str, after: int
    ) -> WebhookEndpoint: ...

    async def endpoint(self, endpoint_id: UUID) -> WebhookEndpoint | None: ...

    async def endpoints(self) -> list[WebhookEndpoint]: ...

    async def event_types(self) -> frozenset[str]:
        """Every event type the store can hold (its catalogue)."""
        ...

    async def set_enabled(
        self, endpoint_id: UUID, enabled: bool, reason: str | None
    ) -> WebhookEndpoint | None: ...

    async def rewind(self, endpoint_id: UUID, position: int) -> WebhookEndpoint | None: ...

    async def remove(self, endpoint_id: UUID) -> bool: ...

    async def deliveries(
        self, endpoint_id: UUID, *, after: int | None, first: int, failed_only: bool
    ) -> list[WebhookDelivery]: ...


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` is on the public internet: not private, loopback, link-local
    (cloud metadata services), shared, reserved, multicast or unspecified, also when an
    IPv6 address embeds an IPv4 one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or address.teredo
        if isinstance(embedded, tuple):
            embedded = embedded[1]
        if embedded is not None and not is_public_address(embedded):
            return False
    return address.is_global and not address.is_multicast


def check_secret(secret: str) -> str:
    """``secret`` if it is a Standard Webhooks secret of 24 to 64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidWebhook(f"a secret starts with {SECRET_PREFIX!r}", field="secret")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise InvalidWebhook("the secret after whsec_ must be base64", field="secret") from None
    if not 24 <= len(key) <= 64:
        raise InvalidWebhook("the secret's key must be 24 to 64 bytes", field="secret")
    return secret


def _check_url(url: str, allow_private: bool) -> str:
    if len(url) > _MAX_URL:
        raise InvalidWebhook(f"the URL is over {_MAX_URL} characters", field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the port, raising ValueError when it is not one
    except ValueError as exc:
        raise InvalidWebhook(f"the URL is not valid: {exc}", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhook("the URL must be http:// or https:// with a host", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhook(
            "the URL must not carry credentials: they would show in logs; "
            "the receiver verifies the signature instead",
            field="url",
        )
    if parts.fragment:
        raise InvalidWebhook("the URL must not have a #fragment", field="url")
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        address = None
    if address is not None and not allow_private and not is_public_address(address):
        raise InvalidWebhook(
            f"{parts.hostname} is a private, loopback or reserved address; this deployment "
            "delivers to public addresses only (PROGRAMLEDGER_WEBHOOK_ALLOW_PRIVATE)",
            field="url",
        )
    return url


def _types(values: Sequence[str] | None, field: str) -> tuple[str, ...] | None:
    if values is None:
        return None
    if not values or len(values) > _MAX_TYPES:
        raise InvalidWebhook(f"give 1 to {_MAX_TYPES} values, or none for all", field=field)
    for value in values:
        if not _TOKEN.match(value):
            raise InvalidWebhook(f"{value!r} is not a type: letters, digits, _ or -", field=field)
    return tuple(sorted(set(values)))


@dataclass(frozen=True, slots=True)
class Registered:
    endpoint: WebhookEndpoint
    secret: str
    """The signing secret: shown to the admin this once."""


class WebhookAdmin:
    """The admins' webhook operations over ``store``; ``allow_private`` lets URLs name
    private and loopback addresses (development, tests, an internal receiver)."""

    def __init__(self, store: WebhookStore, *, allow_private: bool = False) -> None:
        self._store = store
        self._allow_private = allow_private

    async def register(
        self,
        actor: str,
        *,
        url: str,
        head: int,
        secret: str | None = None,
        description: str | None = None,
        program_id: UUID | None = None,
        stream_types: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        from_position: int | None = None,
    ) -> Registered:
        """A new endpoint, delivering the events after ``from_position`` (default: the
        store's ``head`` now, so only new events)."""
        if description is not None and len(description) > _MAX_DESCRIPTION:
            raise InvalidWebhook(
                f"the description is over {_MAX_DESCRIPTION} characters", field="description"
            )
        if from_position is not None and not 0 <= from_position <= head:
            raise InvalidWebhook(
                f"fromPosition must be between 0 and the head, {head}", field="fromPosition"
            )
        target = WebhookTarget(
            url=_check_url(url, self._allow_private),
            description=description,
            program_id=program_id,
            stream_types=_types(stream_types, "streamTypes"),
            event_types=_types(event_types, "eventTypes"),
        )
        if target.event_types is not None:
            unknown = sorted(set(target.event_types) - await self._store.event_types())
            if unknown:
                # Such an endpoint would wait for ever: the store refuses any other type.
                raise InvalidWebhook(
                    f"{', '.join(map(repr, unknown))}: not an event type of this store "
                    "(docs/events.md lists them)",
                    field="eventTypes",
                )
        key = (
            check_secret(secret)
            if secret is not None
            else SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
        )
        after = head if from_position is None else from_position
        endpoint = await self._store.add(uuid4(), target, key, actor, after)
        return Registered(endpoint, key)

    async def endpoint(self, endpoint_id: UUID) -> WebhookEndpoint:
        found = await self._store.endpoint(endpoint_id)
        if found is None:
            raise WebhookNotFound(endpoint_id)
        return found

    async def endpoints(self) -> list[WebhookEndpoint]:
        return await self._store.endpoints()

    async def enable(self, endpoint_id: UUID) -> WebhookEndpoint:
        """Deliver again (from where it stopped), with the failure streak reset."""
        return self._found(endpoint_id, await self._store.set_enabled(endpoint_id, True, None))

    async def disable(self, endpoint_id: UUID, reason: str) -> WebhookEndpoint:
        return self._found(endpoint_id, await self._store.set_enabled(endpoint_id, False, reason))

    async def redeliver(self, endpoint_id: UUID, after_position: int) -> WebhookEndpoint:
        """Deliver again every selected event after ``after_position``, in order, then
        carry on; the receiver sees the same ``webhook-id`` for an event it had."""
        if after_position < 0:
            raise InvalidWebhook("afterPosition must be 0 or more", field="afterPosition")
        return self._found(endpoint_id, await self._store.rewind(endpoint_id, after_position))

    async def remove(self, endpoint_id: UUID) -> None:
        if not await self._store.remove(endpoint_id):
            raise WebhookNotFound(endpoint_id)

    async def deliveries(
        self, endpoint_id: UUID, *, after: int | None, first: int, failed_only: bool
    ) -> list[WebhookDelivery]:
        await self.endpoint(endpoint_id)
        return await self._store.deliveries(
            endpoint_id, after=after, first=first, failed_only=failed_only
        )

    @staticmethod
    def _found(endpoint_id: UUID, endpoint: WebhookEndpoint | None) -> WebhookEndpoint:
        if endpoint is None:
            raise WebhookNotFound(endpoint_id)
        return endpoint
