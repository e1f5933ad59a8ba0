"""The global feed (``GET /events``, ``eventFeed``) and the subscriber helper's backfill.

The feed must give exactly what NATS gives (subject, headers, envelope) for every event
ever recorded, filtered as the subjects are, never past a position an open transaction
could still fill, to the roles that may read it; and a subscriber whose position the
stream no longer holds catches up from it and carries on from NATS, every event once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import nats
import pytest
from nats.js import JetStreamContext

from programledger.adapters.feed_client import FeedClient, FeedRefused
from programledger.adapters.nats.relay import Relay
from programledger.adapters.nats.stream import stream_name
from programledger.adapters.nats.subscriber import EventsExpired, subscribe
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.api import Role
from programledger.application.eventstore import AppendResult, EventMetadata, ExpectedVersion
from programledger.domain.resource import ResourceCapacityChanged
from tests.e2e.conftest import Api, new_id, program_input
from tests.support.relay_process import eventually, stored_messages, wait_for_messages

P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")


async def capacity_changes(
    store: PostgresEventStore,
    count: int,
    *,
    key: str = "k1",
    program_id: uuid.UUID | None = None,
    settle: bool = True,
) -> AppendResult:
    """``count`` events in one append to resource ``key``; with ``settle``, once the safe
    head has reached them: any transaction open on the PostgreSQL cluster (other tests
    share it) holds the head back for a moment."""
    events = [
        ResourceCapacityChanged(resource_key=key, capacity=i % 100, effective_from=None, reason="x")
        for i in range(count)
    ]
    meta = EventMetadata(actor="test", program_id=program_id)
    result = await store.append(f"resource-{key}", ExpectedVersion.ANY, events, meta)
    if settle:

        async def reached() -> bool:
            return await store.head_position() >= result.last_position

        await eventually(reached, within=30)
    return result


async def feed_lines(
    api: Api, role: Role = Role.SUBSCRIBER, **params: Any
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    response = await api.http.get("/events", params=params, headers=api.auth(role))
    lines = [json.loads(line) for line in response.text.splitlines() if line]
    return response, lines


async def test_the_http_feed_gives_every_event_as_nats_carries_it(
    api: Api, relay: Relay, subject_prefix: str, nats_url: str
) -> None:
    await api.accepted("proposeProgram", program_input(new_id()))
    await capacity_changes(api.store, 5, program_id=P1)
    await capacity_changes(api.store, 3, key="k2")
    head = await api.store.head_position()

    response, lines = await feed_lines(api)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["programledger-head"] == str(head)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await wait_for_messages(js, subject_prefix, head, within=15)
        stored = await stored_messages(js, subject_prefix)
        raw = [m async for m in _raw_payloads(js, subject_prefix, len(stored))]
    finally:
        await nc.close()
    assert [line["subject"] for line in lines] == [m.subject for m in stored]
    for line, message in zip(lines, stored, strict=True):
        # The relay's publish adds Nats-Expected-*, conditions of the publish.
        kept = {k: v for k, v in message.headers.items() if not k.startswith("Nats-Expected-")}
        assert line["headers"] == kept
    assert [json.dumps(line["envelope"]).encode() for line in lines] == [
        json.dumps(json.loads(p)).encode() for p in raw
    ]

    # Filters as the subjects: program, stream type, event type; after.
    _, mine = await feed_lines(api, program=str(P1))
    assert len(mine) == 5
    assert all(x["envelope"]["program_id"] == str(P1) for x in mine)
    _, resources = await feed_lines(api, streamType="resource", eventType="ResourceCapacityChanged")
    assert len(resources) == 8
    _, later = await feed_lines(api, after=lines[3]["envelope"]["position"])
    assert later == lines[4:]
    # A type the store holds none of yet selects nothing; one it cannot hold is refused.
    _, nothing = await feed_lines(api, eventType="RiskIdentified")
    assert nothing == []


async def _raw_payloads(js: JetStreamContext, prefix: str, count: int) -> Any:
    for sequence in range(1, count + 1):
        yield (await js.get_msg(stream_name(prefix), sequence)).data


async def test_the_feed_streams_past_a_page_and_pages_in_graphql(api: Api) -> None:
    await capacity_changes(api.store, 1000)
    await capacity_changes(api.store, 500, key="k2")
    _, lines = await feed_lines(api, Role.AUDITOR)
    positions = [line["envelope"]["position"] for line in lines]
    assert positions == sorted(set(positions))
    assert len(positions) == 1500

    query = """query Feed($after: String, $filter: EventFeedFilter) {
      eventFeed(after: $after, first: 200, filter: $filter) {
        nodes { position subject headers { name value } envelope }
        pageInfo { hasNextPage endCursor } headPosition } }"""
    seen: list[int] = []
    after = None
    while True:
        response = await api.post(query, {"after": after}, headers=api.auth(Role.SUBSCRIBER))
        assert "errors" not in response.json(), response.json()
        page = response.json()["data"]["eventFeed"]
        seen += [node["position"] for node in page["nodes"]]
        assert all(n["envelope"]["position"] == n["position"] for n in page["nodes"])
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    assert seen == positions
    assert after == str(page["headPosition"]) == str(positions[-1])

    # A filter that matches nothing still moves the cursor up to the head.
    response = await api.post(
        query, {"filter": {"eventTypes": ["RiskIdentified"]}}, headers=api.auth(Role.ADMIN)
    )
    page = response.json()["data"]["eventFeed"]
    assert page["nodes"] == []
    assert page["pageInfo"]["endCursor"] == str(positions[-1])
    # A type the store cannot hold (a misspelling) would match nothing for ever: refused.
    response = await api.post(
        query, {"filter": {"eventTypes": ["NoSuchEvent"]}}, headers=api.auth(Role.ADMIN)
    )
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "'NoSuchEvent': not in this store's catalogue" in error["message"]


async def test_the_feed_never_passes_a_position_an_open_transaction_holds(api: Api) -> None:
    await capacity_changes(api.store, 2)
    conn = await api.store.pool.acquire()
    try:
        transaction = conn.transaction()
        await transaction.start()
        meta = EventMetadata(actor="test")
        event = ResourceCapacityChanged(
            resource_key="k9", capacity=1, effective_from=None, reason="x"
        )
        held = await api.store.append(
            "resource-k9", ExpectedVersion.ANY, [event], meta, connection=conn
        )
        later = await capacity_changes(api.store, 1, key="k3", settle=False)
        assert later.last_position > held.last_position
        response, lines = await feed_lines(api)
        assert response.headers["programledger-head"] == "2"
        assert [line["envelope"]["position"] for line in lines] == [1, 2]
        await transaction.commit()
    finally:
        await api.store.pool.release(conn)

    async def settled() -> bool:
        return await api.store.head_position() == 4

    await eventually(settled, within=30)
    _, lines = await feed_lines(api)
    assert [line["envelope"]["position"] for line in lines] == [1, 2, 3, 4]


async def test_only_subscribers_auditors_and_admins_read_the_feed(api: Api) -> None:
    assert (await api.http.get("/events")).status_code == 401
    for role in (Role.VIEWER, Role.EDITOR):
        response = await api.http.get("/events", headers=api.auth(role))
        assert response.status_code == 403
        assert "subscriber" in response.text
    for role in (Role.SUBSCRIBER, Role.AUDITOR, Role.ADMIN):
        assert (await api.http.get("/events", headers=api.auth(role))).status_code == 200
    # A subscriber reads the feed and nothing else.
    response = await api.post(
        "{ programs { nodes { programId } } }", headers=api.auth(Role.SUBSCRIBER)
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    response = await api.post("{ eventFeed { nodes { position } } }", headers=api.auth(Role.VIEWER))
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"after": "-1"}, "after"),
        ({"after": "x"}, "after"),
        ({"program": "nope"}, "UUID"),
        ({"streamType": "a.b"}, "stream type"),
        ({"eventType": "*"}, "event type"),
        ({"eventType": ["RiskRaised", "ProgramProposed"]}, "'RiskRaised': not in this store"),
        ({"after": "5"}, "beyond the last position"),
    ],
)
async def test_bad_feed_requests_say_what_is_wrong(
    api: Api, params: dict[str, str | list[str]], says: str
) -> None:
    response = await api.http.get("/events", params=params, headers=api.auth(Role.SUBSCRIBER))
    assert response.status_code == 400
    assert says in response.text


async def test_a_subscriber_behind_the_stream_backfills_from_the_feed_then_goes_on_from_nats(
    api: Api, relay: Relay, subject_prefix: str, nats_url: str
) -> None:
    for _ in range(3):
        await capacity_changes(api.store, 10)
    head = await api.store.head_position()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await wait_for_messages(js, subject_prefix, head, within=15)
        # The stream's limits drop the oldest events: only the last 5 remain.
        await js.purge_stream(stream_name(subject_prefix), keep=5)
        with pytest.raises(EventsExpired):
            await subscribe(js, subject_prefix, "late", after_position=3)

        backfill = FeedClient(api.base_url, api.token(Role.SUBSCRIBER))
        subscription = await subscribe(
            js, subject_prefix, "late", after_position=3, backfill=backfill, wait=0.2
        )
        got: list[int] = []
        async with subscription:

            async def take(until: int) -> None:
                async with asyncio.timeout(20):
                    async for delivery in subscription:
                        got.append(delivery.envelope.position)
                        await delivery.ack()
                        if delivery.envelope.position == until:
                            return

            await take(head)
            assert subscription.backfilled == head - 3  # the feed reads up to its head
            more = await capacity_changes(api.store, 7, key="k2")
            await take(more.last_position)
        assert got == list(range(4, more.last_position + 1))
    finally:
        await nc.close()


async def test_a_backfill_the_api_refuses_says_so(
    api: Api, relay: Relay, subject_prefix: str, nats_url: str
) -> None:
    await capacity_changes(api.store, 10)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await wait_for_messages(js, subject_prefix, 10, within=15)
        await js.purge_stream(stream_name(subject_prefix), keep=2)
        backfill = FeedClient(api.base_url, api.token(Role.VIEWER))
        subscription = await subscribe(js, subject_prefix, "x", after_position=0, backfill=backfill)
        async with subscription:
            with pytest.raises(FeedRefused, match="403"):
                await anext(subscription)
    finally:
        await nc.close()


async def test_a_nak_of_a_backfilled_event_reads_it_again_from_the_feed(
    api: Api, relay: Relay, subject_prefix: str, nats_url: str
) -> None:
    await capacity_changes(api.store, 10)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await wait_for_messages(js, subject_prefix, 10, within=15)
        await js.purge_stream(stream_name(subject_prefix), keep=2)
        backfill = FeedClient(api.base_url, api.token(Role.SUBSCRIBER))
        subscription = await subscribe(js, subject_prefix, "n", after_position=0, backfill=backfill)
        got: list[int] = []
        async with subscription, asyncio.timeout(20):
            async for delivery in subscription:
                got.append(delivery.envelope.position)
                if delivery.envelope.position == 3 and got.count(3) == 1:
                    assert delivery.from_backfill
                    await delivery.nak()
                    continue
                await delivery.ack()
                if delivery.envelope.position == 10:
                    break
        assert got == [1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10]
    finally:
        await nc.close()
