"""What every benchmark in ``bench/`` needs, kept in one place so their figures compare.

DESIGN §7 fixes the method: measure the reference beside ours in the same run on the same
machine, repeat rounds (these machines are shared and noisy) and report medians, and end
with one machine-readable line per target. This module holds the parts of that which do not
depend on what is measured: where the database comes from, timed rounds of concurrent
workers, the statistics, a wait-event sampler for finding out *why* a figure is low, and
the table and target-line output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from rich.console import Console
from rich.table import Table

__all__ = [
    "BENCH_URL_ENV",
    "TEST_URL_ENV",
    "RoundResult",
    "Target",
    "WaitSampler",
    "add_common_arguments",
    "drop_schemas",
    "fresh_schema_name",
    "median",
    "percentile",
    "positive_float",
    "positive_int",
    "postgres_url",
    "print_table",
    "server_facts",
    "timed_round",
]

BENCH_URL_ENV = "PROGRAMLEDGER_BENCH_POSTGRES_URL"
TEST_URL_ENV = "PROGRAMLEDGER_TEST_POSTGRES_URL"


# --- command line -------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """argparse type: a count of zero would make every median meaningless."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a round of zero seconds measures nothing."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


T = TypeVar("T")


def _event_loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {}
    try:
        import uvloop

        loops["uvloop"] = uvloop.new_event_loop
    except ImportError:  # no Windows build: the product runs on asyncio's loop there too
        pass
    loops["asyncio"] = asyncio.new_event_loop
    return loops


EVENT_LOOPS = _event_loops()
"""The loops a benchmark can run on, the product's first (``cli/common.py`` runs every
command on uvloop where it is installed)."""


def run_on_loop(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """``main`` on a fresh loop of the kind named (a key of ``EVENT_LOOPS``)."""
    with asyncio.Runner(loop_factory=EVENT_LOOPS[loop]) as runner:
        return runner.run(main)


def add_common_arguments(
    parser: argparse.ArgumentParser, *, rounds: int = 5, seconds: float = 3.0
) -> None:
    """The options every benchmark takes, so that they are spelled the same everywhere."""
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=rounds,
        help=f"rounds per measurement; medians are reported (default {rounds})",
    )
    parser.add_argument(
        "--seconds",
        type=positive_float,
        default=seconds,
        help=f"duration of each round, per side (default {seconds:g})",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help=(
            f"PostgreSQL to measure against; else ${BENCH_URL_ENV}, else ${TEST_URL_ENV}, "
            "else an embedded PostgreSQL started for this run"
        ),
    )


# --- where PostgreSQL comes from ----------------------------------------------------------


@contextlib.contextmanager
def postgres_url(explicit: str | None) -> Iterator[tuple[str, str]]:
    """Yield ``(url, where it came from)``; an embedded server is started and stopped here.

    The order is the one DESIGN §7 gives for tests, minus Docker: a benchmark should measure
    the server the caller points at, and starting a container would measure Docker too.
    The embedded server keeps fsync on, because commits that do not reach the disk would
    flatter exactly the part of an append (the commit) that concurrent writers share.
    """
    if explicit:
        yield explicit, "--database-url"
        return
    for name in (BENCH_URL_ENV, TEST_URL_ENV):
        url = os.environ.get(name)
        if url:
            yield url, f"${name}"
            return
    from programledger.adapters.embedded.postgres import EmbeddedPostgres

    # As root, PostgreSQL runs as an unprivileged user that must be able to reach the data
    # directory, hence /tmp (not a private TMPDIR) and a traversable parent.
    scratch = Path(tempfile.mkdtemp(prefix="programledger-bench-pg-", dir="/tmp"))
    scratch.chmod(0o755)
    server = EmbeddedPostgres(scratch / "data")
    try:
        yield server.start(), f"embedded PostgreSQL in {scratch}"
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def fresh_schema_name(role: str) -> str:
    """A schema nobody else uses, so runs on a shared server never see each other's rows."""
    return f"bench_{role}_{uuid.uuid4().hex[:10]}"


async def drop_schemas(url: str, schemas: Sequence[str]) -> None:
    """Leave the server as we found it, even after a failed run."""
    conn = await asyncpg.connect(url)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


COMMIT_PROBES = 500
"""One-row commits timed by :func:`server_facts`."""


async def server_facts(url: str) -> dict[str, str]:
    """Settings that decide what a commit costs, and what one costs here; a figure means
    little without them. The same code measured 0.88 and 0.60 of the raw-insert reference
    at 8 writers on two hosts the same day, one-row commits of 0.22 and 0.07 ms: where
    the commit is cheap, the reference's pace is its client's CPU and the store's the
    server's, so ratios from hosts whose commit differs are not comparable."""
    conn = await asyncpg.connect(url)
    try:
        facts = {"PostgreSQL": str(await conn.fetchval("SHOW server_version"))}
        for setting in ("fsync", "synchronous_commit", "wal_sync_method", "commit_delay"):
            facts[setting] = str(await conn.fetchval(f"SHOW {setting}"))
        latencies = await _commit_latencies(conn)
    finally:
        await conn.close()
    facts["one-row commit"] = (
        f"p50 {percentile(latencies, 50) * 1e3:.2f} ms p99 {percentile(latencies, 99) * 1e3:.2f} ms"
    )
    facts["client cpus"] = str(os.cpu_count())
    return facts


async def _commit_latencies(conn: asyncpg.Connection) -> list[float]:
    """Round trips of a one-row INSERT in its own transaction (a WAL flush each), in a
    schema of its own that is dropped afterwards."""
    schema = fresh_schema_name("commit")
    await conn.execute(f'CREATE SCHEMA "{schema}"; CREATE TABLE "{schema}".probe (n integer)')
    try:
        insert = f'INSERT INTO "{schema}".probe VALUES ($1)'
        latencies = []
        for n in range(COMMIT_PROBES):
            started = time.perf_counter()
            await conn.execute(insert, n)
            latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# --- timed rounds -------------------------------------------------------------------------


@dataclass(slots=True)
class RoundResult:
    """One side's round: how much got done, in how long, and each operation's latency."""

    operations: int
    items: int
    elapsed: float
    latencies: list[float]
    client_cpu: float
    """Process CPU seconds per wall second: near 1.0 means the Python client is the limit."""

    @property
    def operations_per_s(self) -> float:
        return self.operations / self.elapsed

    @property
    def items_per_s(self) -> float:
        return self.items / self.elapsed

    def latency(self, q: float) -> float:
        return percentile(self.latencies, q)


async def timed_round(
    workers: int,
    seconds: float,
    operation: Callable[[int], Awaitable[int]],
) -> RoundResult:
    """Run ``workers`` concurrent loops of ``operation(worker)`` for about ``seconds``.

    ``operation`` returns how many items (events, rows...) it handled. Workers stop
    starting operations at the deadline and the round ends when the last one finishes, so
    the elapsed time covers every counted operation: dividing by the nominal duration
    would credit work done after it.
    """
    latencies: list[float] = []
    totals = [0, 0]
    clock = time.perf_counter

    async def worker(index: int) -> None:
        ops = items = 0
        while clock() < deadline:
            started = clock()
            items += await operation(index)
            latencies.append(clock() - started)
            ops += 1
        totals[0] += ops
        totals[1] += items

    cpu_start = time.process_time()
    start = clock()
    deadline = start + seconds
    await asyncio.gather(*(worker(i) for i in range(workers)))
    elapsed = clock() - start
    cpu = (time.process_time() - cpu_start) / elapsed
    return RoundResult(totals[0], totals[1], elapsed, latencies, cpu)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: no interpolation between two real latencies."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- why is it slow? ----------------------------------------------------------------------


@dataclass
class WaitSampler:
    """Samples ``pg_stat_activity`` for one application name while a round runs.

    Each sample counts what every backend of the measured pool is doing: on CPU
    (``active``, no wait event), waiting (``Lock:advisory``, ``IO:WALSync``...), or idle,
    which means the server is waiting for the client: a pool whose backends are mostly
    ``client`` is limited by Python, not PostgreSQL. It runs on its own connection, and
    costs the server a little CPU, so it is only switched on when asked for.
    """

    url: str
    interval: float = 0.005
    counts: Counter[str] = field(default_factory=Counter)
    samples: int = 0

    _QUERY = """
        SELECT CASE
                 WHEN state = 'idle' THEN 'client: idle'
                 WHEN state = 'idle in transaction' THEN 'client: idle in transaction'
                 WHEN wait_event IS NULL THEN 'CPU (active, no wait)'
                 ELSE wait_event_type || ': ' || wait_event
               END
        FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()
    """

    async def run(self, application_name: str, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while not stop.is_set():
                rows = await conn.fetch(self._QUERY, application_name)
                self.samples += 1
                self.counts.update(str(r[0]) for r in rows)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            await conn.close()

    def shares(self, top: int = 6) -> list[tuple[str, float]]:
        """The most frequent states as a share of all backend observations."""
        total = sum(self.counts.values()) or 1
        return [(k, v / total) for k, v in self.counts.most_common(top)]


# --- output -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A goal stated as ours/ref for a higher-is-better figure, e.g. events per second."""

    name: str
    ours: float
    ref: float
    min_ratio: float

    @property
    def ratio(self) -> float:
        return self.ours / self.ref if self.ref > 0 else float("nan")

    @property
    def met(self) -> bool:
        return self.ratio >= self.min_ratio

    def line(self) -> str:
        """The exact machine-readable form DESIGN §7 asks every benchmark to end with."""
        return (
            f"target {self.name}: ours={self.ours:.1f} ref={self.ref:.1f} "
            f"ratio={self.ratio:.3f} goal=>={self.min_ratio:g} "
            f"{'met' if self.met else 'missed'}"
        )


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table, wide enough that CI logs (no terminal) do not wrap the figures."""
    table = Table(title=title, title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=max(120, shutil.get_terminal_size().columns)).print(table)
    sys.stdout.flush()
