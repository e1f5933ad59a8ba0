"""GraphQL over HTTP: media types, status codes, limits, request ids, and no leaks."""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import strawberry
from prometheus_client import CollectorRegistry
from strawberry.schema.schema import validate_document

from programledger.adapters.postgres.verification_runs import VerificationRun, record_run
from programledger.api import ApiLimits, Role
from programledger.api.graphql import extensions as extensions_module
from programledger.api.graphql.execution import LeafFastPathExecutionContext
from programledger.api.graphql.extensions import DocumentCache, ErrorShaping, RequestLimits
from programledger.api.metrics import LagGauges
from programledger.application.commands import Command, CommandContext, CommandResult
from programledger.application.handlers import Application
from tests.e2e.conftest import Api, ApiFactory, new_id, program_input

GRAPHQL_RESPONSE = "application/graphql-response+json"
PROPOSE = "mutation($input: ProposeProgramInput!) { proposeProgram(input: $input) { __typename } }"


async def test_request_errors_are_400_for_graphql_response_json_and_200_for_json(
    api: Api,
) -> None:
    for document in ("{ me { subject ", "{ me { nosuchfield } }"):
        modern = await api.http.post(
            "/graphql", json={"query": document}, headers={**api.auth(), "Accept": GRAPHQL_RESPONSE}
        )
        legacy = await api.http.post(
            "/graphql",
            json={"query": document},
            headers={**api.auth(), "Accept": "application/json"},
        )

        assert (modern.status_code, modern.headers["content-type"]) == (400, GRAPHQL_RESPONSE)
        assert (legacy.status_code, legacy.headers["content-type"]) == (200, "application/json")
        for response in (modern, legacy):
            body = response.json()
            assert "data" not in body
            assert body["errors"][0]["extensions"]["requestId"] == response.headers["X-Request-Id"]


async def test_a_field_error_keeps_status_200_with_graphql_response_json(api: Api) -> None:
    response = await api.http.post(
        "/graphql",
        json={"query": "{ me { subject } }"},
        headers={
            "Authorization": f"Bearer {api.token_without_roles()}",
            "Accept": GRAPHQL_RESPONSE,
        },
    )

    assert response.status_code == 200
    assert response.json()["data"] is None


async def test_variables_of_the_wrong_type_are_a_request_error(api: Api) -> None:
    values = program_input(new_id(), priority="high")

    response = await api.http.post(
        "/graphql",
        json={"query": PROPOSE, "variables": {"input": values}},
        headers={**api.auth(), "Accept": GRAPHQL_RESPONSE},
    )

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "priority" in error["message"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"{not json", "application/json"), (b"query { me }", "text/plain")],
    ids=["bad-json", "unsupported-type"],
)
async def test_a_body_strawberry_cannot_read_is_a_400_in_the_graphql_error_shape(
    api: Api, body: bytes, content_type: str
) -> None:
    response = await api.http.post(
        "/graphql", content=body, headers={**api.auth(), "Content-Type": content_type}
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_a_body_over_one_mebibyte_is_refused_with_413(api: Api) -> None:
    values = program_input(new_id(), description="x" * (1 << 20))

    response = await api.post(PROPOSE, {"input": values})

    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert await api.store.read_all() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "Pay\x00ments"), ("description", "x" * 10_001), ("name", "x" * 201)],
    ids=["nul", "long-text", "long-name"],
)
async def test_bad_text_is_a_validation_error_on_its_field(
    api: Api, field: str, value: str
) -> None:
    refused = await api.mutate("proposeProgram", program_input(new_id(), **{field: value}))

    assert refused["__typename"] == "ValidationError"
    assert refused["path"] == ["input", field]


async def test_nul_in_an_id_or_key_is_refused_before_it_reaches_the_database(api: Api) -> None:
    key = await api.mutate(
        "changeCapacity", {"resourceKey": "ali\x00ce", "capacity": 50, "reason": "part-time"}
    )
    nested = await api.mutate(
        "registerDependency",
        {
            "programId": new_id(),
            "dependencyId": new_id(),
            "title": "Card network",
            "neededBy": "2027-03-01",
            "dependent": {"kind": "MILESTONE", "itemId": new_id()},
            "dependsOn": {"external": {"party": "Vi\x00sa"}},
        },
    )

    assert (key["__typename"], key["path"]) == ("ValidationError", ["input", "resourceKey"])
    assert nested["path"] == ["input", "dependsOn", "external", "party"]


async def test_wide_documents_are_refused_before_they_run(api: Api) -> None:
    aliases = " ".join(f"a{i}: me {{ subject }}" for i in range(31))
    tokens = "{ me { " + "subject " * 5000 + "} }"

    too_many_aliases = (await api.post("{ " + aliases + " }")).json()
    too_many_tokens = (await api.post(tokens)).json()

    assert too_many_aliases["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert too_many_tokens["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_deep_documents_are_refused(api_with: ApiFactory) -> None:
    query = """mutation($input: ConfirmAllocationInput!) {
      confirmAllocation(input: $input) { ... on OverAllocationError { conflicts { start } } }
    }"""
    values = {"resourceKey": "alice", "allocationId": new_id()}

    async with api_with(limits=ApiLimits(max_depth=1)) as api:
        body = (await api.post(query, {"input": values})).json()

    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "depth" in body["errors"][0]["message"]


async def test_page_sizes_above_the_limit_are_refused_literal_or_variable() -> None:
    @strawberry.type
    class Query:
        @strawberry.field
        def items(self, first: int = 10) -> list[int]:
            return list(range(first))

    cache = DocumentCache(ApiLimits(max_page_size=200))
    schema = strawberry.Schema(query=Query, extensions=[ErrorShaping, lambda: RequestLimits(cache)])

    literal = await schema.execute("{ items(first: 201) }")
    variable = await schema.execute("query($n: Int!) { items(first: $n) }", {"n": 500})
    allowed = await schema.execute("query($n: Int!) { items(first: $n) }", {"n": 200})
    # The document is cached now: its page size is still checked on every request.
    cached = await schema.execute("query($n: Int!) { items(first: $n) }", {"n": 201})

    for refused in (literal, variable, cached):
        assert refused.errors is not None
        assert refused.errors[0].extensions is not None
        assert refused.errors[0].extensions["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert allowed.errors is None


async def test_a_valid_document_is_parsed_and_validated_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @strawberry.type
    class Query:
        @strawberry.field
        def items(self, first: int = 10) -> list[int]:
            return list(range(first))

    validated: list[object] = []
    original = validate_document

    def counted(*args: Any) -> Any:
        validated.append(args[1])
        return original(*args)

    monkeypatch.setattr(extensions_module, "validate_document", counted)
    cache = DocumentCache(ApiLimits(max_depth=3), size=2)
    schema = strawberry.Schema(query=Query, extensions=[ErrorShaping, lambda: RequestLimits(cache)])
    query = "query($n: Int!) { items(first: $n) }"

    first = await schema.execute(query, {"n": 2})
    again = await schema.execute(query, {"n": 3})
    wrong = [await schema.execute("{ nothing }") for _ in range(2)]

    assert (first.data, again.data) == ({"items": [0, 1]}, {"items": [0, 1, 2]})
    assert len(validated) == 1 + 2  # the valid text once; the invalid one every time
    assert cache.get(query) is not None
    assert cache.get("{ nothing }") is None
    assert all(w.errors for w in wrong)
    for n in range(3):  # bounded: the oldest text goes first
        await schema.execute(f"{{ items(first: {n}) }}")
    assert cache.get(query) is None


class _BrokenApplication(Application):
    async def handle(self, command: Command, context: CommandContext) -> CommandResult:
        raise RuntimeError("connection to db.internal:5432 failed, password hunter2")


async def test_an_unexpected_failure_is_masked_logged_and_traceable(
    api_with: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with api_with(application=_BrokenApplication) as api:
        with caplog.at_level(logging.ERROR, logger="programledger.api"):
            response = await api.post(PROPOSE, {"input": program_input(new_id())})

    body = response.json()
    request_id = response.headers["X-Request-Id"]
    assert response.status_code == 200
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "INTERNAL", "requestId": request_id}
    assert "hunter2" not in response.text
    assert "db.internal" not in response.text
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None


async def test_request_ids_are_echoed_or_drawn(api: Api) -> None:
    given = await api.http.get("/health", headers={"X-Request-Id": "frontend-42.abc"})
    refused = await api.http.get("/health", headers={"X-Request-Id": "two words"})
    drawn = await api.http.get("/nowhere")

    assert given.headers["X-Request-Id"] == "frontend-42.abc"
    assert refused.headers["X-Request-Id"] != "two words"
    assert len(drawn.headers["X-Request-Id"]) == 36
    assert drawn.status_code == 404
    assert drawn.json()["errors"][0]["extensions"]["requestId"] == drawn.headers["X-Request-Id"]


async def test_health_and_ready(api: Api) -> None:
    health = await api.http.get("/health")
    ready = await _eventually_ready(api)

    assert (health.status_code, health.json()) == (200, {"status": "alive"})
    assert ready["checks"]["postgres"] == {"ok": True, "detail": "connected"}
    assert ready["checks"]["nats"] == {"ok": True, "detail": "connected"}


async def test_ready_and_metrics_report_the_last_verification(api: Api) -> None:
    assert (await _eventually_ready(api))["verification"] == {"result": "never verified"}
    finished = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    async with api.store.pool.acquire() as conn:
        await record_run(
            conn,
            VerificationRun(
                started_at=finished - timedelta(minutes=3),
                finished_at=finished,
                checks="chains,structure",
                ok=False,
                streams=12,
                events=340,
                problems=1,
                first_problem="BROKEN note-1: first broken link at version 2: ...",
            ),
        )
    assert (await _eventually_ready(api))["verification"] == {
        "result": "problems found",
        "at": "2026-12-05T22:00:00+00:00",
        "started_at": "2026-12-05T21:57:00+00:00",
        "checks": "chains,structure",
        "streams": 12,
        "events": 340,
        "problems": 1,
        "first_problem": "BROKEN note-1: first broken link at version 2: ...",
    }
    await api.store.pool.execute(
        "INSERT INTO relay_checkpoints (name, position, undecodable) VALUES ('default', 0, 2)"
    )
    registry = CollectorRegistry()
    await LagGauges(api.store.pool, registry).refresh()
    assert registry.get_sample_value("programledger_relay_undecodable_events") == 2
    assert registry.get_sample_value("programledger_verification_last_ok") == 0
    assert registry.get_sample_value("programledger_verification_last_problems") == 1
    assert registry.get_sample_value("programledger_verification_last_events") == 340
    assert (
        registry.get_sample_value("programledger_verification_last_timestamp_seconds")
        == finished.timestamp()
    )


async def _eventually_ready(api: Api) -> dict[str, Any]:
    """The event feed connects in the background at start."""
    async with asyncio.timeout(10):
        while True:
            response = await api.http.get("/ready")
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            await asyncio.sleep(0.05)


async def test_readiness_hooks_can_hold_traffic_back(api_with: ApiFactory) -> None:
    async def projections() -> tuple[str, bool, str]:
        return "projections", False, "12000 events behind"

    async def broken() -> tuple[str, bool, str]:
        raise OSError("unreachable")

    async with api_with(readiness_checks=[projections, broken]) as api:
        response = await api.http.get("/ready")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["projections"] == {"ok": False, "detail": "12000 events behind"}
    assert checks["broken"] == {"ok": False, "detail": "failed: OSError"}


async def test_metrics_count_requests_operations_mutations_and_errors(api: Api) -> None:
    await api.accepted("proposeProgram", program_input(new_id()))
    await api.mutate("proposeProgram", program_input(new_id()), headers=api.auth(Role.VIEWER))
    await api.post("query Who { me { subject } }")
    await api.post("{ nonsense }")

    text = (await api.http.get("/metrics")).text

    mutations = "programledger_graphql_mutations_total"
    assert f'{mutations}{{mutation="proposeProgram",outcome="accepted"}} 1.0' in text
    assert f'{mutations}{{mutation="proposeProgram",outcome="FORBIDDEN"}} 1.0' in text
    assert 'programledger_graphql_errors_total{code="FORBIDDEN"} 1.0' in text
    assert 'programledger_graphql_errors_total{code="GRAPHQL_VALIDATION_FAILED"} 1.0' in text
    assert 'operation_name="Who",operation_type="query"' in text
    assert 'programledger_http_requests_total{method="POST",route="/graphql",status="200"}' in text
    assert 'programledger_events_appended_total{command="ProposeProgram"} 1.0' in text
    assert 'programledger_command_duration_seconds_count{command="ProposeProgram"} 1.0' in text


@strawberry.enum
class _Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class _Item:
    name: str
    size: int | None
    colour: _Colour
    required: int

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


@strawberry.type
class _LeafQuery:
    @strawberry.field
    def items(self) -> list[_Item]:
        return [
            _Item(name="a", size=1, colour=_Colour.RED, required=1),
            _Item(name="b", size=None, colour=_Colour.BLUE, required=2),
            _Item(name="c", size=3, colour=_Colour.RED, required=None),  # type: ignore[arg-type]
            _Item(name="d", size="big", colour=_Colour.RED, required=4),  # type: ignore[arg-type]
        ]


async def test_leaves_read_directly_answer_as_graphql_core_would() -> None:
    query = """query($skip: Boolean!) {
      items { ...F renamed: name size @skip(if: $skip) shout colour __typename }
      again: items { required }
    }
    fragment F on _Item { size required colour }"""
    plain = strawberry.Schema(query=_LeafQuery)
    fast = strawberry.Schema(query=_LeafQuery, execution_context_class=LeafFastPathExecutionContext)

    for skip in (False, True):
        expected = await plain.execute(query, {"skip": skip})
        found = await fast.execute(query, {"skip": skip})

        assert found.data == expected.data
        assert json.dumps(found.data) == json.dumps(expected.data)  # the same field order
        assert [e.formatted for e in found.errors or []] == [
            e.formatted for e in expected.errors or []
        ]
        assert expected.errors  # a null in a non-null field, a size Int refuses
