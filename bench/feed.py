"""The ways out of the store for downstream services: the HTTP feed, webhooks, and NATS.

Four figures, each beside a reference measured in the same run:

- **HTTP feed rate**: ``GET /events`` streaming a backlog of ``--events`` events over
  HTTP (NDJSON, every line the NATS message of an event), against raw asyncpg reading the
  same rows (the same columns, keyset pages of 1,000) in this process. Goal: at least half
  the raw read rate. The API is ``programledger serve`` in a process of its own, on the
  benchmark's schema and prefix, as deployed: the feed's reader is always another service.
  With the server and its ``httpx`` client in one event loop, as before, the client's
  HTTP parsing (about a quarter of the CPU per event) was counted against the server, and
  the two could not use two cores. The CPU per event of each side is printed too (the server's
  from ``/proc``, the client's by ``process_time``), the figures to judge a change by on a
  busy machine.
- **Webhook throughput**: the webhook worker delivering a backlog (already on NATS) to a
  local receiver, events per second from its start to the last arrival, against raw
  ``httpx`` POSTs of the same size to the same receiver with the same concurrency (16
  senders, a client of one kept-alive connection each: one client of 16 connections
  spends about twice the CPU per request in its pool's bookkeeping, so it measured the
  pool, not the network). Goal: at least 1,000 events/s. The receiver is
  ``bench/_receiver.py`` in a process of its own: a receiver is another service, and in
  this process the Litestar receiver the tests use took as much CPU per request as the
  delivery it was meant to time.
- **Webhook latency**: at a steady ``--webhook-rate`` (100 events/s) of appends, commit to
  arrival at the receiver, p99, against a POST sent straight after each commit. Goal:
  p99 at most 200 ms.
- **Mutation to NATS subscriber**: GraphQL mutations over HTTP at ``--rate`` (200
  commands/s), from sending the request until the subscriber helper hands out the event,
  p99, against the mutation's own round trip. Goal: p99 at most 50 ms (DESIGN). The API
  (``programledger serve``) and the relay (``programledger relay``) run as deployed, each
  in its own process on a schema and prefix of their own; this process is only the client
  (connections kept alive) and the subscriber. With all of it in one event loop,
  as before, 200 mutations/s kept one core busy and the queue in front of it, not the
  system, set the p99. The client sends over keep-alive connections of its own
  (:class:`LeanClient`), not httpx's pool, which cost it twice the server's CPU per
  mutation on the same cores. The legs are printed too, timed by the event's ``recorded_at``
  (taken by the append, on this machine's clock): send to commit, commit to response,
  commit to subscriber. Before the mutations start, this process collects and freezes
  what it holds and raises its collector's thresholds, as every programledger role does
  (``programledger.gc_tuning``): after the feed and webhook parts it held about 200,000
  objects, and a full collection of them (about 100 ms of CPU) landed in the 5-second run
  in two runs of three, a pause of the client that the figure counted as the system's.
  The API's cold start stays in the figure: the first mutations are the first the
  deployment serves after one warm-up mutation. The mutations over 50 ms are counted,
  and how many of them were sent in the first second.

The webhooks run in this process (API, relay, worker, clients), as the e2e tests run
them; rounds are repeated and medians reported (DESIGN §7).

Run: ``python bench/feed.py [--rounds N] [--events 50000] [--webhook-events 5000]
[--webhook-rate 100] [--rate 200] [--seconds S] [--database-url URL] [--nats-url URL]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import tempfile
import time
import uuid
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import httpcore
import httpx
import nats
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from tests.support.webhook_receiver import Receiver, running_receiver

from bench._common import (
    Target,
    add_common_arguments,
    drop_schemas,
    fresh_schema_name,
    median,
    percentile,
    positive_float,
    positive_int,
    postgres_url,
)
from bench.api import _delete_stream
from bench.relay import LatencyTarget, nats_url
from bench.soak import Deployment, deployment_env, free_port, wait_until
from programledger.adapters.codec import EventCodec
from programledger.adapters.nats.relay import Relay, RelaySettings
from programledger.adapters.nats.stream import StreamSettings, stream_name
from programledger.adapters.nats.subscriber import subscribe
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.migrations import migrate
from programledger.adapters.postgres.webhooks import PostgresWebhookStore
from programledger.adapters.webhooks.worker import WebhookSettings, WebhookWorker
from programledger.api import ApiMetrics, ApiPorts, Role, create_app, mint_token
from programledger.api.auth import TokenVerifier
from programledger.api.events import EventFeed
from programledger.api.server import http_server
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.application.handlers import Application
from programledger.application.webhooks import WebhookAdmin
from programledger.bootstrap import event_registry, http_service
from programledger.bootstrap.supervisor import supervised
from programledger.domain.resource import ResourceCapacityChanged
from programledger.gc_tuning import GcTuning, tune_gc

SECRET = "bench-feed-secret-" + "x" * 32
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PROGRAMS = [uuid.uuid4() for _ in range(50)]
FEED_GOAL = 0.5
WEBHOOK_RATE_GOAL = 1000.0
WEBHOOK_P99_MS = 200.0
E2E_P99_MS = 50.0
_READ = """
    SELECT position, event_id, stream_id, stream_type, version, event_type, schema_version,
           data, metadata, recorded_at, hash
    FROM events WHERE position > $1 ORDER BY position LIMIT 1000
"""


@dataclass(frozen=True, slots=True)
class RateTarget:
    """A higher-is-better figure with an absolute goal, e.g. events per second."""

    name: str
    ours: float
    ref: float
    min_value: float

    def line(self) -> str:
        ratio = self.ours / self.ref if self.ref > 0 else float("nan")
        met = "met" if self.ours >= self.min_value else "missed"
        return (
            f"target {self.name}: ours={self.ours:.1f} ref={self.ref:.1f} "
            f"ratio={ratio:.3f} goal=>={self.min_value:g}/s {met}"
        )


async def append_backlog(store: PostgresEventStore, events: int) -> None:
    """``events`` events in appends of 100 (a program each, round robin)."""
    for i in range(0, events, 100):
        batch = [
            ResourceCapacityChanged(
                resource_key=f"r{i}", capacity=j % 100, effective_from=None, reason="bench"
            )
            for j in range(min(100, events - i))
        ]
        meta = EventMetadata(actor="bench", program_id=PROGRAMS[(i // 100) % len(PROGRAMS)])
        await store.append(f"resource-r{i}", ExpectedVersion.ANY, batch, meta)


async def one_event(store: PostgresEventStore, n: int) -> int:
    event = ResourceCapacityChanged(
        resource_key="live", capacity=n % 100, effective_from=None, reason="b"
    )
    meta = EventMetadata(actor="bench", program_id=PROGRAMS[n % len(PROGRAMS)])
    result = await store.append(f"resource-live{n % 64}", ExpectedVersion.ANY, [event], meta)
    return result.last_position


# --- the HTTP feed ------------------------------------------------------------------------


async def feed_rate(http: httpx.AsyncClient, token: str) -> float:
    started = time.perf_counter()
    lines = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with http.stream("GET", "/events", headers=headers) as answer:
        async for chunk in answer.aiter_bytes():
            lines += chunk.count(b"\n")
    return lines / (time.perf_counter() - started)


@contextlib.asynccontextmanager
async def served_api(
    pg_url: str, nats: str, schema: str, prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    """``programledger serve`` on ``schema`` (migrated already) and ``prefix``, in a process
    of its own: a client of it, and its pid."""
    env = deployment_env(pg_url, nats, schema, prefix, SECRET)
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as out:
        deployment = Deployment(env, Path(out))
        deployment.ports["serve"] = free_port()
        deployment.start(
            "serve", "serve", {"PROGRAMLEDGER_HTTP_PORT": str(deployment.ports["serve"])}
        )
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{deployment.ports['serve']}", timeout=120
            ) as http:
                await api_up(http, deployment, Path(out))
                yield http, deployment.procs["serve"].pid
        finally:
            deployment.stop()


async def api_up(http: httpx.AsyncClient, deployment: Deployment, out: Path) -> None:
    """Wait until the deployment's API answers; fail with its processes' logs if one of
    them exited."""

    async def ready() -> bool:
        if deployment.exited():
            logs = {n: (out / f"{n}.log").read_text()[-2000:] for n in deployment.procs}
            raise RuntimeError(f"exited at start: {deployment.exited()}: {logs}")
        try:
            return (await http.get("/health")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until(ready, 60, "the API did not answer")


async def raw_read_rate(pool: asyncpg.Pool) -> float:
    started = time.perf_counter()
    after = 0
    count = 0
    async with pool.acquire() as conn:
        while True:
            rows = await conn.fetch(_READ, after)
            if not rows:
                break
            count += len(rows)
            after = rows[-1]["position"]
    return count / (time.perf_counter() - started)


# --- webhooks -----------------------------------------------------------------------------


@dataclass
class LeanReceiver:
    """``bench/_receiver.py`` in a process of its own: what arrived, ``(position, time)``."""

    url: str = ""
    arrived: list[tuple[int, float]] = field(default_factory=list)
    more: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, within: float) -> None:
        async with asyncio.timeout(within):
            while len(self.arrived) < count:
                self.more.clear()
                await self.more.wait()


@contextlib.asynccontextmanager
async def lean_receiver() -> AsyncIterator[LeanReceiver]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("_receiver.py")), stdout=PIPE
    )
    assert process.stdout is not None
    receiver = LeanReceiver()
    stdout = process.stdout

    async def read() -> None:
        async for line in stdout:
            position, at = line.split()
            receiver.arrived.append((int(position), float(at)))
            receiver.more.set()

    reader: asyncio.Task[None] | None = None
    try:
        first = await asyncio.wait_for(stdout.readline(), 30)
        receiver.url = first.decode().split()[1]
        reader = asyncio.create_task(read())
        yield receiver
    finally:
        process.terminate()
        await process.wait()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


@contextlib.asynccontextmanager
async def webhook_worker(
    store: PostgresEventStore, pg_url: str, nc: NatsClient, prefix: str
) -> AsyncIterator[WebhookWorker]:
    worker = WebhookWorker(
        store,
        database_url=pg_url,
        nc=nc,
        settings=WebhookSettings(prefix=prefix, allow_private=True, poll_interval=0.1),
    )
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 20)


async def webhook_throughput(
    store: PostgresEventStore,
    relay: Relay,
    admin: WebhookAdmin,
    pg_url: str,
    nc: NatsClient,
    prefix: str,
    events: int,
) -> float:
    async with lean_receiver() as receiver:
        head = await store.head_position()
        registered = await admin.register(
            "bench", url=receiver.url, head=head, secret=WEBHOOK_SECRET
        )
        await append_backlog(store, events)
        await relay.wait_published(await store.head_position())
        started = time.perf_counter()
        async with webhook_worker(store, pg_url, nc, prefix):
            await receiver.wait_for(events, within=600)
            took = time.perf_counter() - started
        await admin.remove(registered.endpoint.endpoint_id)
    return events / took


async def raw_post_rate(events: int, concurrency: int = 16) -> float:
    body = b'{"type":"x","timestamp":"2027-01-01T00:00:00Z","data":{"position":1}}'
    async with lean_receiver() as receiver, contextlib.AsyncExitStack() as clients:
        queue = iter(range(events))

        async def sender() -> None:
            client = await clients.enter_async_context(
                httpx.AsyncClient(limits=httpx.Limits(max_connections=1))
            )
            for _ in queue:
                await client.post(receiver.url, content=body)

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return events / (time.perf_counter() - started)


async def webhook_latency(
    store: PostgresEventStore,
    admin: WebhookAdmin,
    pg_url: str,
    nc: NatsClient,
    prefix: str,
    rate: float,
    seconds: float,
) -> list[float]:
    async with running_receiver(Receiver()) as receiver:
        registered = await admin.register(
            "bench", url=receiver.url, head=await store.head_position(), secret=WEBHOOK_SECRET
        )
        async with webhook_worker(store, pg_url, nc, prefix):
            # Warm up: the endpoint is running once an event has arrived.
            await one_event(store, 0)
            await receiver.wait_for(1, within=60)
            receiver.received.clear()
            committed: dict[int, float] = {}
            count = int(rate * seconds)
            start = time.perf_counter()
            for n in range(count):
                await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
                position = await one_event(store, n)
                committed[position] = time.time()
            await receiver.wait_for(count, within=120)
        await admin.remove(registered.endpoint.endpoint_id)
        return [(r.at - committed[r.payload["data"]["position"]]) * 1000 for r in receiver.received]


async def direct_post_latency(
    store: PostgresEventStore, rate: float, seconds: float
) -> list[float]:
    async with running_receiver(Receiver()) as receiver, httpx.AsyncClient() as client:
        latencies = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            await one_event(store, n)
            sent = time.perf_counter()
            await client.post(receiver.url, content=b"{}")
            latencies.append((time.perf_counter() - sent) * 1000)
        return latencies


# --- mutation to NATS subscriber ----------------------------------------------------------

_REGISTER = """mutation R($input: RegisterResourceInput!) {
  registerResource(input: $input) { ... on CommandAccepted { position } } }"""


MutationTimes = tuple[list[float], list[float], dict[str, list[float]], list[float]]
"""Per mutation: send -> subscriber and send -> response (ms), the legs (ms), and when it
was sent (seconds after the first)."""


async def mutation_latency(pg_url: str, nats: str, rate: float, seconds: float) -> MutationTimes:
    """:data:`MutationTimes` against the API and the relay each in its own process, as
    deployed."""
    schema = fresh_schema_name("feede2e")
    prefix = f"b{uuid.uuid4().hex[:12]}"
    env = deployment_env(pg_url, nats, schema, prefix, SECRET)
    token = mint_token(SECRET, "bench", (Role.EDITOR,), timedelta(hours=2))
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as out:
        deployment = Deployment(env, Path(out))
        try:
            await asyncio.to_thread(
                subprocess.run, deployment.cli("migrate"), env=env, check=True, capture_output=True
            )
            deployment.ports["serve"] = free_port()
            deployment.start(
                "serve", "serve", {"PROGRAMLEDGER_HTTP_PORT": str(deployment.ports["serve"])}
            )
            deployment.start("relay", "relay", {})
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{deployment.ports['serve']}", timeout=60
            ) as http:
                await api_up(http, deployment, Path(out))
                client = LeanClient(str(http.base_url), {"Authorization": f"Bearer {token}"})
                before = {n: cpu_seconds(p.pid) for n, p in deployment.procs.items()}
                try:
                    result = await _load(client, nats, prefix, rate, seconds)
                finally:
                    await client.aclose()
                count = len(result[0])
                for name, proc in deployment.procs.items():
                    used = cpu_seconds(proc.pid) - before[name]
                    print(
                        f"  {name} process: {used / max(count, 1) * 1000:.2f} ms CPU per "
                        f"mutation ({used / seconds:.0%} of a core at this rate)",
                        flush=True,
                    )
                return result
        finally:
            deployment.stop()
            await drop_schemas(pg_url, [schema])
            await _delete_stream(nats, prefix)


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used: what a figure cost, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LeanClient:
    """POSTs to the API over keep-alive connections, one request on a connection at a
    time, the idle ones reused last in, first out.

    httpx's pool (httpcore's) scans every connection it holds for every request it
    assigns: with the connections a stall at 200 mutations/s leaves open, this process
    spent about 6 ms of CPU per mutation there (cProfile: 8.4 million ``is_idle`` calls
    for 1,000 mutations), twice what the server spent, on the same two cores as the
    system it measures.
    """

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = httpx.URL(base_url)
        self._base = base_url.rstrip("/")
        self._origin = httpcore.Origin(b"http", url.host.encode(), url.port or 80)
        self._headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        self._headers.append((b"Content-Type", b"application/json"))
        self._idle: list[httpcore.AsyncHTTPConnection] = []

    async def post(self, path: str, body: bytes) -> bytes:
        while self._idle:
            conn = self._idle.pop()
            if conn.is_idle() and not conn.has_expired():
                break
            await conn.aclose()
        else:
            # Let go before the server's keep-alive (5 s) ends it, so no request goes out
            # on a connection the server is closing.
            conn = httpcore.AsyncHTTPConnection(self._origin, keepalive_expiry=2.0)
        try:
            response = await conn.request(
                "POST", self._base + path, headers=self._headers, content=body
            )
        except BaseException:
            await conn.aclose()
            raise
        self._idle.append(conn)
        if response.status != 200:
            raise httpcore.ProtocolError(f"HTTP {response.status}: {response.content[:200]!r}")
        return response.content

    async def aclose(self) -> None:
        for conn in self._idle:
            await conn.aclose()
        self._idle.clear()


_HTTP_ERRORS = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException)


async def _load(
    http: LeanClient, nats_server: str, prefix: str, rate: float, seconds: float
) -> MutationTimes:
    nc = await nats_connect(nats_server)
    try:
        # Warm up, and wait for the relay's stream: the first mutation's event reaches us.
        js = nc.jetstream()
        await _register(http)

        async def relayed() -> bool:
            with contextlib.suppress(NotFoundError):
                return (await js.stream_info(stream_name(prefix))).state.messages > 0
            return False

        await wait_until(relayed, 60, "the relay did not publish")
        head = int((await js.stream_info(stream_name(prefix))).state.last_seq)
        subscription = await subscribe(
            js, prefix, f"bench-{uuid.uuid4().hex[:8]}", after_position=head, wait=0.2
        )
        arrived: dict[int, float] = {}
        recorded: dict[int, float] = {}
        sent: dict[int, float] = {}
        answered: dict[int, float] = {}
        more = asyncio.Event()
        # The client's own collector, tuned as the product's processes are: see the module.
        tune_gc(GcTuning())

        async def consume() -> None:
            async for delivery in subscription:
                arrived[delivery.envelope.position] = time.time()
                recorded[delivery.envelope.position] = delivery.envelope.recorded_at.timestamp()
                more.set()
                await delivery.ack()

        failed: list[str] = []

        async def one() -> None:
            started = time.time()
            try:
                position = await _register(http)
            except _HTTP_ERRORS as exc:
                failed.append(repr(exc))
                return
            answered[position] = time.time()
            sent[position] = started

        consumer = asyncio.create_task(consume())
        try:
            tasks = []
            start = time.perf_counter()
            for n in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
            async with asyncio.timeout(60):
                while not set(sent) <= set(arrived):
                    more.clear()
                    await more.wait()
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await subscription.close()
    finally:
        await nc.close()
    if failed:
        # Reported, not hidden: a mutation without an answer has no latency to count.
        print(f"{len(failed)} mutations failed, e.g. {failed[0]}", file=sys.stderr, flush=True)
    legs = {
        "send -> commit": [(recorded[p] - sent[p]) * 1000 for p in sent],
        "commit -> response": [(answered[p] - recorded[p]) * 1000 for p in sent],
        "commit -> subscriber": [(arrived[p] - recorded[p]) * 1000 for p in sent],
    }
    first = min(sent.values(), default=0.0)
    return (
        [(arrived[p] - sent[p]) * 1000 for p in sent],
        [(answered[p] - sent[p]) * 1000 for p in sent],
        legs,
        [sent[p] - first for p in sent],
    )


async def _register(http: LeanClient) -> int:
    values = {
        "resourceKey": f"e2e.{uuid.uuid4().hex[:12]}",
        "name": "Bench Person",
        "kind": "PERSON",
        "department": "ENGINEERING",
        "role": "Engineer",
        "capacity": 100,
    }
    body = json.dumps({"query": _REGISTER, "variables": {"input": values}}).encode()
    answer = json.loads(await http.post("/graphql", body))
    position: int = answer["data"]["registerResource"]["position"]
    return position


# --- the run ------------------------------------------------------------------------------


async def run(pg_url: str, nats: str, args: argparse.Namespace) -> list[Any]:
    schema = fresh_schema_name("feed")
    prefix = f"b{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn, schema)
    finally:
        await conn.close()
    for noisy in ("programledger.api.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    pool = await create_pool(pg_url, schema, min_size=4, max_size=20)
    nc = await nats_connect(nats)
    try:
        store = PostgresEventStore(pool, EventCodec(event_registry()), schema=schema)
        app = create_app(
            ApiPorts(
                commands=Application(store),
                reads=pool,
                history=store,
                feed=EventFeed([nats], prefix),
                tokens=TokenVerifier(SECRET),
            ),
            metrics=ApiMetrics(),
            graphiql=False,
        )
        token = mint_token(SECRET, "bench", (Role.ADMIN,), timedelta(hours=2))
        admin = WebhookAdmin(PostgresWebhookStore(pool), allow_private=True)
        relay = Relay(
            store,
            database_url=pg_url,
            nats_servers=nats,
            settings=RelaySettings(prefix=prefix, stream=StreamSettings(prefix)),
        )
        server = http_server(app, "127.0.0.1", 0, keep_alive=300)
        async with (
            supervised([http_service(server)], up=server.wait_started),
            httpx.AsyncClient(base_url=server.url, timeout=120) as http,
        ):
            relay_task = asyncio.create_task(relay.run())
            try:
                return await measure(
                    store, relay, admin, pool, http, token, pg_url, nats, nc, prefix, args
                )
            finally:
                relay.stop()
                await asyncio.wait_for(relay_task, 20)
    finally:
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(stream_name(prefix))
        await nc.close()
        await pool.close()
        await drop_schemas(pg_url, [schema])


async def nats_connect(url: str) -> NatsClient:
    return await nats.connect(url)


async def measure(
    store: PostgresEventStore,
    relay: Relay,
    admin: WebhookAdmin,
    pool: asyncpg.Pool,
    http: httpx.AsyncClient,
    token: str,
    pg_url: str,
    nats_server: str,
    nc: NatsClient,
    prefix: str,
    args: argparse.Namespace,
) -> list[Any]:
    await append_backlog(store, args.events)
    ours, ref = [], []
    server_cpu, client_cpu, raw_cpu = [], [], []
    async with served_api(pg_url, nats_server, store.schema, prefix) as (feed_http, pid):
        await feed_rate(feed_http, token)  # warm up: the server's pool, imports, caches
        for r in range(args.rounds):
            for leg in ("raw", "feed") if r % 2 else ("feed", "raw"):
                server_before, client_before = cpu_seconds(pid), time.process_time()
                if leg == "feed":
                    ours.append(await feed_rate(feed_http, token))
                    server_cpu.append(cpu_seconds(pid) - server_before)
                    client_cpu.append(time.process_time() - client_before)
                else:
                    ref.append(await raw_read_rate(pool))
                    raw_cpu.append(time.process_time() - client_before)
    print(f"feed: ours {median(ours):.0f} events/s, raw read {median(ref):.0f}", flush=True)
    per_event = 1e6 / args.events
    print(
        f"  CPU per event: server {median(server_cpu) * per_event:.2f} us, its client "
        f"{median(client_cpu) * per_event:.2f} us; raw read {median(raw_cpu) * per_event:.2f} us",
        flush=True,
    )
    targets: list[Any] = [Target("feed_http_vs_raw_read", median(ours), median(ref), FEED_GOAL)]

    rates = [
        await webhook_throughput(store, relay, admin, pg_url, nc, prefix, args.webhook_events)
        for _ in range(args.rounds)
    ]
    raw_rates = [await raw_post_rate(args.webhook_events) for _ in range(args.rounds)]
    print(f"webhooks: {median(rates):.0f} events/s, raw POSTs {median(raw_rates):.0f}", flush=True)
    targets.append(
        RateTarget("webhook_delivery_rate", median(rates), median(raw_rates), WEBHOOK_RATE_GOAL)
    )

    latencies = await webhook_latency(
        store, admin, pg_url, nc, prefix, args.webhook_rate, args.seconds
    )
    direct = await direct_post_latency(store, args.webhook_rate, args.seconds)
    print(
        f"webhook latency p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms",
        flush=True,
    )
    targets.append(
        LatencyTarget(
            "webhook_commit_to_delivery_p99_ms",
            percentile(latencies, 99),
            percentile(direct, 99),
            WEBHOOK_P99_MS,
        )
    )

    e2e, round_trips, legs, offsets = await mutation_latency(
        pg_url, nats_server, args.rate, args.seconds
    )
    print(
        f"mutation -> subscriber p50 {percentile(e2e, 50):.1f} ms, "
        f"p99 {percentile(e2e, 99):.1f} ms",
        flush=True,
    )
    for leg, values in legs.items():
        print(
            f"  {leg}: p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} ms",
            flush=True,
        )
    slow = [at for ms, at in zip(e2e, offsets, strict=True) if ms > E2E_P99_MS]
    print(
        f"  over {E2E_P99_MS:g} ms: {len(slow)} of {len(e2e)} mutations, "
        f"{sum(at < 1 for at in slow)} of them sent in the first second",
        flush=True,
    )
    targets.append(
        LatencyTarget(
            "mutation_to_subscriber_p99_ms",
            percentile(e2e, 99),
            percentile(round_trips, 99),
            E2E_P99_MS,
        )
    )
    return targets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser, rounds=3, seconds=5.0)
    parser.add_argument("--nats-url", default=None, help="NATS to measure against")
    parser.add_argument(
        "--events", type=positive_int, default=50_000, help="feed backlog (default 50000)"
    )
    parser.add_argument(
        "--webhook-events",
        type=positive_int,
        default=5_000,
        help="webhook backlog per round (default 5000)",
    )
    parser.add_argument(
        "--webhook-rate",
        type=positive_float,
        default=100.0,
        help="appends per second in the webhook latency run (default 100)",
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=200.0,
        help="mutations per second in the end-to-end run (default 200)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with postgres_url(args.database_url) as pg, nats_url(args.nats_url) as nats_source:
        print(f"PostgreSQL from {pg[1]}, NATS from {nats_source[1]}", file=sys.stderr, flush=True)
        targets = asyncio.run(run(pg[0], nats_source[0], args))
    for target in targets:
        print(target.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
