"""A single-page app on another origin uses the API from a real browser: a query, a
mutation and a subscription from headless Chromium, and a page on an origin not allowed is
refused both over HTTP (CORS) and on the WebSocket upgrade (Origin check)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from programledger.api import Role
from tests.e2e.browser import chromium, needs_chromium, serve_page
from tests.e2e.conftest import ApiFactory, new_id, program_input, running_relay
from tests.support.relay_process import eventually

pytestmark = needs_chromium

APP = """<!doctype html>
<html><head><title>frontend</title></head><body>
<script>
// What a frontend does: fetch with a bearer token, and graphql-transport-ws by hand.
window.gql = async (url, token, query, variables, headers) => {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Authorization": "Bearer " + token,
        ...(headers || {}),
      },
      body: JSON.stringify({query, variables}),
    });
    return {
      status: response.status,
      body: await response.json(),
      requestId: response.headers.get("X-Request-Id"),
    };
  } catch (error) {
    return {failed: String(error)};
  }
};
window.received = [];
window.subscribe = (url, token, query, variables) => new Promise((resolve) => {
  const ws = new WebSocket(url, "graphql-transport-ws");
  ws.onopen = () => ws.send(JSON.stringify(
    {type: "connection_init", payload: {authorization: "Bearer " + token}}));
  ws.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "connection_ack") {
      ws.send(JSON.stringify({id: "1", type: "subscribe", payload: {query, variables}}));
      resolve("subscribed");
    } else if (data.type === "ping") {
      ws.send(JSON.stringify({type: "pong"}));
    } else {
      window.received.push(data);
    }
  };
  ws.onclose = (event) => resolve("closed " + event.code);
});
</script></body></html>"""

PROPOSE = """mutation($input: ProposeProgramInput!) {
  proposeProgram(input: $input) { __typename ... on CommandAccepted { position } }
}"""
ME = "{ me { subject roles } }"
EVENTS = """subscription($program: ID) {
  events(programId: $program, streamTypes: [PROGRAM]) { eventType programId position }
}"""


async def test_a_page_on_an_allowed_origin_queries_mutates_and_subscribes(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    program = new_id()
    with serve_page(APP) as origin:
        async with (
            api_with(allowed_origins=[origin]) as api,
            running_relay(api, pg_url, nats_url, subject_prefix),
            chromium() as browser,
        ):
            page = await browser.new_page()
            await page.goto(origin)
            url = api.base_url + "/graphql"
            ws_url = url.replace("http://", "ws://")
            editor = api.token(Role.EDITOR, subject="tia")

            subscribed = await page.evaluate(
                "([url, token, query, program]) => subscribe(url, token, query, {program})",
                [ws_url, api.token(Role.VIEWER, subject="val"), EVENTS, program],
            )
            active = "programledger_graphql_subscriptions_active"
            await eventually(lambda: (api.metrics.registry.get_sample_value(active) or 0) > 0)
            mutation: dict[str, Any] = await page.evaluate(
                "([url, token, query, input]) => gql(url, token, query, {input})",
                [url, editor, PROPOSE, program_input(program)],
            )
            position = mutation["body"]["data"]["proposeProgram"]["position"]
            query: dict[str, Any] = await page.evaluate(
                "([url, token, query, position]) => gql(url, token, query, {},"
                " {'Programledger-Min-Position': String(position)})",
                [url, editor, ME, position],
            )
            await page.wait_for_function("window.received.length > 0", timeout=10_000)
            received: list[dict[str, Any]] = await page.evaluate("window.received")

    assert subscribed == "subscribed"
    assert mutation["status"] == 200
    assert mutation["body"]["data"]["proposeProgram"]["__typename"] == "ProposeProgramSuccess"
    assert mutation["requestId"]  # exposed to the page, to quote in a bug report
    assert query["status"] == 200, query
    assert query["body"]["data"]["me"] == {"subject": "tia", "roles": ["EDITOR"]}
    assert received[0]["type"] == "next", received
    assert received[0]["payload"]["data"]["events"] == {
        "eventType": "ProgramProposed",
        "programId": program,
        "position": position,
    }


async def test_a_page_on_another_origin_is_refused(api_with: ApiFactory, tmp_path: Path) -> None:
    with serve_page(APP) as allowed, serve_page(APP) as other:
        async with api_with(allowed_origins=[allowed]) as api, chromium() as browser:
            page = await browser.new_page()
            await page.goto(other)
            url = api.base_url + "/graphql"
            query: dict[str, Any] = await page.evaluate(
                "([url, token, query]) => gql(url, token, query, {})",
                [url, api.token(Role.VIEWER), ME],
            )
            socket = await page.evaluate(
                "([url, token, query]) => subscribe(url, token, query, {})",
                [url.replace("http://", "ws://"), api.token(Role.VIEWER), EVENTS],
            )

    assert "failed" in query, query  # the browser withheld the answer: no CORS headers
    assert socket == "closed 1006"  # the upgrade was refused (403) before it opened
