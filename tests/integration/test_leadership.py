"""One active worker per name, on a real PostgreSQL: the guarantees ``Leadership`` states.

Every contender records when its work starts, and its work sends statements on the lock
connection; each test also checks that no statement succeeded that was sent after another
contender had started working (when the old holder may not know yet that it lost the
lock, the lock connection is what stops it).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest
import pytest_asyncio

from programledger.adapters.postgres.leadership import (
    Backoff,
    Leadership,
    LeadershipLost,
    LeaderState,
)
from tests.support.relay_process import eventually


@dataclass
class Ledger:
    """When each contender started working, and the statements that should have failed."""

    starts: list[tuple[str, float]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def started(self, label: str) -> None:
        self.starts.append((label, asyncio.get_running_loop().time()))

    def succeeded(self, label: str, sent: float) -> None:
        """A statement of ``label`` sent at ``sent`` succeeded: no other contender may
        have started working after ``label`` last did and before it was sent."""
        mine = max(at for who, at in self.starts if who == label)
        others = [who for who, at in self.starts if who != label and mine < at < sent]
        if others:
            self.violations.append(f"{label} wrote while {others} held the lock")


class Fatal(Exception):
    pass


@dataclass
class Contender:
    label: str
    leader: Leadership
    ledger: Ledger
    busy: bool
    """Whether the work talks to PostgreSQL (else it only waits, and the liveness check
    is what notices a lost connection)."""
    failures: list[tuple[str, BaseException]] = field(default_factory=list)
    activations: int = 0
    fail_next: BaseException | None = None
    task: asyncio.Task[None] | None = None

    def note(self, what: str, exc: BaseException) -> None:
        self.failures.append((what, exc))

    async def work(self, conn: asyncpg.Connection) -> None:
        self.activations += 1
        self.ledger.started(self.label)
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        loop = asyncio.get_running_loop()
        while not self.leader.stopping:
            if self.busy:
                sent = loop.time()
                await conn.fetchval("SELECT 1")
                self.ledger.succeeded(self.label, sent)
            await self.leader.pause(0.05)

    @property
    def state(self) -> LeaderState:
        return self.leader.state


class Contenders:
    def __init__(self, pg_url: str, schema: str) -> None:
        self._pg_url = pg_url
        self._schema = schema
        self.name = f"test.leadership:{uuid.uuid4().hex}"
        self.ledger = Ledger()
        self.started: list[Contender] = []

    def start(self, *, check_interval: float | None = None, busy: bool = True) -> Contender:
        label = f"test-leader-{uuid.uuid4().hex[:12]}"
        contender: Contender

        def note(what: str, exc: BaseException) -> None:
            contender.note(what, exc)

        leader = Leadership(
            self.name,
            database_url=self._pg_url,
            schema=self._schema,
            application_name=label,
            on_failure=note,
            backoff=Backoff(0.05, 0.2),
            standby_poll_interval=0.05,
            check_interval=check_interval,
            fatal=(Fatal,),
        )
        contender = Contender(label, leader, self.ledger, busy)
        contender.task = asyncio.create_task(leader.run(contender.work))
        self.started.append(contender)
        return contender

    async def stop_all(self) -> None:
        for contender in self.started:
            contender.leader.stop()
        await asyncio.gather(
            *(c.task for c in self.started if c.task is not None), return_exceptions=True
        )


@pytest_asyncio.fixture
async def contenders(pg_url: str, schema: str) -> AsyncIterator[Contenders]:
    group = Contenders(pg_url, schema)
    yield group
    await group.stop_all()
    assert not group.ledger.violations


async def _holder_pids(pool: asyncpg.Pool, name: str) -> list[int]:
    """Backends holding the advisory lock ``name`` (the key is split over two columns)."""
    rows = await pool.fetch(
        """
        WITH key AS (SELECT hashtextextended($1, 0) AS k)
        SELECT l.pid FROM pg_locks l, key
        WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid::bigint = ((key.k >> 32) & 4294967295)
          AND l.objid::bigint = (key.k & 4294967295)
        """,
        name,
    )
    return [row["pid"] for row in rows]


async def _kill(pool: asyncpg.Pool, contender: Contender) -> None:
    killed = await pool.fetchval(
        "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = $1",
        contender.label,
    )
    assert killed


def _one_active(a: Contender, b: Contender) -> bool:
    return {a.state, b.state} == {LeaderState.ACTIVE, LeaderState.STANDBY}


async def test_of_two_contenders_one_is_active_and_the_other_stands_by(
    contenders: Contenders, pool: asyncpg.Pool
) -> None:
    a, b = contenders.start(), contenders.start()
    await eventually(lambda: _one_active(a, b))
    active = a if a.state is LeaderState.ACTIVE else b
    holders = await _holder_pids(pool, contenders.name)
    assert len(holders) == 1
    active_pids = await pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1", active.label
    )
    assert [r["pid"] for r in active_pids] == holders
    await asyncio.sleep(0.3)  # several standby polls: still one active
    assert _one_active(a, b)
    assert a.activations + b.activations == 1
    assert not a.failures
    assert not b.failures


@pytest.mark.parametrize(
    ("check_interval", "busy"),
    [(None, True), (0.2, False)],
    ids=["noticed-by-its-next-statement", "noticed-by-the-liveness-check"],
)
async def test_when_the_active_connection_is_killed_the_standby_takes_over(
    contenders: Contenders, pool: asyncpg.Pool, check_interval: float | None, busy: bool
) -> None:
    a = contenders.start(check_interval=check_interval, busy=busy)
    await eventually(lambda: a.state is LeaderState.ACTIVE)
    b = contenders.start(check_interval=check_interval, busy=busy)
    await eventually(lambda: b.state is LeaderState.STANDBY)

    await _kill(pool, a)
    await eventually(lambda: b.state is LeaderState.ACTIVE, within=20)
    await eventually(lambda: bool(a.failures), within=20)
    # The old holder competes again, and loses to the new one.
    await eventually(lambda: a.state is LeaderState.STANDBY, within=20)
    assert b.activations == 1
    what, exc = a.failures[0]
    if check_interval is not None:
        assert isinstance(exc, LeadershipLost), (what, exc)
    assert len(await _holder_pids(pool, contenders.name)) == 1


async def test_stop_is_quiet_and_hands_the_lock_over(
    contenders: Contenders, pool: asyncpg.Pool
) -> None:
    a = contenders.start(check_interval=0.2)
    await eventually(lambda: a.state is LeaderState.ACTIVE)
    b = contenders.start(check_interval=0.2)
    await eventually(lambda: b.state is LeaderState.STANDBY)

    a.leader.stop()
    assert a.task is not None
    await asyncio.wait_for(a.task, 10)
    assert a.state is LeaderState.STOPPED
    assert not a.failures
    await eventually(lambda: b.state is LeaderState.ACTIVE, within=20)

    c = contenders.start()
    await eventually(lambda: c.state is LeaderState.STANDBY)
    c.leader.stop()
    assert c.task is not None
    await asyncio.wait_for(c.task, 10)
    assert c.state is LeaderState.STOPPED
    assert not c.failures
    assert c.activations == 0
    assert b.state is LeaderState.ACTIVE


async def test_a_failing_work_is_reported_and_started_again(contenders: Contenders) -> None:
    a = contenders.start()
    a.fail_next = RuntimeError("surprise")
    await eventually(lambda: a.activations == 2 and a.state is LeaderState.ACTIVE)
    assert [what for what, _ in a.failures] == ["unexpected failure; starting over"]


async def test_a_fatal_error_ends_run_and_releases_the_lock(
    contenders: Contenders, pool: asyncpg.Pool
) -> None:
    a = contenders.start()
    a.fail_next = Fatal("a human must act")
    assert a.task is not None
    with pytest.raises(Fatal):
        await asyncio.wait_for(a.task, 20)
    assert a.state is LeaderState.STOPPED
    assert not a.failures
    assert await _holder_pids(pool, contenders.name) == []


async def test_a_contender_that_cannot_connect_retries_and_stops_quietly(schema: str) -> None:
    failures: list[str] = []
    leader = Leadership(
        "test.leadership:unreachable",
        database_url="postgresql://nobody@127.0.0.1:1/nothing",
        schema=schema,
        application_name="test-leader-unreachable",
        on_failure=lambda what, _exc: failures.append(what),
        backoff=Backoff(0.02, 0.05),
    )

    async def never(_conn: asyncpg.Connection) -> None:
        raise AssertionError("no connection, no work")

    task = asyncio.create_task(leader.run(never))
    await eventually(lambda: len(failures) >= 2)
    assert set(failures) == {"cannot connect to PostgreSQL"}
    leader.stop()
    await asyncio.wait_for(task, 10)
    assert leader.state is LeaderState.STOPPED


def test_backoff_doubles_up_to_its_maximum_with_jitter_and_resets() -> None:
    backoff = Backoff(0.1, 0.4)
    delays = [backoff.next() for _ in range(5)]
    for delay, nominal in zip(delays, [0.1, 0.2, 0.4, 0.4, 0.4], strict=True):
        assert nominal * 0.8 <= delay <= nominal * 1.2
    backoff.reset()
    assert backoff.next() <= 0.12
    with pytest.raises(ValueError, match="initial"):
        Backoff(0.5, 0.1)
