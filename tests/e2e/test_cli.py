"""Every ``programledger`` subcommand, run as a process the way an operator runs it.

Against the tests' PostgreSQL (``PROGRAMLEDGER_DATABASE_URL``) in a schema of each test's
own (``PROGRAMLEDGER_SCHEMA``); ``run`` on embedded servers is in ``test_cli_run.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import jwt
import nats
import pytest
import pytest_asyncio

from programledger.adapters.nats.stream import stream_name
from programledger.api.auth import DEV_SECRET_FILE
from programledger.application.export import ExportedEvent, ExportHeader, decode_line

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = (
    "run",
    "serve",
    "relay",
    "project",
    "migrate",
    "rebuild",
    "verify",
    "export",
    "demo",
    "mint-token",
    "schema",
)


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRAMLEDGER_")}
    env["PYTHONPATH"] = str(ROOT)
    env["COLUMNS"] = "200"  # rich wraps usage errors at the terminal's width
    env.update({f"PROGRAMLEDGER_{name.upper()}": value for name, value in settings.items()})
    return env


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "programledger", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Never used for servers here (URLs are configured); holds the development secret."""
    return tmp_path / "data"


@pytest.fixture
def env(pg_url: str, schema: str, data_dir: Path) -> dict[str, str]:
    return _env(database_url=pg_url, schema=schema, data_dir=str(data_dir))


@pytest_asyncio.fixture
async def bare_schema(pg_url: str) -> AsyncIterator[str]:
    """A schema name with nothing in it yet, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_says_what_it_does(command: str) -> None:
    result = cli(command, "--help", env=_env())
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    listing = cli("--help", env=_env()).stdout
    assert command in listing


def test_no_command_shows_the_commands_and_a_wrong_one_is_a_usage_error() -> None:
    assert "verify" in cli(env=_env()).stdout
    wrong = cli("frobnicate", env=_env())
    assert wrong.returncode == 2
    missing = cli("export", env=_env())
    assert missing.returncode == 2
    assert "--program" in missing.stderr


@pytest.mark.parametrize(
    ("command", "settings", "named"),
    [
        ("migrate", {"database_url": "mysql://db/x"}, "PROGRAMLEDGER_DATABASE_URL"),
        ("verify", {"log_format": "xml"}, "PROGRAMLEDGER_LOG_FORMAT"),
        ("demo", {"stream_replicas": "3"}, "PROGRAMLEDGER_STREAM_REPLICAS"),
        ("verify", {"ready_max_lag_seconds": "0"}, "PROGRAMLEDGER_READY_MAX_LAG_SECONDS"),
        ("relay", {}, "PROGRAMLEDGER_DATABASE_URL and PROGRAMLEDGER_NATS_URL"),
        ("serve", {"database_url": "postgresql://db/x"}, "needs PROGRAMLEDGER_NATS_URL"),
        ("project", {"nats_url": "nats://n:4222"}, "needs PROGRAMLEDGER_DATABASE_URL"),
    ],
)
def test_configuration_errors_exit_2_with_one_line(
    command: str, settings: dict[str, str], named: str
) -> None:
    result = cli(command, env=_env(**settings))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert named in result.stderr


@pytest.mark.parametrize(
    "args", [("project", "--projection", "nope"), ("rebuild", "nope"), ("rebuild",)]
)
def test_unknown_projections_are_usage_errors(args: tuple[str, ...]) -> None:
    result = cli(*args, env=_env())
    assert result.returncode == 2
    if "nope" in args:
        assert "the projections are" in result.stderr


def test_rebuild_swaps_in_a_rebuilt_read_model(env: dict[str, str]) -> None:
    assert cli("demo", env=env).returncode == 0
    for workers in ("1", "2"):
        result = cli("rebuild", "programs", "--workers", workers, env=env)
        assert result.returncode == 0, result.stderr
        assert re.match(r"rebuilt programs up to position \d+: \d+ events read", result.stdout)
    assert cli("rebuild", "programs", "--workers", "0", env=env).returncode == 2


def test_migrate_creates_the_schema_and_other_commands_wait_for_it(
    pg_url: str, bare_schema: str, data_dir: Path
) -> None:
    env = _env(database_url=pg_url, schema=bare_schema, data_dir=str(data_dir))
    refused = cli("verify", env=env)
    assert refused.returncode == 1
    assert "programledger migrate" in refused.stderr
    assert refused.stderr.strip().count("\n") == 0

    first = cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert f"schema {bare_schema!r} is up to date" in first.stdout
    assert "applied migration 0001_event_store" in first.stderr
    again = cli("migrate", env=env)
    assert again.returncode == 0
    assert "applied migration" not in again.stderr
    assert cli("verify", env=env).returncode == 0


def test_an_unreachable_database_is_one_line_and_exit_1(data_dir: Path) -> None:
    env = _env(database_url="postgresql://nobody:secret@127.0.0.1:1/x", data_dir=str(data_dir))
    result = cli("migrate", env=env)
    assert result.returncode == 1
    assert "cannot reach a server" in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_logs_are_json_lines_with_the_command_and_a_request_id(env: dict[str, str]) -> None:
    result = cli("demo", env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines
    assert {line["command"] for line in lines} == {"demo"}
    assert len({line["request_id"] for line in lines}) == 1
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)

    console = cli("migrate", env={**env, "PROGRAMLEDGER_LOG_FORMAT": "console"})
    assert console.returncode == 0
    assert not console.stderr.lstrip().startswith("{")


def test_demo_twice_records_once_then_export_and_verify(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = cli("demo", env=env)
    assert first.returncode == 0, first.stderr
    assert "PAY-2027" in first.stdout
    assert "1 refused as the story expects" in first.stdout
    second = cli("demo", env=env)
    assert second.returncode == 0, second.stderr
    assert "0 recorded now (0 events)" in second.stdout

    target = tmp_path / "pay.jsonl"
    exported = cli("export", "--program", "PAY-2027", "--output", str(target), env=env)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == ""
    lines = target.read_bytes().splitlines()
    header = decode_line(lines[0])
    assert isinstance(header, ExportHeader)
    assert header.program_code == "PAY-2027"
    assert header.events == len(lines) - 1
    events = [decode_line(line) for line in lines[1:]]
    assert all(isinstance(e, ExportedEvent) for e in events)

    to_stdout = cli("export", "--program", str(header.program_id), env=env)
    assert to_stdout.returncode == 0
    assert len(to_stdout.stdout.splitlines()) == len(lines)

    ok = cli("verify", "--read-models", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "every hash chain holds" in ok.stdout
    assert "and checkpoints, the audit trail: the log is whole" in ok.stdout
    one = cli("verify", "--stream", f"program-{header.program_id}", env=env)
    assert one.returncode == 0
    assert "verified 1 stream," in one.stdout


def test_export_of_an_unknown_program_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "none.jsonl"
    result = cli("export", "--program", "NOPE-1", "--output", str(target), env=env)
    assert result.returncode == 1
    assert "NOPE-1" in result.stderr
    assert not target.exists(), "no partial export is left behind"


async def test_verify_exits_1_and_names_the_first_broken_link(
    env: dict[str, str], pg_url: str, schema: str
) -> None:
    assert (await asyncio.to_thread(cli, "demo", env=env)).returncode == 0
    conn = await asyncpg.connect(pg_url)
    try:
        stream_id = await conn.fetchval(
            f'SELECT stream_id FROM "{schema}".events WHERE stream_type = $1 AND version = 3 '
            "ORDER BY stream_id LIMIT 1",
            "risk",
        )
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                f'UPDATE "{schema}".events SET metadata = metadata || '
                """'{"actor": "someone.else"}' WHERE stream_id = $1 AND version = 3""",
                stream_id,
            )
    finally:
        await conn.close()

    result = await asyncio.to_thread(cli, "verify", env=env)
    assert result.returncode == 1
    assert (
        f"BROKEN {stream_id}: first broken link at version 3: "
        "the event's content does not match its hash"
    ) in result.stdout
    assert "1 broken" in result.stdout
    one = await asyncio.to_thread(cli, "verify", "--stream", stream_id, env=env)
    assert one.returncode == 1
    missing = await asyncio.to_thread(cli, "verify", "--stream", "program-nothing", env=env)
    assert missing.returncode == 1
    assert "no such stream" in missing.stdout

    conn = await asyncpg.connect(pg_url)
    try:
        [run] = await conn.fetch(
            f'SELECT ok, problems, checks, first_problem FROM "{schema}".verification_runs'
        )
        program_id = await conn.fetchval(
            f'SELECT program_id FROM "{schema}".events WHERE stream_id = $1 LIMIT 1', stream_id
        )
    finally:
        await conn.close()
    assert (run["ok"], run["checks"]) == (False, "chains,structure,ledger")
    assert run["first_problem"].startswith(f"BROKEN {stream_id}: first broken link at version 3")
    refusal = f"integrity: the hash chain of stream {stream_id!r} is broken at version 3"
    exported = await asyncio.to_thread(cli, "export", "--program", str(program_id), env=env)
    assert (exported.returncode, exported.stdout) == (1, "")
    assert refusal in exported.stderr
    rebuilt = await asyncio.to_thread(cli, "rebuild", "audit", "--workers", "1", env=env)
    assert rebuilt.returncode == 1
    assert refusal in rebuilt.stderr


def test_mint_token_signs_with_the_development_secret(data_dir: Path) -> None:
    env = _env(data_dir=str(data_dir))
    result = cli(
        "mint-token",
        "--subject",
        "alice",
        "--role",
        "editor",
        "--role",
        "auditor",
        "--ttl",
        "2h",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    secret = (data_dir / DEV_SECRET_FILE).read_text().strip()
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["auditor", "editor"]
    assert claims["exp"] - claims["iat"] == 2 * 3600

    configured = _env(jwt_secret="s" * 40, data_dir=str(data_dir))
    token = cli("mint-token", "--subject", "bob", "--role", "viewer", env=configured).stdout
    assert jwt.decode(token.strip(), "s" * 40, algorithms=["HS256"])["sub"] == "bob"


@pytest.mark.parametrize(
    "args",
    [("--role", "boss"), ("--role", "viewer", "--ttl", "5x"), ("--role", "viewer", "--ttl", "0")],
)
def test_mint_token_refuses_bad_roles_and_lifetimes(data_dir: Path, args: tuple[str, ...]) -> None:
    result = cli("mint-token", "--subject", "alice", *args, env=_env(data_dir=str(data_dir)))
    assert result.returncode == 2
    assert result.stdout == ""


def test_schema_writes_the_published_contracts(tmp_path: Path) -> None:
    result = cli("schema", "--root", str(tmp_path), env=_env())
    assert result.returncode == 0, result.stderr
    assert "type Mutation" in (tmp_path / "schema.graphql").read_text()
    asyncapi = json.loads((tmp_path / "docs" / "asyncapi.json").read_text())
    assert asyncapi["asyncapi"].startswith("3.")
    assert (tmp_path / "docs" / "schemas" / "ProgramProposed.json").is_file()
    stream = json.loads((tmp_path / "infra" / "nats" / "stream.json").read_text())
    assert stream["num_replicas"] == 3
    assert (tmp_path / "docs" / "asyncapi.json").read_bytes() == (
        ROOT / "docs" / "asyncapi.json"
    ).read_bytes(), "the CLI writes what is committed"


async def test_relay_publishes_and_stops_cleanly_on_sigterm(
    env: dict[str, str], pg_url: str, schema: str, nats_url: str, subject_prefix: str
) -> None:
    relay_env = {
        **env,
        "PROGRAMLEDGER_NATS_URL": nats_url,
        "PROGRAMLEDGER_SUBJECT_PREFIX": subject_prefix,
    }
    assert (await asyncio.to_thread(cli, "demo", env=env)).returncode == 0
    conn = await asyncpg.connect(pg_url)
    try:
        written = await conn.fetchval(f'SELECT count(*) FROM "{schema}".events')
    finally:
        await conn.close()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "programledger",
        "relay",
        env=relay_env,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        async with asyncio.timeout(60):  # the relay waits for older transactions to end
            while True:
                try:
                    info = await js.stream_info(stream_name(subject_prefix))
                except nats.js.errors.NotFoundError:
                    info = None
                if info is not None and info.state.messages == written:
                    break
                await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await process.wait()
        assert process.stderr is not None
        logs = (await process.stderr.read()).decode()
        assert code == 0, logs
        assert "active, publishing to stream" in logs
    finally:
        await client.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
        with_js = await nats.connect(nats_url)
        try:
            await with_js.jetstream().delete_stream(stream_name(subject_prefix))
        finally:
            await with_js.close()


class Process:
    """A long-running ``programledger`` command whose log lines are read as they come."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "programledger", *args],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    async def wait_for(self, text: str, within: float = 60) -> str:
        async with asyncio.timeout(within):
            while True:
                for line in list(self.lines):
                    if text in line:
                        return line
                assert self.proc.poll() is None, "".join(self.lines)
                await asyncio.sleep(0.05)

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, 60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


async def test_serve_relay_and_project_as_separate_processes(
    env: dict[str, str], data_dir: Path, nats_url: str, subject_prefix: str
) -> None:
    """The production shape: stateless API, relay and workers; a mutation that waits for
    the read models is answered once the write went through NATS into the projections."""
    shared = {
        **env,
        "PROGRAMLEDGER_NATS_URL": nats_url,
        "PROGRAMLEDGER_SUBJECT_PREFIX": subject_prefix,
        "PROGRAMLEDGER_HTTP_PORT": "0",
    }
    processes = [Process(shared, "relay"), Process(shared, "project"), Process(shared, "serve")]
    try:
        serving = await processes[2].wait_for("serving the API at")
        found = re.search(r"(http://\S+/graphql)", serving)
        assert found is not None
        token = cli("mint-token", "--subject", "tom", "--role", "editor", env=shared)
        headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
        query = (
            "mutation($input: ProposeProgramInput!) { proposeProgram(input: $input) "
            "{ __typename ... on CommandAccepted { position projectionsCaughtUp } } }"
        )
        values = {
            "programId": str(uuid.uuid4()),
            "code": "SPLIT-1",
            "name": "Split roles",
            "objective": "o",
            "sponsor": "s",
            "owner": "o",
            "priority": 2,
            "startDate": "2027-01-01",
            "targetEndDate": "2027-12-31",
            "plannedBudget": {"amountMinor": 1, "currency": "EUR"},
            "waitForProjections": True,
        }
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                found[1], json={"query": query, "variables": {"input": values}}, headers=headers
            )
            payload = response.json()["data"]["proposeProgram"]
            assert payload["projectionsCaughtUp"] is True, payload
            base = found[1].removesuffix("/graphql")
            ready = await http.get(base + "/ready")
            assert ready.status_code == 200, ready.text
            metrics = (await http.get(base + "/metrics")).text
            assert "programledger_relay_lag_events" in metrics
            assert 'programledger_projection_lag_seconds{projection="programs"}' in metrics
            # The proposal's two appends (its code's reservation, then the program), each
            # in a transaction of its own.
            assert "programledger_append_commands_per_transaction_count 2.0" in metrics
            assert 'programledger_append_commands_per_transaction_bucket{le="1.0"} 2.0' in metrics
            # The loads of one command at a time: each read query answered one.
            reads = dict(
                line.rsplit(" ", 1)
                for line in metrics.splitlines()
                if line.startswith("programledger_stream_reads_per_query_")
            )
            count = reads["programledger_stream_reads_per_query_count"]
            assert float(count) >= 1, reads
            assert reads['programledger_stream_reads_per_query_bucket{le="1.0"}'] == count, reads
        request_id = response.headers["X-Request-Id"]
        access = await processes[2].wait_for("POST /graphql -> 200")
        assert json.loads(access)["request_id"] == request_id
    finally:
        codes = [await process.stop() for process in processes]
        nc = await nats.connect(nats_url)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream().delete_stream(stream_name(subject_prefix))
        finally:
            await nc.close()
    for process, code in zip(processes, codes, strict=True):
        assert code == 0, "".join(process.lines[-20:])


@pytest.mark.parametrize(("limit", "status"), [(None, 200), ("1", 503)])
async def test_ready_reports_projection_lag_and_fails_only_beyond_the_limit(
    env: dict[str, str], nats_url: str, subject_prefix: str, limit: str | None, status: int
) -> None:
    """No workers run here, so every projection lags behind the demo's events."""
    assert (await asyncio.to_thread(cli, "demo", env=env)).returncode == 0
    await asyncio.sleep(1.2)  # the oldest unprojected event is older than the limit
    settings = {
        **env,
        "PROGRAMLEDGER_NATS_URL": nats_url,
        "PROGRAMLEDGER_SUBJECT_PREFIX": subject_prefix,
        "PROGRAMLEDGER_HTTP_PORT": "0",
    }
    if limit is not None:
        settings["PROGRAMLEDGER_READY_MAX_LAG_SECONDS"] = limit
    server = Process(settings, "serve")
    try:
        found = re.search(r"(http://\S+)/graphql", await server.wait_for("serving the API at"))
        assert found is not None
        async with httpx.AsyncClient(timeout=30) as http:
            ready = await http.get(found[1] + "/ready")
        assert ready.status_code == status, ready.text
        projections = ready.json()["checks"]["projections"]
        assert projections["ok"] is (status == 200)
        assert "programs idle" in projections["detail"]
    finally:
        assert await server.stop() == 0


async def test_code_that_writes_an_uncatalogued_event_type_waits_for_migrate(
    env: dict[str, str], pg_url: str, schema: str
) -> None:
    """The catalogue follows the code through `migrate`: a release that adds an event type
    refuses to start on a store whose catalogue lacks it (here: a row taken out)."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            f"DELETE FROM \"{schema}\".event_catalogue WHERE event_type = 'ProgramProposed'"
        )
    finally:
        await conn.close()
    refused = await asyncio.to_thread(cli, "verify", env=env)
    assert refused.returncode == 1
    assert "lacks ProgramProposed v1" in refused.stderr
    assert "run `programledger migrate`" in refused.stderr
    assert (await asyncio.to_thread(cli, "migrate", env=env)).returncode == 0
    assert (await asyncio.to_thread(cli, "verify", env=env)).returncode == 0
