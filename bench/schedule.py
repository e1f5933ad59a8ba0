"""Schedule intelligence: the critical path of a large cross-program network, and how soon a
slip is visible to every successor through the read model.

Two targets:

- ``critical_path``: build the network and compute forecasts, total and free float and the
  critical path of 5,000 milestones and 20,000 links across 200 programs (``domain.
  scheduling``, from rows in memory). Goal: at most 100 ms. Reference, same run: a plain
  longest path over the same edges with the standard library's ``graphlib`` (a forward
  pass only: no float, no drivers).
- ``slip_visible``: the same network in a real store (plus a chain of 1,000 successors
  spread over 10 programs), relay and the ``schedule`` and ``milestones`` runners live; a
  ``RescheduleMilestone`` of the chain's root is sent, and the clock stops when the read
  model's network (read in full, as the API does) forecasts the 1,000th successor moved.
  Goal: at most 1,000 ms after the command was sent. Reference, same run: the same
  command's own row moving in the ``milestones`` read model (the pipeline with nothing
  derived).

Run: ``.venv/bin/python bench/schedule.py`` (PostgreSQL and NATS from
``$PROGRAMLEDGER_BENCH_*_URL``, then ``$PROGRAMLEDGER_TEST_*_URL``, else embedded servers).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script from a checkout, with the project installed in .venv: reach bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import graphlib
import itertools
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import asyncpg

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
from bench.projections import Item, eur, load_store, nats_url
from programledger.adapters.codec import EventCodec
from programledger.adapters.nats import client as nats_client
from programledger.adapters.nats.relay import Relay, RelaySettings
from programledger.adapters.nats.stream import stream_name
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.commands import CommandContext
from programledger.application.handlers import Application
from programledger.application.registry import application_registry
from programledger.domain.program import (
    MilestonePlanned,
    ProgramActivated,
    ProgramProposed,
    RescheduleMilestone,
)
from programledger.domain.schedule import (
    NETWORK_STREAM_ID,
    MilestoneRef,
    MilestonesLinked,
    ScheduleLink,
)
from programledger.domain.scheduling import (
    Activity,
    Edge,
    LinkType,
    Network,
    analyse,
    forecast,
    weight,
)
from programledger.projections.engine.runner import ProjectionRunner, RunnerSettings
from programledger.projections.engine.status import wait_for_position
from programledger.projections.registry import PROJECTIONS
from programledger.projections.schedule import read_schedule

CRITICAL_PATH_GOAL_MS = 100.0
SLIP_GOAL_MS = 1000.0
DAY = date(2027, 1, 4)
LINKS_PER_EVENT = 1000


@dataclass(frozen=True, slots=True)
class Generated:
    programs: list[uuid.UUID]
    milestones: list[tuple[uuid.UUID, uuid.UUID, date, int]]
    """(program, milestone, own date, duration)."""
    links: list[ScheduleLink]
    root: tuple[uuid.UUID, uuid.UUID]
    """The chain's first milestone (program, milestone)."""
    last: uuid.UUID
    """The chain's 1,000th successor."""
    main_milestones: int
    main_links: int
    """The random network comes first in ``milestones`` and ``links``, then the chain."""


def generate(programs: int, milestones: int, links: int, chain: int, seed: int) -> Generated:
    """A random DAG: milestones in a random global order, each link from an earlier one to
    one up to 300 places later (so chains are long and cross programs), plus a chain of
    ``chain + 1`` milestones over 10 more programs, all due on the same day, so a slip of
    its root moves every one of them."""
    rng = random.Random(seed)
    pids = [uuid.uuid4() for _ in range(programs)]
    nodes = [
        (
            pids[i % programs],
            uuid.uuid4(),
            DAY + timedelta(days=rng.randrange(0, 400)),
            rng.choice((0, 0, 5, 10, 20)),
        )
        for i in range(milestones)
    ]
    rng.shuffle(nodes)
    seen: set[tuple[int, int]] = set()
    made: list[ScheduleLink] = []
    while len(made) < links:
        i = rng.randrange(0, milestones - 1)
        j = min(milestones - 1, i + rng.randrange(1, 300))
        if (i, j) in seen:
            continue
        seen.add((i, j))
        made.append(_link(nodes[i], nodes[j], rng.choice(list(LinkType)), rng.randrange(-3, 15)))
    chain_pids = [uuid.uuid4() for _ in range(10)]
    chained = [(chain_pids[i % 10], uuid.uuid4(), DAY, 0) for i in range(chain + 1)]
    made.extend(_link(a, b, LinkType.FINISH_TO_START, 0) for a, b in itertools.pairwise(chained))
    return Generated(
        programs=pids + chain_pids,
        milestones=nodes + chained,
        links=made,
        root=(chained[0][0], chained[0][1]),
        last=chained[-1][1],
        main_milestones=milestones,
        main_links=links,
    )


def _link(
    a: tuple[uuid.UUID, uuid.UUID, date, int],
    b: tuple[uuid.UUID, uuid.UUID, date, int],
    link_type: LinkType,
    lag: int,
) -> ScheduleLink:
    return ScheduleLink(
        link_id=uuid.uuid4(),
        predecessor=MilestoneRef(program_id=a[0], milestone_id=a[1]),
        successor=MilestoneRef(program_id=b[0], milestone_id=b[1]),
        type=link_type,
        lag_days=lag,
    )


# --- critical path, in memory --------------------------------------------------------------


def ours_critical_path(g: Generated) -> float:
    """From rows in memory (what the read model hands over) to float and critical path."""
    milestones, links = g.milestones[: g.main_milestones], g.links[: g.main_links]
    started = time.perf_counter()
    network = Network.build(
        (Activity(m, p, own, duration) for p, m, own, duration in milestones),
        (
            Edge(x.predecessor.milestone_id, x.successor.milestone_id, x.type, x.lag_days)
            for x in links
        ),
    )
    result = analyse(network)
    elapsed = time.perf_counter() - started
    assert result.critical_path
    return elapsed * 1000


def ref_longest_path(g: Generated) -> float:
    """Forward pass only, with the standard library's topological sorter."""
    milestones, links = g.milestones[: g.main_milestones], g.links[: g.main_links]
    started = time.perf_counter()
    own = {m: d.toordinal() for _, m, d, _ in milestones}
    duration = {m: dur for _, m, _, dur in milestones}
    preds: dict[uuid.UUID, list[tuple[uuid.UUID, int]]] = {m: [] for m in own}
    for x in links:
        p, s = x.predecessor.milestone_id, x.successor.milestone_id
        preds[s].append((p, weight(x.type, x.lag_days, duration[p], duration[s])))
    sorter = graphlib.TopologicalSorter({s: [p for p, _ in ps] for s, ps in preds.items()})
    finish: dict[uuid.UUID, int] = {}
    for m in sorter.static_order():
        finish[m] = max([own[m], *(finish[p] + w for p, w in preds[m])])
    elapsed = time.perf_counter() - started
    assert len(finish) == len(own)
    return elapsed * 1000


# --- a slip through the live pipeline ------------------------------------------------------


def events(g: Generated) -> Iterator[Item]:
    for n, pid in enumerate(g.programs):
        stream = f"program-{pid}"
        yield (
            stream,
            "program",
            ProgramProposed(
                program_id=pid,
                code=f"S{n:04d}{uuid.uuid4().hex[:4].upper()}",
                name=f"Program {n}",
                description=None,
                objective="Ship",
                objective_key=None,
                sponsor="Dana",
                owner="Tom",
                priority=1,
                start_date=DAY,
                target_end_date=DAY + timedelta(days=720),
                planned_budget=eur(1_000_000_00),
            ),
            pid,
        )
        yield stream, "program", ProgramActivated(program_id=pid), pid
    for pid, mid, own, _ in g.milestones:
        planned = MilestonePlanned(
            program_id=pid,
            milestone_id=mid,
            name=f"M {mid.hex[:6]}",
            workstream_id=None,
            description=None,
            baseline_date=own,
        )
        yield f"program-{pid}", "program", planned, pid
    for i in range(0, len(g.links), LINKS_PER_EVENT):
        batch = tuple(g.links[i : i + LINKS_PER_EVENT])
        yield NETWORK_STREAM_ID, "schedule", MilestonesLinked(links=batch), None


async def load(url: str, schema: str, g: Generated) -> int:
    items = list(events(g))
    await load_store(url, schema, len(items), items)
    pool = await create_pool(url, schema, min_size=1, max_size=2)
    try:
        # The bulk load writes events only; commands need each stream's head as well.
        await pool.execute(
            "INSERT INTO streams (stream_id, stream_type, version, last_position, last_hash, "
            "created_at, updated_at) SELECT stream_id, min(stream_type), max(version), "
            "max(position), '\\x00'::bytea, now(), now() FROM events GROUP BY stream_id"
        )
    finally:
        await pool.close()
    return len(items)


@dataclass
class Slips:
    ours_ms: list[float] = field(default_factory=list)
    ref_ms: list[float] = field(default_factory=list)
    read_ms: list[float] = field(default_factory=list)


async def slip_rounds(
    url: str, nurl: str, schema: str, g: Generated, rounds: int, slips: Slips
) -> None:
    head = await load(url, schema, g)
    print(f"loaded {head:,} events", flush=True)
    pool = await create_pool(url, schema, min_size=2, max_size=8)
    store = PostgresEventStore(pool, EventCodec(application_registry()), schema=schema)
    app = Application(store)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    nc = await nats_client.connect(nurl)
    relay = Relay(store, database_url=url, nats_servers=nurl, settings=RelaySettings(prefix=prefix))
    settings = RunnerSettings(prefix=prefix, fetch_wait=0.05, durable_prefix=prefix)
    runners = [
        ProjectionRunner(PROJECTIONS[n], store=store, database_url=url, nc=nc, settings=settings)
        for n in ("schedule", "milestones")
    ]
    tasks = [asyncio.create_task(relay.run()), *(asyncio.create_task(r.run()) for r in runners)]
    try:
        assert await wait_for_position(pool, head, 900, ["schedule", "milestones"])
        program_id, root = g.root
        for n in range(1, rounds + 1):
            moved_to = DAY + timedelta(days=10 * n)
            started = time.perf_counter()
            result = await app.handle(
                RescheduleMilestone(
                    program_id=program_id, milestone_id=root, forecast_date=moved_to, reason="b"
                ),
                CommandContext(actor="bench"),
            )
            ref = asyncio.create_task(_row_moved(pool, "rm_milestones", root, moved_to, started))
            # A query answers with the moved forecast once the schedule read model holds
            # the root's new date: wait for that cheaply, then read and compute as the API
            # does, and check that the 1,000th successor moved.
            await _row_moved(pool, "rm_schedule_milestones", root, moved_to, started)
            before_read = time.perf_counter()
            read = await read_schedule(pool)
            assert _forecast_of(read.network, g.last) == moved_to
            slips.read_ms.append((time.perf_counter() - before_read) * 1000)
            slips.ours_ms.append((time.perf_counter() - started) * 1000)
            slips.ref_ms.append(await ref)
            assert result.last_position > 0
            print(f"slip round {n}/{rounds} done", flush=True)
    finally:
        relay.stop()
        for runner in runners:
            runner.stop()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(stream_name(prefix))
        await nc.close()
        await pool.close()


def _forecast_of(network: Network[uuid.UUID], key: uuid.UUID) -> date:
    return forecast(network)[key].forecast


async def _row_moved(
    pool: asyncpg.Pool, table: str, milestone: uuid.UUID, to: date, started: float
) -> float:
    """Milliseconds from ``started`` until ``table`` holds ``to`` as the milestone's
    current date (``forecast_date`` or the schedule's ``own_date``)."""
    column = "forecast_date" if table == "rm_milestones" else "own_date"
    while True:
        got = await pool.fetchval(
            f"SELECT {column} FROM {table} WHERE milestone_id = $1 AND valid_to_pos IS NULL",
            milestone,
        )
        if got == to:
            return (time.perf_counter() - started) * 1000
        await asyncio.sleep(0.002)


# --- report --------------------------------------------------------------------------------


def line(name: str, ours: float, ref: float, goal: float) -> str:
    met = ours <= goal
    return (
        f"target {name}: ours={ours:.1f} ref={ref:.1f} ratio={ours / ref:.3f} "
        f"goal=<={goal:g}ms {'met' if met else 'missed'}"
    )


async def main(args: argparse.Namespace) -> None:
    g = generate(args.programs, args.milestones, args.links, args.chain, args.seed)
    ours = [ours_critical_path(g) for _ in range(args.rounds * 3)]
    ref = [ref_longest_path(g) for _ in range(args.rounds * 3)]
    rows = [
        [
            "critical path",
            f"{g.main_milestones:,} milestones, {g.main_links:,} links, {args.programs} programs",
            f"{median(ours):.1f} ms",
            f"{median(ref):.1f} ms",
        ]
    ]
    lines = [line("critical_path", median(ours), median(ref), CRITICAL_PATH_GOAL_MS)]
    if not args.skip_live:
        slips = Slips()
        schema = fresh_schema_name("schedule")
        with postgres_url(args.database_url) as (url, where), nats_url(args.nats_url) as (n, nw):
            print(f"PostgreSQL from {where}, NATS from {nw}: {await server_facts(url)}")
            try:
                await slip_rounds(url, n, schema, g, args.rounds, slips)
            finally:
                await drop_schemas(url, [schema])
        rows.append(
            [
                "slip visible",
                f"{args.chain:,} successors",
                f"{median(slips.ours_ms):.1f} ms",
                f"{median(slips.ref_ms):.1f} ms",
            ]
        )
        rows.append(["  of which one full read", "", f"{median(slips.read_ms):.1f} ms", ""])
        lines.append(
            line("slip_visible", median(slips.ours_ms), median(slips.ref_ms), SLIP_GOAL_MS)
        )
    print_table("schedule (medians)", ["what", "size", "ours", "ref"], rows)
    for text in lines:
        print(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, rounds=5)
    parser.add_argument("--nats-url", default=None)
    parser.add_argument("--programs", type=positive_int, default=200)
    parser.add_argument("--milestones", type=positive_int, default=5_000)
    parser.add_argument("--links", type=positive_int, default=20_000)
    parser.add_argument("--chain", type=positive_int, default=1_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--skip-live", action="store_true", help="the in-memory critical path only")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
