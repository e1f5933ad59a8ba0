"""A client of the API's global feed (``GET /events``), for downstream services.

It is what the subscriber helper backfills from when the NATS stream no longer holds the
events a consumer asks for: a downstream service reaches the API with a ``subscriber``
token, never the event store itself. Lines are read as they arrive, so memory stays at a
line however far behind the consumer is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import msgspec

from programledger.adapters.nats.envelope import EventEnvelope
from programledger.adapters.nats.subscriber import EventSelection
from programledger.application.errors import OperationalError

__all__ = ["FeedClient", "FeedRefused"]

HEADER_HEAD = "Programledger-Head"
"""The safe head a response reads up to (``api/feed.py`` sends it)."""


class FeedRefused(OperationalError):
    """The API answered the feed request with an error (the message gives its answer)."""


class _Line(msgspec.Struct, frozen=True):
    envelope: EventEnvelope


_line_decoder = msgspec.json.Decoder(_Line)


class FeedClient:
    """Reads ``<api_url>/events`` with a bearer token (a string, or a function giving the
    current one, for tokens that are renewed); ``client`` to share an ``httpx`` client."""

    def __init__(
        self,
        api_url: str,
        token: str | Callable[[], str],
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._url = api_url.rstrip("/") + "/events"
        self._token = token
        self._client = client
        self._timeout = timeout

    async def events(
        self, after: int, selection: EventSelection
    ) -> AsyncIterator[EventEnvelope | int]:
        """The selected events after ``after`` up to the API's safe head, then that head."""
        params: list[tuple[str, str | int | float | bool | None]] = [("after", str(after))]
        if selection.program_id is not None:
            params.append(("program", str(selection.program_id)))
        params += [("streamType", t) for t in sorted(selection.stream_types or ())]
        params += [("eventType", t) for t in sorted(selection.event_types or ())]
        token = self._token() if callable(self._token) else self._token
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/x-ndjson"}
        client = self._client or httpx.AsyncClient(timeout=self._timeout)
        try:
            async with client.stream(
                "GET", self._url, params=tuple(params), headers=headers
            ) as answer:
                if answer.status_code != 200:
                    body = (await answer.aread()).decode(errors="replace")[:500]
                    raise FeedRefused(
                        f"the event feed at {self._url} answered {answer.status_code}: {body}"
                    )
                head = int(answer.headers[HEADER_HEAD])
                async for line in answer.aiter_lines():
                    if line:
                        yield _line_decoder.decode(line).envelope
                yield head
        finally:
            if self._client is None:
                await client.aclose()
