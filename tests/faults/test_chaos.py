"""The split deployment under load while its parts die: nothing acknowledged is lost,
nothing is relayed twice, and the read models end equal to a rebuild.

Every role runs as production runs it, through the command line in a process of its own:
``serve`` (the API), two ``relay`` processes (one active, one standing by) and ``project``,
on this test's PostgreSQL schema and on a NATS server the test starts itself (so it may
stop it; the machine's shared NATS is never touched). Clients send commands over HTTP
the whole time, each with an idempotency key, and retry a command until it is
acknowledged, as a well-behaved client does. Meanwhile the test SIGKILLs the active relay,
the projection worker and the API (restarting the two last), and stops NATS while
commands go on, then starts it again. Bounded: clients stop once the faults are over (at
most 1000 commands each); a minute or two on a quiet machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest
import pytest_asyncio

from programledger.adapters.embedded.nats import EmbeddedNats
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.api import Role, mint_token
from programledger.projections.engine.rebuild import rebuild
from programledger.projections.engine.status import wait_for_position
from programledger.projections.registry import PROJECTIONS
from tests.support.projection_process import app_store, table_rows
from tests.support.relay_process import eventually, stored_messages

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "chaos-secret-" + "x" * 40
CLIENTS = 4
MAX_COMMANDS = 1000
"""Per client, a bound: clients send until the faults are over, then stop."""
COMMAND_DEADLINE = 90.0
"""How long a client keeps retrying one command through the outages."""

HEALTH = """
mutation($input: ReportProgramHealthInput!) {
  reportProgramHealth(input: $input) { __typename ... on CommandAccepted { eventIds } }
}"""
PROPOSE = """
mutation($input: ProposeProgramInput!) {
  proposeProgram(input: $input) { __typename ... on CommandAccepted { eventIds } }
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RoleProcess:
    """One ``programledger <role>`` process; its output goes to a log file of its own."""

    def __init__(self, role: str, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.role, self.env, self.name = role, env, name
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "programledger", self.role],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup, connections just drop."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.name} did not stop within {timeout}s of SIGTERM") from None


@dataclass
class Acknowledged:
    """What the clients were told was recorded."""

    event_ids: set[str] = field(default_factory=set)
    commands: int = 0
    retried: int = 0


@pytest_asyncio.fixture
async def own_nats(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats")
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@contextlib.contextmanager
def _stopped_at_exit(processes: list[RoleProcess]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            with contextlib.suppress(AssertionError):
                process.terminate()


async def _healthy(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/health")).status_code == 200
    except httpx.TransportError:
        return False


async def _send(
    http: httpx.AsyncClient, query: str, values: dict[str, Any], token: str, acked: Acknowledged
) -> None:
    """One command, retried with its idempotency key until it is acknowledged: a retry of
    a command that was recorded before the connection dropped is answered, not redone."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
    body = {"query": query, "variables": {"input": values}}
    async with asyncio.timeout(COMMAND_DEADLINE):
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await http.post("/graphql", json=body, headers=headers)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                payload = next(iter(response.json()["data"].values()))
                assert payload["__typename"].endswith("Success"), payload
                acked.event_ids.update(payload["eventIds"])
                acked.commands += 1
                acked.retried += attempt > 1
                return
            assert response is None or response.status_code >= 500, response.text
            await asyncio.sleep(0.1)


async def _client(
    http: httpx.AsyncClient,
    n: int,
    shared: str,
    token: str,
    acked: Acknowledged,
    stop: asyncio.Event,
) -> None:
    """Proposes a program, then reports health on it and on a program all clients share,
    until ``stop`` (commands without an expected version, so contention is retried)."""
    program = str(uuid.uuid4())
    await _send(http, PROPOSE, _program(program), token, acked)
    for i in range(MAX_COMMANDS):
        if stop.is_set():
            return
        target = shared if i % 2 else program
        values = {"programId": target, "health": "GREEN", "summary": f"client {n}, report {i}"}
        await _send(http, HEALTH, values, token, acked)


def _program(program_id: str) -> dict[str, Any]:
    return {
        "programId": program_id,
        "code": f"C{uuid.uuid4().int % 10**8:08d}",
        "name": "Payments platform",
        "objective": "Take card payments in every market",
        "sponsor": "Sam Sponsor",
        "owner": "Tia Owner",
        "priority": 2,
        "startDate": "2027-01-01",
        "targetEndDate": "2027-12-31",
        "plannedBudget": {"amountMinor": 250_000_00, "currency": "EUR"},
    }


async def _stream_messages(nats_url: str, prefix: str) -> int:
    try:
        nc = await nats.connect(nats_url, connect_timeout=1, allow_reconnect=False)
    except Exception:
        return -1
    try:
        info = await nc.jetstream().stream_info(f"{prefix.upper()}_EVENTS")
        return int(info.state.messages)
    except Exception:
        return -1
    finally:
        await nc.close()


async def test_the_split_deployment_survives_kills_and_a_nats_outage_under_load(
    pool: asyncpg.Pool,
    pg_url: str,
    schema: str,
    subject_prefix: str,
    own_nats: EmbeddedNats,
    tmp_path: Path,
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PROGRAMLEDGER_DATABASE_URL": pg_url,
        "PROGRAMLEDGER_NATS_URL": own_nats.url,
        "PROGRAMLEDGER_SCHEMA": schema,
        "PROGRAMLEDGER_SUBJECT_PREFIX": subject_prefix,
        "PROGRAMLEDGER_JWT_SECRET": SECRET,
        "PROGRAMLEDGER_HTTP_PORT": str(port),
        "PROGRAMLEDGER_DATA_DIR": str(tmp_path / "data"),
        "PROGRAMLEDGER_LOG_FORMAT": "json",
        "PROGRAMLEDGER_DB_POOL_SIZE": "6",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    api = RoleProcess("serve", env, logs, "serve")
    first_relay = RoleProcess("relay", env, logs, "relay-1")
    second_relay = RoleProcess("relay", env, logs, "relay-2")
    worker = RoleProcess("project", env, logs, "project")
    processes = [api, first_relay, second_relay, worker]
    token = mint_token(SECRET, "chaos@example.com", (Role.EDITOR,), timedelta(hours=1))
    acked = Acknowledged()
    store = app_store(pool, schema)
    moved = _Progress(own_nats.url, subject_prefix)

    with _stopped_at_exit(processes):
        for process in (api, first_relay, worker):
            process.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await eventually(lambda: _healthy(http), within=60)
            shared = str(uuid.uuid4())
            await _send(http, PROPOSE, _program(shared), token, acked)
            stop = asyncio.Event()
            clients = [
                asyncio.create_task(_client(http, n, shared, token, acked, stop))
                for n in range(CLIENTS)
            ]
            try:
                # The first relay is active (it is alone); the second stands by.
                await moved.by(20, within=60)
                second_relay.start()
                await eventually(lambda: "standing by" in second_relay.log(), within=60)
                assert "active, publishing" in first_relay.log()
                first_relay.kill()
                await eventually(lambda: "active, publishing" in second_relay.log(), within=60)
                await moved.by(20, within=60)

                worker.kill()
                await moved.by(10, within=60)
                worker.start()

                api.kill()
                api.start()
                await eventually(lambda: _healthy(http), within=60)
                await moved.by(10, within=60)

                await asyncio.to_thread(own_nats.stop)
                head = await store.head_position()
                await eventually(lambda: _head_past(store, head + 20), within=60)
                await asyncio.to_thread(own_nats.start)
                await moved.by(10, within=60)

                assert not any(c.done() for c in clients), [c for c in clients if c.done()]
                stop.set()
                await asyncio.gather(*clients)
            finally:
                for client in clients:
                    client.cancel()
                await asyncio.gather(*clients, return_exceptions=True)

            # Readers of the log see a committed event only once no older transaction runs
            # anywhere in the cluster (the xmin horizon): wait until they see every one.
            head = int(await pool.fetchval("SELECT max(position) FROM events"))
            await eventually(lambda: _head_past(store, head), within=120)
            assert await wait_for_position(pool, head, 120), "projections did not catch up"
            await moved.reach(len(await _all_events(store)), within=120)
            nc = await nats.connect(own_nats.url)
            try:
                relayed = [
                    m.envelope.position
                    for m in await stored_messages(nc.jetstream(), subject_prefix)
                ]
            finally:
                await nc.close()
        for process in (api, second_relay, worker):
            assert process.terminate() == 0, process.log()[-2000:]

    await _check_stored_and_relayed_once(store, acked, relayed)
    live = {name: await table_rows(pool, p) for name, p in PROJECTIONS.items()}
    for name in PROJECTIONS:
        await rebuild(pool, store, name, progress=False)
    assert {name: await table_rows(pool, p) for name, p in PROJECTIONS.items()} == live


async def _head_past(store: PostgresEventStore, position: int) -> bool:
    return await store.head_position() >= position


class _Progress:
    """How far the relay got: the messages in this test's JetStream stream."""

    def __init__(self, nats_url: str, prefix: str) -> None:
        self.nats_url, self.prefix = nats_url, prefix

    async def by(self, count: int, within: float) -> None:
        """Until the stream holds ``count`` more messages than now (or than when it next
        answers, if NATS is down now)."""
        start = -1
        async with asyncio.timeout(within):
            while start < 0:
                start = await _stream_messages(self.nats_url, self.prefix)
                await asyncio.sleep(0.05)
            await self.reach(start + count, within)

    async def reach(self, count: int, within: float) -> None:
        await eventually(lambda: self._holds(count), within=within)

    async def _holds(self, count: int) -> bool:
        return await _stream_messages(self.nats_url, self.prefix) >= count


async def _check_stored_and_relayed_once(
    store: PostgresEventStore, acked: Acknowledged, relayed: list[int]
) -> None:
    stored = await _all_events(store)
    assert acked.retried > 0, "no command was caught by the API's kill"
    programs = {e.event_id for e in stored if e.event_type == "ProgramCodeReserved"}
    assert len(programs) == 1 + CLIENTS
    assert {str(e.event_id) for e in stored if e.event_id not in programs} == acked.event_ids
    assert len(stored) == len(acked.event_ids) + len(programs)
    assert relayed == [e.position for e in stored], "every event relayed once, in order"


async def _all_events(store: PostgresEventStore) -> list[Any]:
    found: list[Any] = []
    while True:
        page = await store.read_all(found[-1].position if found else 0, 1000)
        if not page:
            return found
        found.extend(page)
