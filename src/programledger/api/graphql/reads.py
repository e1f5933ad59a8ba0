"""One connection for the statements of one resolver.

Taking a connection from the pool and giving it back costs a round trip of its own (the
pool resets the session on release), as much as a small query. A program and its nested
lists are four statements, run one after the other by one resolver: they share one
connection rather than take and reset four. The connection is held only while that
resolver runs, never while it waits for another connection, so requests cannot starve
the pool by each holding one and waiting for a second.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from programledger.projections.engine.core import Connection

__all__ = ["one_connection"]


class _Lent:
    """A :class:`~programledger.projections.engine.queries.Reader` over one connection, for
    statements run one after the other."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def acquire(self) -> contextlib.nullcontext[Connection]:
        return contextlib.nullcontext(self._connection)


@contextlib.asynccontextmanager
async def one_connection(pool: asyncpg.Pool) -> AsyncIterator[_Lent]:
    async with pool.acquire() as connection:
        yield _Lent(connection)
