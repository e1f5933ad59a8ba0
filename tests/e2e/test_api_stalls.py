"""No request can stall a replica: waits for the read models are bounded, hold no
database connection and say when they gave up; a database that stops answering or drops
connections makes requests fail fast with ``UNAVAILABLE`` (HTTP 503), never hang.

No projection runs in these tests, so a position written stays unreached for ever: the
worst case for read-your-writes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from programledger.api import ApiLimits, Role
from programledger.api.graphql.extensions import read_model_not_built
from programledger.api.graphql.freshness import READ_MODELS_OF_TYPE
from programledger.api.graphql.node import global_id
from programledger.projections.engine.storage import prepare_tables
from programledger.projections.registry import PROJECTIONS
from tests.e2e.conftest import Api, ApiFactory, new_id, program_input
from tests.support.relay_process import eventually
from tests.support.tcp_proxy import tcp_proxy

PROGRAM = "query($id: ID!) { program(id: $id) { name } }"
PROGRAMS = "{ programs(first: 5) { totalCount } }"
MIN_POSITION = "Programledger-Min-Position"


def _code(response: httpx.Response) -> str:
    errors = response.json().get("errors") or [{}]
    code: str = errors[0].get("extensions", {}).get("code", "")
    return code


async def _written(api: Api) -> tuple[str, int]:
    """A program written, with the read models' tables in place but nobody filling them."""
    async with api.store.pool.acquire() as conn:
        for projection in PROJECTIONS.values():
            assert await prepare_tables(conn, projection)
    program = new_id()
    done = await api.accepted("proposeProgram", program_input(program))
    return program, int(done["position"])


async def test_a_position_beyond_the_head_is_refused_at_once(api_with: ApiFactory) -> None:
    async with api_with(watch=True, limits=ApiLimits(projection_wait=60)) as api:
        program, position = await _written(api)
        headers = {**api.auth(Role.VIEWER), MIN_POSITION: str(position + 1000)}
        async with asyncio.timeout(10):  # far less than the 60 s a wait could take
            response = await api.post(PROGRAM, {"id": program}, headers=headers)

    assert _code(response) == "BAD_USER_INPUT", response.text
    message = response.json()["errors"][0]["message"]
    assert f"head ({position})" in message
    assert "data" not in response.json()


async def test_waiting_requests_hold_no_connection_and_say_they_gave_up(
    api_with: ApiFactory,
) -> None:
    """Today's failure: three waits on a pool of three held every connection, and
    everyone else's reads queued behind them for the whole wait."""
    limits = ApiLimits(projection_wait=8)
    async with api_with(watch=True, pool_size=3, limits=limits) as api:
        assert api.watch is not None
        program, position = await _written(api)
        headers = {**api.auth(Role.VIEWER), MIN_POSITION: str(position)}
        waiters = [
            asyncio.create_task(api.post(PROGRAM, {"id": program}, headers=headers))
            for _ in range(6)
        ]
        await eventually(lambda: api.watch is not None and api.watch.waiting == 6)

        others = await asyncio.gather(
            *(api.post(PROGRAMS, headers=api.auth(Role.VIEWER)) for _ in range(20))
        )
        assert all(r.status_code == 200 and "errors" not in r.json() for r in others)
        # The others were answered while every waiter still waited.
        assert not any(w.done() for w in waiters)
        answered = await asyncio.gather(*waiters)

    for response in answered:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"] == {"program": None}  # the read model never got it...
        assert body["extensions"] == {"projectionsBehind": ["programs"], "stale": True}
        assert response.headers["Programledger-Projections-Behind"] == "programs"  # ...and says so


async def test_the_number_of_waiting_requests_is_bounded(api_with: ApiFactory) -> None:
    limits = ApiLimits(projection_wait=8)
    async with api_with(watch=True, max_waiting=2, limits=limits) as api:
        assert api.watch is not None
        program, position = await _written(api)
        headers = {**api.auth(Role.VIEWER), MIN_POSITION: str(position)}
        waiters = [
            asyncio.create_task(api.post(PROGRAM, {"id": program}, headers=headers))
            for _ in range(2)
        ]
        await eventually(lambda: api.watch is not None and api.watch.waiting == 2)
        over = await api.post(PROGRAM, {"id": program}, headers=headers)
        mutation = await api.accepted(
            "proposeProgram", program_input(new_id(), waitForProjections=True)
        )
        unrelated = await api.post(PROGRAMS, headers=api.auth(Role.VIEWER))
        for waiter in waiters:
            waiter.cancel()

    assert over.status_code == 503, over.text
    assert _code(over) == "UNAVAILABLE"
    assert over.headers["Retry-After"] == "1"
    assert "already waiting" in over.json()["errors"][0]["message"]
    # A mutation is done either way: it reports that it did not wait, never fails.
    assert mutation["projectionsCaughtUp"] is False
    # A read without the header does not wait, so the bound does not apply to it.
    assert unrelated.status_code == 200


ACROSS_READ_MODELS = {
    "query($id: ID!) { scenarioEvaluation(scenarioId: $id) { resources { resourceKey } } }": [
        "allocations",
        "scenarios",
    ],
    'query($program: ID!) { statusReportDraft(programId: $program, period: "2027-W14") '
    "{ overall } }": ["allocations", "milestones", "programs", "risks", "schedule"],
    "query($risk: ID!) { node(id: $risk) { ... on Risk { title } } }": ["risks"],
    "query($node: ID!) { nodes(ids: [$node]) { ...P } } fragment P on Program { name }": [
        "programs"
    ],
    "query($node: ID!) { node(id: $node) { id } }": sorted(set(READ_MODELS_OF_TYPE.values())),
}
"""Reads whose answer comes from read models their field names do not say: a scenario's
evaluation is made over the resources and allocations as they are, a status report's draft
from five read models, and ``node`` answers whatever type its id names."""


async def test_a_read_waits_for_every_read_model_it_is_answered_from(
    api_with: ApiFactory,
) -> None:
    """A scenario evaluated right after a resource was registered showed no resources: the
    wait covered the scenarios, not the allocations the evaluation is made over (CI)."""
    async with api_with(watch=True, limits=ApiLimits(projection_wait=1)) as api:
        program, position = await _written(api)
        headers = {**api.auth(Role.EDITOR), MIN_POSITION: str(position)}
        variables = {
            "id": new_id(),
            "program": program,
            "risk": global_id("Risk", new_id()),
            "node": global_id("Program", program),
        }
        answered = await asyncio.gather(
            *(api.post(query, variables, headers=headers) for query in ACROSS_READ_MODELS)
        )

    for (query, waited), response in zip(ACROSS_READ_MODELS.items(), answered, strict=True):
        assert response.status_code == 200, response.text
        behind = response.json().get("extensions", {}).get("projectionsBehind")
        assert behind == waited, (query, response.text)


@pytest.mark.parametrize("kind", ["position", "time"])
async def test_a_read_as_of_a_moment_waits_for_it(api_with: ApiFactory, kind: str) -> None:
    """A read as of a position the read models have not reached would give the state
    before it under its name, and one as of a time, answered at the last position
    recorded then, an older state under that time: each waits as the header does and
    says when it gave up. A position the store does not hold yet is refused; a time
    before anything was recorded waits for nothing."""
    by_time = kind == "time"
    suffix, scalar = ("", "DateTime") if by_time else ("Position", "SafeInt")
    async with api_with(watch=True, limits=ApiLimits(projection_wait=1)) as api:
        program, position = await _written(api)
        headers = api.auth(Role.VIEWER)
        at: int | str = datetime.now(UTC).isoformat() if by_time else position
        as_of = (
            f"query($id: ID!, $at: {scalar}) {{ program(id: $id, asOf{suffix}: $at) {{ name }} }}"
        )
        read = await api.post(as_of, {"id": program, "at": at}, headers=headers)
        known = await api.post(
            f'query($at: {scalar}) {{ utilisation(from: "2027-01-04", to: "2027-01-10", '
            f"knownAt{suffix}: $at) {{ weeks {{ totalCount }} }} }}",
            {"at": at},
            headers=headers,
        )
        literal = await api.post(
            f"{{ programs(asOf{suffix}: {json.dumps(at)}) {{ totalCount }} }}", headers=headers
        )
        beyond: Any = "2001-01-01T00:00:00Z" if by_time else position + 1000
        outside = await api.post(as_of, {"id": program, "at": beyond}, headers=headers)
        now = await api.post(as_of, {"id": program, "at": None}, headers=headers)

    assert read.json()["extensions"] == {"projectionsBehind": ["programs"], "stale": True}
    assert known.json()["extensions"] == {"projectionsBehind": ["allocations"], "stale": True}
    assert literal.json()["extensions"] == {"projectionsBehind": ["programs"], "stale": True}
    if by_time:
        assert outside.json() == {"data": {"program": None}}, outside.text
    else:
        assert _code(outside) == "BAD_USER_INPUT", outside.text
        assert f"head ({position})" in outside.json()["errors"][0]["message"]
        assert "data" not in outside.json()
    # Reading the current state waits for nothing without the header.
    assert "extensions" not in now.json(), now.text


async def test_a_read_waiting_for_a_position_and_a_time_waits_once_in_all(
    api_with: ApiFactory,
) -> None:
    """The header's position and an ``asOf`` time are two waits, but one request: both
    together stay within the request's bound, not twice it."""
    async with api_with(watch=True, limits=ApiLimits(projection_wait=2)) as api:
        program, position = await _written(api)
        headers = {**api.auth(Role.VIEWER), MIN_POSITION: str(position)}
        as_of = "query($id: ID!, $at: DateTime) { program(id: $id, asOf: $at) { name } }"
        started = time.monotonic()
        read = await api.post(
            as_of, {"id": program, "at": datetime.now(UTC).isoformat()}, headers=headers
        )
        took = time.monotonic() - started

    assert read.json()["extensions"] == {"projectionsBehind": ["programs"], "stale": True}
    assert 2 <= took < 3.5, took


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def test_a_partitioned_database_fails_requests_fast_with_unavailable(
    api_with: ApiFactory, pg_url: str
) -> None:
    parts = urlsplit(pg_url)
    async with tcp_proxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        limits = ApiLimits(database_seconds=2)
        async with api_with(
            database_url=_through(pg_url, proxy.port), statement_timeout=1, limits=limits
        ) as api:
            await _written(api)
            before = await api.post(PROGRAMS, headers=api.auth(Role.VIEWER))
            proxy.freeze()
            async with asyncio.timeout(15):  # the request must not hang
                read = await api.post(PROGRAMS, headers=api.auth(Role.VIEWER))
                write = await api.post(
                    "mutation($input: ProposeProgramInput!) { proposeProgram(input: $input) "
                    "{ __typename } }",
                    {"input": program_input(new_id())},
                )
            proxy.thaw()
            proxy.drop()  # what a healed partition often leaves behind: dead connections

            async def answers() -> bool:
                again = await api.post(PROGRAMS, headers=api.auth(Role.VIEWER))
                return again.status_code == 200 and "errors" not in again.json()

            await eventually(answers, within=20)

    assert before.status_code == 200, before.text
    for response in (read, write):
        assert response.status_code == 503, response.text
        assert _code(response) == "UNAVAILABLE"
        assert response.headers["Retry-After"] == "1"


async def test_a_dropped_connection_is_unavailable_not_internal(
    api_with: ApiFactory, pg_url: str
) -> None:
    """The backend serving a request is terminated (a failover, an operator's
    ``pg_terminate_backend``) while the request's statement is on its way."""
    parts = urlsplit(pg_url)
    name = f"stall-{uuid.uuid4().hex[:8]}"
    async with (
        tcp_proxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy,
        api_with(
            database_url=_through(pg_url, proxy.port),
            pool_size=1,
            application_name=name,
            limits=ApiLimits(database_seconds=10),
        ) as api,
    ):
        await _written(api)
        await api.store.notifier.flush()  # its NOTIFY must not be what meets the drop
        assert (await api.post(PROGRAMS, headers=api.auth(Role.VIEWER))).status_code == 200
        proxy.freeze()
        request = asyncio.create_task(api.post(PROGRAMS, headers=api.auth(Role.VIEWER)))
        await eventually(lambda: proxy.held > 0)  # the request's statement is on its way
        admin = await asyncpg.connect(pg_url)
        try:
            terminated = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                name,
            )
        finally:
            await admin.close()
        proxy.thaw()
        async with asyncio.timeout(15):
            response = await request
        mutation: Any = await api.post(
            "mutation($input: ProposeProgramInput!) { proposeProgram(input: $input) "
            "{ __typename } }",
            {"input": program_input(new_id())},
        )

    assert terminated == 1
    assert response.status_code == 503, response.text
    assert _code(response) == "UNAVAILABLE"
    # The pool replaced the connection: the next request goes through.
    assert mutation.status_code == 200, mutation.text


async def test_a_read_model_not_built_yet_is_unavailable_not_internal(
    api_with: ApiFactory,
) -> None:
    """A fresh deployment answers before its projections have created their tables: a read
    of them is a 503 to retry that names the read model, not an internal error (a read
    of what is built meanwhile goes through)."""
    async with api_with() as api:
        program = new_id()
        await api.accepted("proposeProgram", program_input(program))
        headers = api.auth(Role.AUDITOR)
        read = await api.post(PROGRAM, {"id": program}, headers=headers)
        history = await api.post(
            "query($id: String!) { history(streamId: $id) { eventType } }",
            {"id": f"program-{program}"},
            headers=headers,
        )
        async with api.store.pool.acquire() as conn:
            assert await prepare_tables(conn, PROJECTIONS["programs"])
        built = await api.post(PROGRAM, {"id": program}, headers=headers)

    assert read.status_code == 503, read.text
    assert read.headers["Retry-After"] == "1"
    [error] = read.json()["errors"]
    assert error["message"] == (
        "the programs read model is not built yet: its projection has not started; retry shortly"
    )
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["extensions"]["retryable"] is True
    assert history.json() == {"data": {"history": [{"eventType": "ProgramProposed"}]}}
    assert built.json() == {"data": {"program": None}}, built.text


async def test_only_a_read_models_missing_table_counts_as_not_built(pg_url: str) -> None:
    """What PostgreSQL says of a missing table, schema-qualified or not; a missing table
    that is no read model's stays a bug (``INTERNAL``)."""
    conn = await asyncpg.connect(pg_url)
    try:
        schema = f"unbuilt_{uuid.uuid4().hex[:8]}"
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        said = {}
        for query in (
            "SELECT * FROM rm_scenario_outcomes",
            f'SELECT * FROM "{schema}".rm_risks',
            "SELECT * FROM rm_allocations_state",
            "SELECT * FROM schema_migrations",
        ):
            try:
                await conn.fetch(query)
            except asyncpg.UndefinedTableError as exc:
                said[query.rsplit(" ", 1)[1]] = read_model_not_built(exc)
        await conn.execute(f'DROP SCHEMA "{schema}"')
    finally:
        await conn.close()

    assert said == {
        "rm_scenario_outcomes": "scenarios",
        f'"{schema}".rm_risks': "risks",
        "rm_allocations_state": "allocations",
        "schema_migrations": None,
    }
    assert read_model_not_built(ValueError('relation "rm_risks" does not exist')) is None
