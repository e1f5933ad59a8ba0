"""Downstream of a broken hash chain nothing pretends: history, an export and a rebuild
refuse with ``BrokenChain`` naming the stream and its first broken version."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest
import pytest_asyncio

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.errors import OperationalError
from programledger.application.eventstore import BrokenChain
from programledger.application.export import export_program
from programledger.application.handlers import Application
from programledger.projections.engine.rebuild import rebuild
from tests.support.ledger import settled
from tests.support.projection_process import Ids, app_store, busy_history, run_steps
from tests.support.tamper import tamper

EDIT_VERSION_2 = (
    "UPDATE events SET data = jsonb_set(data, '{{health}}', '\"red\"') "
    "WHERE stream_id = '{stream}' AND version = 2"
)


@pytest_asyncio.fixture
async def store(pool: asyncpg.Pool, schema: str) -> PostgresEventStore:
    return app_store(pool, schema)


@pytest_asyncio.fixture
async def program_stream(store: PostgresEventStore) -> str:
    ids = Ids()
    await run_steps(Application(store), busy_history(3), ids)
    await settled(store)
    return f"program-{ids('program', 0)}"


def _names(error: BrokenChain, stream: str, version: int) -> None:
    assert isinstance(error, OperationalError), "the CLI reports it in one line, exit 1"
    assert (error.stream_id, error.version) == (stream, version)
    assert f"stream {stream!r} is broken at version {version}" in str(error)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (EDIT_VERSION_2, "content does not match its hash"),
        # Data that no longer decodes at all: still the integrity error, not a crash.
        (
            "UPDATE events SET data = '{{}}' WHERE stream_id = '{stream}' AND version = 2",
            "content does not match its hash",
        ),
        ("DELETE FROM events WHERE stream_id = '{stream}' AND version = 2", "version 2 is missing"),
    ],
)
async def test_history_of_a_broken_stream_is_refused(
    store: PostgresEventStore,
    program_stream: str,
    pg_url: str,
    schema: str,
    edit: str,
    problem: str,
) -> None:
    app = Application(store)
    assert len(await app.history(program_stream)) > 2
    await tamper(pg_url, schema, edit.format(stream=program_stream))
    with pytest.raises(BrokenChain) as refused:
        await app.history(program_stream)
    _names(refused.value, program_stream, 2)
    assert problem in refused.value.problem


async def test_an_export_of_a_program_with_a_broken_stream_is_refused(
    store: PostgresEventStore, program_stream: str, pg_url: str, schema: str
) -> None:
    program_id = program_stream.partition("-")[2]
    exported = await export_program(store, UUID(program_id))
    assert exported.header.events > 2
    await tamper(pg_url, schema, EDIT_VERSION_2.format(stream=program_stream))
    with pytest.raises(BrokenChain) as refused:
        await export_program(store, exported.header.program_id)
    _names(refused.value, program_stream, 2)


async def test_a_rebuild_over_a_broken_stream_fails_and_leaves_the_live_tables(
    store: PostgresEventStore, pool: asyncpg.Pool, program_stream: str, pg_url: str, schema: str
) -> None:
    await rebuild(pool, store, "audit", progress=False)
    before = await pool.fetch("SELECT * FROM rm_audit ORDER BY position")
    await tamper(pg_url, schema, EDIT_VERSION_2.format(stream=program_stream))
    with pytest.raises(BrokenChain) as refused:
        await rebuild(pool, store, "audit", progress=False)
    _names(refused.value, program_stream, 2)
    assert await pool.fetch("SELECT * FROM rm_audit ORDER BY position") == before
    assert await pool.fetchval("SELECT to_regclass('rm_audit__rebuild')") is None
