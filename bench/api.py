"""Dashboard read latency over the real API, against a plain Litestar + asyncpg handler.

Why this benchmark exists: a program dashboard (a program with its risks, milestones and
allocations) goes through JWT auth, GraphQL parsing and validation, strawberry resolvers,
batched nested reads and the read models' query layer. The question is what all that costs over the
simplest correct thing: a Litestar JSON handler that runs the same read-model SELECTs with
asyncpg and returns the rows. The dashboard asks for every field of its risks, milestones
and allocations, as a program page does; with 4 concurrent clients (a frontend's parallel
requests) its p99 must stay within 3 times its p50. A second measurement times a write
until it is visible in a query (relay, NATS, projection runner, read model), which has no
meaningful plain reference.
A third sends mutations at a steady ``--rate`` (20 commands/s) with and without
``waitForProjections``: read-your-writes must cost little more than the mutation alone
(the reference measured in the same run).

Both apps are served (as ``programledger serve`` serves) on a free loopback port in this
process, each over its own asyncpg pool of the same size, against the same schema, with
the garbage collector tuned as every role tunes it once started (``gc_tuning``), and the
relay and projection runners with their production settings (the tests' short intervals
would add idle checks ten times as often); the
clients are ``--clients`` concurrent loops over one keep-alive ``httpx.AsyncClient`` pool,
in the same event loop as the servers (so client CPU is shared by both sides alike).
Rounds alternate which side goes first, and medians over rounds are reported, as DESIGN
§7 asks.

Run: ``python bench/api.py [--rounds N] [--seconds S] [--clients 32] [--writes 200]
[--rate 20] [--database-url URL] [--nats-url URL]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import nats
from litestar import Litestar, get
from tests.support.projection_process import LiveSystem
from tests.support.servers import nats_server

from bench._common import (
    RoundResult,
    add_common_arguments,
    drop_schemas,
    fresh_schema_name,
    median,
    percentile,
    positive_int,
    postgres_url,
    print_table,
    server_facts,
    timed_round,
)
from programledger.adapters.codec import EventCodec
from programledger.adapters.nats.relay import RelaySettings
from programledger.adapters.nats.sealer import head_stream_name
from programledger.adapters.nats.stream import stream_name
from programledger.adapters.postgres.connection import connect, create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.migrations import migrate
from programledger.api import ApiMetrics, ApiPorts, Role, create_app, mint_token
from programledger.api.auth import TokenVerifier
from programledger.api.events import EventFeed
from programledger.api.server import http_server
from programledger.application.handlers import Application
from programledger.bootstrap import event_registry, http_service
from programledger.bootstrap.supervisor import supervised
from programledger.gc_tuning import GcTuning, tune_gc
from programledger.projections import allocations, milestones, programs, risks
from programledger.projections.engine.progress import ProgressWatch
from programledger.projections.engine.runner import RunnerSettings
from programledger.projections.engine.tables import Table

READ_GOAL = 2.0
"""Ours' dashboard p50 may be at most this many times the plain handler's."""

TAIL_CLIENTS = 4
TAIL_GOAL = 3.0
"""With :data:`TAIL_CLIENTS` concurrent clients, ours' dashboard p99 may be at most this
many times its p50: a frontend's few parallel requests must not meet spikes."""

WRITE_GOAL_MS = 1000.0
"""A write must be visible in a query within this long, at p99."""

WAIT_GOAL = 2.0
"""A mutation with ``waitForProjections``: p50 at most this many times the mutation alone."""

WAIT_P99_GOAL_MS = 100.0
"""... and p99 under this, at ``--rate`` commands per second."""

POOL_SIZE = 20
"""asyncpg connections per app: the same for both sides."""

SECRET = "bench-api-secret-" + "x" * 40

DASHBOARD = """
query Dashboard($id: ID!) {
  program(id: $id) {
    code name status health healthSummary openRisks openRisksCritical nextMilestoneName
    budgetPlanned { amountMinor currency }
    risks {
      riskId programId workstreamId title description category probability impact score
      band status isOpen needsResponse owner trigger responseStrategy mitigationPlan
      mitigationDueOn contingencyPlan nextReviewOn lastReviewedOn escalatedTo
      escalationReason acceptanceRationale acceptedBy materialisedOn whatHappened
      impactDescription closedReason version reviewOverdue updatedAt
    }
    milestones { milestoneId name baselineDate forecastDate slipDays status updatedAt }
    allocations { allocationId resourceKey percentage startDate endDate status note updatedAt }
  }
}
"""

HEALTH_QUERY = "query Health($id: ID!) { program(id: $id) { healthSummary } }"

MUTATION = "mutation Run($input: {kind}Input!) {{ {name}(input: $input) {{ {payload} }} }}"
PAYLOAD = "__typename ... on CommandAccepted { position projectionsCaughtUp }"


# --- serving ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[str]:
    """``app`` on a free loopback port, served as ``programledger serve`` and the e2e tests
    serve it."""
    # A long keep-alive: with uvicorn's 5 s, a client connection idle while the other side
    # is measured may be closed just as httpx reuses it, failing the run with a ReadError.
    server = http_server(app, "127.0.0.1", 0, keep_alive=300)
    async with supervised([http_service(server)], up=server.wait_started):
        yield server.url


# --- the reference ------------------------------------------------------------------------


def _select(table: Table, where: str, order: str, extra: str = "") -> str:
    """The read-model SELECT of current rows, as ``fetch_one`` / ``fetch_page`` build it."""
    current = " AND valid_to_pos IS NULL" if table.versioned else ""
    return (
        f"SELECT {', '.join(table.column_names)}{extra} FROM {table.name} "
        f"WHERE {where}{current}{order}"
    )


PROGRAM_SQL = _select(programs.PROGRAMS, "program_id = $1", "")
RISKS_SQL = _select(
    risks.LIST.table,
    "program_id = $1",
    " ORDER BY score DESC, risk_id DESC LIMIT 201",
    ", (is_open AND coalesce(next_review_on < $2, false)) AS overdue",
)
MILESTONES_SQL = _select(
    milestones.MILESTONE_LIST.table,
    "program_id = $1",
    " ORDER BY forecast_date ASC LIMIT 201",
)
ALLOCATIONS_SQL = _select(
    allocations.ALLOCATION_LIST.table,
    "program_id = $1",
    " ORDER BY start_date ASC LIMIT 201",
)


def reference_app(pool: asyncpg.Pool) -> Litestar:
    """A plain JSON handler: the same read-model rows, four SELECTs on one connection."""

    @get("/dashboard/{program_id:uuid}")
    async def dashboard(program_id: uuid.UUID) -> dict[str, Any]:
        today = datetime.now(UTC).date()
        async with pool.acquire() as conn:
            program = await conn.fetchrow(PROGRAM_SQL, program_id)
            risk_rows = await conn.fetch(RISKS_SQL, program_id, today)
            milestone_rows = await conn.fetch(MILESTONES_SQL, program_id)
            allocation_rows = await conn.fetch(ALLOCATIONS_SQL, program_id)
        return {
            "program": None if program is None else dict(program),
            "risks": [dict(r) for r in risk_rows],
            "milestones": [dict(r) for r in milestone_rows],
            "allocations": [dict(r) for r in allocation_rows],
        }

    return Litestar(route_handlers=[dashboard], debug=False)


# --- ours ---------------------------------------------------------------------------------


class BenchError(RuntimeError):
    """The API answered something other than what the benchmark needs."""


@dataclass
class Client:
    """GraphQL over one keep-alive connection pool to the served app."""

    http: httpx.AsyncClient
    headers: dict[str, str]

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers
        )
        if response.status_code != 200:
            raise BenchError(f"HTTP {response.status_code}: {response.text[:300]}")
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            raise BenchError(str(body["errors"])[:500])
        data: dict[str, Any] = body["data"]
        return data

    async def mutate(self, name: str, values: dict[str, Any]) -> dict[str, Any]:
        kind = name[:1].upper() + name[1:]
        query = MUTATION.format(kind=kind, name=name, payload=PAYLOAD)
        payload: dict[str, Any] = (await self.graphql(query, {"input": values}))[name]
        if not payload["__typename"].endswith("Success"):
            raise BenchError(f"{name} refused: {payload}")
        return payload


def _day(n: int) -> str:
    return (datetime(2027, 1, 1, tzinfo=UTC).date() + timedelta(days=n)).isoformat()


async def new_program(client: Client) -> str:
    """A proposed and activated program, through the mutations."""
    program = str(uuid.uuid4())
    await client.mutate(
        "proposeProgram",
        {
            "programId": program,
            "code": f"B{uuid.uuid4().int % 10**8:08d}",
            "name": "Payments platform",
            "objective": "Take card payments in every market",
            "sponsor": "Sam Sponsor",
            "owner": "Tia Owner",
            "priority": 2,
            "startDate": _day(0),
            "targetEndDate": _day(364),
            "plannedBudget": {"amountMinor": 250_000_000_00, "currency": "EUR"},
        },
    )
    await client.mutate("activateProgram", {"programId": program})
    return program


async def seed(client: Client, items: int) -> str:
    """A program with ``items`` risks, milestones and allocations, through the mutations."""
    program = await new_program(client)
    resource = f"bench.{uuid.uuid4().hex[:8]}"
    await client.mutate(
        "registerResource",
        {
            "resourceKey": resource,
            "name": "Alice Martin",
            "kind": "PERSON",
            "department": "ENGINEERING",
            "role": "Engineer",
            "capacity": 100,
        },
    )
    for n in range(items):
        await client.mutate(
            "planMilestone",
            {
                "programId": program,
                "milestoneId": str(uuid.uuid4()),
                "name": f"Milestone {n}",
                "dueDate": _day(30 + 20 * n),
            },
        )
        await client.mutate(
            "identifyRisk",
            {
                "riskId": str(uuid.uuid4()),
                "programId": program,
                "title": f"Risk {n}: card vendor is late",
                "category": "VENDOR",
                "probability": 1 + n % 5,
                "impact": 1 + (n * 2) % 5,
                "owner": "Tia",
            },
        )
        await client.mutate(
            "proposeAllocation",
            {
                "resourceKey": resource,
                "allocationId": str(uuid.uuid4()),
                "programId": program,
                "percentage": max(1, 100 // max(items, 1)),
                "startDate": _day(10 * n),
                "endDate": _day(10 * n + 90),
            },
        )
    done = await client.mutate(
        "reportProgramHealth",
        {"programId": program, "health": "GREEN", "summary": "seeded", "waitForProjections": True},
    )
    if done["projectionsCaughtUp"] is not True:
        raise BenchError("the read models did not catch up with the seed")
    return program


# --- measurements -------------------------------------------------------------------------


@dataclass
class ReadResult:
    rounds: dict[str, list[RoundResult]] = field(default_factory=lambda: {"ours": [], "ref": []})

    def p(self, side: str, q: float) -> float:
        return median([r.latency(q) * 1000 for r in self.rounds[side]])

    def rps(self, side: str) -> float:
        return median([r.operations_per_s for r in self.rounds[side]])

    def cpu(self, side: str) -> float:
        return median([r.client_cpu for r in self.rounds[side]])


async def measure_reads(
    ours: Client, ref: httpx.AsyncClient, program: str, args: argparse.Namespace, clients: int
) -> ReadResult:
    variables = {"id": program}

    async def our_dashboard(_: int) -> int:
        data = await ours.graphql(DASHBOARD, variables)
        return len(data["program"]["risks"])

    async def ref_dashboard(_: int) -> int:
        response = await ref.get(f"/dashboard/{program}")
        if response.status_code != 200:
            raise BenchError(f"reference HTTP {response.status_code}: {response.text[:300]}")
        return len(response.json()["risks"])

    sides: dict[str, Callable[[int], Awaitable[int]]] = {
        "ours": our_dashboard,
        "ref": ref_dashboard,
    }
    # Warm both up: connections, prepared statements, strawberry's caches.
    for side in sides.values():
        await timed_round(clients, min(1.0, args.seconds), side)
    result = ReadResult()
    for n in range(args.rounds):
        order = ["ours", "ref"] if n % 2 == 0 else ["ref", "ours"]
        for name in order:
            result.rounds[name].append(await timed_round(clients, args.seconds, sides[name]))
    return result


async def measure_write_to_read(client: Client, program: str, writes: int) -> list[float]:
    """Each write, then the dashboard's program polled until the write shows: ms each."""
    health = ("GREEN", "AMBER", "RED")
    took: list[float] = []
    for i in range(writes):
        summary = f"bench write {i}"
        started = time.perf_counter()
        await client.mutate(
            "reportProgramHealth",
            {
                "programId": program,
                "health": health[i % 3],
                "summary": summary,
                "waitForProjections": False,
            },
        )
        while True:
            data = await client.graphql(HEALTH_QUERY, {"id": program})
            if data["program"]["healthSummary"] == summary:
                break
            if time.perf_counter() - started > 30:
                raise BenchError(f"write {i} not visible after 30 s")
            await asyncio.sleep(0.002)
        took.append((time.perf_counter() - started) * 1000)
    return took


@dataclass
class WaitResult:
    """Mutation latencies (ms) at a steady rate, without and with ``waitForProjections``."""

    alone: list[float] = field(default_factory=list)
    waited: list[float] = field(default_factory=list)
    not_caught_up: int = 0


async def measure_wait(client: Client, rate: float, seconds: float, rounds: int) -> WaitResult:
    """``rate`` reportProgramHealth per second, open loop (each is sent on time whether or
    not the previous one finished), alternating rounds without and with the wait.

    Spread over ten programs, as commands from many users are: two commands on one stream
    at the same moment measure the conflict retries, not read your writes.
    """
    programs = [await new_program(client) for _ in range(10)]
    result = WaitResult()
    health = ("GREEN", "AMBER", "RED")
    sent = 0

    async def one(wait: bool) -> None:
        nonlocal sent
        sent += 1
        started = time.perf_counter()
        payload = await client.mutate(
            "reportProgramHealth",
            {
                "programId": programs[sent % len(programs)],
                "health": health[sent % 3],
                "summary": f"rate {sent}",
                "waitForProjections": wait,
            },
        )
        took = (time.perf_counter() - started) * 1000
        if wait:
            result.waited.append(took)
            result.not_caught_up += payload["projectionsCaughtUp"] is not True
        else:
            result.alone.append(took)

    async def steady(wait: bool, duration: float) -> None:
        interval = 1 / rate
        start = time.perf_counter()
        tasks = []
        for n in range(max(1, round(duration * rate))):
            delay = start + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(wait)))
        await asyncio.gather(*tasks)

    await steady(True, 1.0)  # warm up both paths
    await steady(False, 1.0)
    result = WaitResult()
    for n in range(rounds):
        for wait in (n % 2 == 0, n % 2 != 0):
            await steady(wait, seconds)
    return result


# --- the run ------------------------------------------------------------------------------


@contextlib.contextmanager
def nats_url(explicit: str | None) -> Iterator[tuple[str, str]]:
    if explicit:
        yield explicit, "--nats-url"
        return
    with nats_server() as found:
        yield found


async def run(pg_url: str, nats: str, args: argparse.Namespace) -> list[str]:
    schema = fresh_schema_name("api")
    prefix = f"b{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn, schema)
    finally:
        await conn.close()
    try:
        return await _measure(pg_url, nats, schema, prefix, args)
    finally:
        await drop_schemas(pg_url, [schema])
        await _delete_stream(nats, prefix)


async def _delete_stream(url: str, prefix: str) -> None:
    """The run's streams: its events' (LiveSystem deletes it on exit; this covers a run
    that failed before that) and, where a sealer ran, its signed tree heads'."""
    nc = await nats.connect(url)
    try:
        for name in (stream_name(prefix), head_stream_name(prefix)):
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


NOTES: list[str] = []
"""Things seen during the run that the figures alone would hide; printed with them."""


@contextlib.contextmanager
def collections_noted(what: str) -> Iterator[None]:
    """Note the garbage collections during the block: how many of each generation, and
    the longest pause (a tail's usual suspect; ``gc_tuning``)."""
    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started[0]))

    gc.callbacks.append(on_collection)
    try:
        yield
    finally:
        gc.callbacks.remove(on_collection)
    seen = [
        f"generation {g}: {len(p)}, longest {max(p) * 1000:.1f} ms"
        for g in range(3)
        if (p := [took for generation, took in pauses if generation == g])
    ]
    NOTES.append(f"garbage collections during {what}: {'; '.join(seen) or 'none'}")


def production_live_system(
    store: PostgresEventStore, pg_url: str, nats: str, prefix: str
) -> LiveSystem:
    """The relay and runners as ``programledger relay`` and ``project`` run them."""
    runner = RunnerSettings(prefix=prefix)
    return LiveSystem(
        store,
        pg_url,
        nats,
        prefix,
        relay_settings=RelaySettings(prefix=prefix),
        batch_size=runner.batch_size,
        fetch_wait=runner.fetch_wait,
        idle_check_interval=runner.idle_check_interval,
        standby_poll_interval=runner.standby_poll_interval,
        retry_initial=runner.retry_initial,
        retry_max=runner.retry_max,
    )


async def stop_live_system(live: LiveSystem) -> None:
    """Stop the relay and runners; if one hangs, say which, cancel it and carry on.

    The relay and runners are asked to stop here first, so that one that does not can be
    named (``LiveSystem.__aexit__`` cancels them all together after 20 s).
    """
    started = time.perf_counter()
    tasks = live._tasks  # a benchmark may look inside the test helper
    names = ["relay", *live.runners]
    for runner in live.runners.values():
        runner.stop()
    if live.relay is not None:
        live.relay.stop()
    _, pending = await asyncio.wait(tasks, timeout=20) if tasks else (set(), set())
    if pending:
        stuck = [n for n, t in zip(names, tasks, strict=False) if t in pending]
        NOTES.append(f"did not stop within 20 s of being asked, cancelled: {stuck}")
        for task in pending:
            task.cancel()
    await live.__aexit__(None, None, None)
    took = time.perf_counter() - started
    if took > 5:
        NOTES.append(f"stopping the relay and projection runners took {took:.1f} s")


async def _measure(
    pg_url: str, nats: str, schema: str, prefix: str, args: argparse.Namespace
) -> list[str]:
    pool = await create_pool(
        pg_url, schema, min_size=POOL_SIZE, max_size=POOL_SIZE, application_name="bench-api-ours"
    )
    ref_pool = await create_pool(
        pg_url, schema, min_size=POOL_SIZE, max_size=POOL_SIZE, application_name="bench-api-ref"
    )
    try:
        store = PostgresEventStore(pool, EventCodec(event_registry()), schema=schema)

        watch = ProgressWatch(
            pool,
            lambda: connect(pg_url, schema, application_name="bench-api-progress"),
            schema=schema,
            events_channel=store.notify_channel,
        )
        ports = ApiPorts(
            commands=Application(store),
            reads=pool,
            history=store,
            feed=EventFeed([nats], prefix),
            tokens=TokenVerifier(SECRET),
        )
        app = create_app(
            ports,
            metrics=ApiMetrics(),
            wait_for_position=watch.wait,
            graphiql=False,
        )
        app.on_shutdown.append(watch.close)
        # The access log and httpx's request log would print a line per request: thousands
        # of lines measure the terminal, not the API.
        for noisy in ("programledger.api.access", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        token = mint_token(SECRET, "bench@example.com", (Role.EDITOR,), timedelta(hours=2))
        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
        live = production_live_system(store, pg_url, nats, prefix)
        await live.__aenter__()
        try:
            async with (
                serve(app) as ours_url,
                serve(reference_app(ref_pool)) as ref_url,
                httpx.AsyncClient(base_url=ours_url, timeout=60, limits=limits) as ours_http,
                httpx.AsyncClient(base_url=ref_url, timeout=60, limits=limits) as ref_http,
            ):
                client = Client(ours_http, {"Authorization": f"Bearer {token}"})
                # Every role does this once built (cli/roles.py).
                tune_gc(GcTuning())
                program = await seed(client, args.items)
                shown = (await client.graphql(DASHBOARD, {"id": program}))["program"]
                counts = [len(shown[k]) for k in ("risks", "milestones", "allocations")]
                ref_shown = (await ref_http.get(f"/dashboard/{program}")).json()
                ref_counts = [len(ref_shown[k]) for k in ("risks", "milestones", "allocations")]
                if counts != [args.items] * 3 or ref_counts != counts:
                    raise BenchError(f"dashboard shows {counts}, reference {ref_counts}")
                reads = await measure_reads(client, ref_http, program, args, args.clients)
                # One client: the latency of an unloaded server, i.e. the cost of one request.
                alone = await measure_reads(client, ref_http, program, args, 1)
                # A frontend's handful of parallel requests: the tail beside the median.
                with collections_noted(f"the {TAIL_CLIENTS}-client dashboard rounds"):
                    few = await measure_reads(client, ref_http, program, args, TAIL_CLIENTS)
                writes = await measure_write_to_read(client, program, args.writes)
                waits = await measure_wait(client, args.rate, max(args.seconds, 5.0), args.rounds)
        finally:
            await stop_live_system(live)
    finally:
        await ref_pool.close()
        await pool.close()
    return report(reads, alone, few, writes, waits, args, counts)


def report(
    reads: ReadResult,
    alone: ReadResult,
    few: ReadResult,
    writes: list[float],
    waits: WaitResult,
    args: argparse.Namespace,
    counts: list[int],
) -> list[str]:
    rows = []
    for result, clients in ((reads, args.clients), (few, TAIL_CLIENTS), (alone, 1)):
        for side, label in (("ours", "GraphQL dashboard"), ("ref", "Litestar + asyncpg JSON")):
            rows.append(
                [
                    side,
                    f"{label}, {clients} client{'s' if clients > 1 else ''}",
                    f"{result.p(side, 50):.2f}",
                    f"{result.p(side, 99):.2f}",
                    f"{result.rps(side):,.0f}",
                    f"{result.cpu(side):.2f}",
                ]
            )
    print_table(
        f"Dashboard read: program + {counts[0]} risks, {counts[1]} milestones, "
        f"{counts[2]} allocations; {args.rounds} rounds x {args.seconds:g} s per side, "
        "medians; servers and clients share one process (client cpu = process cpu)",
        ["side", "what", "p50 ms", "p99 ms", "requests/s", "process cpu"],
        rows,
    )
    print_table(
        f"Mutation -> visible in query: {len(writes)} sequential reportProgramHealth "
        "(waitForProjections: false), then polling every 2 ms",
        ["side", "what", "p50 ms", "p99 ms", "max ms"],
        [
            [
                "ours",
                "relay + NATS + projection runner",
                f"{percentile(writes, 50):.1f}",
                f"{percentile(writes, 99):.1f}",
                f"{max(writes):.1f}",
            ],
            ["ref", "n/a: a plain app has no asynchronous read side", "-", "-", "-"],
        ],
    )
    print_table(
        f"Mutation with and without waitForProjections: reportProgramHealth at "
        f"{args.rate:g}/s, open loop, {args.rounds} rounds per side, all latencies pooled",
        ["side", "what", "p50 ms", "p99 ms", "max ms", "count"],
        [
            [
                side,
                what,
                f"{percentile(values, 50):.1f}",
                f"{percentile(values, 99):.1f}",
                f"{max(values):.1f}",
                str(len(values)),
            ]
            for side, what, values in (
                ("ours", "mutation + waitForProjections", waits.waited),
                ("ref", "the same mutation alone", waits.alone),
            )
        ],
    )
    if waits.not_caught_up:
        NOTES.append(f"{waits.not_caught_up} waited mutations answered projectionsCaughtUp false")
    wait_p50, alone_p50 = percentile(waits.waited, 50), percentile(waits.alone, 50)
    wait_ratio = wait_p50 / alone_p50 if alone_p50 > 0 else float("nan")
    wait_p99, alone_p99 = percentile(waits.waited, 99), percentile(waits.alone, 99)
    wait_p99_ratio = wait_p99 / alone_p99 if alone_p99 > 0 else float("nan")
    ours_p50, ref_p50 = reads.p("ours", 50), reads.p("ref", 50)
    ratio = ours_p50 / ref_p50 if ref_p50 > 0 else float("nan")
    write_p99 = percentile(writes, 99)
    few_p50, few_p99 = few.p("ours", 50), few.p("ours", 99)
    tail = few_p99 / few_p50 if few_p50 > 0 else float("nan")
    NOTES.append(
        f"plain handler with {TAIL_CLIENTS} clients: p99/p50 = "
        f"{few.p('ref', 99):.2f}/{few.p('ref', 50):.2f} ms"
    )
    return [
        f"target api_dashboard_p50: ours={ours_p50:.2f} ref={ref_p50:.2f} ratio={ratio:.3f} "
        f"goal=<={READ_GOAL:g} {'met' if ratio <= READ_GOAL else 'missed'}",
        f"target api_dashboard_p99_over_p50_{TAIL_CLIENTS}_clients: ours={few_p99:.2f} "
        f"ref={few_p50:.2f} ratio={tail:.3f} goal=<={TAIL_GOAL:g} "
        f"{'met' if tail <= TAIL_GOAL else 'missed'}",
        f"target api_write_to_read_p99: ours={write_p99:.1f} ref=n/a ratio=n/a "
        f"goal=<{WRITE_GOAL_MS:g}ms {'met' if write_p99 < WRITE_GOAL_MS else 'missed'}",
        f"target api_wait_for_projections_p50: ours={wait_p50:.1f} ref={alone_p50:.1f} "
        f"ratio={wait_ratio:.3f} goal=<={WAIT_GOAL:g} "
        f"{'met' if wait_ratio <= WAIT_GOAL else 'missed'}",
        f"target api_wait_for_projections_p99_at_{args.rate:g}_per_s: ours={wait_p99:.1f} "
        f"ref={alone_p99:.1f} ratio={wait_p99_ratio:.3f} goal=<={WAIT_P99_GOAL_MS:g}ms "
        f"{'met' if wait_p99 <= WAIT_P99_GOAL_MS else 'missed'}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser, rounds=5, seconds=3.0)
    parser.add_argument("--nats-url", default=None, help="NATS with JetStream; else embedded")
    parser.add_argument("--clients", type=positive_int, default=32, help="concurrent clients")
    parser.add_argument("--writes", type=positive_int, default=200, help="mutations timed")
    parser.add_argument("--items", type=positive_int, default=10, help="risks etc. seeded")
    parser.add_argument(
        "--rate", type=positive_int, default=20, help="commands/s for the wait measurement"
    )
    args = parser.parse_args(argv)
    with postgres_url(args.database_url) as (pg, pg_from), nats_url(args.nats_url) as (nu, nf):
        facts = asyncio.run(server_facts(pg))
        print(
            f"PostgreSQL from {pg_from}, NATS from {nf}; "
            + ", ".join(f"{k}={v}" for k, v in facts.items())
        )
        lines = asyncio.run(run(pg, nu, args))
    for note in NOTES:
        print(f"note: {note}")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
