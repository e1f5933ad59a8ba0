"""Webhooks: admins register endpoints; the worker delivers each selected event, signed
per Standard Webhooks, in order per program, retried, logged, disabled after a failure
streak, redelivered on request, and never to private addresses unless allowed.

Receivers are run by the test (``tests/support/webhook_receiver.py``); the relay and the
worker run as in production, on this test's schema and NATS prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import nats
import pytest
from nats.aio.client import Client as NatsClient

from programledger.adapters.webhooks.sender import WebhookSender
from programledger.adapters.webhooks.worker import WebhookSettings, WebhookWorker
from programledger.api import Role
from programledger.application.webhooks import is_public_address
from tests.e2e.conftest import Api, ApiFactory, new_id, program_input, running_relay
from tests.e2e.test_event_feed import capacity_changes
from tests.support.relay_process import eventually
from tests.support.webhook_receiver import Receiver, running_receiver

P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
P2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

ENDPOINT = """endpointId url enabled disabledReason position failureStreak
  programId streamTypes eventTypes"""


@contextlib.asynccontextmanager
async def delivering(
    api: Api, pg_url: str, nats_url: str, subject_prefix: str, **settings: Any
) -> AsyncIterator[WebhookWorker]:
    """The relay and a webhook worker with short retries, on loopback receivers."""
    options: dict[str, Any] = {
        "allow_private": True,
        "retry_initial": 0.05,
        "retry_max": 0.2,
        "poll_interval": 0.1,
        "fetch_wait": 0.2,
        "standby_poll_interval": 0.1,
    }
    options.update(settings)
    nc: NatsClient = await nats.connect(nats_url)
    worker = WebhookWorker(
        api.store,
        database_url=pg_url,
        nc=nc,
        settings=WebhookSettings(prefix=subject_prefix, **options),
    )
    async with running_relay(api, pg_url, nats_url, subject_prefix):
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, 15)
            await nc.close()


async def admin(api: Api, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = await api.post(query, variables, headers=api.auth(Role.ADMIN))
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def register(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    data = await admin(
        api,
        f"""mutation R($input: RegisterWebhookEndpointInput!) {{
          registerWebhookEndpoint(input: $input) {{ secret endpoint {{ {ENDPOINT} }} }} }}""",
        {"input": {"url": url, **fields}},
    )
    registered: dict[str, Any] = data["registerWebhookEndpoint"]
    return registered


async def endpoint(api: Api, endpoint_id: str) -> dict[str, Any]:
    data = await admin(api, f"{{ webhookEndpoints {{ {ENDPOINT} }} }}")
    return next(e for e in data["webhookEndpoints"] if e["endpointId"] == endpoint_id)


async def test_deliveries_are_signed_in_order_per_program_and_filtered(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with (
        api_with(allow_private_webhooks=True) as api,
        running_receiver(Receiver(secret=SECRET)) as everything,
        running_receiver(Receiver(secret=SECRET)) as only_p1,
    ):
        await register(api, everything.url, secret=SECRET, fromPosition=0)
        await register(api, only_p1.url, secret=SECRET, programId=str(P1), fromPosition=0)
        async with delivering(api, pg_url, nats_url, subject_prefix):
            for i in range(5):
                await capacity_changes(api.store, 4, key=f"a{i}", program_id=P1)
                await capacity_changes(api.store, 3, key=f"b{i}", program_id=P2)
            await capacity_changes(api.store, 2, key="c")
            await everything.wait_for(37)
            await only_p1.wait_for(20)
        events = await api.store.read_all(0, 1000)
        assert not everything.refused
        assert not only_p1.refused
        # Every event once, each program's in position order (Standard Webhooks payload).
        assert sorted(everything.positions()) == [e.position for e in events]
        for program in (str(P1), str(P2), None):
            mine = [
                r.payload["data"]["position"]
                for r in everything.received
                if r.payload["data"]["program_id"] == program
            ]
            assert mine == sorted(mine)
        assert only_p1.positions() == [e.position for e in events if e.metadata.program_id == P1]
        first = everything.received[0]
        assert first.headers["webhook-id"] == first.payload["data"]["event_id"]
        assert first.payload["type"] == first.payload["data"]["event_type"]
        assert first.headers["webhook-signature"].startswith("v1,")


async def test_a_failing_receiver_is_retried_until_it_recovers_and_the_log_shows_it(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with (
        api_with(allow_private_webhooks=True) as api,
        running_receiver(Receiver(fail_first=4)) as receiver,
    ):
        registered = await register(api, receiver.url, fromPosition=0)
        endpoint_id = registered["endpoint"]["endpointId"]
        async with delivering(api, pg_url, nats_url, subject_prefix):
            await capacity_changes(api.store, 5, program_id=P1)
            await receiver.wait_for(5)

            async def saved() -> bool:
                return bool((await endpoint(api, endpoint_id))["position"] == 5)

            await eventually(saved, within=30)
        assert receiver.positions() == [1, 2, 3, 4, 5]
        found = await endpoint(api, endpoint_id)
        assert found["enabled"]
        assert found["failureStreak"] == 0
        data = await admin(
            api,
            """query D($id: ID!) { webhookDeliveries(endpointId: $id, first: 200) {
              position attempt succeeded statusCode error } }""",
            {"id": endpoint_id},
        )
        log = list(reversed(data["webhookDeliveries"]))
        assert [(d["position"], d["attempt"], d["succeeded"]) for d in log[:5]] == [
            (1, 1, False),
            (1, 2, False),
            (1, 3, False),
            (1, 4, False),
            (1, 5, True),
        ]
        assert log[0]["statusCode"] == 503
        assert log[0]["error"] == "answered 503"
        assert [d["position"] for d in log if d["succeeded"]] == [1, 2, 3, 4, 5]


async def test_a_slow_receiver_times_out_is_disabled_and_does_not_hold_back_another(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with (
        api_with(allow_private_webhooks=True) as api,
        running_receiver(Receiver(delay=2.0)) as slow,
        running_receiver(Receiver()) as fast,
    ):
        slow_id = (await register(api, slow.url, fromPosition=0))["endpoint"]["endpointId"]
        await register(api, fast.url, fromPosition=0)
        async with delivering(api, pg_url, nats_url, subject_prefix, timeout=0.3, disable_after=3):
            await capacity_changes(api.store, 10, program_id=P1)
            await fast.wait_for(10)

            async def disabled() -> bool:
                return (await endpoint(api, slow_id))["enabled"] is False

            await eventually(disabled, within=30)
            found = await endpoint(api, slow_id)
            assert "3 failed attempts in a row" in found["disabledReason"]
            assert "timed out" in found["disabledReason"]
            assert found["position"] == 0

            # The receiver gets faster; an admin enables the endpoint again: it resumes.
            slow.delay = 0.0
            await admin(
                api,
                "mutation E($id: ID!) { enableWebhookEndpoint(endpointId: $id) { enabled } }",
                {"id": slow_id},
            )
            await slow.wait_for_positions(set(range(1, 11)))
        assert fast.positions() == list(range(1, 11)), (fast.positions(), slow.positions())
        # A request that timed out may still have been handled (the receiver only answered
        # late): at least once. What the worker saw arrive is each event once, in order.
        assert set(slow.positions()) == set(range(1, 11))
        data = await admin(
            api,
            """query D($id: ID!) { webhookDeliveries(endpointId: $id, first: 200) {
              position succeeded } }""",
            {"id": slow_id},
        )
        arrived = [d["position"] for d in reversed(data["webhookDeliveries"]) if d["succeeded"]]
        assert arrived == list(range(1, 11))


async def test_redelivery_sends_again_from_a_position_in_order(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with (
        api_with(allow_private_webhooks=True) as api,
        running_receiver(Receiver()) as receiver,
    ):
        registered = await register(api, receiver.url, fromPosition=0)
        endpoint_id = registered["endpoint"]["endpointId"]
        async with delivering(api, pg_url, nats_url, subject_prefix):
            await capacity_changes(api.store, 6, program_id=P1)
            await receiver.wait_for(6)
            data = await admin(
                api,
                """mutation R($id: ID!) {
                  redeliverWebhookEvents(endpointId: $id, afterPosition: 3) { position } }""",
                {"id": endpoint_id},
            )
            assert data["redeliverWebhookEvents"]["position"] == 3
            await receiver.wait_for(9)
        assert receiver.positions() == [1, 2, 3, 4, 5, 6, 4, 5, 6]


async def test_an_endpoint_gets_only_new_events_of_the_kinds_and_types_it_selects(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with (
        api_with(allow_private_webhooks=True) as api,
        running_receiver(Receiver()) as by_type,
        running_receiver(Receiver()) as by_kind,
    ):
        await capacity_changes(api.store, 3)
        await register(api, by_type.url, eventTypes=["ResourceCapacityChanged"])
        registered = await register(api, by_kind.url, streamTypes=["RESOURCE"])
        assert registered["endpoint"]["streamTypes"] == ["RESOURCE"]
        async with delivering(api, pg_url, nats_url, subject_prefix):
            await api.accepted("proposeProgram", program_input(new_id()))
            changes = await capacity_changes(api.store, 2)
            await by_type.wait_for(2)
            await by_kind.wait_for(2)
            kind_id = registered["endpoint"]["endpointId"]

            async def passed_all() -> bool:
                return bool((await endpoint(api, kind_id))["position"] >= changes.last_position)

            # Every earlier event was judged too (delivered or left out), in whatever order.
            await eventually(passed_all)
        new = list(range(changes.first_position, changes.last_position + 1))
        assert by_type.positions() == by_kind.positions() == new


@pytest.mark.parametrize(
    ("selection", "says"),
    [
        # A misspelt type would match nothing for ever.
        ({"eventTypes": ["RiskRaised", "RiskIdentified"]}, "'RiskRaised': not an event type"),
        ({"streamTypes": ["resource"]}, "StreamType"),
    ],
)
async def test_an_endpoint_names_only_what_the_store_can_hold(
    api: Api, selection: dict[str, list[str]], says: str
) -> None:
    response = await api.post(
        """mutation R($input: RegisterWebhookEndpointInput!) {
          registerWebhookEndpoint(input: $input) { secret } }""",
        {"input": {"url": "https://example.com/hook", **selection}},
        headers=api.auth(Role.ADMIN),
    )
    [error] = response.json()["errors"]
    assert says in error["message"]
    assert (await admin(api, "{ webhookEndpoints { endpointId } }"))["webhookEndpoints"] == []


async def test_private_addresses_are_refused_unless_allowed(api: Api) -> None:
    for url in ("http://127.0.0.1:9/hook", "http://[::1]/x", "http://169.254.169.254/latest"):
        response = await api.post(
            """mutation R($input: RegisterWebhookEndpointInput!) {
              registerWebhookEndpoint(input: $input) { secret } }""",
            {"input": {"url": url}},
            headers=api.auth(Role.ADMIN),
        )
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "private" in error["message"]
    for url, says in (
        ("ftp://example.com/x", "http"),
        ("https://user:pw@example.com/x", "credentials"),
        ("https://example.com/x", None),
    ):
        response = await api.post(
            """mutation R($input: RegisterWebhookEndpointInput!) {
              registerWebhookEndpoint(input: $input) { secret endpoint { url } } }""",
            {"input": {"url": url, "eventTypes": ["RiskIdentified"]}},
            headers=api.auth(Role.ADMIN),
        )
        body = response.json()
        if says is None:
            assert body["data"]["registerWebhookEndpoint"]["secret"].startswith("whsec_")
        else:
            assert says in body["errors"][0]["message"]


async def test_the_sender_checks_every_resolved_address() -> None:
    async with running_receiver(Receiver()) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        sender = WebhookSender(timeout=2, allow_private=False)
        try:
            # A name that resolves to loopback is refused, as a literal address is.
            for url in (f"http://localhost:{port}/hook", receiver.url):
                attempt = await sender.send(url, SECRET, "msg_1", b"{}")
                assert not attempt.succeeded
                assert "not a public address" in (attempt.error or "")
        finally:
            await sender.close()
        assert receiver.requests == 0
        allowed = WebhookSender(timeout=2, allow_private=True)
        try:
            attempt = await allowed.send(f"http://localhost:{port}/hook", SECRET, "msg_1", b"{}")
        finally:
            await allowed.close()
        assert attempt.succeeded
        assert receiver.received[0].headers["host"] == f"localhost:{port}"


class _Counting(asyncio.Protocol):
    """A receiver that answers ``200`` to every request and counts its connections."""

    opened = 0
    open_now = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        cls = type(self)
        cls.opened += 1
        cls.open_now += 1

    def connection_lost(self, exc: Exception | None) -> None:
        type(self).open_now -= 1

    def data_received(self, data: bytes) -> None:
        # The test's bodies are "{}": a request has arrived with its last two bytes.
        if data.endswith(b"}"):
            self._transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


async def test_the_sender_keeps_connections_alive_within_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connections are reused, one request at a time each, never more than
    ``max_connections`` open over all receivers, and closed once idle past the keep-alive."""

    class Counting(_Counting):
        pass

    # Counted where they are opened and closed: the receiver may see a new connection
    # before the end of the one closed for it.
    open_now: set[httpcore.AsyncConnectionPool] = set()
    most_open = 0

    class Connection(httpcore.AsyncConnectionPool):
        def __init__(self, **options: Any) -> None:
            nonlocal most_open
            super().__init__(**options)
            open_now.add(self)
            most_open = max(most_open, len(open_now))

        async def aclose(self) -> None:
            open_now.discard(self)
            await super().aclose()

    monkeypatch.setattr(
        "programledger.adapters.webhooks.sender.httpcore.AsyncConnectionPool", Connection
    )
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(Counting, "127.0.0.1", 0) for _ in range(2)]
    urls = [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/hook" for s in servers]
    url = urls[0]
    sender = WebhookSender(timeout=2, allow_private=True, max_connections=3)
    try:
        attempts = await asyncio.gather(
            *(sender.send(urls[n % 2], SECRET, f"msg_{n}", b"{}") for n in range(24))
        )
        assert all(a.succeeded for a in attempts)
        assert most_open <= 3
        opened = Counting.opened
        for n in range(5):
            assert (await sender.send(url, SECRET, f"again_{n}", b"{}")).succeeded
        # At most one more: the idle connections kept may all have been the other's.
        assert Counting.opened <= opened + 1
        assert most_open <= 3
        monkeypatch.setattr("programledger.adapters.webhooks.sender._KEEPALIVE", 0.05)
        sender._next_sweep = 0.0
        await asyncio.sleep(0.1)
        assert (await sender.send(url, SECRET, "later", b"{}")).succeeded
        await eventually(lambda: Counting.open_now == 1, within=5)
        await sender.close()
        await eventually(lambda: Counting.open_now == 0, within=5)
    finally:
        await sender.close()
        for server in servers:
            server.close()
            await server.wait_closed()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_only_admins_manage_webhooks(api: Api) -> None:
    for role in (Role.EDITOR, Role.AUDITOR, Role.SUBSCRIBER):
        response = await api.post("{ webhookEndpoints { url } }", headers=api.auth(role))
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_two_workers_deliver_each_event_once_one_active(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with (
        api_with(allow_private_webhooks=True) as api,
        running_receiver(Receiver()) as receiver,
    ):
        await register(api, receiver.url, fromPosition=0)
        async with (
            delivering(api, pg_url, nats_url, subject_prefix) as first,
            contextlib.AsyncExitStack() as stack,
        ):
            nc = await nats.connect(nats_url)
            stack.push_async_callback(nc.close)
            second = WebhookWorker(
                api.store,
                database_url=pg_url,
                nc=nc,
                settings=WebhookSettings(
                    prefix=subject_prefix, allow_private=True, standby_poll_interval=0.1
                ),
            )
            task = asyncio.create_task(second.run())
            stack.callback(second.stop)
            try:
                await capacity_changes(api.store, 20, program_id=P1)
                await receiver.wait_for(20)
                assert [first.is_active, second.is_active].count(True) == 1
                # The active one stops: the standby takes over and goes on from the position.
                first.stop()
                await eventually(lambda: second.is_active, within=20)
                await capacity_changes(api.store, 5, program_id=P1)
                await receiver.wait_for(25)
            finally:
                second.stop()
                await asyncio.wait_for(task, 15)
        assert receiver.positions()[:20] == list(range(1, 21))
        assert sorted(set(receiver.positions())) == list(range(1, 26))
