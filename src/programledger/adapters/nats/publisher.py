"""Pipelined JetStream publishes whose acks and refusals both come back, promptly.

nats-py 2.16's ``JetStreamContext.publish_async`` would do, but when JetStream refuses a
publish its reply handler raises instead of failing the future (``APIError.from_error``
raises for 400/404/503), so the future never completes. The relay's recovery depends on
seeing a refused ``Nats-Expected-Last-Sequence`` at once rather than after an ack timeout,
so this module does the same job on nats-py's core publish and one wildcard reply
subscription: each publish gets a reply subject, each reply completes its future with the
ack or with :class:`PublishRefused`. Acks are decoded with msgspec, which also makes this
path cheaper than ``publish_async``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from programledger.application.errors import OperationalError

__all__ = ["Ack", "AckedPublisher", "PublishRefused"]

_NO_RESPONDERS = "503"


class _ApiError(msgspec.Struct, frozen=True):
    code: int = 0
    err_code: int = 0
    description: str = ""


class Ack(msgspec.Struct, frozen=True):
    """JetStream's answer to one publish; readers ignore fields they do not know."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


class PublishRefused(OperationalError):
    """JetStream answered a publish with an error, e.g. a wrong expected last sequence."""

    WRONG_LAST_SEQUENCE = 10071

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"JetStream refused the publish: {description} (code {code}/{err_code})")
        self.code = code
        self.err_code = err_code
        self.description = description


_ack_decoder = msgspec.json.Decoder(Ack)


class AckedPublisher:
    """Create with :meth:`open`; bound the publishes in flight yourself."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._skip = len(self._inbox) + 1
        self._subscription: Subscription | None = None
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[Ack]] = {}

    @classmethod
    async def open(cls, nc: NatsClient) -> AckedPublisher:
        """Subscribe to this publisher's replies; nats-py renews the subscription after a
        reconnect."""
        publisher = cls(nc)
        publisher._subscription = await nc.subscribe(
            f"{publisher._inbox}.*", cb=publisher._on_reply
        )
        return publisher

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Ack]:
        """Send one message; the future completes with its :class:`Ack` or fails with
        :class:`PublishRefused`. A reply that never comes (a lost connection) is the
        caller's timeout to enforce."""
        token = str(next(self._tokens))
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        try:
            await self._nc.publish(
                subject, payload, reply=f"{self._inbox}.{token}", headers=headers
            )
        except BaseException:
            del self._waiting[token]
            raise
        return future

    async def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject[self._skip :], None)
        if future is None or future.done():
            return
        if not msg.data and msg.headers and msg.headers.get("Status") == _NO_RESPONDERS:
            future.set_exception(PublishRefused(503, 0, "no stream captures the subject"))
            return
        try:
            ack = _ack_decoder.decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            future.set_exception(PublishRefused(0, 0, f"unreadable reply: {exc}"))
            return
        if ack.error is not None:
            error = ack.error
            future.set_exception(PublishRefused(error.code, error.err_code, error.description))
        else:
            future.set_result(ack)

    def abandon(self) -> None:
        """Forget every publish in flight (their replies, if any, are ignored)."""
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.cancel()

    async def close(self) -> None:
        self.abandon()
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
