"""The contract: ``schema.graphql`` is what the code serves, and it covers every command."""

from __future__ import annotations

import difflib
from pathlib import Path

from graphql import get_introspection_query

from programledger.api import export_sdl
from programledger.api.graphql.mutations import COMMANDS
from tests.e2e.conftest import Api

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_graphql_is_the_schema_the_code_serves() -> None:
    exported = export_sdl()
    checked_in = SCHEMA_FILE.read_text(encoding="utf-8")

    drift = "".join(
        difflib.unified_diff(
            checked_in.splitlines(keepends=True),
            exported.splitlines(keepends=True),
            "schema.graphql",
            "export_sdl()",
            n=1,
        )
    )
    assert not drift, (
        f"schema.graphql is stale; run `programledger schema` at the repository root:\n{drift}"
    )


async def test_every_command_is_a_mutation_and_no_input_names_an_actor(api: Api) -> None:
    query = """{
      __schema {
        mutationType { fields { name args { type { ofType { inputFields { name } } } } } }
      }
    }"""

    body = (await api.post(query)).json()

    every = body["data"]["__schema"]["mutationType"]["fields"]
    # Webhook endpoints are managed beside the commands, and are not commands.
    fields = [f for f in every if "Webhook" not in f["name"]]
    assert len(every) - len(fields) == 5
    assert len(COMMANDS) == 86
    assert sorted(f["name"] for f in fields) == sorted(
        c.__name__[:1].lower() + c.__name__[1:] for c in COMMANDS
    )
    for field in fields:
        inputs = {i["name"] for i in field["args"][0]["type"]["ofType"]["inputFields"]}
        assert {"expectedVersion", "reason", "idempotencyKey", "waitForProjections"} <= inputs
        assert not inputs & {"actor", "recordedBy", "user", "publishedBy", "programOwner"}


async def test_graphiql_can_introspect_the_whole_schema_despite_the_depth_limit(api: Api) -> None:
    body = (await api.post(get_introspection_query(descriptions=True))).json()

    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
