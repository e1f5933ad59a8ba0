"""Counting the SQL statements the API sends, to show a nested query is batched."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest

from programledger.adapters.postgres.connection import PooledConnection

__all__ = ["counting_statements"]


@contextlib.contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Every statement asyncpg sends with parameters (fetch, fetchval, fetchrow...) while
    the block runs, in this process, and every transaction it opens (``BEGIN ...``)."""
    seen: list[str] = []
    original = asyncpg.connection.Connection._execute  # type: ignore[attr-defined]

    async def counted(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(query)
        return await original(self, query, *args, **kwargs)

    def counting_begin(execute: Callable[..., Any]) -> Callable[..., Any]:
        async def counted_simple(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if query.lstrip().upper().startswith("BEGIN"):
                seen.append(query)
            return await execute(self, query, *args, **kwargs)

        return counted_simple

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncpg.connection.Connection, "_execute", counted)
        # A pool's connections have their own execute (it notes a failed statement), which
        # calls asyncpg's as it was when imported: each class is counted once.
        for cls in (asyncpg.connection.Connection, PooledConnection):
            patch.setattr(cls, "execute", counting_begin(cls.execute))
        yield seen
