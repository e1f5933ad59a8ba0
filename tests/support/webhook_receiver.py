"""A webhook receiver run by a test (or a benchmark): it records what it gets, and can
fail the first requests, answer slowly, and verify signatures with ``standardwebhooks``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, post
from standardwebhooks import Webhook, WebhookVerificationError

from programledger.api.server import http_server
from programledger.bootstrap import http_service
from programledger.bootstrap.supervisor import supervised

__all__ = ["Received", "Receiver", "running_receiver"]


@dataclass(frozen=True, slots=True)
class Received:
    headers: dict[str, str]
    payload: dict[str, Any]
    at: float
    """``time.time()`` when it arrived."""


@dataclass
class Receiver:
    url: str = ""
    fail_first: int = 0
    """Answer 503 to this many requests first."""
    delay: float = 0.0
    """Seconds to take before answering each request."""
    secret: str | None = None
    """Verify each request's signature with this secret (401 when it does not verify)."""
    requests: int = 0
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request[Any, Any, Any]) -> Response[str]:
        body = await request.body()
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.requests <= self.fail_first:
            return Response("try later", status_code=503)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if self.secret is not None:
            try:
                payload = Webhook(self.secret).verify(body, headers)
            except WebhookVerificationError as exc:
                self.refused.append(str(exc))
                return Response("bad signature", status_code=401)
        else:
            payload = json.loads(body)
        self.received.append(Received(headers, payload, time.time()))
        self.arrived.set()
        return Response("ok", status_code=200)

    def positions(self) -> list[int]:
        return [r.payload["data"]["position"] for r in self.received]

    async def wait_for_positions(self, positions: set[int], within: float = 30) -> None:
        """Until every one of ``positions`` arrived (at least once)."""
        async with asyncio.timeout(within):
            while not positions <= set(self.positions()):
                self.arrived.clear()
                await self.arrived.wait()

    async def wait_for(self, count: int, within: float = 30) -> None:
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def running_receiver(receiver: Receiver) -> AsyncIterator[Receiver]:
    @post("/hook", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> Response[str]:
        return await receiver.handle(request)

    app = Litestar([hook], openapi_config=None, logging_config=None)
    server = http_server(app, "127.0.0.1", 0)
    async with supervised([http_service(server)], up=server.wait_started):
        receiver.url = f"{server.url}/hook"
        yield receiver
