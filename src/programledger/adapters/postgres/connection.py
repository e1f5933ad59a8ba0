"""Connection pools bound to one store schema, with jsonb passed through as raw bytes."""

from __future__ import annotations

from typing import Any

import asyncpg

from programledger.settings import SCHEMA_PATTERN

__all__ = ["connect", "create_pool", "validate_schema"]


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
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool whose connections open within ``connect_timeout`` seconds and whose
    statements PostgreSQL cancels after ``statement_timeout`` (``None``: never; a session
    can still ``SET statement_timeout = 0`` for work known to be long, and the pool's
    reset restores the limit when it is released)."""
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        server_settings=_settings(schema, application_name, statement_timeout),
        init=init_connection,
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
