"""Webhook endpoints and their delivery log in PostgreSQL (migration 0013).

Admin changes (:class:`PostgresWebhookStore`) bump an endpoint's ``revision``; the worker's
writes (:class:`WebhookProgress`) name the revision they started from, so progress made
before a rewind or a re-enable can never overwrite it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from programledger.adapters.postgres.catalogue import catalogued_event_types
from programledger.application.webhooks import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookTarget,
)

__all__ = ["DeliveryRecord", "EndpointRow", "PostgresWebhookStore", "WebhookProgress"]

_ENDPOINT = """
    endpoint_id, url, description, program_id, stream_types, event_types, enabled,
    disabled_reason, position, failure_streak, revision, created_by, created_at, updated_at
"""


def _endpoint(row: asyncpg.Record) -> WebhookEndpoint:
    return WebhookEndpoint(
        endpoint_id=row["endpoint_id"],
        target=WebhookTarget(
            url=row["url"],
            description=row["description"],
            program_id=row["program_id"],
            stream_types=None if row["stream_types"] is None else tuple(row["stream_types"]),
            event_types=None if row["event_types"] is None else tuple(row["event_types"]),
        ),
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        position=row["position"],
        failure_streak=row["failure_streak"],
        revision=row["revision"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class PostgresWebhookStore:
    """The admins' side (``application.webhooks.WebhookStore``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(
        self, endpoint_id: UUID, target: WebhookTarget, secret: str, created_by: str, after: int
    ) -> WebhookEndpoint:
        row = await self._pool.fetchrow(
            f"""
            INSERT INTO webhook_endpoints (endpoint_id, url, secret, description, program_id,
                stream_types, event_types, position, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_ENDPOINT}
            """,
            endpoint_id,
            target.url,
            secret,
            target.description,
            target.program_id,
            None if target.stream_types is None else list(target.stream_types),
            None if target.event_types is None else list(target.event_types),
            after,
            created_by,
        )
        assert row is not None
        return _endpoint(row)

    async def endpoint(self, endpoint_id: UUID) -> WebhookEndpoint | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE endpoint_id = $1", endpoint_id
        )
        return None if row is None else _endpoint(row)

    async def endpoints(self) -> list[WebhookEndpoint]:
        rows = await self._pool.fetch(
            f"SELECT {_ENDPOINT} FROM webhook_endpoints ORDER BY created_at, endpoint_id"
        )
        return [_endpoint(r) for r in rows]

    async def event_types(self) -> frozenset[str]:
        async with self._pool.acquire() as conn:
            return await catalogued_event_types(conn)

    async def set_enabled(
        self, endpoint_id: UUID, enabled: bool, reason: str | None
    ) -> WebhookEndpoint | None:
        return await self._change(
            endpoint_id,
            "enabled = $2, disabled_reason = $3, failure_streak = 0",
            enabled,
            None if enabled else reason,
        )

    async def rewind(self, endpoint_id: UUID, position: int) -> WebhookEndpoint | None:
        return await self._change(endpoint_id, "position = $2", position)

    async def _change(self, endpoint_id: UUID, changes: str, *args: Any) -> WebhookEndpoint | None:
        row = await self._pool.fetchrow(
            f"""
            UPDATE webhook_endpoints
            SET {changes}, revision = revision + 1, updated_at = now()
            WHERE endpoint_id = $1 RETURNING {_ENDPOINT}
            """,
            endpoint_id,
            *args,
        )
        return None if row is None else _endpoint(row)

    async def remove(self, endpoint_id: UUID) -> bool:
        result = await self._pool.execute(
            "DELETE FROM webhook_endpoints WHERE endpoint_id = $1", endpoint_id
        )
        return bool(result.endswith(" 1"))

    async def deliveries(
        self, endpoint_id: UUID, *, after: int | None, first: int, failed_only: bool
    ) -> list[WebhookDelivery]:
        """Newest first; ``after`` is the last ``delivery_id`` of the previous page."""
        rows = await self._pool.fetch(
            """
            SELECT * FROM webhook_deliveries
            WHERE endpoint_id = $1 AND ($2::bigint IS NULL OR delivery_id < $2)
              AND (NOT $3 OR NOT succeeded)
            ORDER BY delivery_id DESC LIMIT $4
            """,
            endpoint_id,
            after,
            failed_only,
            first,
        )
        return [WebhookDelivery(**dict(r)) for r in rows]


class EndpointRow(WebhookEndpoint, frozen=True, kw_only=True):
    """An endpoint as the worker reads it: with its secret."""

    secret: str


class DeliveryRecord(WebhookDelivery, frozen=True, kw_only=True):
    """An attempt to write to the log (its ``delivery_id`` is assigned there)."""


_LOG_COLUMNS = (
    "endpoint_id",
    "event_id",
    "position",
    "event_type",
    "attempt",
    "succeeded",
    "status_code",
    "error",
    "duration_ms",
    "attempted_at",
)


class WebhookProgress:
    """The worker's side: read the endpoints, write positions, streaks and the log, on
    the connection it holds its lock on (so a worker that lost the lock writes nothing)."""

    async def endpoints(self, conn: asyncpg.Connection) -> list[EndpointRow]:
        rows = await conn.fetch(f"SELECT {_ENDPOINT}, secret FROM webhook_endpoints")
        return [
            EndpointRow(**msgspec.structs.asdict(_endpoint(r)), secret=r["secret"]) for r in rows
        ]

    async def save(
        self,
        conn: asyncpg.Connection,
        progress: Sequence[tuple[UUID, int, int, int]],
        log: Sequence[DeliveryRecord],
        disabled: Sequence[tuple[UUID, int, str]],
    ) -> None:
        """In one transaction: ``(endpoint, revision, position, failure streak)`` for each
        endpoint that moved, the attempts made, and ``(endpoint, revision, reason)`` for
        each endpoint that failed too long; rows of another revision are left alone."""
        async with conn.transaction():
            if log:
                await conn.copy_records_to_table(
                    "webhook_deliveries",
                    records=[tuple(getattr(r, c) for c in _LOG_COLUMNS) for r in log],
                    columns=_LOG_COLUMNS,
                )
            if progress:
                await conn.executemany(
                    """
                    UPDATE webhook_endpoints SET position = $3, failure_streak = $4
                    WHERE endpoint_id = $1 AND revision = $2
                    """,
                    progress,
                )
            if disabled:
                await conn.executemany(
                    """
                    UPDATE webhook_endpoints
                    SET enabled = false, disabled_reason = $3, revision = revision + 1,
                        updated_at = now()
                    WHERE endpoint_id = $1 AND revision = $2
                    """,
                    disabled,
                )
