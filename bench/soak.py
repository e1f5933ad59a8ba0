"""Soak: the split deployment under a steady load for tens of minutes, as an operator runs it.

Why this benchmark exists: the one-minute benchmarks hide what only time shows: memory
that grows with every event, latency tails that creep as the store grows, projections that
fall behind. This one starts the real CLI as subprocesses: two ``serve`` replicas,
``relay`` and ``project`` (with its ``/metrics``), on a fresh schema and subject prefix, and
drives them for ``--minutes`` (20) with

- mixed commands at a fixed ``--rate`` (open loop, alternating between the replicas):
  programs proposed, activated and reported on, milestones planned and rescheduled, risks
  identified and assessed, decisions recorded, resources registered, allocations proposed
  and confirmed (some confirmations are refused by capacity, as in real life: counted as
  refused, not as errors);
- dashboard reads at ``--reads`` per second, ``/metrics`` and ``/ready`` scraped every 10 s;
- one GraphQL subscription (``graphql-transport-ws``) to every event, and one nats-py
  ordered consumer of the relay's stream.

Every 10 s it samples each process's RSS and CPU (``/proc``; PostgreSQL's processes, this
client's and the machine's busy share too: whether the two cores run short as the store
grows), the projection lag (the largest of ``projection_status``, read every second),
command and read latency, and the schema's size on disk; it writes them to
``--out``/soak.csv and a chart, soak.png (matplotlib, the ``bench`` extra). When the
server loads ``pg_stat_statements`` it also prints the statements that took the most time
in the last quarter, and those whose mean time grew the most since the first. At the end
it waits for the relay and projections to catch up and checks that both subscribers
received every stored event exactly once.

With ``--explain-ms N`` the deployment runs in a database of its own whose sessions load
``auto_explain`` and log the plan of every statement slower than N ms to the server's log:
how to find plans that scan or sort as the store grows (``pg_stat_statements`` needs
``shared_preload_libraries``, a server restart, so it is not assumed).

Targets (issue 20): RSS slope ≤ 5 MB per 10 minutes for every process after ``--warmup``
(5) minutes (least squares over the samples after it); command p99 of the last quarter of
the measured period ≤ 1.5x the first quarter's; projection lag p99 ≤ 1 s; 0 errors; every
event delivered once to each subscriber.

Run: ``python bench/soak.py [--minutes 20] [--warmup 5] [--rate 84] [--reads 5]
[--out soak-out] [--explain-ms N] [--database-url URL] [--nats-url URL]``; a quick proof:
``--minutes 3 --warmup 1``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import csv
import gc
import json
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import msgspec
import nats
from nats.js.errors import NotFoundError
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from bench._common import (
    drop_schemas,
    fresh_schema_name,
    percentile,
    positive_float,
    positive_int,
    postgres_url,
    print_table,
    server_facts,
)
from bench.api import DASHBOARD, _delete_stream, nats_url
from programledger.adapters.postgres.connection import create_pool
from programledger.api import Role, mint_token
from programledger.api.graphql.subscriptions import StreamType
from programledger.projections.engine.status import projection_status

RSS_SLOPE_GOAL = 5.0
"""MB per 10 minutes, per process, after the warm-up."""
TAIL_GOAL = 1.5
"""Command p99 of the last quarter over the first quarter's."""
LAG_GOAL_S = 1.0
SAMPLE_S = 10.0
SECRET = "soak-secret-" + "x" * 40
PROCESSES = ("serve", "serve2", "relay", "project")
EVENTS = "subscription { events { position } }"
DAY = date(2027, 1, 4)
MIN_PROGRAMS = 50
MIN_RESOURCES = 30
TIMEOUT = aiohttp.ClientTimeout(total=30)
MAX_IN_FLIGHT = 500
"""Commands outstanding at once; a tick that finds this many is counted as an error (the
system did not keep up with the rate), so the load stays the rate asked for."""


class Envelope(msgspec.Struct):
    position: int


# --- the deployment -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def deployment_env(
    pg: str, nats_server: str, schema: str, prefix: str, secret: str
) -> dict[str, str]:
    """The environment of the CLI's role processes: this one's, with the deployment's
    servers, schema, subject prefix and token secret."""
    return {
        **os.environ,
        "PROGRAMLEDGER_DATABASE_URL": pg,
        "PROGRAMLEDGER_NATS_URL": nats_server,
        "PROGRAMLEDGER_SCHEMA": schema,
        "PROGRAMLEDGER_SUBJECT_PREFIX": prefix,
        "PROGRAMLEDGER_JWT_SECRET": secret,
        "PROGRAMLEDGER_HTTP_HOST": "127.0.0.1",
        "PROGRAMLEDGER_LOG_FORMAT": "json",
        "PROGRAMLEDGER_LOG_LEVEL": os.environ.get("PROGRAMLEDGER_LOG_LEVEL", "WARNING"),
    }


TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _comm(d: Path) -> str:
    try:
        return (d / "comm").read_text().strip()
    except OSError:
        return ""


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def cpu_percent(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Per role, CPU seconds between two ``cpu_seconds`` samples as a percentage of a core;
    a process newer than ``before`` (or a pid taken again) counts from zero."""
    spent: dict[str, float] = {}
    for key, now in after.items():
        then = before.get(key, 0.0)
        name = key.split(":", 1)[0]
        spent[name] = spent.get(name, 0.0) + (now - then if now >= then else now)
    return {name: round(cpu / seconds * 100, 1) for name, cpu in spent.items()}


@dataclass
class Deployment:
    """The CLI's role processes, each with its own log file in ``out``."""

    env: dict[str, str]
    out: Path
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "programledger", *args]

    def start(self, name: str, role: str, extra: dict[str, str]) -> None:
        log = (self.out / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            self.cli(role), env={**self.env, **extra}, stdout=log, stderr=subprocess.STDOUT
        )

    def up(self) -> None:
        subprocess.run(self.cli("migrate"), env=self.env, check=True, capture_output=True)
        for name in ("serve", "serve2"):
            self.ports[name] = free_port()
            self.start(name, "serve", {"PROGRAMLEDGER_HTTP_PORT": str(self.ports[name])})
        self.start("relay", "relay", {})
        self.ports["project"] = free_port()
        self.start("project", "project", {"PROGRAMLEDGER_METRICS_PORT": str(self.ports["project"])})

    def rss_mb(self) -> dict[str, float]:
        found = {}
        for name, proc in self.procs.items():
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                found[name] = float("nan")
                continue
            kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
            found[name] = int(kb) / 1024
        return found

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time so far of each role process, of PostgreSQL's processes (all of them:
        the server is this run's alone when the figures are to be trusted) and of this
        client: where the two cores go as the store grows.

        PostgreSQL's come one per process (``postgres:<pid>``), to be added up by
        :func:`cpu_percent`: a backend that exits between two samples takes its time out
        of a sum, which then read as negative; per process, that time is only missed."""
        found = {name: process_cpu(proc.pid) for name, proc in self.procs.items()}
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and _comm(d) == "postgres":
                found[f"postgres:{d.name}"] = process_cpu(int(d.name))
        found["client"] = process_cpu(os.getpid())
        return found

    def exited(self) -> list[str]:
        return [f"{n} (exit {p.returncode})" for n, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> dict[str, int | None]:
        """SIGTERM each, as an orchestrator does; a clean stop exits 0 within 20 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = None
        return codes


# --- the load -----------------------------------------------------------------------------


class Refused(Exception):
    """A command the domain refused as it should (over capacity): not an error."""


@dataclass
class Workload:
    """Commands of the mix, each valid for what was acknowledged before it.

    Follow-ups (activate a proposed program, confirm a proposed allocation) are queued when
    the command they follow is acknowledged.
    """

    rng: random.Random = field(default_factory=lambda: random.Random(20))
    programs: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    milestones: list[tuple[str, str]] = field(default_factory=list)
    forecasts: dict[str, int] = field(default_factory=dict)
    """Each milestone's forecast, in days after ``DAY``."""
    risks: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    follow_ups: deque[tuple[str, dict[str, Any], Callable[[], None]]] = field(default_factory=deque)

    def day(self, n: int) -> str:
        return (DAY + timedelta(days=n)).isoformat()

    def next(self) -> tuple[str, dict[str, Any], Callable[[], None]]:
        """(mutation, input, what to note once it is acknowledged)."""
        if self.follow_ups and self.rng.random() < 0.5:
            return self.follow_ups.popleft()
        # Enough programs and people that concurrent commands seldom meet on one stream
        # (they would conflict and retry, as they do in life, but a handful of streams at
        # tens of commands a second measures retries, not the system).
        if len(self.programs) < MIN_PROGRAMS or self.rng.random() < 0.04:
            return self.propose_program()
        if len(self.resources) < MIN_RESOURCES or self.rng.random() < 0.03:
            return self.register_resource()
        if not self.active:
            return self.propose_program()
        choice = self.rng.random()
        program = self.rng.choice(self.active)
        if choice < 0.12:
            return self.report_health(program)
        if choice < 0.27:
            return self.plan_milestone(program)
        if choice < 0.37 and self.milestones:
            return self.reschedule_milestone()
        if choice < 0.52:
            return self.identify_risk(program)
        if choice < 0.62 and self.risks:
            return self.assess_risk()
        if choice < 0.72:
            return self.record_decision(program)
        return self.propose_allocation(program)

    def propose_program(self) -> tuple[str, dict[str, Any], Callable[[], None]]:
        pid = str(uuid.uuid4())
        values = {
            "programId": pid,
            "code": f"S{uuid.uuid4().int % 10**8:08d}",
            "name": "Payments platform",
            "objective": "Take card payments in every market",
            "sponsor": "Sam Sponsor",
            "owner": f"owner{self.rng.randrange(40)}",
            "priority": self.rng.randrange(1, 6),
            "startDate": self.day(0),
            "targetEndDate": self.day(364),
            "plannedBudget": {"amountMinor": self.rng.randrange(10**6, 10**9), "currency": "EUR"},
        }

        def proposed() -> None:
            self.programs.append(pid)
            # The dashboard readers pick active programs: as a frontend that opens a
            # program it has just activated, the activation waits for the read models
            # (else a read may come before the projection, within its lag).
            activate = {"programId": pid, "waitForProjections": True}
            self.follow_ups.append(("activateProgram", activate, lambda: self.active.append(pid)))

        return "proposeProgram", values, proposed

    def register_resource(self) -> tuple[str, dict[str, Any], Callable[[], None]]:
        key = f"soak.{uuid.uuid4().hex[:10]}"
        values = {
            "resourceKey": key,
            "name": "Alice Martin",
            "kind": "PERSON",
            "department": "ENGINEERING",
            "role": "Engineer",
            "capacity": 100,
        }
        return "registerResource", values, lambda: self.resources.append(key)

    def report_health(self, program: str) -> tuple[str, dict[str, Any], Callable[[], None]]:
        health = self.rng.choice(["GREEN", "AMBER", "RED"])
        values = {"programId": program, "health": health, "summary": "weekly report"}
        return "reportProgramHealth", values, lambda: None

    def plan_milestone(self, program: str) -> tuple[str, dict[str, Any], Callable[[], None]]:
        mid = str(uuid.uuid4())
        self.forecasts[mid] = self.rng.randrange(30, 300)
        values = {
            "programId": program,
            "milestoneId": mid,
            "name": "Go live in a market",
            "dueDate": self.day(self.forecasts[mid]),
        }
        return "planMilestone", values, lambda: self.milestones.append((program, mid))

    def reschedule_milestone(self) -> tuple[str, dict[str, Any], Callable[[], None]]:
        program, mid = self.rng.choice(self.milestones)
        # Always a new date (the same one is refused), moved when sent, so a second
        # reschedule sent before the first is answered differs from it too.
        self.forecasts[mid] += self.rng.randrange(1, 15)
        values = {
            "programId": program,
            "milestoneId": mid,
            "forecastDate": self.day(self.forecasts[mid]),
            "reason": "vendor slipped",
        }
        return "rescheduleMilestone", values, lambda: None

    def identify_risk(self, program: str) -> tuple[str, dict[str, Any], Callable[[], None]]:
        rid = str(uuid.uuid4())
        values = {
            "riskId": rid,
            "programId": program,
            "title": "Card vendor is late",
            "category": "VENDOR",
            "probability": self.rng.randrange(1, 6),
            "impact": self.rng.randrange(1, 6),
            "owner": "Tia",
        }
        return "identifyRisk", values, lambda: self.risks.append(rid)

    def assess_risk(self) -> tuple[str, dict[str, Any], Callable[[], None]]:
        values = {
            "riskId": self.rng.choice(self.risks),
            "probability": self.rng.randrange(1, 6),
            "impact": self.rng.randrange(1, 6),
        }
        return "assessRisk", values, lambda: None

    def record_decision(self, program: str) -> tuple[str, dict[str, Any], Callable[[], None]]:
        values = {
            "programId": program,
            "decisionId": str(uuid.uuid4()),
            "title": "Buy the gateway",
            "context": "build or buy",
            "outcome": "buy",
            "decidedBy": "Dana",
            "decidedOn": self.day(self.rng.randrange(0, 100)),
        }
        return "recordDecision", values, lambda: None

    def propose_allocation(self, program: str) -> tuple[str, dict[str, Any], Callable[[], None]]:
        key, aid = self.rng.choice(self.resources), str(uuid.uuid4())
        start = self.rng.randrange(0, 300)
        values = {
            "resourceKey": key,
            "allocationId": aid,
            "programId": program,
            "percentage": self.rng.choice([10, 20, 25, 40]),
            "startDate": self.day(start),
            "endDate": self.day(start + self.rng.randrange(14, 90)),
        }

        def proposed() -> None:
            confirm = {"resourceKey": key, "allocationId": aid}
            self.follow_ups.append(("confirmAllocation", confirm, lambda: None))

        return "proposeAllocation", values, proposed


MUTATION = (
    "mutation Run($input: {kind}Input!) "
    "{{ {name}(input: $input) {{ __typename ... on UserError {{ message }} }} }}"
)


@dataclass
class Stats:
    """Everything measured while the load runs, timestamped from the start."""

    started: float = field(default_factory=time.perf_counter)
    commands: list[tuple[float, float]] = field(default_factory=list)
    reads: list[tuple[float, float]] = field(default_factory=list)
    lag: list[tuple[float, float]] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    client_pauses: list[tuple[float, float]] = field(default_factory=list)
    """This process's full collections (when, how long): a pause here delays every command
    and read it times, which the figures would otherwise put down to the deployment."""

    def now(self) -> float:
        return time.perf_counter() - self.started

    def watch_collector(self) -> Callable[[], None]:
        """Record :attr:`client_pauses` until the returned function is called."""
        begun = 0.0

        def callback(phase: str, info: dict[str, int]) -> None:
            nonlocal begun
            if info["generation"] != 2:
                return
            if phase == "start":
                begun = time.perf_counter()
            else:
                self.client_pauses.append((self.now(), time.perf_counter() - begun))

        gc.callbacks.append(callback)
        return lambda: gc.callbacks.remove(callback)

    def error(self, what: str) -> None:
        self.errors[what[:160]] += 1


HTTP_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
JSON = {"content-type": "application/json"}


async def post(client: aiohttp.ClientSession, body: dict[str, Any]) -> tuple[int, bytes]:
    """One POST: (status, body). Sent again once if the connection broke before an answer:
    the server closes keep-alive connections idle for 5 s, and one may close just as it is
    reused. Commands carry an idempotency key, so a repeat returns the first result."""
    data = msgspec.json.encode(body)
    try:
        async with client.post("/graphql", data=data, headers=JSON) as response:
            return response.status, await response.read()
    except aiohttp.ClientConnectionError:
        async with client.post("/graphql", data=data, headers=JSON) as response:
            return response.status, await response.read()


async def send(client: aiohttp.ClientSession, name: str, values: dict[str, Any]) -> None:
    query = MUTATION.format(kind=name[:1].upper() + name[1:], name=name)
    values = {**values, "idempotencyKey": str(uuid.uuid4())}
    status, raw = await post(client, {"query": query, "variables": {"input": values}})
    if status != 200:
        raise RuntimeError(f"{name}: HTTP {status} {raw[:120]!r}")
    body = msgspec.json.decode(raw)
    if body.get("errors"):
        raise RuntimeError(f"{name}: {body['errors'][0].get('message', '')[:120]}")
    payload = body["data"][name]
    if payload["__typename"] == "OverAllocationError":
        raise Refused
    if not payload["__typename"].endswith("Success"):
        raise RuntimeError(f"{name}: {payload['__typename']}: {payload.get('message')}")


async def commands(
    clients: list[aiohttp.ClientSession], work: Workload, stats: Stats, rate: float, until: float
) -> None:
    """Open loop: a command every ``1/rate`` s, whatever the answers' latency."""
    in_flight: set[asyncio.Task[None]] = set()

    async def one(n: int) -> None:
        name, values, acknowledged = work.next()
        started = time.perf_counter()
        try:
            await send(clients[n % len(clients)], name, values)
        except Refused:
            stats.refused += 1
        except (RuntimeError, *HTTP_ERRORS) as exc:
            stats.error(str(exc) or type(exc).__name__)
            return
        else:
            acknowledged()
        stats.commands.append((stats.now(), time.perf_counter() - started))

    n, next_at = 0, time.perf_counter()
    while stats.now() < until:
        if len(in_flight) >= MAX_IN_FLIGHT:
            stats.error("the system did not keep up: too many commands outstanding")
        else:
            task = asyncio.create_task(one(n))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        n += 1
        next_at += 1 / rate
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    if in_flight:
        await asyncio.wait(in_flight)


async def readers(
    client: aiohttp.ClientSession, work: Workload, stats: Stats, rate: float, until: float
) -> None:
    async def one() -> None:
        started = time.perf_counter()
        try:
            variables = {"id": work.rng.choice(work.active)}
            status, raw = await post(client, {"query": DASHBOARD, "variables": variables})
            body = msgspec.json.decode(raw)
            if status != 200 or body.get("errors") or body["data"]["program"] is None:
                raise RuntimeError(f"dashboard: {status} {raw[:120]!r}")
        except (RuntimeError, msgspec.DecodeError, *HTTP_ERRORS) as exc:
            stats.error(str(exc) or type(exc).__name__)
            return
        stats.reads.append((stats.now(), time.perf_counter() - started))

    tasks: set[asyncio.Task[None]] = set()
    while stats.now() < until:
        if work.active:
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(1 / rate)
    if tasks:
        await asyncio.wait(tasks)


async def get(client: aiohttp.ClientSession, path: str) -> int:
    async with client.get(path) as response:
        await response.read()
        status: int = response.status
        return status


async def scraper(
    clients: list[aiohttp.ClientSession], project: str, stats: Stats, until: float
) -> None:
    """What monitoring does: /metrics of every process and /ready, every 10 s."""
    async with aiohttp.ClientSession(base_url=project, timeout=TIMEOUT) as metrics:
        while stats.now() < until:
            for client, path in [(c, p) for c in clients for p in ("/metrics", "/ready")]:
                try:
                    if (status := await get(client, path)) != 200:
                        stats.error(f"{path}: HTTP {status}")
                except HTTP_ERRORS as exc:
                    stats.error(f"{path}: {exc!r}")
            try:
                if (status := await get(metrics, "/metrics")) != 200:
                    stats.error(f"project /metrics: HTTP {status}")
            except HTTP_ERRORS as exc:
                stats.error(f"project /metrics: {exc!r}")
            await asyncio.sleep(SAMPLE_S)


# --- subscribers --------------------------------------------------------------------------


@dataclass
class Received:
    counts: Counter[int] = field(default_factory=Counter)

    def missing_and_twice(self, stored: list[int]) -> tuple[int, int]:
        missing = sum(1 for p in stored if p not in self.counts)
        twice = sum(1 for c in self.counts.values() if c > 1) + len(
            self.counts.keys() - set(stored)
        )
        return missing, twice


async def subscription(
    url: str, token: str, got: Received, ready: asyncio.Event, stats: Stats
) -> None:
    async with connect(
        url, subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        await ws.recv()
        await ws.send(json.dumps({"id": "soak", "type": "subscribe", "payload": {"query": EVENTS}}))
        ready.set()
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "next" and "data" in message["payload"]:
                got.counts[message["payload"]["data"]["events"]["position"]] += 1
            elif message.get("type") in ("error", "complete") or "errors" in message.get(
                "payload", {}
            ):
                stats.error(f"subscription: {str(message)[:160]}")
                return


async def consumer(nats_url: str, prefix: str, got: Received) -> None:
    nc = await nats.connect(nats_url)
    decoder = msgspec.json.Decoder(Envelope)
    try:
        js = nc.jetstream()
        while True:
            try:
                await js.stream_info(f"{prefix.upper()}_EVENTS")
                break
            except NotFoundError:
                await asyncio.sleep(0.2)
        sub = await js.subscribe(f"{prefix}.>", ordered_consumer=True)
        async for msg in sub.messages:
            got.counts[decoder.decode(msg.data).position] += 1
    finally:
        await nc.close()


# --- sampling -----------------------------------------------------------------------------


async def lag_sampler(pool: asyncpg.Pool, stats: Stats, until: float) -> None:
    while stats.now() < until:
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            lags = [s.lag_seconds for s in await projection_status(pool)]
            stats.lag.append((stats.now(), max(lags, default=0.0)))
        await asyncio.sleep(1.0)


SUBSCRIBED = "SELECT position FROM events WHERE stream_type = ANY($1::text[]) ORDER BY position"
"""What a subscription without filters receives: every stream type of its enum (a
program's code reservation included, as on the program's NATS subjects)."""
STREAM_TYPES = [t.value for t in StreamType]

DB_SIZE = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'
"""


STATEMENTS = """
SELECT queryid, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query, calls,
    total_exec_time
FROM {schema}.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@dataclass
class Statements:
    """Snapshots of ``pg_stat_statements`` taken with each sample, when the server loads it
    (``shared_preload_libraries``; with ``pg_stat_statements.track = all`` the statements
    inside the append functions count too): which statements' time grows with the store."""

    pool: asyncpg.Pool
    snapshots: list[tuple[float, dict[int, tuple[str, int, float]]]] = field(default_factory=list)
    why_not: str = ""
    query: str = ""

    async def start(self) -> None:
        try:
            await self.pool.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            # Created before in another schema (public, say), it is not on the soak's path.
            schema = await self.pool.fetchval(
                "SELECT extnamespace::regnamespace::text FROM pg_extension"
                " WHERE extname = 'pg_stat_statements'"
            )
            self.query = STATEMENTS.format(schema=schema)
            await self.sample(0.0)
        except asyncpg.PostgresError as exc:
            self.why_not = f"no statement statistics: {exc}"

    async def sample(self, at: float) -> None:
        if self.why_not:
            return
        rows = await self.pool.fetch(self.query)
        self.snapshots.append(
            (at, {r["queryid"]: (r["query"], r["calls"], r["total_exec_time"]) for r in rows})
        )

    def between(self, start: float, end: float) -> dict[int, tuple[str, int, float]]:
        """(query, calls, total ms) of each statement between the snapshots nearest
        ``start`` and ``end``."""
        first = min(self.snapshots, key=lambda s: abs(s[0] - start))[1]
        last = min(self.snapshots, key=lambda s: abs(s[0] - end))[1]
        return {
            q: (text, calls - first.get(q, (text, 0, 0.0))[1], ms - first.get(q, (text, 0, 0.0))[2])
            for q, (text, calls, ms) in last.items()
        }

    def report(self, first: tuple[float, float], last: tuple[float, float]) -> None:
        if self.why_not or len(self.snapshots) < 2:
            print(self.why_not or "no statement statistics: too few samples")
            return
        early, late = self.between(*first), self.between(*last)

        def row(q: int) -> list[str]:
            text, calls, ms = late[q]
            e_calls, e_ms = early.get(q, (text, 0, 0.0))[1:]
            return [
                text[:70],
                f"{e_calls:,} / {calls:,}",
                f"{e_ms / max(e_calls, 1):.3f}",
                f"{ms / max(calls, 1):.3f}",
                f"{e_ms / 1000:.1f} / {ms / 1000:.1f}",
            ]

        def grown(q: int) -> float:
            e_calls, e_ms = early.get(q, ("", 0, 0.0))[1:]
            calls, ms = late[q][1:]
            return (ms / max(calls, 1) - e_ms / max(e_calls, 1)) * calls

        head = ["statement", "calls", "mean ms first", "mean ms last", "total s first / last"]
        print_table(
            "statements by time in the last quarter (pg_stat_statements), first vs last quarter",
            head,
            [row(q) for q in sorted(late, key=lambda q: -late[q][2])[:12]],
        )
        print_table(
            "statements whose mean time grew the most (growth x last quarter's calls)",
            head,
            [row(q) for q in sorted(late, key=lambda q: -grown(q))[:8] if grown(q) > 0],
        )


async def sampler(
    pool: asyncpg.Pool,
    deployment: Deployment,
    schema: str,
    stats: Stats,
    until: float,
    statements: Statements,
) -> None:
    last = 0.0
    cpu, busy = deployment.cpu_seconds(), machine_busy()
    while stats.now() < until:
        await asyncio.sleep(SAMPLE_S)
        now = stats.now()
        cpu_now, busy_now = deployment.cpu_seconds(), machine_busy()
        window = [s for t, s in stats.commands if last <= t < now]
        reads = [s for t, s in stats.reads if last <= t < now]
        lags = [v for t, v in stats.lag if last <= t < now]
        row: dict[str, Any] = {"seconds": round(now, 1)}
        row.update({f"rss_{k}_mb": round(v, 1) for k, v in deployment.rss_mb().items()})
        row["events"] = await pool.fetchval("SELECT coalesce(max(position), 0) FROM events")
        row["db_mb"] = round(await pool.fetchval(DB_SIZE, schema) / 2**20, 1)
        row["commands"] = len(window)
        row["command_p50_ms"] = round(percentile(window, 50) * 1000, 1)
        row["command_p99_ms"] = round(percentile(window, 99) * 1000, 1)
        row["command_max_ms"] = round(max(window, default=float("nan")) * 1000, 1)
        row["read_p50_ms"] = round(percentile(reads, 50) * 1000, 1)
        row["read_p99_ms"] = round(percentile(reads, 99) * 1000, 1)
        row["lag_max_s"] = round(max(lags, default=float("nan")), 2)
        row["errors"] = sum(stats.errors.values())
        for name, pct in cpu_percent(cpu, cpu_now, now - last).items():
            row[f"cpu_{name}_pct"] = pct
        row["machine_busy_pct"] = round(
            (busy_now[0] - busy[0]) / max(busy_now[1] - busy[1], 1e-9) * 100, 1
        )
        cpu, busy = cpu_now, busy_now
        await statements.sample(now)
        stats.samples.append(row)
        print(
            f"{now:6.0f}s events={row['events']:,} "
            + " ".join(f"{k}={row[f'rss_{k}_mb']:.0f}MB" for k in PROCESSES)
            + f" cmd p99={row['command_p99_ms']}ms read p50={row['read_p50_ms']}ms"
            f" lag={row['lag_max_s']}s db={row['db_mb']}MB errors={row['errors']}"
            f" busy={row['machine_busy_pct']}% pg={row['cpu_postgres_pct']}%"
            f" project={row['cpu_project_pct']}%",
            flush=True,
        )
        last = now
        if deployment.exited():
            stats.error(f"processes exited: {deployment.exited()}")
            return


# --- results ------------------------------------------------------------------------------


def slope_per_10_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per 10 minutes."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var * 600 if var else float("nan")


def line(name: str, ours: float, ref: float | None, goal: str, met: bool) -> str:
    ratio = "n/a" if not ref else f"{ours / ref:.3f}"
    ref_text = "n/a" if ref is None else f"{ref:.2f}"
    return (
        f"target {name}: ours={ours:.2f} ref={ref_text} ratio={ratio} goal={goal} "
        f"{'met' if met else 'missed'}"
    )


def chart(samples: list[dict[str, Any]], warmup: float, path: Path) -> str:
    """soak.png with matplotlib (the ``bench`` extra), or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart: matplotlib is not installed (pip install -e '.[bench]')"
    minutes = [s["seconds"] / 60 for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    rss, latency, lag, db = axes.flat
    for name in PROCESSES:
        rss.plot(minutes, [s[f"rss_{name}_mb"] for s in samples], label=name)
    rss.set_title("RSS (MB)")
    rss.legend()
    for key in ("command_p50_ms", "command_p99_ms", "read_p50_ms"):
        latency.plot(minutes, [s[key] for s in samples], label=key.removesuffix("_ms"))
    latency.set_title("latency per 10 s (ms)")
    latency.legend()
    lag.plot(minutes, [s["lag_max_s"] for s in samples])
    lag.set_title("largest projection lag (s)")
    db.plot(minutes, [s["db_mb"] for s in samples], label="database MB")
    db.set_title("database size (MB)")
    for ax in axes.flat:
        ax.axvline(warmup / 60, color="grey", linestyle=":")
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return f"chart: {path}"


def report(
    stats: Stats,
    args: argparse.Namespace,
    delivered: dict[str, tuple[int, int]],
    stored: int,
    exits: dict[str, int | None],
) -> list[str]:
    warmup, end = args.warmup * 60, args.minutes * 60
    after = [s for s in stats.samples if s["seconds"] >= warmup]
    lines = []
    rows = []
    for name in PROCESSES:
        points = [(s["seconds"], s[f"rss_{name}_mb"]) for s in after]
        slope = slope_per_10_min(points)
        first = stats.samples[0][f"rss_{name}_mb"] if stats.samples else float("nan")
        last = stats.samples[-1][f"rss_{name}_mb"] if stats.samples else float("nan")
        rows.append([name, f"{first:.0f} -> {last:.0f}", f"{slope:.1f}"])
        lines.append(
            line(
                f"soak_rss_slope_{name}_mb_per_10min",
                slope,
                None,
                f"<={RSS_SLOPE_GOAL:g}",
                slope <= RSS_SLOPE_GOAL,
            )
        )
    print_table("RSS", ["process", "MB first -> last", "slope MB/10 min after warm-up"], rows)
    quarter = (end - warmup) / 4
    first_q = [s for t, s in stats.commands if warmup <= t < warmup + quarter]
    last_q = [s for t, s in stats.commands if end - quarter <= t]
    p99_first, p99_last = percentile(first_q, 99) * 1000, percentile(last_q, 99) * 1000
    lines.append(
        line(
            "soak_command_p99_last_over_first_quarter",
            p99_last,
            p99_first,
            f"<={TAIL_GOAL:g}x",
            p99_last <= TAIL_GOAL * p99_first,
        )
    )
    lag_p99 = percentile([v for t, v in stats.lag if t >= warmup], 99)
    lines.append(
        line(
            "soak_projection_lag_p99_s", lag_p99, None, f"<={LAG_GOAL_S:g}s", lag_p99 <= LAG_GOAL_S
        )
    )
    errors = sum(stats.errors.values()) + sum(1 for code in exits.values() if code != 0)
    lines.append(line("soak_errors", errors, None, "=0", errors == 0))
    for name, (missing, twice) in delivered.items():
        bad = missing + twice
        lines.append(
            line(f"soak_{name}_delivered_once", bad, None, "=0 missing or twice", bad == 0)
        )
    all_cmds = [s for _, s in stats.commands]
    print_table(
        f"{len(stats.commands):,} commands ({stats.refused} refused by capacity), "
        f"{len(stats.reads):,} dashboard reads, {stored:,} events stored",
        ["what", "p50 ms", "p99 ms", "max ms"],
        [
            [
                what,
                f"{percentile(v, 50) * 1000:.1f}",
                f"{percentile(v, 99) * 1000:.1f}",
                f"{max(v, default=float('nan')) * 1000:.1f}",
            ]
            for what, v in (("command", all_cmds), ("dashboard read", [s for _, s in stats.reads]))
        ],
    )
    pauses = [p for _, p in stats.client_pauses]
    print(
        f"load client: {len(pauses)} full collections, longest {max(pauses, default=0) * 1000:.0f}"
        f" ms, {sum(pauses) * 1000:.0f} ms in all (each delays what it times in flight)"
    )
    longest = sorted(stats.client_pauses, key=lambda p: -p[1])[:5]
    if longest:
        print("  longest at: " + ", ".join(f"{at:.0f} s ({p * 1000:.0f} ms)" for at, p in longest))
    for what, count in stats.errors.most_common(10):
        print(f"error x{count}: {what}")
    for name, code in exits.items():
        if code != 0:
            print(f"error: {name} exited with {code} on SIGTERM")
    for name, (missing, twice) in delivered.items():
        print(f"{name}: {missing} missing, {twice} received twice or unknown")
    return lines


# --- the run ------------------------------------------------------------------------------


async def wait_until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.perf_counter() + within
    while not await check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what} within {within:g} s")
        await asyncio.sleep(0.5)


async def soak(
    pg: str, nats_server: str, args: argparse.Namespace
) -> tuple[Stats, dict[str, tuple[int, int]], int, dict[str, int | None]]:
    schema = fresh_schema_name("soak")
    prefix = f"soak{uuid.uuid4().hex[:10]}"
    out = Path(args.out)
    env = deployment_env(pg, nats_server, schema, prefix, SECRET)
    deployment = Deployment(env, out)
    stats = Stats()
    unwatch = stats.watch_collector()
    token = mint_token(SECRET, "soak", [Role.EDITOR, Role.VIEWER], timedelta(hours=24))
    headers = {"authorization": f"Bearer {token}"}
    pool = await create_pool(pg, schema, max_size=3, application_name="soak")
    try:
        deployment.up()
        urls = [f"http://127.0.0.1:{deployment.ports[n]}" for n in ("serve", "serve2")]
        # aiohttp, not httpx: httpx's connection pool checks every connection for every
        # waiting request each time one is sent or answered (py-spy: 50 % of this client's
        # CPU, which rose from a fifth of a core to half of one as latency grew, slowing
        # the deployment it measures).
        clients = [
            aiohttp.ClientSession(
                base_url=u,
                headers=headers,
                timeout=TIMEOUT,
                connector=aiohttp.TCPConnector(limit=64),
            )
            for u in urls
        ]

        async def ready() -> bool:
            if deployment.exited():
                raise RuntimeError(f"exited at start: {deployment.exited()}; logs in {out}")
            try:
                return all([await get(c, "/health") == 200 for c in clients])
            except HTTP_ERRORS:
                return False

        await wait_until(ready, 60, "the API replicas did not answer")
        subscribed, by_subscription, by_nats = asyncio.Event(), Received(), Received()
        ws_url = urls[0].replace("http://", "ws://") + "/graphql"
        background = [
            asyncio.create_task(subscription(ws_url, token, by_subscription, subscribed, stats)),
            asyncio.create_task(consumer(nats_server, prefix, by_nats)),
        ]
        await asyncio.wait_for(subscribed.wait(), 30)
        await asyncio.sleep(1)  # the server registers the subscription before any command
        statements = Statements(pool)
        await statements.start()
        stats.started = time.perf_counter()
        until = args.minutes * 60
        work = Workload()
        await asyncio.gather(
            commands(clients, work, stats, args.rate, until),
            readers(clients[0], work, stats, args.reads, until),
            scraper(clients, f"http://127.0.0.1:{deployment.ports['project']}", stats, until),
            lag_sampler(pool, stats, until),
            sampler(pool, deployment, schema, stats, until, statements),
        )
        head_subscribed = await pool.fetchval(
            f"SELECT coalesce(max(position), 0) FROM ({SUBSCRIBED}) s", STREAM_TYPES
        )

        async def drained() -> bool:
            status = await projection_status(pool)
            seen = max(by_subscription.counts, default=0), max(by_nats.counts, default=0)
            return all(s.lag_positions == 0 for s in status) and min(seen) >= head_subscribed

        try:
            await wait_until(
                drained, 120, "the relay, projections and subscribers did not catch up"
            )
        except TimeoutError as exc:
            stats.error(str(exc))
        warmup, quarter = args.warmup * 60, (until - args.warmup * 60) / 4
        statements.report((warmup, warmup + quarter), (until - quarter, until))
        stored = [r[0] for r in await pool.fetch("SELECT position FROM events ORDER BY position")]
        subscribed_positions = [r[0] for r in await pool.fetch(SUBSCRIBED, STREAM_TYPES)]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for client in clients:
            await client.close()
    finally:
        unwatch()
        exits = deployment.stop()
        await pool.close()
        await drop_schemas(pg, [schema])
        await _delete_stream(nats_server, prefix)
    delivered = {
        "subscription": by_subscription.missing_and_twice(subscribed_positions),
        "nats_consumer": by_nats.missing_and_twice(stored),
    }
    return stats, delivered, len(stored), exits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=positive_float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes left out of slopes")
    parser.add_argument("--rate", type=positive_float, default=84.0, help="commands per second")
    parser.add_argument("--reads", type=positive_float, default=5.0, help="dashboard reads/s")
    parser.add_argument("--out", default="soak-out", help="folder for soak.csv, soak.png, logs")
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--explain-ms",
        type=positive_int,
        default=None,
        help="log the plans of statements slower than this (auto_explain, own database)",
    )
    parser.add_argument("--nats-url", default=None, help="NATS with JetStream; else embedded")
    args = parser.parse_args(argv)
    if not 0 <= args.warmup < args.minutes:
        parser.error("--warmup must be at least 0 and less than --minutes")
    return args


@contextlib.contextmanager
def explained(url: str, min_ms: int | None) -> Iterator[str]:
    """``url``, or with ``--explain-ms`` a database of its own on the same server whose
    sessions load ``auto_explain`` (``session_preload_libraries``, set on the database:
    nothing else on the server is touched) and log the plan of every statement slower
    than that to the server's log. ``pg_stat_statements`` would need a server restart
    (``shared_preload_libraries``)."""
    if min_ms is None:
        yield url
        return
    name = f"soak_{uuid.uuid4().hex[:10]}"

    async def admin(*statements: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(
        admin(
            f"CREATE DATABASE {name}",
            f"ALTER DATABASE {name} SET session_preload_libraries = 'auto_explain'",
            f"ALTER DATABASE {name} SET auto_explain.log_min_duration = {min_ms}",
        )
    )
    print(f"auto_explain: plans of statements over {min_ms} ms go to the server log ({name})")
    try:
        yield urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        asyncio.run(admin(f"DROP DATABASE {name} WITH (FORCE)"))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with postgres_url(args.database_url) as (pg, pg_from), nats_url(args.nats_url) as (nu, nf):
        facts = asyncio.run(server_facts(pg))
        print(
            f"PostgreSQL from {pg_from}, NATS from {nf}; "
            + ", ".join(f"{k}={v}" for k, v in facts.items())
        )
        with explained(pg, args.explain_ms) as target:
            stats, delivered, stored, exits = asyncio.run(soak(target, nu, args))
    if stats.samples:
        with (out / "soak.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(stats.samples[0]))
            writer.writeheader()
            writer.writerows(stats.samples)
        print(
            f"samples: {out / 'soak.csv'}; "
            + chart(stats.samples, args.warmup * 60, out / "soak.png")
        )
    for text in report(stats, args, delivered, stored, exits):
        print(text)


if __name__ == "__main__":
    main()
