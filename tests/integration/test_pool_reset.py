"""The pool resets only the sessions that say they changed, and those fully: a released
connection never keeps a lifted statement timeout, a session advisory lock or a LISTEN."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from programledger.adapters.postgres.connection import (
    changes_session,
    create_pool,
    unbounded_statements,
)


@pytest_asyncio.fixture
async def one(pg_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of one connection, so every acquire gets the connection released before."""
    pool = await create_pool(pg_url, schema, min_size=1, max_size=1, statement_timeout=2)
    yield pool
    await pool.close()


async def test_a_lifted_timeout_comes_back_on_exit(one: asyncpg.Pool) -> None:
    async with one.acquire() as conn:
        async with unbounded_statements(conn):
            assert await conn.fetchval("SHOW statement_timeout") == "0"
        assert await conn.fetchval("SHOW statement_timeout") == "2s"


async def test_a_lifted_timeout_left_by_a_failure_is_reset_on_release(
    one: asyncpg.Pool,
) -> None:
    with pytest.raises(RuntimeError):
        async with one.acquire() as conn, unbounded_statements(conn):
            raise RuntimeError("the long work failed")
    async with one.acquire() as conn:
        assert await conn.fetchval("SHOW statement_timeout") == "2s"


async def test_a_session_lock_and_a_listen_go_with_the_release(one: asyncpg.Pool) -> None:
    async with one.acquire() as conn:
        changes_session(conn)
        assert await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended('pr', 0))")
        await conn.execute("LISTEN pool_reset_test")
    async with one.acquire() as conn:
        locks = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        listening = await conn.fetchval("SELECT count(*) FROM pg_listening_channels()")
    assert (locks, listening) == (0, 0)


async def test_an_unchanged_session_keeps_its_settings_across_releases(
    one: asyncpg.Pool, schema: str
) -> None:
    for _ in range(3):
        async with one.acquire() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "2s"
            assert schema in await conn.fetchval("SHOW search_path")


async def test_a_lock_left_by_a_failed_statement_goes_with_the_release(
    one: asyncpg.Pool,
) -> None:
    """As append_events's ordering lock would be, if a statement failed while it held it."""
    with pytest.raises(asyncpg.RaiseError):
        async with one.acquire() as conn:
            await conn.execute(
                "DO $$ BEGIN PERFORM pg_advisory_lock(hashtextextended('pr', 0)); "
                "RAISE EXCEPTION 'failed holding the lock'; END $$"
            )
    async with one.acquire() as conn:
        locks = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
    assert locks == 0
