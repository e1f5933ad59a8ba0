"""Generated documents against the live server: whatever a client sends, the answer is a
clear error or a result, never an internal failure, and always carries the request id.

Hypothesis drives a synchronous client from a worker thread, while the server keeps
serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
from datetime import UTC

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes
from hypothesis_graphql.types import CustomScalarStrategies

from programledger.api import Role, export_sdl
from programledger.domain.values import MAX_SAFE_INTEGER
from tests.e2e.conftest import Api

SCALARS: CustomScalarStrategies = {
    "ID": st.one_of(st.uuids().map(str), st.text(max_size=40)).map(nodes.String),
    "Date": st.dates().map(nodes.String),
    "DateTime": st.datetimes(timezones=st.just(UTC)).map(nodes.String),
    "SafeInt": st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER).map(nodes.Int),
}


def _probe(api: Api, token: str, documents: st.SearchStrategy[object], examples: int) -> None:
    with httpx.Client(base_url=api.base_url, timeout=30) as client:

        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(documents)
        def answers_cleanly(document: object) -> None:
            response = client.post(
                "/graphql",
                json={"query": str(document)},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code in (200, 400, 413), response.text
            for error in response.json().get("errors") or []:
                assert error["extensions"]["code"] != "INTERNAL", (document, error)
                assert error["extensions"]["requestId"] == response.headers["X-Request-Id"]

        answers_cleanly()


async def test_generated_mutations_never_fail_internally(api: Api) -> None:
    documents = mutations(export_sdl(), custom_scalars=SCALARS)
    await asyncio.to_thread(_probe, api, api.token(Role.EDITOR), documents, 200)


async def test_invalid_documents_are_refused_cleanly(api: Api) -> None:
    documents = mutations(export_sdl(), custom_scalars=SCALARS, mode=Mode.NEGATIVE)
    await asyncio.to_thread(_probe, api, api.token(Role.ADMIN), documents, 100)
