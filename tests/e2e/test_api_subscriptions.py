"""Live events over ``graphql-transport-ws``, fed by the relay through NATS."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from programledger.adapters.nats import client as nats_client
from programledger.adapters.nats.relay import Relay
from programledger.adapters.nats.stream import stream_name
from programledger.api import Role
from tests.e2e.conftest import Api, new_id, program_input, resource_input, running_api
from tests.support.ledger import settled
from tests.support.relay_process import eventually

EVENTS = """
subscription Watch($program: ID, $streams: [StreamType!], $types: [String!], $after: SafeInt) {
  events(programId: $program, streamTypes: $streams, eventTypes: $types, afterPosition: $after) {
    eventId position streamId streamType version eventType schemaVersion recordedAt
    actor correlationId causationId reason programId data
  }
}
"""


async def _subscribe(api: Api, ws: ClientConnection, **variables: Any) -> None:
    assert json.loads(await ws.recv()) == {"type": "connection_ack"}
    active = _active(api)
    await ws.send(
        json.dumps(
            {
                "id": "watch",
                "type": "subscribe",
                "payload": {"query": EVENTS, "variables": variables},
            }
        )
    )
    # Counted once NATS has registered the subscription: from then on nothing is missed.
    await eventually(lambda: _active(api) > active)


def _active(api: Api) -> float:
    value = api.metrics.registry.get_sample_value("programledger_graphql_subscriptions_active")
    return value or 0.0


async def _next(ws: ClientConnection, within: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        message = json.loads(await ws.recv())
    assert message["type"] == "next", message
    payload: dict[str, Any] = message["payload"]
    return payload


async def _refused(ws: ClientConnection, variables: dict[str, Any]) -> str:
    """The code of the error a subscription that cannot start is refused with."""
    code: str = (await _refusal(ws, variables))["extensions"]["code"]
    return code


async def _refusal(ws: ClientConnection, variables: dict[str, Any]) -> dict[str, Any]:
    """The error a subscription that cannot start is refused with."""
    await ws.send(
        json.dumps(
            {
                "id": "refused",
                "type": "subscribe",
                "payload": {"query": EVENTS, "variables": variables},
            }
        )
    )
    async with asyncio.timeout(10):
        message = json.loads(await ws.recv())
    assert (message["id"], message["type"]) == ("refused", "error"), message
    error: dict[str, Any] = message["payload"][0]
    return error


async def _nothing_more(ws: ClientConnection, api: Api, relay: Relay) -> None:
    """Once the relay published everything written, no further event arrives."""
    async with asyncio.timeout(10):
        await relay.wait_published(await settled(api.store))
    try:
        async with asyncio.timeout(0.5):
            message = await ws.recv()
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message: {message!r}")


async def test_a_subscription_delivers_only_the_chosen_programs_events(
    api: Api, relay: Relay
) -> None:
    watched, other = new_id(), new_id()
    tia = api.auth(Role.EDITOR, subject="tia")
    async with api.websocket(api.token(Role.VIEWER, subject="val")) as ws:
        await _subscribe(api, ws, program=watched)
        await api.accepted("proposeProgram", program_input(other), headers=tia)
        proposal = program_input(watched)
        await api.accepted("proposeProgram", proposal, headers=tia)
        await api.accepted("registerResource", resource_input("alice.martin"), headers=tia)
        activated = await api.accepted(
            "activateProgram", {"programId": watched, "reason": "go"}, headers=tia
        )
        await api.accepted("activateProgram", {"programId": other}, headers=tia)

        reserved = (await _next(ws))["data"]["events"]
        first = (await _next(ws))["data"]["events"]
        second = (await _next(ws))["data"]["events"]
        await _nothing_more(ws, api, relay)

    # The program's code reservation is its event too, as on the program's NATS subjects.
    assert (reserved["eventType"], reserved["streamType"]) == ("ProgramCodeReserved", "PROGRAMCODE")
    assert [first["eventType"], second["eventType"]] == ["ProgramProposed", "ProgramActivated"]
    assert {reserved["programId"], first["programId"], second["programId"]} == {watched}
    assert first["position"] < second["position"] == activated["position"]
    assert second["eventId"] == activated["eventIds"][0]
    assert (second["streamId"], second["streamType"], second["version"]) == (
        f"program-{watched}",
        "PROGRAM",
        2,
    )
    assert (second["actor"], second["reason"]) == ("tia", "go")
    assert first["data"]["code"] == proposal["code"]
    assert first["data"]["planned_budget"] == {"amount_minor": 250_000_000_00, "currency": "EUR"}


async def test_a_subscription_resumes_after_a_position_without_a_gap(
    api: Api, relay: Relay
) -> None:
    watched, other = new_id(), new_id()
    tia = api.auth(Role.EDITOR, subject="tia")
    proposed = await api.accepted("proposeProgram", program_input(watched), headers=tia)
    await api.accepted("proposeProgram", program_input(other), headers=tia)
    missed = [
        await api.accepted("reportProgramHealth", health, headers=tia)
        for health in (
            {"programId": watched, "health": "AMBER", "summary": "vendor late"},
            {"programId": watched, "health": "RED", "summary": "vendor later"},
        )
    ]
    async with asyncio.timeout(10):
        await relay.wait_published(await settled(api.store))
    async with api.websocket(api.token(Role.VIEWER, subject="val")) as ws:
        # A client that saw the proposal, then lost its connection, resumes after it.
        await _subscribe(api, ws, program=watched, after=proposed["position"])
        replayed = [(await _next(ws))["data"]["events"] for _ in missed]
        live = await api.accepted(
            "activateProgram", {"programId": watched, "reason": "go"}, headers=tia
        )
        after = (await _next(ws))["data"]["events"]
        await _nothing_more(ws, api, relay)
    assert [e["position"] for e in replayed] == [m["position"] for m in missed]
    assert [e["data"]["health"] for e in replayed] == ["AMBER", "RED"]
    assert (after["eventType"], after["position"]) == ("ProgramActivated", live["position"])


async def test_a_resume_from_events_the_stream_no_longer_holds_is_refused(
    api: Api, relay: Relay, nats_url: str, subject_prefix: str
) -> None:
    tia = api.auth(Role.EDITOR, subject="tia")
    programs = [
        await api.accepted("proposeProgram", program_input(new_id()), headers=tia) for _ in range(4)
    ]
    head = await settled(api.store)
    async with asyncio.timeout(10):
        await relay.wait_published(head)
    # The stream's limits dropped its oldest messages, up to the second proposal's (a
    # purge does the same, at once; a proposal also reserves its code in a stream).
    nc = await nats_client.connect(nats_url)
    try:
        kept = head - programs[1]["position"]
        await nc.jetstream().purge_stream(stream_name(subject_prefix), keep=kept)
    finally:
        await nc.close()
    async with api.websocket(api.token(Role.VIEWER, subject="val")) as ws:
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        error = await _refusal(ws, {"after": programs[0]["position"]})
    assert error["extensions"]["code"] == "EVENT_FEED_UNAVAILABLE"
    assert "no longer all in the stream" in error["message"]
    # A position whose successors are all still there resumes as usual.
    async with api.websocket(api.token(Role.VIEWER, subject="val")) as ws:
        await _subscribe(api, ws, after=programs[1]["position"], streams=["PROGRAM"])
        replayed = [(await _next(ws))["data"]["events"] for _ in programs[2:]]
    assert [e["position"] for e in replayed] == [p["position"] for p in programs[2:]]


async def test_a_subscription_filters_by_stream_and_event_type(api: Api, relay: Relay) -> None:
    program, risk = new_id(), new_id()
    async with api.websocket(api.token(Role.AUDITOR)) as ws:
        await _subscribe(api, ws, program=program, streams=["RISK"], types=["RiskAssessed"])
        await api.accepted("proposeProgram", program_input(program))
        await api.accepted(
            "identifyRisk",
            {
                "riskId": risk,
                "programId": program,
                "title": "Late",
                "category": "VENDOR",
                "probability": 2,
                "impact": 3,
                "owner": "Tia",
            },
        )
        await api.accepted("assessRisk", {"riskId": risk, "probability": 4, "impact": 4})

        event = (await _next(ws))["data"]["events"]
        await _nothing_more(ws, api, relay)

    assert (event["eventType"], event["streamId"]) == ("RiskAssessed", f"risk-{risk}")


async def test_bad_subscription_arguments_are_bad_user_input(api: Api) -> None:
    async with api.websocket(api.token(Role.VIEWER)) as ws:
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        bad: list[dict[str, Any]] = [
            {"program": "nope"},
            {"types": ["Nope"]},
            {"streams": []},
            {"after": -1},
        ]
        for variables in bad:
            assert await _refused(ws, variables) == "BAD_USER_INPUT"


async def test_a_subscription_ends_when_its_token_expires(api: Api) -> None:
    async with api.websocket(api.token(Role.VIEWER, ttl=2)) as ws:
        await _subscribe(api, ws)
        ended = await _next(ws, within=10)

    assert ended["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_token_without_a_role_cannot_subscribe(api: Api) -> None:
    async with api.websocket(api.token_without_roles()) as ws:
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        assert await _refused(ws, {}) == "FORBIDDEN"


async def test_without_nats_commands_work_and_subscriptions_are_refused(
    pg_url: str, schema: str, subject_prefix: str, tmp_path: Path
) -> None:
    async with running_api(pg_url, schema, "nats://127.0.0.1:1", subject_prefix, tmp_path) as api:
        accepted = await api.accepted("proposeProgram", program_input(new_id()))
        ready = await api.http.get("/ready")
        async with api.websocket(api.token(Role.VIEWER)) as ws:
            assert json.loads(await ws.recv()) == {"type": "connection_ack"}
            code = await _refused(ws, {})

    assert accepted["version"] == 1
    assert ready.status_code == 503
    assert ready.json()["checks"]["nats"] == {"ok": False, "detail": "not connected"}
    assert code == "EVENT_FEED_UNAVAILABLE"
