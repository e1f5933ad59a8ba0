"""``GET /events``: the global feed as NDJSON, one NATS message of one event a line.

For downstream services that fell behind what NATS keeps, or start from scratch: every
event after ``after`` up to the safe head when the request came in (sent as the
``Programledger-Head`` header; with no more lines, resume with ``after`` at that head),
filtered by ``program``, ``streamType`` and ``eventType`` (repeat a parameter for several
values) as the subjects are. Lines are read a page at a time (the next one while the client
takes this one), so a slow client slows the reads and never fills the server's memory. Needs the
``subscriber``, ``auditor`` or ``admin`` role.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.handlers import HTTPRouteHandler
from litestar.params import QueryParameter
from litestar.response import Stream

from programledger.adapters.feed import EventLog, check_after
from programledger.adapters.feed_client import HEADER_HEAD
from programledger.api.auth import ROLES_WITH, Capability, Identity

__all__ = ["HEADER_HEAD", "NDJSON", "feed_routes"]

NDJSON = "application/x-ndjson"


def check_feed_access(identity: object) -> None:
    """Refuse a caller whose token does not allow the feed (401 without a token)."""
    if not isinstance(identity, Identity):
        raise NotAuthorizedException("no bearer token: send 'Authorization: Bearer <token>'")
    if not identity.can(Capability.FEED):
        roles = ", ".join(sorted(ROLES_WITH[Capability.FEED]))
        raise PermissionDeniedException(
            f"your token's roles do not allow the event feed; it needs one of: {roles}"
        )


def feed_routes(log: EventLog) -> list[HTTPRouteHandler]:
    @get("/events", media_type=NDJSON)
    async def events(
        request: Request[Any, Any, Any],
        after: Annotated[int, QueryParameter(ge=0)] = 0,
        program: Annotated[str | None, QueryParameter()] = None,
        stream_type: Annotated[list[str] | None, QueryParameter(name="streamType")] = None,
        event_type: Annotated[list[str] | None, QueryParameter(name="eventType")] = None,
    ) -> Stream:
        check_feed_access(request.user)
        head = await log.head()
        try:
            selection = await log.selection(program, stream_type, event_type)
            check_after(after, head)
        except ValueError as exc:
            raise ValidationException(str(exc)) from None
        return Stream(
            log.lines(after, head, selection), media_type=NDJSON, headers={HEADER_HEAD: str(head)}
        )

    return [events]
