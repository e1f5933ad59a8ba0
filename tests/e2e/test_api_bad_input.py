"""Bad input found by trying it: each gets a clear error, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Api, new_id, payload_fields, program_input

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def _mutate(api: Api, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Like ``Api.mutate``, with the body escaped to ASCII as JavaScript's JSON.stringify
    does: a lone surrogate travels as ``\\ud800``, the way a browser would send it."""
    kind = name[:1].upper() + name[1:]
    fields = payload_fields(name)
    query = f"mutation Run($input: {kind}Input!) {{ {name}(input: $input) {{ {fields} }} }}"
    body = json.dumps({"query": query, "variables": {"input": values}})
    response = await api.http.post(
        "/graphql", content=body, headers={**api.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()["data"][name]
    return payload


async def _errors(api: Api, query: str) -> list[dict[str, Any]]:
    response = await api.post(query)
    assert response.status_code == 200, response.text
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Pay\ud800ments"),
        ("name", "Pay\u2028ments"),
        ("name", "Pay\u2029ments"),
        ("name", "Pay\u0085ments"),
        ("description", "Pay\udfffments"),
        ("objective", "Take\x00cards"),
    ],
    ids=[
        "surrogate",
        "line-separator",
        "paragraph-separator",
        "next-line",
        "text-surrogate",
        "nul",
    ],
)
async def test_bad_text_in_a_proposal_reserves_no_code(api: Api, field: str, value: str) -> None:
    values = program_input(new_id(), **{field: value})

    reservations = f"programcode-{values['code']}"

    refused = await _mutate(api, "proposeProgram", values)
    reserved = await api.store.read_stream(reservations)
    retried = await api.accepted("proposeProgram", {**values, field: "Payments"})

    assert refused["__typename"] == "ValidationError"
    assert refused["path"] == ["input", field]
    assert reserved == []
    assert retried["version"] == 1
    assert len(await api.store.read_stream(reservations)) == 1


async def test_a_surrogate_in_a_reason_is_a_validation_error(api: Api) -> None:
    program = new_id()
    await api.accepted("proposeProgram", program_input(program))

    refused = await _mutate(api, "activateProgram", {"programId": program, "reason": "go\ud800"})

    assert refused["__typename"] == "ValidationError", refused
    assert refused["path"] == ["input", "reason"]
    assert await api.store.stream_version(f"program-{program}") == 1


async def test_every_wrong_field_of_an_allocation_is_reported_at_once(api: Api) -> None:
    program = new_id()
    await api.accepted("proposeProgram", program_input(program))
    await api.accepted(
        "registerResource",
        {
            "resourceKey": "alice.martin",
            "name": "Alice Martin",
            "kind": "PERSON",
            "department": "ENGINEERING",
            "role": "Engineer",
            "capacity": 100,
        },
    )

    refused = await api.mutate(
        "proposeAllocation",
        {
            "resourceKey": "alice.martin",
            "allocationId": new_id(),
            "programId": program,
            "percentage": 150,
            "startDate": "2027-05-01",
            "endDate": "2027-04-01",
        },
    )

    assert refused["__typename"] == "ValidationError"
    assert {tuple(issue["path"]) for issue in refused["issues"]} >= {
        ("input", "percentage"),
        ("input", "endDate"),
    }, refused


@pytest.mark.parametrize(
    ("start", "end"),
    [("2027-01-01", "9999-12-31"), ("0001-01-01", "2027-01-01"), ("2027-01-01", "2037-01-01")],
    ids=["end-of-time", "start-of-time", "ten-years"],
)
async def test_a_utilisation_range_is_bounded(api: Api, start: str, end: str) -> None:
    errors = await _errors(
        api, f'{{ utilisation(from: "{start}", to: "{end}") {{ weeks {{ totalCount }} }} }}'
    )

    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "at most" in errors[0]["message"]


async def test_a_utilisation_range_ending_before_it_starts_is_bad_input(api: Api) -> None:
    errors = await _errors(
        api, '{ utilisation(from: "2027-02-01", to: "2027-01-01") { weeks { totalCount } } }'
    )

    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "body",
    [b'"query { me { subject } }"', b"[1, 2]", b"42", b'{"query": "{ me { subject } }\xff"}'],
    ids=["string", "list", "number", "invalid-utf8"],
)
async def test_a_body_that_is_not_a_json_object_is_a_400(api: Api, body: bytes) -> None:
    response = await api.http.post(
        "/graphql",
        content=body,
        headers={**api.auth(), "Content-Type": "application/json", "Accept": GRAPHQL_RESPONSE},
    )

    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_two_operations_without_an_operation_name_are_a_request_error(api: Api) -> None:
    document = "query A { me { subject } } query B { me { roles } }"

    response = await api.http.post(
        "/graphql", json={"query": document}, headers={**api.auth(), "Accept": GRAPHQL_RESPONSE}
    )
    named = await api.http.post(
        "/graphql",
        json={"query": document, "operationName": "B"},
        headers={**api.auth(), "Accept": GRAPHQL_RESPONSE},
    )

    assert response.status_code == 400, response.text
    assert "data" not in response.json()
    assert "operationName" in response.json()["errors"][0]["message"]
    assert named.status_code == 200
    assert "roles" in named.json()["data"]["me"]


async def test_a_mutation_over_get_is_405(api: Api) -> None:
    response = await api.http.get(
        "/graphql",
        params={"query": 'mutation { activateProgram(input: {programId: "x"}) { __typename } }'},
        headers={**api.auth(), "Accept": GRAPHQL_RESPONSE},
    )

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_a_negative_page_size_names_the_real_limit(api: Api) -> None:
    errors = await _errors(api, "{ programs(first: -1) { totalCount } }")

    assert "between 1 and 200" in errors[0]["message"]


async def test_a_page_size_over_the_limit_suggests_only_arguments_that_exist(api: Api) -> None:
    errors = await _errors(api, "{ programs(first: 300) { totalCount } }")

    assert "200" in errors[0]["message"]
    assert "after" in errors[0]["message"]
    assert "before" not in errors[0]["message"]
