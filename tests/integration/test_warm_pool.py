"""A process that answers commands opens its pool with the connections they use at once,
each already past its first statements, and writes nothing doing so, nor raises anything
PostgreSQL would log as an error; other processes open one connection and grow on demand."""

from __future__ import annotations

import asyncpg

from programledger.adapters.postgres.connection import connect
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.bootstrap import command_connections, open_runtime
from programledger.settings import Settings


def _settings(pg_url: str, schema: str, **extra: int) -> Settings:
    return Settings(database_url=pg_url, schema=schema, **extra)  # type: ignore[arg-type]


async def test_a_command_process_opens_its_pool_warm(pg_url: str, schema: str) -> None:
    settings = _settings(pg_url, schema)
    async with open_runtime(settings, need_nats=False, commands=True) as runtime:
        assert runtime.pool.get_size() == command_connections(settings) == 4
        async with runtime.pool.acquire() as conn:
            prepared = await conn.fetch("SELECT statement FROM pg_prepared_statements")
            events = await conn.fetchval("SELECT count(*) FROM events")
            reserved = await conn.fetchval("SELECT is_called FROM event_position_seq")
    statements = "\n".join(row["statement"] for row in prepared)
    for function in ("append_batch(", "unnest($1::text[])"):
        assert function in statements, statements
    assert events == 0
    assert reserved is False


async def test_warming_a_connection_raises_nothing_postgresql_would_log(
    pg_url: str, schema: str
) -> None:
    """Every statement of the warm-up succeeds, the single append's conflict included: an
    error that reaches the client is one PostgreSQL logs (``ERROR: version conflict`` on
    every new connection, before). The append really ran, its conflict caught: a call that
    failed otherwise (a missing function, another error) would raise here."""
    async with open_runtime(_settings(pg_url, schema), need_nats=False):
        pass  # the schema, migrated
    conn = await connect(pg_url, schema)
    ran: list[asyncpg.connection.LoggedQuery] = []
    conn.add_query_logger(ran.append)
    try:
        await PostgresEventStore.warm(conn)
        sequence = await conn.fetchval("SELECT is_called FROM event_position_seq")
        events = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    assert [q.exception for q in ran] == [None] * len(ran)
    assert any("PERFORM append_events(" in q.query for q in ran)
    assert any("append_batch(" in q.query for q in ran)
    assert (sequence, events) == (False, 0)


async def test_other_processes_open_one_connection(pg_url: str, schema: str) -> None:
    async with open_runtime(_settings(pg_url, schema), need_nats=False) as runtime:
        assert runtime.pool.get_size() == 1


def test_the_floor_stays_within_the_pool() -> None:
    assert command_connections(Settings(db_pool_size=3)) == 3
    assert command_connections(Settings(appends_in_flight=2, reads_in_flight=3)) == 6
