"""The base of every domain event, and the registry that maps stable names to types.

Stored events are found again by a *stable name* (``event_type``) and a *schema version*,
never by a Python import path: renaming a class or moving a module must not orphan
history. When an event's shape changes, its ``schema_version`` goes up and an upcaster
turns the older stored shape into the newer one at read time; stored rows are never
rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import msgspec

__all__ = [
    "DomainEvent",
    "EventRegistry",
    "UnknownEventType",
    "Upcaster",
    "replay",
]


State = TypeVar("State")
Event = TypeVar("Event", bound="DomainEvent")


def replay(evolve: Callable[[State | None, Event], State], events: Iterable[Event]) -> State | None:
    """An aggregate's state after all of ``events`` in order; ``None`` for an empty history.

    Every aggregate's ``fold`` is this with its own ``evolve``, so loading a stream is
    written once.
    """
    state: State | None = None
    for event in events:
        state = evolve(state, event)
    return state


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A fact that happened. Subclasses set ``event_type`` and, when reshaped, bump
    ``schema_version`` and register an upcaster from the previous version."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class UnknownEventType(LookupError):
    """An event type name that no registered class answers to."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}: it is not in the event registry")
        self.event_type = event_type


@dataclass(frozen=True, slots=True)
class Upcaster:
    """Turns the stored data of ``event_type`` at ``from_version`` into ``from_version + 1``.

    Works on plain JSON-like dicts, because the older shape has no class any more.
    """

    event_type: str
    from_version: int
    upcast: Callable[[dict[str, Any]], dict[str, Any]]


class EventRegistry:
    """Stable event names to their current classes, plus the upcaster chains."""

    def __init__(
        self,
        types: Iterable[type[DomainEvent]] = (),
        upcasters: Iterable[Upcaster] = (),
    ) -> None:
        self._types: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for cls in types:
            self.register(cls)
        for upcaster in upcasters:
            self.add_upcaster(upcaster)

    def register(self, cls: type[DomainEvent]) -> None:
        name = getattr(cls, "event_type", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__qualname__} has no event_type name")
        existing = self._types.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"event type {name!r} is already registered to {existing.__qualname__}"
            )
        if cls.schema_version < 1:
            raise ValueError(f"{name}: schema_version must be 1 or more")
        self._types[name] = cls

    def add_upcaster(self, upcaster: Upcaster) -> None:
        key = (upcaster.event_type, upcaster.from_version)
        if key in self._upcasters:
            raise ValueError(
                f"an upcaster for {upcaster.event_type} v{upcaster.from_version} already exists"
            )
        self._upcasters[key] = upcaster

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def has_upcaster(self, name: str, from_version: int) -> bool:
        return (name, from_version) in self._upcasters

    def __iter__(self) -> Any:
        return iter(self._types.values())

    def names(self) -> list[str]:
        return sorted(self._types)

    def type_for(self, name: str) -> type[DomainEvent]:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownEventType(name) from None

    def upcast(self, name: str, stored_version: int, data: dict[str, Any]) -> dict[str, Any]:
        """Lift ``data`` stored at ``stored_version`` to the current version of ``name``."""
        current = self.type_for(name).schema_version
        if stored_version > current:
            raise ValueError(
                f"{name} was stored at schema version {stored_version}, newer than this "
                f"code's version {current}: upgrade the reader before reading it"
            )
        version = stored_version
        while version < current:
            step = self._upcasters.get((name, version))
            if step is None:
                raise LookupError(
                    f"no upcaster for {name} from schema version {version} to {version + 1}"
                )
            data = step.upcast(data)
            version += 1
        return data
