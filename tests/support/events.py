"""Event types that exist only for the store's own tests."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from programledger.domain.events import DomainEvent, EventRegistry, Upcaster


class Noted(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "TestNoted"
    text: str
    n: int = 0


class Renamed(DomainEvent, frozen=True, kw_only=True):
    """At schema version 2: ``name`` was split into ``first`` and ``last``."""

    event_type: ClassVar[str] = "TestRenamed"
    schema_version: ClassVar[int] = 2
    first: str
    last: str


def _split_name(data: dict[str, Any]) -> dict[str, Any]:
    first, _, last = data.pop("name").partition(" ")
    return {**data, "first": first, "last": last}


def store_test_registry() -> EventRegistry:
    return EventRegistry([Noted, Renamed], [Upcaster("TestRenamed", 1, _split_name)])


async def raw_append(
    conn: Any, stream_id: str, event_type: str, schema_version: int, data: bytes
) -> None:
    """``append_events`` called as a client that bypasses the codec would: any type,
    version and data."""
    await conn.execute(
        "SELECT * FROM append_events($1, $2, NULL, $3, $4, $5, $6, $7, NULL, NULL, NULL)",
        stream_id,
        stream_id.partition("-")[0],
        [uuid.uuid4()],
        [event_type],
        [schema_version],
        [data],
        b'{"actor": "raw-client"}',
    )
