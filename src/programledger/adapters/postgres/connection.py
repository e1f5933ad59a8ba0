"""Connection pools bound to one store schema, with jsonb passed through as raw bytes."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from programledger.settings import SCHEMA_PATTERN

__all__ = [
    "PooledConnection",
    "changes_session",
    "connect",
    "create_pool",
    "unbounded_statements",
    "validate_schema",
]


def validate_schema(schema: str) -> str:
    if not SCHEMA_PATTERN.match(schema):
        raise ValueError(
            f"schema name {schema!r} is not allowed: use 1-51 lowercase letters, digits or _, "
            "not starting with a digit"
        )
    return schema


def _encode_jsonb(value: bytes | str) -> bytes:
    return b"\x01" + (value.encode() if isinstance(value, str) else value)


def _decode_jsonb(value: bytes) -> bytes:
    # Binary jsonb is a version byte followed by the JSON text; skipping a text round trip
    # matters on the relay's and the rebuild's hot paths.
    return value[1:]


async def init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )


Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection, or one lent by a pool."""


class PooledConnection(asyncpg.Connection):
    """A pool's connection that knows whether its session may have changed.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release: a round trip and a noticeable share of the API's CPU per
    request, for sessions that almost never change. Only connections that said they change
    their session (:func:`changes_session`, :func:`unbounded_statements`, ``add_listener``)
    or whose statement failed or was cancelled are reset: a failure can leave what a
    statement took for the session, such as ``append_events``'s ordering lock.
    """

    session_changed: bool = False

    def mark_session_changed(self) -> None:
        self.session_changed = True

    async def add_listener(self, channel: str, callback: Any) -> None:
        self.mark_session_changed()
        await super().add_listener(channel, callback)


def _marks_failures(name: str) -> Callable[..., Awaitable[Any]]:
    # The method is looked up on each call, not once here, so whatever wraps asyncpg's own
    # (instrumentation, the tests' statement counters) sees pooled connections' calls too.
    @functools.wraps(getattr(asyncpg.Connection, name))
    async def run(self: PooledConnection, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(asyncpg.Connection, name)(self, *args, **kwargs)
        except BaseException:
            self.session_changed = True
            raise

    return run


for _name in (
    "execute",
    "executemany",
    "fetch",
    "fetchval",
    "fetchrow",
    "fetchmany",
    "copy_from_table",
    "copy_from_query",
    "copy_to_table",
    "copy_records_to_table",
):
    setattr(PooledConnection, _name, _marks_failures(_name))


async def _reset_session(conn: asyncpg.Connection) -> None:
    # asyncpg has already rolled back an open transaction (and SET LOCAL with it) and
    # dropped the listener callbacks; the server-side session is reset only if changed.
    if isinstance(conn, PooledConnection) and conn.session_changed:
        await conn.execute(conn.get_reset_query())
        conn.session_changed = False


def changes_session(conn: Connection) -> None:
    """Say, before doing it, that ``conn`` is about to change its session (``SET`` without
    ``LOCAL``, a session advisory lock, ``LISTEN``): its pool resets it when released."""
    # A pool lends a proxy, which hands the call to the connection it wraps.
    mark = getattr(conn, "mark_session_changed", None)
    if mark is not None:
        mark()


@contextlib.asynccontextmanager
async def unbounded_statements(conn: Connection) -> AsyncIterator[None]:
    """Lift ``statement_timeout`` for work known to be long; the limit comes back on exit,
    and on release even if the exit could not restore it (failure, cancellation)."""
    changes_session(conn)
    await conn.execute("SET statement_timeout = 0")
    yield
    await conn.execute("RESET statement_timeout")


def _settings(
    schema: str, application_name: str, statement_timeout: float | None = None
) -> dict[str, str]:
    found = {"search_path": validate_schema(schema), "application_name": application_name}
    if statement_timeout is not None:
        found["statement_timeout"] = str(int(statement_timeout * 1000))
    return found


async def create_pool(
    url: str,
    schema: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    application_name: str = "programledger",
    connect_timeout: float = 60.0,
    statement_timeout: float | None = None,
    warm: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool whose connections open within ``connect_timeout`` seconds and whose
    statements PostgreSQL cancels after ``statement_timeout`` (``None``: never; a session
    can lift it with :func:`unbounded_statements` for work known to be long, and the
    pool's reset restores the limit when it is released). Session state changed by other
    means than :class:`PooledConnection` knows of is not reset on release: change it with
    ``SET LOCAL`` inside a transaction.

    ``min_size`` connections open with the pool and stay open however long they idle.
    ``warm`` runs on each new connection before the pool lends it: a new backend plans
    every statement, and compiles every PL/pgSQL function, the first time it runs one
    (see ``PostgresEventStore.warm``)."""

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if warm is not None:
            await warm(conn)

    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        server_settings=_settings(schema, application_name, statement_timeout),
        init=init,
        reset=_reset_session,
        connection_class=PooledConnection,
        timeout=connect_timeout,
        **kwargs,
    )
    assert pool is not None
    return pool


async def connect(
    url: str,
    schema: str,
    *,
    application_name: str = "programledger",
    connect_timeout: float = 60.0,
) -> asyncpg.Connection:
    """A single connection, for LISTEN and for work that must not share a pool."""
    conn = await asyncpg.connect(
        url, server_settings=_settings(schema, application_name), timeout=connect_timeout
    )
    await init_connection(conn)
    return conn
