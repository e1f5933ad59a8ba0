"""Shared fixtures: one PostgreSQL and one NATS per test session, isolated per test.

Each test gets its own schema (a whole event store of its own) and its own NATS subject
prefix, so tests never see each other's data even on a shared server.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import pytest_asyncio
from hypothesis import settings

from programledger.adapters.codec import EventCodec
from programledger.adapters.postgres.catalogue import sync_catalogue
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.migrations import migrate
from programledger.domain.events import EventRegistry
from tests.support.events import store_test_registry
from tests.support.servers import nats_server, postgres_server

log = logging.getLogger("tests")

# Property tests check behaviour, not speed: on a busy 2-core machine one example can take
# longer than Hypothesis's default 200 ms deadline, which then fails a correct test.
settings.register_profile("programledger", deadline=None)
settings.load_profile("programledger")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with postgres_server() as (url, how):
        log.info("tests use PostgreSQL from %s", how)
        yield url


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    with nats_server() as (url, how):
        log.info("tests use NATS from %s", how)
        yield url


@pytest.fixture
def subject_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def fresh_schema(pg_url: str) -> AsyncIterator[str]:
    """A migrated schema of its own (a whole event store, with its own store id), dropped
    afterwards; for a test that needs a second store, too."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn, name)
        await sync_catalogue(conn, store_test_registry())
    finally:
        await conn.close()
    yield name
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def schema(pg_url: str) -> AsyncIterator[str]:
    async with fresh_schema(pg_url) as name:
        yield name


@pytest.fixture
def registry() -> EventRegistry:
    return store_test_registry()


@pytest_asyncio.fixture
async def pool(pg_url: str, schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pg_url, schema, min_size=1, max_size=40)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def event_store(
    pool: asyncpg.Pool, registry: EventRegistry, schema: str
) -> PostgresEventStore:
    return PostgresEventStore(pool, EventCodec(registry), schema=schema)
