"""Relay throughput and append-to-subscriber latency, each beside raw nats-py.

Why this benchmark exists: the relay adds a PostgreSQL read, an envelope, ordered acks and a
checkpoint to every publish. The questions are what that costs against the fastest thing
nats-py can do with the same messages, and how long an event takes from ``append`` to a
subscriber when the system is not saturated.

- **Throughput.** A backlog of events is in the store; ours is a relay started on it
  (stream already created; its start-up is counted) until JetStream acknowledged the last
  event; the reference publishes the very same messages (same subjects, payloads,
  headers, ``Nats-Msg-Id``), prebuilt in memory, with nats-py's ``publish_async`` and the
  same bound on acks in flight. The relay reads from PostgreSQL, builds each envelope and
  chains each publish on the one before; it sends through its own ack pipeline
  (``adapters/nats/publisher.py``) rather than ``publish_async``, whose refusals never
  complete in nats-py 2.16. Each round uses fresh streams; rounds alternate which side
  goes first.
- **Latency.** A steady 200 appends per second of one event each; ours is the time from
  calling ``append`` to the event coming out of the subscriber helper (a durable pull
  consumer); the reference is the time from ``js.publish`` of the same message to the same
  helper, i.e. the floor that NATS and the consumer set.

Run: ``python bench/relay.py [--rounds N] [--seconds S] [--events N] [--database-url URL]
[--nats-url URL]``. Without URLs: ``$PROGRAMLEDGER_BENCH_*_URL``, then
``$PROGRAMLEDGER_TEST_*_URL``, else embedded servers started for the run.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script from a checkout, with the project installed in .venv (the strict editable
# install links the working tree's code): reach bench/ and tests/support (the Noted event).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck
from tests.support.events import Noted, store_test_registry

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
    print_table,
)
from programledger.adapters.codec import EventCodec
from programledger.adapters.nats.envelope import OutgoingMessage, decode_envelope, encode_message
from programledger.adapters.nats.relay import Relay, RelaySettings
from programledger.adapters.nats.stream import StreamSettings, ensure_stream
from programledger.adapters.nats.subscriber import subscribe
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.migrations import migrate
from programledger.application.eventstore import EventMetadata, ExpectedVersion

THROUGHPUT_GOAL = 0.8
"""The relay must keep at least this share of raw pipelined publishes."""
LATENCY_GOAL_MS = 50.0
"""p99 from append to subscriber, at a steady 200 appends per second."""

NATS_URL_ENVS = ("PROGRAMLEDGER_BENCH_NATS_URL", "PROGRAMLEDGER_TEST_NATS_URL")
_encode = msgspec.json.Encoder().encode
_counter = msgspec.json.Decoder(Noted)
PROGRAM_ID = uuid.UUID("5b0f6c1e-8a7d-4c1b-9f2e-3d4a5b6c7d8e")
# About 300 bytes once encoded: the size of a typical RAID-log change, as in bench/append.py.
_TEXT = (
    "Risk R-1042 reassessed after the supplier review on Tuesday: probability lowered from "
    "high to medium because the second source for the sensor boards passed qualification; "
    "impact unchanged. Mitigation owner remains the hardware lead; next review at the "
    "steering committee, with cost exposure updated in the allocation plan."
)


@dataclass(frozen=True, slots=True)
class LatencyTarget:
    """A lower-is-better goal with an absolute bound, e.g. a p99 in milliseconds."""

    name: str
    ours: float
    ref: float
    max_value: float

    @property
    def ratio(self) -> float:
        return self.ours / self.ref if self.ref > 0 else float("nan")

    def line(self) -> str:
        met = "met" if self.ours < self.max_value else "missed"
        return (
            f"target {self.name}: ours={self.ours:.2f} ref={self.ref:.2f} "
            f"ratio={self.ratio:.3f} goal=<{self.max_value:g}ms {met}"
        )


@contextlib.contextmanager
def nats_url(explicit: str | None) -> Iterator[tuple[str, str]]:
    """Yield ``(url, where it came from)``; an embedded server lives for the ``with``."""
    if explicit:
        yield explicit, "--nats-url"
        return
    for name in NATS_URL_ENVS:
        url = os.environ.get(name)
        if url:
            yield url, f"${name}"
            return
    from programledger.adapters.embedded.nats import EmbeddedNats

    scratch = Path(tempfile.mkdtemp(prefix="programledger-bench-nats-"))
    server = EmbeddedNats(scratch / "jetstream")
    try:
        yield server.start(), f"embedded nats-server in {scratch}"
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class Results:
    ours_rate: list[float] = field(default_factory=list)
    ref_rate: list[float] = field(default_factory=list)
    ours_latency: list[list[float]] = field(default_factory=list)
    ref_latency: list[list[float]] = field(default_factory=list)


def metadata() -> EventMetadata:
    return EventMetadata(
        actor="user:alice@example.com",
        correlation_id=uuid.uuid4(),
        causation_id=uuid.uuid4(),
        program_id=PROGRAM_ID,
    )


async def fill_backlog(store: PostgresEventStore, events: int, writers: int = 8) -> int:
    per_append = 10
    appends = max(1, events // per_append)

    async def writer(w: int) -> None:
        for i in range(w, appends, writers):
            batch = [Noted(text=_TEXT, n=i * per_append + j) for j in range(per_append)]
            await store.append(f"bench-w{w}s{i % 50}", ExpectedVersion.ANY, batch, metadata())

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return await store.head_position()


async def prefixes_cleanup(js: JetStreamContext, prefixes: list[str]) -> None:
    for prefix in prefixes:
        with contextlib.suppress(Exception):
            await js.delete_stream(StreamSettings(prefix).name)


async def ours_throughput(
    store: PostgresEventStore,
    url: str,
    nats: str,
    js: JetStreamContext,
    head: int,
    in_flight: int,
    tag: str,
) -> float:
    prefix = f"benchrelay{tag}"
    await ensure_stream(js, StreamSettings(prefix))
    relay = Relay(
        store,
        database_url=url,
        nats_servers=nats,
        settings=RelaySettings(prefix=prefix, name=f"bench-{tag}", max_in_flight=in_flight),
    )
    started = time.perf_counter()
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(relay.wait_published(head), 300)
        elapsed = time.perf_counter() - started
    finally:
        relay.stop()
        await task
    return head / elapsed


async def ref_throughput(
    js: JetStreamContext, messages: list[OutgoingMessage], in_flight: int, tag: str
) -> float:
    prefix = f"benchref{tag}"
    await ensure_stream(js, StreamSettings(prefix))
    prepared = [(f"{prefix}.{m.subject.split('.', 1)[1]}", m.payload, m.headers) for m in messages]
    pending: deque[asyncio.Future[PubAck]] = deque()
    started = time.perf_counter()
    for subject, payload, headers in prepared:
        if len(pending) >= in_flight:
            await pending.popleft()
        pending.append(await js.publish_async(subject, payload, headers=dict(headers)))
    for future in pending:
        await future
    return len(prepared) / (time.perf_counter() - started)


async def receive_latencies(
    js: JetStreamContext, prefix: str, sent: dict[int, float], total: int, after: int
) -> list[float]:
    """Each event's ``n`` (its counter, set before it is sent) finds when it was sent: an
    event can arrive before ``append`` has returned its position."""
    latencies: list[float] = []
    subscription = await subscribe(js, prefix, "bench-latency", after_position=after)
    async with subscription:
        async for delivery in subscription:
            received = time.perf_counter()
            counter = _counter.decode(delivery.envelope.data).n
            latencies.append(received - sent[counter])
            await delivery.ack()
            if len(latencies) == total:
                break
    return latencies


async def ours_latency(
    store: PostgresEventStore,
    servers: tuple[str, str],
    js: JetStreamContext,
    rate: float,
    seconds: float,
    tag: str,
) -> list[float]:
    prefix = f"benchlat{tag}"
    await ensure_stream(js, StreamSettings(prefix))
    relay = Relay(
        store,
        database_url=servers[0],
        nats_servers=servers[1],
        settings=RelaySettings(prefix=prefix, name=f"bench-lat-{tag}"),
    )
    task = asyncio.create_task(relay.run())
    try:
        head = await store.head_position()
        await asyncio.wait_for(relay.wait_published(head), 300)
        total = int(rate * seconds)
        sent: dict[int, float] = {}
        receiving = asyncio.create_task(receive_latencies(js, prefix, sent, total, head))
        await asyncio.sleep(0.2)  # the consumer is in place before the first append
        start = time.perf_counter()
        for k in range(total):
            await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
            event, meta = Noted(text=_TEXT, n=k), metadata()
            sent[k] = time.perf_counter()
            await store.append(f"bench-lat{k % 20}", ExpectedVersion.ANY, [event], meta)
        return await asyncio.wait_for(receiving, 30)
    finally:
        relay.stop()
        await task


async def ref_latency(
    js: JetStreamContext, message: OutgoingMessage, rate: float, seconds: float, tag: str
) -> list[float]:
    prefix = f"benchreflat{tag}"
    await ensure_stream(js, StreamSettings(prefix))
    subject = f"{prefix}.{message.subject.split('.', 1)[1]}"
    template = decode_envelope(message.payload)
    total = int(rate * seconds)
    sent: dict[int, float] = {}
    receiving = asyncio.create_task(receive_latencies(js, prefix, sent, total, 0))
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    for k in range(total):
        position = k + 1
        event_id = uuid.uuid4()
        data = msgspec.Raw(_encode(Noted(text=_TEXT, n=k)))
        envelope = msgspec.structs.replace(
            template, position=position, event_id=event_id, data=data
        )
        headers = {
            **message.headers,
            "Programledger-Position": str(position),
            "Nats-Msg-Id": str(event_id),
        }
        payload = _encode(envelope)
        await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
        sent[k] = time.perf_counter()
        await js.publish(subject, payload, headers=headers)
    return await asyncio.wait_for(receiving, 30)


async def bench(url: str, nats_source: tuple[str, str], args: argparse.Namespace) -> Results:
    nats_server, where = nats_source
    schema = fresh_schema_name("relay")
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, schema, registry=store_test_registry())
    finally:
        await conn.close()
    pool = await create_pool(url, schema, min_size=2, max_size=10)
    nc: NatsClient = await nats.connect(nats_server)
    js = nc.jetstream(publish_async_max_pending=args.in_flight * 2)
    version = nc.connected_server_version
    print(f"NATS {version.major}.{version.minor}.{version.patch} from {where}", file=sys.stderr)
    streams: list[str] = []
    results = Results()
    try:
        store = PostgresEventStore(pool, EventCodec(store_test_registry()), schema=schema)
        head = await fill_backlog(store, args.events)
        rows = await store.read_all_raw(0, head)
        messages = [encode_message("x", row, store.codec) for row in rows]
        print(f"backlog: {head} events of ~{len(messages[0].payload)} bytes", file=sys.stderr)
        for r in range(args.rounds):
            tag = f"{uuid.uuid4().hex[:8]}"
            streams += [f"benchrelay{tag}", f"benchref{tag}"]

            async def ours(tag: str = tag) -> None:
                rate = await ours_throughput(store, url, nats_server, js, head, args.in_flight, tag)
                results.ours_rate.append(rate)

            async def ref(tag: str = tag) -> None:
                results.ref_rate.append(await ref_throughput(js, messages, args.in_flight, tag))

            for side in (ours, ref) if r % 2 == 0 else (ref, ours):
                await side()
            await prefixes_cleanup(js, streams[-2:])
            print(
                f"  throughput round {r + 1}/{args.rounds}: ours {results.ours_rate[-1]:,.0f}/s, "
                f"ref {results.ref_rate[-1]:,.0f}/s",
                file=sys.stderr,
                flush=True,
            )
        for r in range(args.rounds):
            tag = f"{uuid.uuid4().hex[:8]}"
            streams += [f"benchlat{tag}", f"benchreflat{tag}"]
            ours_l = await ours_latency(store, (url, nats_server), js, args.rate, args.seconds, tag)
            ref_l = await ref_latency(js, messages[0], args.rate, args.seconds, tag)
            results.ours_latency.append(ours_l)
            results.ref_latency.append(ref_l)
            await prefixes_cleanup(js, streams[-2:])
            print(
                f"  latency round {r + 1}/{args.rounds}: ours p99 "
                f"{percentile(ours_l, 99) * 1000:.2f} ms, ref p99 "
                f"{percentile(ref_l, 99) * 1000:.2f} ms",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await prefixes_cleanup(js, streams)
        await nc.close()
        await pool.close()
        await drop_schemas(url, [schema])
    return results


def report(results: Results, args: argparse.Namespace) -> list[Target | LatencyTarget]:
    def ms(values: list[list[float]], q: float) -> float:
        return median([percentile(v, q) for v in values]) * 1000

    rows = [
        [
            "throughput",
            "ours (relay from PostgreSQL)",
            f"{median(results.ours_rate):,.0f}/s",
            f"{min(results.ours_rate):,.0f}..{max(results.ours_rate):,.0f}",
            "",
            "",
            "",
        ],
        [
            "",
            "ref (publish_async, prebuilt)",
            f"{median(results.ref_rate):,.0f}/s",
            f"{min(results.ref_rate):,.0f}..{max(results.ref_rate):,.0f}",
            "",
            "",
            "",
        ],
        [
            "latency",
            "ours (append → subscriber)",
            "",
            "",
            f"{ms(results.ours_latency, 50):.2f}",
            f"{ms(results.ours_latency, 99):.2f}",
            f"{ms(results.ours_latency, 100):.2f}",
        ],
        [
            "",
            "ref (js.publish → subscriber)",
            "",
            "",
            f"{ms(results.ref_latency, 50):.2f}",
            f"{ms(results.ref_latency, 99):.2f}",
            f"{ms(results.ref_latency, 100):.2f}",
        ],
    ]
    print_table(
        f"relay: medians of {args.rounds} rounds; throughput over {args.events} events with "
        f"{args.in_flight} acks in flight; latency at {args.rate:g} appends/s for "
        f"{args.seconds:g}s per round",
        ["measure", "side", "rate", "rate min..max", "p50 ms", "p99 ms", "max ms"],
        rows,
    )
    return [
        Target(
            "relay_throughput", median(results.ours_rate), median(results.ref_rate), THROUGHPUT_GOAL
        ),
        LatencyTarget(
            "relay_latency_p99_ms",
            ms(results.ours_latency, 99),
            ms(results.ref_latency, 99),
            LATENCY_GOAL_MS,
        ),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser, rounds=5, seconds=4.0)
    parser.add_argument(
        "--nats-url",
        default=None,
        help=f"NATS to measure against; else ${NATS_URL_ENVS[0]}, else ${NATS_URL_ENVS[1]}, "
        "else an embedded nats-server started for this run",
    )
    parser.add_argument(
        "--events",
        type=positive_int,
        default=40_000,
        help="backlog size for the throughput rounds (default 40000)",
    )
    parser.add_argument(
        "--in-flight",
        type=positive_int,
        default=RelaySettings(prefix="x").max_in_flight,
        help="acks in flight, both sides (default: the relay's default)",
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=200.0,
        help="appends per second in the latency rounds (default 200)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with postgres_url(args.database_url) as pg, nats_url(args.nats_url) as nats_source:
        print(f"PostgreSQL from {pg[1]}", file=sys.stderr, flush=True)
        results = asyncio.run(bench(pg[0], nats_source, args))
    for target in report(results, args):
        print(target.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
