"""Append throughput and latency: ``PostgresEventStore.append`` against raw asyncpg.

Why this benchmark exists: every guarantee of an append (exact expected version, idempotency
hooks, safe global order under a short advisory lock, the hash chain, NOTIFY) lives in one
SQL function, and each has a price. The question it answers is how much of the throughput
of the simplest correct thing, a hand-written ``BEGIN; UPDATE streams ... WHERE version =
$expected; INSERT events; COMMIT`` with asyncpg, those guarantees cost, at 1 and 8
concurrent writers and 1 and 10 events per append. These cells measure the single append:
the store runs every append as its own transaction there (``appends_in_flight=None``).

Then write-combining (``adapters/postgres/combining.py``): 32 and 128 concurrent
single-event commands through the application layer (load the stream, decide, append: a
``RegisterResource`` on a fresh resource each), with the store's default combining (of
appends and of the loads' stream reads) and the same 8 connections as the reference,
against the raw single-event transaction at 8 connections (``commands_<n>c``, goal 3x); and
the p99 latency of commands arriving at random, 10 a second, at the store with combining
and at one with none of either, both on the same schedule (``command_p99_10cps``, goal: no
worse). Beside the mean commands per transaction, ``tx p10/50/90`` gives their
distribution: commands that move as one wave show as a low p10 and p50 with a high p90,
which the mean hides.

Both sides run in the same process, on the event loop the product runs on (uvloop, as
``cli/common.py`` sets it up), against the same server, with the same event payloads
(a ~340-byte JSON ``Noted`` and ~200 bytes of metadata), the same pool size (one connection per
writer), and each writer appending to its own streams with the exact version it expects,
so every append takes the concurrency-checked path and none conflicts. Rounds alternate
which side goes first to cancel drift (autovacuum, checkpoints, a noisy neighbour), and
medians over rounds are reported, as DESIGN §7 asks. The loop matters to the reference most:
on asyncio's own loop, its Python, not PostgreSQL, held the reference back at 8 writers
(90-98% of a core; single-event transactions 2.9-3.6k a second against 5.5-5.8k on uvloop,
same hour, where ours went from 2.85-2.88k to 3.2-3.4k), so a ratio measured there flatters
the store. ``--loop asyncio`` reproduces the figures of the runs before 2026-12-07.

Run: ``python bench/append.py [--rounds N] [--seconds S] [--database-url URL] [--waits]
[--commands 32 128] [--latency-seconds 240] [--loop uvloop|asyncio]``.
``--waits`` samples ``pg_stat_activity`` during the rounds and prints where each side's
backends spend their time, which is how to find out why a figure is low.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script from a checkout, with the project installed in .venv (the strict editable
# install links the working tree's code): reach bench/ and tests/support (the Noted event).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import msgspec
from tests.support.events import Noted, store_test_registry

from bench._common import (
    EVENT_LOOPS,
    RoundResult,
    Target,
    WaitSampler,
    add_common_arguments,
    drop_schemas,
    fresh_schema_name,
    median,
    percentile,
    positive_float,
    positive_int,
    postgres_url,
    print_table,
    run_on_loop,
    server_facts,
    timed_round,
)
from programledger.adapters.codec import EventCodec
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import (
    DEFAULT_APPENDS_IN_FLIGHT,
    PostgresEventStore,
)
from programledger.adapters.postgres.migrations import migrate
from programledger.application.commands import CommandContext
from programledger.application.eventstore import EventMetadata
from programledger.application.handlers import Application
from programledger.application.registry import application_registry
from programledger.domain.events import DomainEvent, EventRegistry
from programledger.domain.resource import RegisterResource
from programledger.domain.values import Department, PartyKind

GOAL = 0.8
"""Ours must keep at least this share of the reference's events per second."""

HEADLINE = "append_1ev_8w"
"""The target that matters most: single-event commands from many concurrent callers."""

COMBINING_GOAL = 3.0
"""Combined commands must reach this multiple of the raw single-event transactions."""

LATENCY_RATE = 10.0
"""Commands per second on each side of the latency comparison: a store that seldom has a
queue: about one command in seventy finds another's append in flight and waits for it
(9 of 626 in a run of 60 s)."""

LATENCY_SECONDS = 240.0
"""How long the latency rows run. A p99 rests on its slowest hundredth: at 60 s (626 commands
a side) that was six commands, and the 90% interval of the ratio spanned 0.40..1.88 (the
store as shipped, 2026-12-07, ratio 1.333); at 240 s (2,467 commands) it spanned 0.94..1.06
around 1.017, the same store an hour later."""

CONNECTIONS = 8
"""The connection budget of both sides in the combining rows."""

PROGRAM_ID = uuid.UUID("5b0f6c1e-8a7d-4c1b-9f2e-3d4a5b6c7d8e")

# About 340 bytes once encoded with its counter: the size of a typical RAID-log change.
_TEXT = (
    "Risk R-1042 reassessed after the supplier review on Tuesday: probability lowered from "
    "high to medium because the second source for the sensor boards passed qualification; "
    "impact unchanged. Mitigation owner remains the hardware lead; next review at the "
    "steering committee, with cost exposure updated in the allocation plan."
)

REF_DDL = """
CREATE TABLE ref_streams (
    stream_id text PRIMARY KEY,
    version   bigint NOT NULL
);
CREATE TABLE ref_events (
    position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id   text NOT NULL,
    version     bigint NOT NULL,
    event_type  text NOT NULL,
    data        jsonb NOT NULL,
    metadata    jsonb NOT NULL,
    recorded_at timestamptz NOT NULL,
    UNIQUE (stream_id, version)
);
"""
"""The least an honest event table has: a global position and one row per stream version."""

_REF_UPDATE = "UPDATE ref_streams SET version = version + $2 WHERE stream_id = $1 AND version = $3"
_REF_CREATE = "INSERT INTO ref_streams (stream_id, version) VALUES ($1, $2) ON CONFLICT DO NOTHING"
_REF_INSERT = (
    "INSERT INTO ref_events (stream_id, version, event_type, data, metadata, recorded_at) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)


@dataclass(frozen=True, slots=True)
class Cell:
    """One point of the matrix."""

    events: int
    writers: int

    @property
    def name(self) -> str:
        return f"append_{self.events}ev_{self.writers}w"


def make_batch(events: int, counter: int) -> tuple[list[DomainEvent], EventMetadata]:
    """What one command produces; built afresh per append, identically for both sides."""
    batch: list[DomainEvent] = [Noted(text=_TEXT, n=counter * events + i) for i in range(events)]
    metadata = EventMetadata(
        actor="user:alice@example.com",
        correlation_id=uuid.uuid4(),
        causation_id=uuid.uuid4(),
        program_id=PROGRAM_ID,
    )
    return batch, metadata


class Writers:
    """Per-writer stream rotation and exact expected versions, shared by both sides.

    Each writer owns ``streams_per_writer`` streams and cycles through them, so streams keep
    growing (the version check and the hash chain read a real previous head) without two
    writers ever touching one stream: a conflict here would be a bug, not contention.
    """

    side: str

    def __init__(self, cell: Cell, streams_per_writer: int, tag: str) -> None:
        self.cell = cell
        self.streams = [
            [f"bench-{tag}w{w}s{s}" for s in range(streams_per_writer)] for w in range(cell.writers)
        ]
        self.turns = [0] * cell.writers
        self.versions: dict[str, int] = {}

    async def append(self, writer: int) -> int:
        turn = self.turns[writer]
        self.turns[writer] = turn + 1
        streams = self.streams[writer]
        stream = streams[turn % len(streams)]
        events, metadata = make_batch(self.cell.events, turn)
        self.versions[stream] = await self._append(
            stream, self.versions.get(stream, 0), events, metadata
        )
        return len(events)

    async def _append(
        self, stream: str, expected: int, events: list[DomainEvent], metadata: EventMetadata
    ) -> int:
        """Append and return the stream's new version."""
        raise NotImplementedError


class Ours(Writers):
    """The store's public append, every guarantee on (none can be switched off)."""

    side = "ours"

    def __init__(
        self, store: PostgresEventStore, cell: Cell, streams_per_writer: int, tag: str
    ) -> None:
        super().__init__(cell, streams_per_writer, tag)
        self.store = store

    async def _append(
        self, stream: str, expected: int, events: list[DomainEvent], metadata: EventMetadata
    ) -> int:
        result = await self.store.append(stream, expected, events, metadata)
        return result.last_version


class RefConflict(RuntimeError):
    """The reference found a stream at another version than its writer expected."""


class Reference(Writers):
    """Hand-written asyncpg: what an application without an event store would do.

    BEGIN, move the stream row from the expected version (or create it), insert the events,
    COMMIT: four round trips, an optimistic concurrency check and a global position, but
    no safe-order lock, no hash chain, no NOTIFY, no validation of the event against its
    type. The event is still serialised per append, as any application must.
    """

    side = "ref"
    _encode = msgspec.json.Encoder().encode

    def __init__(self, pool: asyncpg.Pool, cell: Cell, streams_per_writer: int, tag: str) -> None:
        super().__init__(cell, streams_per_writer, tag)
        self.pool = pool

    async def _append(
        self, stream: str, expected: int, events: list[DomainEvent], metadata: EventMetadata
    ) -> int:
        n = len(events)
        encoded_metadata = self._encode(metadata)
        now = datetime.now(UTC)
        rows = [
            (stream, expected + i, type(e).event_type, self._encode(e), encoded_metadata, now)
            for i, e in enumerate(events, start=1)
        ]
        async with self.pool.acquire() as conn, conn.transaction():
            if expected == 0:
                status = await conn.execute(_REF_CREATE, stream, n)
                checked = status == "INSERT 0 1"
            else:
                status = await conn.execute(_REF_UPDATE, stream, n, expected)
                checked = status == "UPDATE 1"
            if not checked:
                raise RefConflict(f"{stream} is not at version {expected}")
            await conn.executemany(_REF_INSERT, rows)
        return expected + n


@dataclass
class CellResult:
    """Every round of both sides for one cell, plus what the wait sampler saw."""

    cell: Cell
    rounds: dict[str, list[RoundResult]] = field(default_factory=lambda: {"ours": [], "ref": []})
    waits: dict[str, Counter[str]] = field(
        default_factory=lambda: {"ours": Counter(), "ref": Counter()}
    )

    def events_per_s(self, side: str) -> float:
        return median([r.items_per_s for r in self.rounds[side]])

    def target(self) -> Target:
        return Target(self.cell.name, self.events_per_s("ours"), self.events_per_s("ref"), GOAL)


async def setup_schemas(
    url: str, ours_schema: str, ref_schema: str, *, registry: EventRegistry | None = None
) -> None:
    """Ours through the real migrations; the reference as plain tables in its own schema."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, ours_schema, registry=registry or store_test_registry())
        await conn.execute(f'CREATE SCHEMA "{ref_schema}"')
        await conn.execute(f'SET search_path TO "{ref_schema}"')
        await conn.execute(REF_DDL)
    finally:
        await conn.close()


async def measure(
    url: str, side: Writers, app_name: str, seconds: float, sample_waits: bool
) -> tuple[RoundResult, Counter[str]]:
    """One round of one side, with the wait sampler beside it when asked for."""
    if not sample_waits:
        return await timed_round(side.cell.writers, seconds, side.append), Counter()
    sampler = WaitSampler(url)
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(app_name, stop))
    try:
        result = await timed_round(side.cell.writers, seconds, side.append)
    finally:
        stop.set()
        await sampling
    return result, sampler.counts


async def run_cell(
    url: str, cell: Cell, schemas: tuple[str, str], args: argparse.Namespace, index: int
) -> CellResult:
    ours_schema, ref_schema = schemas
    tag = f"c{index}"
    names = {"ours": f"bench-ours-{ours_schema[-10:]}", "ref": f"bench-ref-{ref_schema[-10:]}"}
    # One connection per writer on each side: neither side can queue on the pool.
    n = cell.writers
    ours_pool = await create_pool(
        url, ours_schema, application_name=names["ours"], min_size=n, max_size=n
    )
    ref_pool = await create_pool(
        url, ref_schema, application_name=names["ref"], min_size=n, max_size=n
    )
    try:
        store = PostgresEventStore(
            ours_pool,
            EventCodec(store_test_registry()),
            schema=ours_schema,
            appends_in_flight=None,
        )
        sides: list[Writers] = [
            Ours(store, cell, args.streams_per_writer, tag),
            Reference(ref_pool, cell, args.streams_per_writer, tag),
        ]
        # Warm-up: prepares statements, creates the streams, fills caches; not counted.
        for side in sides:
            await timed_round(cell.writers, min(1.0, args.seconds / 3), side.append)
        result = CellResult(cell)
        for r in range(args.rounds):
            for side in sides if r % 2 == 0 else reversed(sides):
                round_result, waits = await measure(
                    url, side, names[side.side], args.seconds, args.waits
                )
                result.rounds[side.side].append(round_result)
                result.waits[side.side].update(waits)
            print(
                f"  {cell.name} round {r + 1}/{args.rounds}: "
                f"ours {result.rounds['ours'][-1].items_per_s:,.0f} ev/s, "
                f"ref {result.rounds['ref'][-1].items_per_s:,.0f} ev/s",
                file=sys.stderr,
                flush=True,
            )
        return result
    finally:
        await ours_pool.close()
        await ref_pool.close()


class Commands:
    """Commands through the application layer: load, decide, append, one event each.

    Each registers a resource under a fresh key, so every command reads its (empty)
    stream, decides against it and appends with the version it read, as a busy
    organisation's many small commands do.
    """

    side = "ours"

    def __init__(self, app: Application, tag: str) -> None:
        self.app = app
        self.tag = tag
        self.count = 0
        self.context = CommandContext(actor="user:alice@example.com")

    async def handle(self, _worker: int = 0) -> int:
        self.count += 1
        await self.app.handle(
            RegisterResource(
                resource_key=f"{self.tag}-{self.count}",
                name="Sensor board bring-up team",
                kind=PartyKind.TEAM,
                department=Department.ENGINEERING,
                role=_TEXT[:120],
                capacity=300,
            ),
            self.context,
        )
        return 1


@dataclass
class CombiningResult:
    """Command rounds at each concurrency, the reference's rounds, and the latency samples."""

    rounds: dict[int, list[RoundResult]] = field(default_factory=dict)
    ref: list[RoundResult] = field(default_factory=list)
    sizes: dict[int, Counter[int]] = field(default_factory=dict)
    """Per concurrency, its rounds' transactions by the commands each carried."""
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"combining": [], "single": []}
    )

    def targets(self) -> list[Target | LatencyTarget]:
        ref = median([r.items_per_s for r in self.ref])
        found: list[Target | LatencyTarget] = [
            Target(f"commands_{c}c", median([r.items_per_s for r in rounds]), ref, COMBINING_GOAL)
            for c, rounds in self.rounds.items()
        ]
        found.append(
            LatencyTarget(
                "command_p99_10cps",
                percentile(self.latencies["combining"], 99) * 1000,
                percentile(self.latencies["single"], 99) * 1000,
            )
        )
        return found


@dataclass(frozen=True, slots=True)
class LatencyTarget:
    """A lower-is-better goal stated as ours/ref: at most 1, no worse than the reference."""

    name: str
    ours: float
    ref: float

    @property
    def ratio(self) -> float:
        return self.ours / self.ref if self.ref > 0 else float("nan")

    def line(self) -> str:
        met = "met" if self.ratio <= 1.0 else "missed"
        return (
            f"target {self.name}: ours={self.ours:.2f} ref={self.ref:.2f} "
            f"ratio={self.ratio:.3f} goal=<=1 {met}"
        )


def arrivals(rate: float, seconds: float, seed: int = 7) -> list[float]:
    """Start times of a Poisson process of ``rate`` a second over ``seconds``: commands
    that arrive independently of each other, so that now and then one arrives while
    another is still running, as real ones do. Evenly spaced starts never overlap at this
    rate and would hide what a store does to a command that finds another in flight."""
    rng = random.Random(seed)
    times: list[float] = []
    at = rng.expovariate(rate)
    while at < seconds:
        times.append(at)
        at += rng.expovariate(rate)
    return times


async def paced(sides: Sequence[Commands], rate: float, seconds: float) -> list[list[float]]:
    """Commands arriving at ``rate`` a second on each of ``sides`` whatever the earlier ones
    do (an open loop); each one's latency from its scheduled start, per side.

    Every side follows the same random schedule (``arrivals``): each arrival starts one
    command of every side, an equal share of the mean gap apart, so that the sides meet the
    same overlaps among their own commands and the same moments of the machine (a
    checkpoint, a neighbour's burst, the host's speed, which drifts by a fifth within an
    hour here). The sides take turns at leading: the first command of an arrival more
    often follows a long idle spell, and ran 0.05 ms slower at the median for it (two
    identical stores, 60 s). What remains is the luck of which commands meet a hiccup:
    ``p99_ratio_interval`` shows how far that moves the ratio.
    """
    latencies: list[list[float]] = [[] for _ in sides]
    n = len(sides)
    shift = 1 / rate / n
    schedule = sorted(
        (at + k * shift, (i + k) % n)
        for i, at in enumerate(arrivals(rate, seconds))
        for k in range(n)
    )
    start = time.perf_counter()

    async def one(side: int, at: float) -> None:
        await sides[side].handle()
        latencies[side].append(time.perf_counter() - at)

    tasks = []
    for offset, side in schedule:
        at = start + offset
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        tasks.append(asyncio.create_task(one(side, at)))
    await asyncio.gather(*tasks)
    return latencies


def p99_ratio_interval(
    ours: Sequence[float], ref: Sequence[float], resamples: int = 2000
) -> tuple[float, float]:
    """The 90% bootstrap interval of p99(ours) / p99(ref): how far the ratio moves with
    the luck of which commands met a hiccup, to read a ratio near 1 by."""
    rng = random.Random(1)
    ratios = sorted(
        percentile(rng.choices(ours, k=len(ours)), 99)
        / percentile(rng.choices(ref, k=len(ref)), 99)
        for _ in range(resamples)
    )
    return ratios[int(0.05 * resamples)], ratios[int(0.95 * resamples) - 1]


async def run_combining(
    url: str, schemas: tuple[str, str], args: argparse.Namespace
) -> CombiningResult:
    """Commands with combining, then the latency rounds; the reference alternates."""
    app_schema, ref_schema = schemas
    n = CONNECTIONS
    app_pool = await create_pool(
        url, app_schema, application_name="bench-commands", min_size=n, max_size=n
    )
    ref_pool = await create_pool(
        url, ref_schema, application_name="bench-ref-cmd", min_size=n, max_size=n
    )
    result = CombiningResult()
    codec = EventCodec(application_registry())
    try:
        combining = PostgresEventStore(
            app_pool, codec, schema=app_schema, appends_in_flight=args.appends_in_flight
        )
        single = PostgresEventStore(
            app_pool, codec, schema=app_schema, appends_in_flight=None, reads_in_flight=None
        )
        ref = Reference(ref_pool, Cell(1, CONNECTIONS), args.streams_per_writer, "cmdref")
        commands = Commands(Application(combining), "cmd")
        await timed_round(CONNECTIONS, min(1.0, args.seconds / 3), ref.append)
        await timed_round(max(args.commands), min(1.0, args.seconds / 3), commands.handle)
        for r in range(args.rounds):
            ref_round = await timed_round(CONNECTIONS, args.seconds, ref.append)
            result.ref.append(ref_round)
            line = [f"ref {ref_round.items_per_s:,.0f}"]
            for c in args.commands:
                before = combining.combiner.sizes.copy()
                ours = await timed_round(c, args.seconds, commands.handle)
                result.rounds.setdefault(c, []).append(ours)
                result.sizes.setdefault(c, Counter()).update(combining.combiner.sizes - before)
                line.append(f"{c}c {ours.items_per_s:,.0f}")
            print(f"  commands round {r + 1}/{args.rounds}: " + ", ".join(line), file=sys.stderr)
        sides = [Commands(Application(combining), "lat-c"), Commands(Application(single), "lat-s")]
        samples = await paced(sides, LATENCY_RATE, args.latency_seconds)
        result.latencies = {"combining": samples[0], "single": samples[1]}
        return result
    finally:
        await app_pool.close()
        await ref_pool.close()


def report_combining(result: CombiningResult, args: argparse.Namespace) -> None:
    rows: list[list[str]] = []
    ref = median([r.items_per_s for r in result.ref])
    for c, rounds in result.rounds.items():
        sizes = list(result.sizes[c].elements())
        rows.append(
            [
                f"commands_{c}c",
                "ours",
                f"{median([r.items_per_s for r in rounds]):,.0f}",
                f"{median([r.latency(50) for r in rounds]) * 1000:.2f}",
                f"{median([r.latency(99) for r in rounds]) * 1000:.2f}",
                f"{sum(sizes) / max(len(sizes), 1):.1f}",
                "/".join(f"{percentile(sizes, p):g}" for p in (10, 50, 90)),
                f"{median([r.client_cpu for r in rounds]):.0%}",
                f"{median([r.items_per_s for r in rounds]) / ref:.2f}",
            ]
        )
    rows.append(
        [
            f"ref_1ev_{CONNECTIONS}w",
            "ref",
            f"{ref:,.0f}",
            f"{median([r.latency(50) for r in result.ref]) * 1000:.2f}",
            f"{median([r.latency(99) for r in result.ref]) * 1000:.2f}",
            "1.0",
            "1/1/1",
            f"{median([r.client_cpu for r in result.ref]):.0%}",
            "",
        ]
    )
    for name, samples in result.latencies.items():
        rows.append(
            [
                f"10 cmd/s, {name}",
                "ours" if name == "combining" else "single",
                f"{LATENCY_RATE:g}",
                f"{percentile(samples, 50) * 1000:.2f}",
                f"{percentile(samples, 99) * 1000:.2f}",
                "",
                "",
                "",
                "",
            ]
        )
    print_table(
        f"write-combining: medians of {args.rounds} rounds x {args.seconds:g}s, "
        f"{CONNECTIONS} connections per side; commands/s for ours, events/s (1 per "
        f"transaction) for ref; the latency rows: commands arriving at random on each side, on "
        f"one schedule, for "
        f"{args.latency_seconds:g}s",
        [
            "row",
            "side",
            "per s",
            "p50 ms",
            "p99 ms",
            "commands/tx",
            "tx p10/50/90",
            "client CPU",
            "ours/ref",
        ],
        rows,
    )
    low, high = p99_ratio_interval(result.latencies["combining"], result.latencies["single"])
    print(
        f"p99 at {LATENCY_RATE:g} commands/s, combining over single: 90% bootstrap interval "
        f"{low:.3f}..{high:.3f} ({len(result.latencies['combining'])} and "
        f"{len(result.latencies['single'])} commands)"
    )


def report(results: list[CellResult], facts: dict[str, str], args: argparse.Namespace) -> None:
    headers = [
        "cell",
        "side",
        "events/s",
        "appends/s",
        "p50 ms",
        "p99 ms",
        "events/s min..max",
        "client CPU",
        "ours/ref",
    ]
    rows: list[list[str]] = []
    for res in results:
        for side in ("ours", "ref"):
            rounds = res.rounds[side]
            per_s = [r.items_per_s for r in rounds]
            rows.append(
                [
                    res.cell.name if side == "ours" else "",
                    side,
                    f"{median(per_s):,.0f}",
                    f"{median([r.operations_per_s for r in rounds]):,.0f}",
                    f"{median([r.latency(50) for r in rounds]) * 1000:.2f}",
                    f"{median([r.latency(99) for r in rounds]) * 1000:.2f}",
                    f"{min(per_s):,.0f}..{max(per_s):,.0f}",
                    f"{median([r.client_cpu for r in rounds]):.0%}",
                    f"{res.target().ratio:.2f}" if side == "ours" else "",
                ]
            )
    print("server: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    print_table(
        f"append: medians of {args.rounds} rounds x {args.seconds:g}s per side, "
        f"{args.streams_per_writer} streams per writer",
        headers,
        rows,
    )
    print(
        "ours/ref is events/s. A side whose client CPU nears 100% is limited by this Python "
        "process, not by PostgreSQL; on a small machine the client and the server share the "
        "same cores."
    )
    if args.waits:
        wait_rows: list[list[str]] = []
        for res in results:
            for side in ("ours", "ref"):
                counts = res.waits[side]
                total = sum(counts.values()) or 1
                top = ", ".join(f"{k} {v / total:.0%}" for k, v in counts.most_common(6))
                wait_rows.append([res.cell.name if side == "ours" else "", side, top])
        print_table(
            "where the backends were (share of pg_stat_activity samples)",
            ["cell", "side", "states"],
            wait_rows,
        )


async def bench(url: str, source: str, args: argparse.Namespace) -> list[Target | LatencyTarget]:
    facts = await server_facts(url)
    facts["client loop"] = args.loop
    print(f"PostgreSQL from {source}", file=sys.stderr, flush=True)
    schemas = (fresh_schema_name("ours"), fresh_schema_name("ref"))
    command_schemas = (fresh_schema_name("cmd"), fresh_schema_name("cmdref"))
    cells = [Cell(e, w) for e in args.events for w in args.writers]
    combining: CombiningResult | None = None
    try:
        await setup_schemas(url, *schemas)
        results = [await run_cell(url, cell, schemas, args, i) for i, cell in enumerate(cells)]
        if args.commands:
            await setup_schemas(url, *command_schemas, registry=application_registry())
            combining = await run_combining(url, command_schemas, args)
    finally:
        await drop_schemas(url, [*schemas, *command_schemas])
    report(results, facts, args)
    # The headline first, then the informational cells.
    targets: list[Target | LatencyTarget] = sorted(
        (r.target() for r in results), key=lambda t: t.name != HEADLINE
    )
    if combining is not None:
        report_combining(combining, args)
        targets += combining.targets()
    return targets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser)
    parser.add_argument(
        "--writers",
        type=positive_int,
        nargs="+",
        default=[1, 8],
        help="concurrent writers to measure (default: 1 8)",
    )
    parser.add_argument(
        "--events",
        type=positive_int,
        nargs="+",
        default=[1, 10],
        help="events per append to measure (default: 1 10)",
    )
    parser.add_argument(
        "--streams-per-writer",
        type=positive_int,
        default=50,
        help="streams each writer rotates over (default 50)",
    )
    parser.add_argument(
        "--commands",
        type=int,
        nargs="*",
        default=[32, 128],
        help="concurrent commands for the write-combining rows (default: 32 128; none: skip)",
    )
    parser.add_argument(
        "--latency-seconds",
        type=positive_float,
        default=LATENCY_SECONDS,
        help="length of the latency rows at 10 commands/s a side, on one schedule "
        f"(default {LATENCY_SECONDS:g})",
    )
    parser.add_argument(
        "--appends-in-flight",
        type=positive_int,
        default=DEFAULT_APPENDS_IN_FLIGHT,
        help="combined append transactions at once in the combining rows "
        f"(default {DEFAULT_APPENDS_IN_FLIGHT}, the store's)",
    )
    parser.add_argument(
        "--loop",
        choices=list(EVENT_LOOPS),
        default=next(iter(EVENT_LOOPS)),
        help=f"the event loop both sides run on (default {next(iter(EVENT_LOOPS))}, the "
        "product's; asyncio's own loop slows the reference's Python more than ours)",
    )
    parser.add_argument(
        "--waits",
        action="store_true",
        help="sample pg_stat_activity during rounds and print where the backends wait",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with postgres_url(args.database_url) as (url, source):
        targets = run_on_loop(args.loop, bench(url, source, args))
    for target in targets:
        print(target.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
