"""Organisation-wide reads at scale: utilisation of every resource and the whole audit trail.

Builds a store of ``--resources`` resources, each registered and given ``--allocations``
allocations (proposed, confirmed, adjusted: three events each), and, up to ``--events``,
programs with their milestones, decisions, budget and risks interleaved with them (the
mix ``bench/projections.py`` writes), loaded with COPY into the event store; then rebuilds
the ``allocations`` and ``audit`` read models from it (the path an operator's store takes,
``--workers`` processes for the audit trail). With the defaults: 10,000 resources, 160,000
events and about 100,000 utilisation weeks; issue 20 asks for ``--events 1000000``.

Measured through the query functions the GraphQL API calls, now and as of the middle
position of the store:

- ``page``: p99 of pages of 50 started at cursors spread over the whole list (keyset:
  a page deep in the list must cost what the first does); the reference is a plain
  keyset ``SELECT`` of 50 rows of the underlying table by its index.
- ``walk``: every row, in pages of 500 (the largest), without counts; the reference is one
  ``SELECT`` of the rows the walk reads (the allocations; the audit rows). The audit trail
  is read over a recorded-time window of ``--audit-window`` events (150,000) ending at
  the position read (the whole trail when the store is smaller), as an auditor reads it.

Goals (issue 20): a page ≤ 100 ms, a walk ≤ 10 s, on a 1,000,000-event store. Run:
``.venv/bin/python bench/reads.py [--events 1000000] [--resources 10000] [--allocations 5]
[--audit-window 150000]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script from a checkout, with the project installed in .venv (the strict editable
# install links the working tree's code): reach bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any

import asyncpg

from bench._common import (
    drop_schemas,
    fresh_schema_name,
    median,
    percentile,
    positive_int,
    postgres_url,
    print_table,
    server_facts,
)
from bench.projections import Item, _program, _risk, _store, load_store, readable
from programledger.domain.resource import (
    AllocationAdjusted,
    AllocationConfirmed,
    AllocationProposed,
    ResourceRegistered,
)
from programledger.domain.values import Department, PartyKind
from programledger.projections.allocations import utilisation
from programledger.projections.audit import audit_trail
from programledger.projections.engine.queries import Page
from programledger.projections.engine.rebuild import rebuild

PAGE_GOAL_MS = 100.0
WALK_GOAL_S = 10.0
DAY = date(2027, 1, 4)
START, END = DAY, DAY + timedelta(weeks=40)


def histories(resources: int, allocations: int) -> Iterator[Item]:
    """Each resource's stream: registered, then its allocations, spread over 20 weeks."""
    programs = [uuid.uuid4() for _ in range(200)]
    for r in range(resources):
        key = f"res-{r:06d}"
        stream = f"resource-{key}"
        yield (
            stream,
            "resource",
            ResourceRegistered(
                resource_key=key,
                name=key,
                kind=PartyKind.PERSON,
                department=Department.ENGINEERING,
                role="dev",
                capacity=100,
            ),
            None,
        )
        for a in range(allocations):
            n = r * allocations + a
            pid = programs[n % len(programs)]
            start = DAY + timedelta(weeks=n % 20)
            fields: dict[str, Any] = {
                "resource_key": key,
                "allocation_id": uuid.uuid4(),
                "program_id": pid,
                "workstream_id": None,
                "start_date": start,
                "end_date": start + timedelta(days=41),
            }
            yield stream, "resource", AllocationProposed(**fields, percentage=20), pid
            yield stream, "resource", AllocationConfirmed(**fields, percentage=20), pid
            adjusted = AllocationAdjusted(**fields, percentage=10 + n % 20, reason="replan")
            yield stream, "resource", adjusted, pid


def programs(count: int) -> Iterator[Item]:
    """``count`` events of programs, each with three risks, stream after stream."""
    n = 0
    while True:
        pid = uuid.uuid4()
        streams = [[(f"program-{pid}", "program", e, pid) for e in _program(pid, n)]]
        for r in range(3):
            events = _risk(pid, n * 3 + r)
            rid = events[0].risk_id  # type: ignore[attr-defined]
            streams.append([(f"risk-{rid}", "risk", e, pid) for e in events])
        for stream in streams:
            for item in stream:
                if count == 0:
                    return
                yield item
                count -= 1
        n += 1


def store_items(resources: int, allocations: int, events: int) -> Iterator[Item]:
    """Each resource's history, then an equal share of the program events, in turn."""
    per_resource = 1 + 3 * allocations
    filler = programs(max(0, events - resources * per_resource))
    share, extra = divmod(max(0, events - resources * per_resource), resources)
    resource_items = histories(resources, allocations)
    for r in range(resources):
        yield from islice(resource_items, per_resource)
        yield from islice(filler, share + (1 if r < extra else 0))


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    ours: float
    ref: float
    goal: float
    unit: str

    def text(self) -> str:
        ratio = self.ours / self.ref if self.ref else float("nan")
        return (
            f"target {self.name}: ours={self.ours:.2f} ref={self.ref:.2f} ratio={ratio:.3f} "
            f"goal=<={self.goal:g}{self.unit} {'met' if self.ours <= self.goal else 'missed'}"
        )


Lister = Callable[[int, str | None, Any], Awaitable[Page[Any]]]


async def walk(lister: Lister, as_of: Any) -> tuple[float, int, list[str]]:
    """Seconds to read every row in pages of 500, the rows, and each page's end cursor."""
    cursors: list[str] = []
    rows, after = 0, None
    started = time.perf_counter()
    while True:
        page = await lister(500, after, as_of)
        rows += len(page.items)
        if not page.has_next_page or page.end_cursor is None:
            break
        after = page.end_cursor
        cursors.append(after)
    return time.perf_counter() - started, rows, cursors


async def page_times(lister: Lister, cursors: list[str], as_of: Any, samples: int) -> list[float]:
    """Milliseconds of pages of 50 after ``samples`` cursors spread over the list."""
    step = max(1, len(cursors) // samples)
    times = []
    for cursor in [None, *cursors[::step]]:
        started = time.perf_counter()
        await lister(50, cursor, as_of)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def ref_page_ms(pool: asyncpg.Pool, sql: str, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        await pool.fetch(sql)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def ref_walk_s(pool: asyncpg.Pool, sql: str, *args: Any) -> float:
    started = time.perf_counter()
    await pool.fetch(sql, *args)
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    schema = fresh_schema_name("reads")
    events = max(args.events or 0, args.resources * (1 + 3 * args.allocations))
    with postgres_url(args.database_url) as (url, where):
        print(f"PostgreSQL from {where}: {await server_facts(url)}")
        try:
            started = time.perf_counter()
            items = store_items(args.resources, args.allocations, events)
            await load_store(url, schema, events, items)
            print(f"loaded {events:,} events in {time.perf_counter() - started:.0f}s", flush=True)
            store = await _store(url, schema)
            pool = store.pool
            try:
                await readable(store, events)
                for name in ("allocations", "audit"):
                    report = await rebuild(
                        pool,
                        store,
                        name,
                        progress=not args.quiet,
                        workers=args.workers,
                        database_url=url,
                    )
                    print(f"rebuilt {name}: {report.rate:,.0f} events/s", flush=True)
                lines, rows = await measure(pool, events, args.samples, args.audit_window)
            finally:
                await pool.close()
        finally:
            await drop_schemas(url, [schema])
    print_table("organisation-wide reads", ["what", "rows", "ours", "ref"], rows)
    for line in lines:
        print(line.text())


STARTED = datetime(2027, 1, 1, tzinfo=UTC)
"""``load_store`` records event ``p`` at ``STARTED + p`` milliseconds."""


def recorded(position: int) -> datetime:
    return STARTED + timedelta(milliseconds=position)


async def measure(
    pool: asyncpg.Pool, events: int, samples: int, window: int
) -> tuple[list[Line], list[list[str]]]:
    middle = events // 2

    async def weeks(first: int, after: str | None, as_of: Any) -> Page[Any]:
        return await utilisation(
            pool, start=START, end=END, first=first, after=after, known_at=as_of, count=False
        )

    def since(as_of: int | None) -> int:
        """The first position of the audit window ending at ``as_of`` (or the head)."""
        return max(1, (events if as_of is None else as_of) - window + 1)

    async def trail(first: int, after: str | None, as_of: Any) -> Page[Any]:
        return await audit_trail(
            pool,
            first=first,
            after=after,
            as_of=as_of,
            count=False,
            recorded_from=recorded(since(as_of)),
        )

    live = (
        "status <> 'RELEASED' AND start_date <= $1 AND end_date >= $2 AND "
        "valid_from_pos <= $3 AND (valid_to_pos IS NULL OR valid_to_pos > $3)"
    )
    refs: dict[str, tuple[str, str, tuple[Any, ...]]] = {
        "utilisation": (
            "SELECT * FROM rm_allocations WHERE valid_to_pos IS NULL AND resource_key > "
            "'res-005000' ORDER BY resource_key, start_date, allocation_id LIMIT 51",
            f"SELECT resource_key, start_date, end_date, percentage, status, program_id "
            f"FROM rm_allocations WHERE {live}",
            (END + timedelta(days=6), START),
        ),
        "audit": (
            f"SELECT * FROM rm_audit WHERE position < {middle} ORDER BY position DESC LIMIT 51",
            "SELECT * FROM rm_audit WHERE position >= $1 AND position <= $2",
            (),
        ),
    }
    lines: list[Line] = []
    rows: list[list[str]] = []
    for name, lister in (("utilisation", weeks), ("audit", trail)):
        page_sql, walk_sql, walk_args = refs[name]
        for when, as_of in (("now", None), ("as_of", middle)):
            at = events if as_of is None else middle
            walk_s, count, cursors = await walk(lister, as_of)
            window_args = (since(as_of),) if name == "audit" else ()
            ref_walk = await ref_walk_s(pool, walk_sql, *walk_args, *window_args, at)
            pages = await page_times(lister, cursors, as_of, samples)
            ref_pages = await ref_page_ms(pool, page_sql, len(pages))
            p99, ref_p99 = percentile(pages, 99), percentile(ref_pages, 99)
            rows.append(
                [
                    f"{name} page of 50 ({when})",
                    f"{len(pages)} pages",
                    f"p50 {median(pages):.1f} p99 {p99:.1f} ms",
                    f"p99 {ref_p99:.1f} ms",
                ]
            )
            rows.append(
                [f"{name} walk ({when})", f"{count:,}", f"{walk_s:.2f} s", f"{ref_walk:.2f} s"]
            )
            lines.append(Line(f"{name}_page_{when}_p99_ms", p99, ref_p99, PAGE_GOAL_MS, "ms"))
            lines.append(Line(f"{name}_walk_{when}_s", walk_s, ref_walk, WALK_GOAL_S, "s"))
    return lines, rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--events",
        type=positive_int,
        default=None,
        help="events in the store (at least the resources' own; issue 20: 1000000)",
    )
    parser.add_argument("--resources", type=positive_int, default=10_000)
    parser.add_argument(
        "--audit-window", type=positive_int, default=150_000, help="audit events walked"
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=min(os.cpu_count() or 1, 4),
        help="processes rebuilding the audit trail",
    )
    parser.add_argument("--allocations", type=positive_int, default=5, help="per resource")
    parser.add_argument("--samples", type=positive_int, default=100, help="pages of 50 timed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
