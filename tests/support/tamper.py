"""Rewriting the store as an attacker with superuser rights would: with triggers disabled
for the transaction (``session_replication_role = replica``)."""

from __future__ import annotations

import asyncpg


async def tamper(pg_url: str, schema: str, sql: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(sql)
    finally:
        await conn.close()
