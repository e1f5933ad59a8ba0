"""Every list pages both ways without losing or repeating a row (hypothesis).

For random valid histories (whose small value ranges give ties in every sort column, and
nulls where a column may be empty, e.g. risks without a review date): every list query
the API serves, in every sort key it offers, ascending and descending, now and as of a
position, walked forward (``first``/``after``) and backward (``last``/``before``) in
pages of a drawn size, returns exactly ``totalCount`` rows, none twice, in the order of
the whole list read at once.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest_asyncio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.handlers import Application
from programledger.projections import allocations, audit, decisions, milestones, programs, risks
from programledger.projections.engine.queries import MAX_PAGE_SIZE, Page
from programledger.projections.engine.status import wait_for_position
from programledger.projections.engine.tables import Table
from tests.support.projection_process import LiveSystem, Step, app_store, run_steps, steps

Listing = Callable[..., Awaitable[Page[Any]]]

LISTS: tuple[tuple[Listing, Table], ...] = (
    (programs.list_programs, programs.PROGRAMS),
    (risks.list_risks, risks.RISKS),
    (milestones.list_milestones, milestones.MILESTONES),
    (milestones.list_dependencies, milestones.DEPENDENCIES),
    (decisions.list_decisions, decisions.DECISIONS),
    (decisions.list_lessons, decisions.LESSONS),
    (allocations.list_resources, allocations.RESOURCES),
    (allocations.list_allocations, allocations.ALLOCATIONS),
)
"""Each list query and its table (its row key, and every sort it offers)."""

TIES: tuple[Step, ...] = (
    *(("identify", r, 0, 3, 3, None) for r in range(3)),
    *(("milestone", 1, m, 10, None) for m in range(3)),
)
"""Steps that make sure of ties and nulls whatever was drawn: three risks alike and
without a review date, three milestones due the same day (refused where the drawn
history already holds that risk or milestone)."""

SETTINGS = settings(
    max_examples=5,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest_asyncio.fixture
async def store(pool: asyncpg.Pool, schema: str) -> PostgresEventStore:
    return app_store(pool, schema)


@pytest_asyncio.fixture
async def live(
    store: PostgresEventStore, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[LiveSystem]:
    async with LiveSystem(store, pg_url, nats_url, subject_prefix) as system:
        yield system


def _key(table: Table) -> Callable[[Any], tuple[Any, ...]]:
    names = table.key_names
    return lambda row: tuple(getattr(row, n) for n in names)


async def _walk(read: Listing, key: Any, size: int, forward: bool, what: str) -> list[Any]:
    """The rows of a walk in pages of ``size``, forward from the start or backward from
    the end, in the list's order; a walk that takes more pages than the rows need is a
    loop."""
    size_name, cursor_name = ("first", "after") if forward else ("last", "before")
    page = await read(**{size_name: size})
    found: list[Any] = []
    for _ in range((page.total_count or 0) // size + 2):
        rows = [key(r) for r in page.items]
        found = found + rows if forward else rows + found
        more = page.has_next_page if forward else page.has_previous_page
        if not more:
            return found
        cursor = page.end_cursor if forward else page.start_cursor
        assert cursor is not None, what
        page = await read(**{size_name: size, cursor_name: cursor})
    raise AssertionError(f"{what}: the walk does not end: {found}")


async def _walks(read: Listing, key: Any, size: int, what: str) -> None:
    """Forward and backward walks in pages of ``size`` each equal the whole list."""
    whole = await read(first=MAX_PAGE_SIZE)
    assert not whole.has_next_page, what
    expected = [key(r) for r in whole.items]
    assert whole.total_count == len(expected), what
    assert await _walk(read, key, size, True, what) == expected, (what, "forward")
    assert await _walk(read, key, size, False, what) == expected, (what, "backward")


@SETTINGS
@given(history=steps(), size=st.integers(1, 4), data=st.data())
async def test_every_list_pages_both_ways_in_every_sort(
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    live: LiveSystem,
    history: list[Step],
    size: int,
    data: st.DataObject,
) -> None:
    await run_steps(Application(store), [*history, *TIES])
    head = int(await pool.fetchval("SELECT coalesce(max(position), 0) FROM events"))
    assert await wait_for_position(pool, head, 30)
    # As of a drawn share of the store: the as-of query path (keys from the sort's index,
    # then the rows) pages the same way as the current one.
    past = head * data.draw(st.integers(0, 100)) // 100
    for as_of in (None, past):
        for listing, table in LISTS:
            for sort in table.sorts:
                for descending in (False, True):
                    read = functools.partial(
                        listing, pool, sort=sort, descending=descending, as_of=as_of
                    )
                    what = (listing.__name__, sort, descending, as_of, size)
                    await _walks(read, _key(table), size, str(what))
        for newest_first in (False, True):
            trail = functools.partial(
                audit.audit_trail, pool, newest_first=newest_first, as_of=as_of
            )
            await _walks(trail, _key(audit.AUDIT), size, f"audit {newest_first} {as_of}")
