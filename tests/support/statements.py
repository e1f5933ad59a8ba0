"""Counting the SQL statements the API sends, to show a nested query is batched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

__all__ = ["counting_statements"]


@contextlib.contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Every statement asyncpg sends with parameters (fetch, fetchval, fetchrow...) while
    the block runs, in this process, and every transaction it opens (``BEGIN ...``)."""
    seen: list[str] = []
    original = asyncpg.connection.Connection._execute  # type: ignore[attr-defined]
    original_simple = asyncpg.connection.Connection.execute

    async def counted(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(query)
        return await original(self, query, *args, **kwargs)

    async def counted_simple(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if query.lstrip().upper().startswith("BEGIN"):
            seen.append(query)
        return await original_simple(self, query, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncpg.connection.Connection, "_execute", counted)
        patch.setattr(asyncpg.connection.Connection, "execute", counted_simple)
        yield seen
