"""Projections: rebuild rate, live throughput and "as of" list queries, each beside a
reference measured in the same run.

Why this benchmark exists: a read model is only useful if it can be rebuilt quickly
(after a fix, a new projection, an expired stream), keeps up with what the relay
publishes, and answers "as of" questions about as fast as it answers "now".

- **Rebuild rate.** ``rebuild()`` of each projection over a store of
  ``--rebuild-events`` events, as ``programledger rebuild`` runs it (programs and audit
  in ``--workers`` processes), against the reference: the same events read page by page
  with plain asyncpg and decoded into their typed msgspec structs, nothing else, in one
  process. Goal: at least 20,000 events read per second for every projection.
- **Live throughput.** A runner consuming ``--live-events`` events published by the real
  relay, from its first position to the last event it handles, against the reference:
  a raw pull consumer with the same filter fetching and acknowledging the same messages
  in batches of the same size (nats-py's ``PullSubscription.fetch``). Goal: at least 0.8x
  the reference's messages per second. The runner pulls with its own ``BatchPuller``,
  which costs far less CPU per message than nats-py's fetch, on the connection every
  programledger process uses (``adapters.nats.client``: nats-py with a faster header
  parser); the reference is a stock nats-py consumer. So that the figure does not
  flatter the projection work, ``info`` lines also compare it with a raw consumer
  pulling through ``BatchPuller`` on that same connection: fetch and acknowledge,
  nothing else.
- **As of.** On a store of ``--events`` events (1,000,000 by default), the first page
  (50 rows, with total count) of the risk register and of the program list as of the
  middle of history, against the same page of the current rows. Goal: at most 2x.

Events are generated as valid histories (programs with milestones, decisions, budget and
health reports; risks worked through their lifecycle; people allocated to programs, four
allocations each; weekly status reports; committed what-ifs, enough of each for its read
model's live row to time the read model rather than a consumer's first fetch) and loaded
with ``COPY``, each with its place in its stream's hash chain (a rebuild verifies every
chain).

Run: ``python bench/projections.py [--rounds N] [--events N] [--rebuild-events N]
[--live-events N] [--only rebuild live asof] [--projections NAME ...] [--database-url URL]
[--nats-url URL]``; ``--projections`` limits the rebuild and live rows to those read
models. Without URLs: ``$PROGRAMLEDGER_BENCH_*_URL``, then ``$PROGRAMLEDGER_TEST_*_URL``,
else embedded servers.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script from a checkout, with the project installed in .venv (the strict editable
# install links the working tree's code): reach bench/ and tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any

import asyncpg
import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig

from bench._common import (
    add_common_arguments,
    drop_schemas,
    fresh_schema_name,
    median,
    positive_int,
    postgres_url,
    print_table,
    server_facts,
)
from programledger.adapters.codec import EventCodec
from programledger.adapters.nats import client as nats_client
from programledger.adapters.nats.consumer import PullConsumer, open_pull
from programledger.adapters.nats.relay import Relay, RelaySettings
from programledger.adapters.nats.stream import stream_name
from programledger.adapters.nats.subscriber import subject_filters
from programledger.adapters.postgres.connection import connect, create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.migrations import migrate
from programledger.application.registry import application_registry
from programledger.domain.events import DomainEvent
from programledger.domain.portfolio import PortfolioCreated
from programledger.domain.program import (
    ActualSpendReported,
    BudgetAllocated,
    DecisionRecorded,
    Health,
    MilestoneCompleted,
    MilestonePlanned,
    MilestoneRescheduled,
    ProgramActivated,
    ProgramHealthReported,
    ProgramMovedToPortfolio,
    ProgramProposed,
)
from programledger.domain.report import (
    ReportFacts,
    StatusReportDrafted,
    StatusReportPublished,
    propose,
)
from programledger.domain.resource import (
    AllocationAdjusted,
    AllocationConfirmed,
    AllocationProposed,
    ResourceRegistered,
)
from programledger.domain.risk import (
    ResponseStrategy,
    RiskAssessed,
    RiskCategory,
    RiskClosed,
    RiskIdentified,
    RiskMitigationStarted,
    RiskReviewed,
)
from programledger.domain.scenario import (
    ScenarioAllocationAdded,
    ScenarioCommitted,
    ScenarioCreated,
)
from programledger.domain.values import Department, Money, PartyKind
from programledger.gc_tuning import GcTuning, tune_gc
from programledger.projections.engine.rebuild import rebuild
from programledger.projections.engine.runner import ProjectionRunner, RunnerSettings, RunnerState
from programledger.projections.engine.status import wait_for_position
from programledger.projections.engine.storage import drop_tables
from programledger.projections.programs import list_programs
from programledger.projections.registry import PROJECTIONS
from programledger.projections.risks import list_risks

REBUILD_GOAL = 20_000.0
LIVE_GOAL = 0.8
AS_OF_GOAL = 2.0
NATS_URL_ENVS = ("PROGRAMLEDGER_BENCH_NATS_URL", "PROGRAMLEDGER_TEST_NATS_URL")
BATCH = 500

# --- valid histories, fast -----------------------------------------------------------------

_encoder = msgspec.json.Encoder()
DAY = date(2027, 1, 1)
Item = tuple[str, str, DomainEvent, uuid.UUID | None]
"""(stream id, stream type, event, program id)."""


def eur(amount: int) -> Money:
    return Money(amount_minor=amount, currency="EUR")


def _program(pid: uuid.UUID, n: int) -> list[DomainEvent]:
    milestones = [uuid.uuid4() for _ in range(3)]
    first, second = uuid.uuid4(), uuid.uuid4()
    events: list[DomainEvent] = [
        ProgramProposed(
            program_id=pid,
            code=f"B{n:09d}",
            name=f"Program {n}",
            description=None,
            objective="Ship",
            objective_key=None,
            sponsor="Dana",
            owner=f"tpm{n % 40}",
            priority=1 + n % 5,
            start_date=DAY,
            target_end_date=DAY + timedelta(days=365),
            planned_budget=eur(10_000_000),
        ),
        ProgramActivated(program_id=pid),
    ]
    for i, m in enumerate(milestones):
        baseline = DAY + timedelta(days=30 * (i + 1))
        events.append(
            MilestonePlanned(
                program_id=pid,
                milestone_id=m,
                name=f"M{i}",
                workstream_id=None,
                description=None,
                baseline_date=baseline,
            )
        )
    for i in range(6):
        events.append(
            MilestoneRescheduled(
                program_id=pid,
                milestone_id=milestones[i % 3],
                forecast_date=DAY + timedelta(days=30 * (i % 3 + 1) + i + 1),
                reason="slip",
            )
        )
    events += [
        DecisionRecorded(
            program_id=pid,
            decision_id=first,
            title="Build",
            context="c",
            outcome="in-house",
            alternatives=("buy",),
            decided_by="Dana",
            decided_on=DAY,
        ),
        DecisionRecorded(
            program_id=pid,
            decision_id=second,
            title="Buy",
            context="c",
            outcome="vendor",
            alternatives=(),
            decided_by="Dana",
            decided_on=DAY + timedelta(days=20),
            supersedes=first,
        ),
        BudgetAllocated(
            program_id=pid,
            budget_allocation_id=uuid.uuid4(),
            amount=eur(300_000),
            workstream_id=None,
            cost_centre="CC-1",
        ),
    ]
    for i in range(3):
        events.append(
            ActualSpendReported(
                program_id=pid,
                amount=eur(100_000 * (i + 1)),
                as_of=DAY + timedelta(days=30 * (i + 1)),
            )
        )
        events.append(
            ProgramHealthReported(
                program_id=pid, health=list(Health)[(n + i) % 3], summary="weekly"
            )
        )
    events.append(
        MilestoneCompleted(
            program_id=pid, milestone_id=milestones[0], actual_date=DAY + timedelta(days=40)
        )
    )
    return events


def _risk(pid: uuid.UUID, n: int) -> list[DomainEvent]:
    rid = uuid.uuid4()
    events: list[DomainEvent] = [
        RiskIdentified(
            risk_id=rid,
            program_id=pid,
            title="Vendor late",
            category=RiskCategory.VENDOR,
            probability=1 + n % 5,
            impact=1 + n // 5 % 5,
            owner=f"owner{n % 30}",
            workstream_id=None,
            description=None,
            trigger=None,
            contingency_plan=None,
            next_review_on=DAY + timedelta(days=n % 90),
        ),
        RiskAssessed(
            risk_id=rid, program_id=pid, probability=1 + (n + 1) % 5, impact=1 + (n + 2) % 5
        ),
        RiskMitigationStarted(
            risk_id=rid,
            program_id=pid,
            response_strategy=ResponseStrategy.MITIGATE,
            mitigation_plan="plan",
            mitigation_due_on=DAY,
        ),
        RiskReviewed(
            risk_id=rid,
            program_id=pid,
            reviewed_on=DAY,
            next_review_on=DAY + timedelta(days=14 + n % 60),
        ),
    ]
    if n % 3 == 0:
        events.append(RiskClosed(risk_id=rid, program_id=pid, reason="done"))
    return events


ALLOCATIONS = 4
"""Allocations per program in a group's history, each proposed, confirmed and adjusted."""
ALLOCATION_CYCLE = 168
"""Days between a program's successive allocations: the three programs sharing a person
start 56 days apart, so each takes its own 56 of every 168 days and no day is booked
twice (every confirmation and adjustment stays within capacity, as the domain requires)."""


def _allocation(key: str, pid: uuid.UUID, n: int, i: int) -> list[DomainEvent]:
    """The ``i``-th allocation of program ``n``, proposed, confirmed and adjusted."""
    aid = uuid.uuid4()
    start = DAY + timedelta(days=7 * (n % 20) + ALLOCATION_CYCLE * i)
    fields: dict[str, Any] = {
        "resource_key": key,
        "allocation_id": aid,
        "program_id": pid,
        "workstream_id": None,
        "start_date": start,
        "end_date": start + timedelta(days=41),
    }
    return [
        AllocationProposed(**fields, percentage=40),
        AllocationConfirmed(**fields, percentage=40),
        # Never 40: an adjustment that changes nothing records no event.
        AllocationAdjusted(**fields, percentage=41 + (n + i) % 29, reason="replan"),
    ]


REPORT_WEEKS = 6
"""Weekly reports per program in a group's history."""
WHAT_IFS = 16
"""What-ifs per group of 20 programs, each with ``WHAT_IF_CHANGES`` changes."""
WHAT_IF_CHANGES = 8
"""Hypothetical allocations per what-if."""


def _report(pid: uuid.UUID, n: int) -> tuple[str, list[DomainEvent]]:
    """A week's status report, drafted and published: its stream id and events."""
    period = f"2027-W{1 + n % 50:02d}"
    fields: dict[str, Any] = {
        "program_id": pid,
        "period": period,
        "revision": 1,
        "content": propose(ReportFacts(max_slip_days=n % 20, overdue_reviews=n % 2)),
    }
    published = StatusReportPublished(**fields, published_by=f"tpm{n % 40}")
    return f"status_report-{pid}:{period}", [StatusReportDrafted(**fields), published]


def _scenario(keys: list[str], pids: list[uuid.UUID]) -> list[Item]:
    """A what-if of a group: hypothetical work for a few of its people, then committed."""
    sid = uuid.uuid4()
    stream = f"scenario-{sid}"
    items: list[Item] = [
        (stream, "scenario", ScenarioCreated(scenario_id=sid, name="What if"), None)
    ]
    for i, pid in enumerate(pids[:WHAT_IF_CHANGES]):
        start = DAY + timedelta(days=14 * i)
        added = ScenarioAllocationAdded(
            scenario_id=sid,
            change_id=uuid.uuid4(),
            resource_key=keys[i % len(keys)],
            program_id=pid,
            start_date=start,
            end_date=start + timedelta(days=27),
            percentage=20,
        )
        items.append((stream, "scenario", added, pid))
    items.append((stream, "scenario", ScenarioCommitted(scenario_id=sid, outcomes=()), None))
    return items


def histories(count: int) -> Iterator[Item]:
    """Valid streams, interleaved across groups of programs as writers would."""
    produced, group = 0, 0
    while produced < count:
        queues: list[list[Item]] = []
        keys = [f"bench-{group}-{i}" for i in range(8)]
        queues.append(
            [
                (
                    f"resource-{k}",
                    "resource",
                    ResourceRegistered(
                        resource_key=k,
                        name=k,
                        kind=PartyKind.PERSON,
                        department=Department.ENGINEERING,
                        role="dev",
                        capacity=100,
                    ),
                    None,
                )
                for k in keys
            ]
        )
        fid = uuid.uuid4()
        queues[0].append(
            (
                f"portfolio-{fid}",
                "portfolio",
                PortfolioCreated(portfolio_id=fid, name=f"Portfolio {group}", owner="Pat"),
                None,
            )
        )
        pids: list[uuid.UUID] = []
        for i in range(20):
            n = group * 20 + i
            pid = uuid.uuid4()
            pids.append(pid)
            program = _program(pid, n)
            # Each group's programs join its portfolio: the roll-ups follow them.
            program.insert(
                1,
                ProgramMovedToPortfolio(
                    program_id=pid, from_portfolio_id=None, to_portfolio_id=fid
                ),
            )
            queues.append([(f"program-{pid}", "program", e, pid) for e in program])
            # A report a week: enough messages for the live row to time the read model
            # rather than a consumer's first fetch.
            for week in range(REPORT_WEEKS):
                stream, reports = _report(pid, n * REPORT_WEEKS + week)
                queues.append([(stream, "status_report", e, pid) for e in reports])
            for r in range(3):
                events = _risk(pid, n * 3 + r)
                rid = events[0].risk_id  # type: ignore[attr-defined]
                queues.append([(f"risk-{rid}", "risk", e, pid) for e in events])
            # Allocations: enough for the live row to time the read model too.
            key = keys[i % len(keys)]
            queues.append(
                [
                    (f"resource-{key}", "resource", e, pid)
                    for a in range(ALLOCATIONS)
                    for e in _allocation(key, pid, n, a)
                ]
            )
        queues.extend(_scenario(keys, pids) for _ in range(WHAT_IFS))
        # Registrations first, then round-robin: each stream stays in order.
        first = queues.pop(0)
        yield from first
        produced += len(first)
        while queues and produced < count:
            for queue in list(queues):
                if not queue:
                    queues.remove(queue)
                    continue
                yield queue.pop(0)
                produced += 1
                if produced >= count:
                    return
        group += 1


_CHAIN = """
CREATE FUNCTION pg_temp.chain() RETURNS TABLE (pos bigint, prev_hash bytea, hash bytea)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    stream text := NULL;
    prev bytea;
BEGIN
    FOR r IN SELECT * FROM staging s ORDER BY s.stream_id, s.version LOOP
        IF stream IS DISTINCT FROM r.stream_id THEN
            stream := r.stream_id;
            prev := '\\x'::bytea;
        END IF;
        pos := r.position;
        prev_hash := prev;
        hash := event_hash_v2(prev, r.position, r.event_id, r.stream_id, r.stream_type,
            r.version, r.program_id, r.event_type, r.schema_version, r.data, r.metadata,
            r.recorded_at);
        prev := hash;
        RETURN NEXT;
    END LOOP;
END $$
"""
"""Each loaded event's place in its stream's hash chain (format 2, as ``append_events``
computes it), so the loaded store verifies: a rebuild checks every chain before it swaps."""


async def load_store(
    url: str, schema: str, count: int, items: Iterable[Item] | None = None
) -> None:
    """A migrated store holding ``count`` generated events (``items``, by default
    :func:`histories`), loaded with COPY."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, schema)
    finally:
        await conn.close()
    conn = await connect(url, schema)
    try:
        versions: dict[str, int] = {}
        started = datetime(2027, 1, 1, tzinfo=UTC)
        rows = []
        for position, (stream, kind, event, pid) in enumerate(
            islice(histories(count) if items is None else items, count), start=1
        ):
            version = versions[stream] = versions.get(stream, 0) + 1
            metadata = {"actor": f"user{position % 50}", "correlation_id": str(uuid.uuid4())}
            if pid is not None:
                metadata["program_id"] = str(pid)
            rows.append(
                (
                    position,
                    uuid.uuid4(),
                    stream,
                    kind,
                    version,
                    event.event_type,
                    1,
                    pid,
                    _encoder.encode(event),
                    _encoder.encode(metadata),
                    started + timedelta(milliseconds=position),
                )
            )
        async with conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE staging (position bigint, event_id uuid, stream_id text, "
                "stream_type text, version bigint, event_type text, schema_version int, "
                "program_id uuid, data jsonb, metadata jsonb, recorded_at timestamptz) "
                "ON COMMIT DROP"
            )
            await conn.copy_records_to_table("staging", records=rows)
            await conn.execute(_CHAIN)
            await conn.execute(
                "INSERT INTO events (position, tx_id, event_id, stream_id, stream_type, version,"
                " event_type, schema_version, program_id, data, metadata, recorded_at,"
                " prev_hash, hash, hash_version) SELECT s.position, pg_current_xact_id(),"
                " event_id, stream_id, stream_type, version, event_type, schema_version,"
                " program_id, data, metadata, recorded_at, c.prev_hash, c.hash, 2"
                " FROM staging s JOIN pg_temp.chain() c ON c.pos = s.position ORDER BY s.position"
            )
            await conn.execute(
                "INSERT INTO streams (stream_id, stream_type, version, last_position, last_hash,"
                " created_at, updated_at) SELECT DISTINCT ON (stream_id) stream_id, stream_type,"
                " version, e.position, e.hash, e.recorded_at, e.recorded_at FROM events e"
                " ORDER BY stream_id, version DESC"
            )
            await conn.execute("SELECT setval('event_position_seq', $1)", len(rows))
        await conn.execute("ANALYZE events")
    finally:
        await conn.close()


# --- measurements ------------------------------------------------------------------------


async def raw_read_decode(pool: asyncpg.Pool, codec: EventCodec) -> float:
    """The reference for a rebuild: read every event in pages, decode each, nothing else."""
    started = time.perf_counter()
    position = read = 0
    decode = codec.decode
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT position, event_type, schema_version, data FROM events "
                "WHERE position > $1 AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) "
                "ORDER BY position LIMIT 5000",
                position,
            )
        if not rows:
            break
        for row in rows:
            decode(row[1], row[2], row[3])
        position = rows[-1][0]
        read += len(rows)
    return read / (time.perf_counter() - started)


async def live_ours(
    store: PostgresEventStore, url: str, nc: NatsClient, prefix: str, name: str, last: int
) -> float:
    """Messages per second for a runner from a clean start to the last event it handles."""
    projection = PROJECTIONS[name]
    async with store.pool.acquire() as conn:
        await drop_tables(conn, projection)
        await conn.execute("DELETE FROM projection_status WHERE name = $1", name)
    settings = RunnerSettings(
        prefix=prefix,
        batch_size=BATCH,
        fetch_wait=0.05,
        durable_prefix=f"bench{uuid.uuid4().hex[:6]}",
    )
    runner = ProjectionRunner(projection, store=store, database_url=url, nc=nc, settings=settings)
    task = asyncio.create_task(runner.run())
    # From the moment it holds the lock and has its tables: creating tables is not
    # consuming, and the reference's clock starts with its consumer in place too.
    while runner.state is not RunnerState.ACTIVE:  # noqa: ASYNC110 - the runner has no event
        await asyncio.sleep(0.001)
    started = time.perf_counter()
    reached = await wait_for_position(store.pool, last, 600, [name], poll_interval=0.01)
    elapsed = time.perf_counter() - started
    runner.stop()
    await task
    assert reached, f"{name} did not reach position {last}"
    return await _delivered(store.pool, projection.stream_types) / elapsed


async def _delivered(pool: asyncpg.Pool, stream_types: frozenset[str]) -> int:
    """How many messages a consumer with the projection's filter receives (NATS 2.9
    cannot filter on several stream types, so those get every message)."""
    if len(stream_types) > 1:
        return int(await pool.fetchval("SELECT count(*) FROM events"))
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM events WHERE stream_type = ANY($1::text[])", list(stream_types)
        )
    )


async def live_ref(nc: NatsClient, prefix: str, stream_types: frozenset[str], count: int) -> float:
    """A raw pull consumer, same filter and batch size: fetch, acknowledge the batch."""
    js = nc.jetstream()
    [subject] = subject_filters(prefix, stream_types=stream_types, multiple=False)
    durable = f"ref{uuid.uuid4().hex[:8]}"
    config = ConsumerConfig(ack_policy=AckPolicy.ALL, max_ack_pending=BATCH * 2)
    sub = await js.pull_subscribe(
        subject, durable=durable, stream=stream_name(prefix), config=config
    )
    received = 0
    started = time.perf_counter()
    try:
        while received < count:
            messages = await sub.fetch(BATCH, timeout=2)
            received += len(messages)
            await messages[-1].ack()
        return received / (time.perf_counter() - started)
    finally:
        await sub.unsubscribe()
        await js.delete_consumer(stream_name(prefix), durable)


async def live_lean(nc: NatsClient, prefix: str, stream_types: frozenset[str], count: int) -> float:
    """The same raw consumer, pulling with the runner's ``BatchPuller``."""
    js = nc.jetstream()
    filters = subject_filters(prefix, stream_types=stream_types, multiple=False)
    durable = f"lean{uuid.uuid4().hex[:8]}"
    consumer = PullConsumer(
        stream_name(prefix),
        tuple(filters),
        AckPolicy.ALL,
        durable=durable,
        description="bench",
        ack_wait=60,
        max_ack_pending=BATCH * 2,
    )
    puller = await open_pull(js, consumer, 1)
    received = 0
    started = time.perf_counter()
    try:
        while received < count:
            messages = await puller.fetch(BATCH, 2)
            received += len(messages)
            await messages[-1].ack()
        return received / (time.perf_counter() - started)
    finally:
        await puller.unsubscribe()
        await js.delete_consumer(stream_name(prefix), durable)


async def query_ms(call: Callable[[], Awaitable[Any]], repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls, after one warm-up call."""
    await call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


# --- the run -----------------------------------------------------------------------------


@dataclass
class Results:
    rebuild_ours: dict[str, list[float]] = field(default_factory=dict)
    rebuild_ref: list[float] = field(default_factory=list)
    live_ours: dict[str, list[float]] = field(default_factory=dict)
    live_ref: dict[str, list[float]] = field(default_factory=dict)
    live_lean: dict[str, list[float]] = field(default_factory=dict)
    queries: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    big_rebuild: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def nats_url(explicit: str | None) -> Iterator[tuple[str, str]]:
    if explicit:
        yield explicit, "--nats-url"
        return
    for name in NATS_URL_ENVS:
        if os.environ.get(name):
            yield os.environ[name], f"${name}"
            return
    from programledger.adapters.embedded.nats import EmbeddedNats

    scratch = Path(tempfile.mkdtemp(prefix="programledger-bench-nats-"))
    server = EmbeddedNats(scratch / "jetstream")
    try:
        yield server.start(), f"embedded nats-server in {scratch}"
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


async def readable(store: PostgresEventStore, position: int) -> None:
    """Wait until a reader (a rebuild) sees every event up to ``position``: the store's
    safe head waits for the oldest transaction running anywhere on the server, and a
    rebuild started before that reads a part of the store."""
    for _ in range(1200):
        if await store.head_position() >= position:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"events up to {position} not readable after 10 minutes")


async def _store(url: str, schema: str) -> PostgresEventStore:
    pool = await create_pool(url, schema, min_size=2, max_size=8)
    return PostgresEventStore(pool, EventCodec(application_registry()), schema=schema)


async def bench_rebuild(url: str, schema: str, args: argparse.Namespace, results: Results) -> None:
    await load_store(url, schema, args.rebuild_events)
    store = await _store(url, schema)
    try:
        await readable(store, args.rebuild_events)
        for round_ in range(args.rounds):
            results.rebuild_ref.append(await raw_read_decode(store.pool, store.codec))
            for name in args.projections:
                report = await rebuild(
                    store.pool, store, name, progress=False, workers=args.workers, database_url=url
                )
                results.rebuild_ours.setdefault(name, []).append(report.rate)
            print(f"rebuild round {round_ + 1}/{args.rounds} done", flush=True)
    finally:
        await store.pool.close()


async def bench_live(
    url: str, nurl: str, schema: str, args: argparse.Namespace, results: Results
) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    await load_store(url, schema, args.live_events)
    store = await _store(url, schema)
    nc = await nats.connect(nurl)
    ours_nc = await nats_client.connect(nurl)
    relay = Relay(store, database_url=url, nats_servers=nurl, settings=RelaySettings(prefix=prefix))
    relay_task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(600):
            await relay.wait_published(args.live_events)
        relay.stop()
        await relay_task
        # The runner as `programledger project` runs it: every role tunes its collector
        # once started (cli/roles.py). The reference consumers share this process, and so
        # its settings.
        tune_gc(GcTuning())
        for round_ in range(args.rounds):
            for name in args.projections:
                projection = PROJECTIONS[name]
                handled = await store.pool.fetchval(
                    "SELECT max(position) FROM events WHERE event_type = ANY($1::text[])",
                    list(projection.handles),
                )
                count = await _delivered(store.pool, projection.stream_types)
                ref = await live_ref(nc, prefix, projection.stream_types, count)
                lean = await live_lean(ours_nc, prefix, projection.stream_types, count)
                results.live_lean.setdefault(name, []).append(lean)
                ours = await live_ours(store, url, ours_nc, prefix, name, int(handled))
                results.live_ref.setdefault(name, []).append(ref)
                results.live_ours.setdefault(name, []).append(ours)
            print(f"live round {round_ + 1}/{args.rounds} done", flush=True)
    finally:
        relay.stop()
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(stream_name(prefix))
        await nc.close()
        await ours_nc.close()
        await store.pool.close()


async def bench_as_of(url: str, schema: str, args: argparse.Namespace, results: Results) -> None:
    started = time.perf_counter()
    await load_store(url, schema, args.events)
    print(f"loaded {args.events:,} events in {time.perf_counter() - started:.0f}s", flush=True)
    store = await _store(url, schema)
    pool = store.pool
    try:
        await readable(store, args.events)
        for name in ("risks", "programs"):
            report = await rebuild(
                pool, store, name, progress=not args.quiet, workers=args.workers, database_url=url
            )
            results.big_rebuild[name] = report.rate
        middle = args.events // 2
        queries: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = {
            "risk_register": (lambda: list_risks(pool, as_of=middle), lambda: list_risks(pool)),
            "program_list": (
                lambda: list_programs(pool, sort="priority", as_of=middle),
                lambda: list_programs(pool, sort="priority"),
            ),
        }
        for _ in range(args.rounds):
            for name, (as_of, current) in queries.items():
                ours = await query_ms(as_of, args.repeats)
                ref = await query_ms(current, args.repeats)
                pair = results.queries.setdefault(name, ([], []))
                pair[0].append(ours)
                pair[1].append(ref)
    finally:
        await pool.close()


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    ours: float
    ref: float
    goal: str
    met: bool

    def text(self) -> str:
        ratio = self.ours / self.ref if self.ref else float("nan")
        return (
            f"target {self.name}: ours={self.ours:.1f} ref={self.ref:.1f} ratio={ratio:.3f} "
            f"goal={self.goal} {'met' if self.met else 'missed'}"
        )


def report(results: Results) -> list[Line]:
    ref = median(results.rebuild_ref)
    rows, lines, infos = [], [], []
    for name, rates in results.rebuild_ours.items():
        ours = median(rates)
        rows.append(["rebuild", name, f"{ours:,.0f} ev/s", f"{ref:,.0f} ev/s", f"{ours / ref:.2f}"])
        lines.append(
            Line(f"rebuild_{name}", ours, ref, f">={REBUILD_GOAL:.0f}/s", ours >= REBUILD_GOAL)
        )
    for name, rate in results.big_rebuild.items():
        rows.append(["rebuild (big store)", name, f"{rate:,.0f} ev/s", "", ""])
    for name, rates in results.live_ours.items():
        ours, theirs = median(rates), median(results.live_ref[name])
        lean = median(results.live_lean[name])
        rows.append(
            ["live", name, f"{ours:,.0f} msg/s", f"{theirs:,.0f} msg/s", f"{ours / theirs:.2f}"]
        )
        rows.append(
            [
                "live vs lean pull",
                name,
                f"{ours:,.0f} msg/s",
                f"{lean:,.0f} msg/s",
                f"{ours / lean:.2f}",
            ]
        )
        lines.append(
            Line(f"live_{name}", ours, theirs, f">={LIVE_GOAL:g}x", ours >= LIVE_GOAL * theirs)
        )
        infos.append(
            f"info live_{name}_vs_lean_pull: ours={ours:.1f} lean={lean:.1f} "
            f"ratio={ours / lean:.3f}"
        )
    for name, (as_of, current) in results.queries.items():
        ours, theirs = median(as_of), median(current)
        rows.append(
            ["as of vs now", name, f"{ours:.2f} ms", f"{theirs:.2f} ms", f"{ours / theirs:.2f}"]
        )
        lines.append(
            Line(f"as_of_{name}", ours, theirs, f"<={AS_OF_GOAL:g}x", ours <= AS_OF_GOAL * theirs)
        )
    print_table("projections (medians)", ["what", "projection/query", "ours", "ref", "ratio"], rows)
    for info in infos:
        print(info)
    return lines


async def main(args: argparse.Namespace) -> None:
    results = Results()
    schemas = {part: fresh_schema_name(f"prj_{part}") for part in args.only}
    with (
        postgres_url(args.database_url) as (url, where),
        nats_url(args.nats_url) as (
            nurl,
            nwhere,
        ),
    ):
        print(f"PostgreSQL from {where}, NATS from {nwhere}: {await server_facts(url)}")
        try:
            if "rebuild" in schemas:
                await bench_rebuild(url, schemas["rebuild"], args, results)
            if "live" in schemas:
                await bench_live(url, nurl, schemas["live"], args, results)
            if "asof" in schemas:
                await bench_as_of(url, schemas["asof"], args, results)
        finally:
            await drop_schemas(url, list(schemas.values()))
        for line in report(results):
            print(line.text())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, rounds=3)
    parser.add_argument("--nats-url", default=None)
    parser.add_argument(
        "--events",
        type=positive_int,
        default=1_000_000,
        help="store size for the as-of queries (default 1,000,000)",
    )
    parser.add_argument("--rebuild-events", type=positive_int, default=100_000)
    parser.add_argument("--live-events", type=positive_int, default=30_000)
    parser.add_argument(
        "--repeats", type=positive_int, default=20, help="query calls per round (default 20)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("rebuild", "live", "asof"),
        default=("rebuild", "live", "asof"),
    )
    parser.add_argument(
        "--projections",
        nargs="+",
        choices=tuple(PROJECTIONS),
        default=tuple(PROJECTIONS),
        metavar="NAME",
        help="the read models whose rebuild and live rows are measured (default: every one)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=min(os.cpu_count() or 1, 4),
        help="rebuild processes (default: one per CPU, at most 4)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
