"""The composition root: the one place that picks and wires the concrete adapters.

Servers are started here only when no URL is configured (the embedded default); past this
point the code path is the same for embedded and configured servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from programledger.adapters.codec import EventCodec
from programledger.adapters.embedded import EmbeddedNats, EmbeddedPostgres
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.migrations import migrate
from programledger.domain.events import EventRegistry
from programledger.settings import Settings

__all__ = ["Runtime", "Servers", "event_registry", "open_runtime", "servers"]

log = logging.getLogger(__name__)


def event_registry() -> EventRegistry:
    """Every event type the application knows, with its upcasters."""
    from programledger.application.registry import application_registry

    return application_registry()


@dataclass(frozen=True, slots=True)
class Servers:
    database_url: str
    nats_url: str


@contextlib.asynccontextmanager
async def servers(settings: Settings, *, need_nats: bool = True) -> AsyncIterator[Servers]:
    """The configured servers, or embedded ones in ``settings.data_dir`` for the duration."""
    started: list[EmbeddedPostgres | EmbeddedNats] = []
    try:
        database_url = settings.database_url
        if database_url is None:
            pg = EmbeddedPostgres(
                settings.data_dir / "postgres", port=settings.embedded_postgres_port, log=log
            )
            log.info("no PROGRAMLEDGER_DATABASE_URL: starting the embedded PostgreSQL in %s",
                     settings.data_dir / "postgres")
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            database_url = await asyncio.to_thread(pg.start)
            started.append(pg)
        nats_url = settings.nats_url or ""
        if need_nats and settings.nats_url is None:
            nats = EmbeddedNats(
                settings.data_dir / "nats", port=settings.embedded_nats_port, log=log
            )
            log.info("no PROGRAMLEDGER_NATS_URL: starting the embedded NATS in %s",
                     settings.data_dir / "nats")
            nats_url = await asyncio.to_thread(nats.start)
            started.append(nats)
        yield Servers(database_url=database_url, nats_url=nats_url)
    finally:
        for server in reversed(started):
            await asyncio.to_thread(server.stop)


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    servers: Servers
    pool: asyncpg.Pool
    store: PostgresEventStore


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings, *, need_nats: bool = True) -> AsyncIterator[Runtime]:
    """Servers up, schema migrated, pool and store open; all closed again on exit."""
    async with servers(settings, need_nats=need_nats) as found:
        conn = await asyncpg.connect(found.database_url)
        try:
            applied = await migrate(conn, settings.schema)
        finally:
            await conn.close()
        for migration in applied:
            log.info("applied migration %04d_%s", migration.version, migration.name)
        pool = await create_pool(found.database_url, settings.schema)
        try:
            store = PostgresEventStore(pool, EventCodec(event_registry()), schema=settings.schema)
            yield Runtime(settings=settings, servers=found, pool=pool, store=store)
        finally:
            await pool.close()
