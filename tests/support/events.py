"""Event types that exist only for the store's own tests."""

from __future__ import annotations

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
