"""Webhook endpoints in GraphQL: admins register, list, enable, disable, rewind and remove
them, and read each one's delivery log (see docs/webhooks.md).

Not domain commands: these fields go through ``application.webhooks.WebhookAdmin``, record
no event, and refuse bad input with a ``BAD_USER_INPUT`` error naming the field (an unknown
endpoint is ``NOT_FOUND``). Every field needs the ``admin`` role.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry
from strawberry.exceptions import StrawberryGraphQLError

from programledger.api.auth import Capability
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.permissions import allowed
from programledger.api.graphql.subscriptions import StreamType
from programledger.api.graphql.types import SafeInt
from programledger.application.webhooks import (
    InvalidWebhook,
    WebhookAdmin,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookError,
    WebhookNotFound,
)

__all__ = ["WebhookMutations", "WebhookQueries"]

_STREAM_TYPES = frozenset(s.value for s in StreamType)

DELIVERIES_PAGE = 50
_MAX_PAGE = 200


@strawberry.type(name="WebhookEndpoint")
class WebhookEndpointType:
    endpoint_id: strawberry.ID
    url: str
    description: str | None
    program_id: strawberry.ID | None
    stream_types: list[StreamType] | None = strawberry.field(
        description="The kinds of stream selected; null: every kind. (A kind stored by a "
        "release that took any name, and unknown here, is left out: it never matched.)"
    )
    event_types: list[str] | None
    enabled: bool
    disabled_reason: str | None
    position: SafeInt = strawberry.field(
        description="Every selected event up to this position has been delivered."
    )
    failure_streak: int = strawberry.field(description="Failed attempts since the last success.")
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, e: WebhookEndpoint) -> WebhookEndpointType:
        t = e.target
        return cls(
            endpoint_id=strawberry.ID(str(e.endpoint_id)),
            url=t.url,
            description=t.description,
            program_id=None if t.program_id is None else strawberry.ID(str(t.program_id)),
            stream_types=None
            if t.stream_types is None
            else [StreamType(s) for s in t.stream_types if s in _STREAM_TYPES],
            event_types=None if t.event_types is None else list(t.event_types),
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
            position=SafeInt(e.position),
            failure_streak=e.failure_streak,
            created_by=e.created_by,
            created_at=e.created_at,
            updated_at=e.updated_at,
        )


@strawberry.type(name="RegisteredWebhookEndpoint")
class RegisteredType:
    endpoint: WebhookEndpointType
    secret: str = strawberry.field(
        description="The signing secret (whsec_...): shown this once; keep it with the receiver."
    )


@strawberry.type(name="WebhookDelivery", description="One attempt to deliver one event.")
class WebhookDeliveryType:
    delivery_id: SafeInt
    event_id: strawberry.ID
    position: SafeInt
    event_type: str
    attempt: int
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime

    @classmethod
    def of(cls, d: WebhookDelivery) -> WebhookDeliveryType:
        return cls(
            delivery_id=SafeInt(d.delivery_id),
            event_id=strawberry.ID(str(d.event_id)),
            position=SafeInt(d.position),
            event_type=d.event_type,
            attempt=d.attempt,
            succeeded=d.succeeded,
            status_code=d.status_code,
            error=d.error,
            duration_ms=d.duration_ms,
            attempted_at=d.attempted_at,
        )


@strawberry.input(name="RegisterWebhookEndpointInput")
class RegisterInput:
    url: str
    description: str | None = None
    secret: str | None = strawberry.field(
        default=None, description="whsec_ and 24-64 bytes in base64; default: a new one."
    )
    program_id: strawberry.ID | None = None
    stream_types: list[StreamType] | None = None
    event_types: list[str] | None = None
    from_position: SafeInt | None = strawberry.field(
        default=None,
        description="Deliver the events after this position; default: only new ones.",
    )


def _error(exc: WebhookError) -> StrawberryGraphQLError:
    if isinstance(exc, WebhookNotFound):
        return StrawberryGraphQLError(str(exc), extensions={"code": "NOT_FOUND"})
    field = exc.field if isinstance(exc, InvalidWebhook) else None
    return StrawberryGraphQLError(str(exc), extensions={"code": "BAD_USER_INPUT", "field": field})


def _id(value: str, name: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise StrawberryGraphQLError(
            f"{name} must be a UUID", extensions={"code": "BAD_USER_INPUT", "field": name}
        ) from None


def _admin(info: ApiInfo) -> WebhookAdmin:
    admin = info.context.services.webhooks
    assert admin is not None  # create_app always wires one
    return admin


async def _endpoints(info: ApiInfo) -> list[WebhookEndpointType]:
    return [WebhookEndpointType.of(e) for e in await _admin(info).endpoints()]


async def _deliveries(
    info: ApiInfo,
    endpoint_id: strawberry.ID,
    first: int = DELIVERIES_PAGE,
    before: SafeInt | None = None,
    failed_only: bool = False,
) -> list[WebhookDeliveryType]:
    """Newest first; pass the last deliveryId as ``before`` for the next page."""
    if not 1 <= first <= _MAX_PAGE:
        raise StrawberryGraphQLError(
            f"first must be between 1 and {_MAX_PAGE}", extensions={"code": "BAD_USER_INPUT"}
        )
    try:
        found = await _admin(info).deliveries(
            _id(endpoint_id, "endpointId"), after=before, first=first, failed_only=failed_only
        )
    except WebhookError as exc:
        raise _error(exc) from None
    return [WebhookDeliveryType.of(d) for d in found]


@strawberry.type
class WebhookQueries:
    webhook_endpoints: list[WebhookEndpointType] = strawberry.field(
        resolver=_endpoints,
        extensions=[allowed(Capability.OPERATE)],
        description="Every registered webhook endpoint.",
    )
    webhook_deliveries: list[WebhookDeliveryType] = strawberry.field(
        resolver=_deliveries,
        extensions=[allowed(Capability.OPERATE)],
        description="An endpoint's delivery log, newest first (every attempt).",
    )


async def _register(info: ApiInfo, input: RegisterInput) -> RegisteredType:
    identity = info.context.identity
    assert identity is not None  # the permission ran first
    program = None if input.program_id is None else _id(input.program_id, "programId")
    admin = _admin(info)
    try:
        registered = await admin.register(
            identity.subject,
            url=input.url,
            head=await info.context.services.store.head_position(),
            secret=input.secret,
            description=input.description,
            program_id=program,
            stream_types=None
            if input.stream_types is None
            else [s.value for s in input.stream_types],
            event_types=input.event_types,
            from_position=input.from_position,
        )
    except WebhookError as exc:
        raise _error(exc) from None
    return RegisteredType(
        endpoint=WebhookEndpointType.of(registered.endpoint), secret=registered.secret
    )


async def _enable(info: ApiInfo, endpoint_id: strawberry.ID) -> WebhookEndpointType:
    try:
        return WebhookEndpointType.of(await _admin(info).enable(_id(endpoint_id, "endpointId")))
    except WebhookError as exc:
        raise _error(exc) from None


async def _disable(
    info: ApiInfo, endpoint_id: strawberry.ID, reason: str = "disabled by an admin"
) -> WebhookEndpointType:
    try:
        found = await _admin(info).disable(_id(endpoint_id, "endpointId"), reason[:500])
    except WebhookError as exc:
        raise _error(exc) from None
    return WebhookEndpointType.of(found)


async def _redeliver(
    info: ApiInfo, endpoint_id: strawberry.ID, after_position: SafeInt
) -> WebhookEndpointType:
    try:
        found = await _admin(info).redeliver(_id(endpoint_id, "endpointId"), after_position)
    except WebhookError as exc:
        raise _error(exc) from None
    return WebhookEndpointType.of(found)


async def _remove(info: ApiInfo, endpoint_id: strawberry.ID) -> strawberry.ID:
    try:
        await _admin(info).remove(_id(endpoint_id, "endpointId"))
    except WebhookError as exc:
        raise _error(exc) from None
    return endpoint_id


@strawberry.type
class WebhookMutations:
    register_webhook_endpoint: RegisteredType = strawberry.field(
        resolver=_register,
        extensions=[allowed(Capability.OPERATE)],
        description="Deliver the selected events to a URL, signed (Standard Webhooks).",
    )
    enable_webhook_endpoint: WebhookEndpointType = strawberry.field(
        resolver=_enable,
        extensions=[allowed(Capability.OPERATE)],
        description="Deliver again, from where it stopped, with the failure streak reset.",
    )
    disable_webhook_endpoint: WebhookEndpointType = strawberry.field(
        resolver=_disable, extensions=[allowed(Capability.OPERATE)]
    )
    redeliver_webhook_events: WebhookEndpointType = strawberry.field(
        resolver=_redeliver,
        extensions=[allowed(Capability.OPERATE)],
        description="Deliver every selected event after afterPosition again, in order.",
    )
    remove_webhook_endpoint: strawberry.ID = strawberry.field(
        resolver=_remove, extensions=[allowed(Capability.OPERATE)]
    )
