"""Versioned SQL migrations, applied idempotently and safely from several processes at once.

Files are ``migrations/NNNN_name.sql``, applied in order, each in its own transaction with
its checksum recorded. An applied file whose text later changed is an error, not a silent
re-run: history of the schema is as append-only as the events.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from programledger.adapters.postgres.catalogue import sync_catalogue
from programledger.application.errors import OperationalError
from programledger.application.registry import application_registry
from programledger.domain.events import EventRegistry

__all__ = ["Migration", "MigrationError", "available_migrations", "migrate"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(OperationalError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    found: list[Migration] = []
    folder = resources.files("programledger.adapters.postgres") / "migrations"
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


async def migrate(
    conn: asyncpg.Connection, schema: str, *, registry: EventRegistry | None = None
) -> list[Migration]:
    """Bring ``schema`` up to date, and its event catalogue in step with ``registry``
    (default: every type the application stores); returns the migrations applied by this
    call."""
    applied_now: list[Migration] = []
    lock_key = f"{schema}.migrations"
    # pg_temp named last: functions created with SET search_path FROM CURRENT (the
    # SECURITY DEFINER append_events) must not find a caller's temporary tables first.
    await conn.execute(f"SET search_path TO {_quote(schema)}, pg_temp")
    async with conn.transaction():
        # Transaction-scoped, so a crashed migrator cannot leave the lock behind; taken
        # before CREATE SCHEMA, which is not safe to race even with IF NOT EXISTS.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lock_key)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
    for migration in available_migrations():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lock_key)
            row = await conn.fetchrow(
                "SELECT name, checksum FROM schema_migrations WHERE version = $1",
                migration.version,
            )
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after "
                        f"it was applied to schema {schema!r}; add a new migration instead"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied_now.append(migration)
    await sync_catalogue(conn, registry or application_registry())
    return applied_now


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
