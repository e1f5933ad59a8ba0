"""Every event type the system stores: the domain's plus the application's own.

The composition root builds the codec (and so the store, relay and readers) from
:func:`application_registry`; a registry without the application's types cannot read the
``programcode-*`` streams.
"""

from __future__ import annotations

from programledger.application.reservations import ProgramCodeReserved
from programledger.domain import domain_registry
from programledger.domain.events import DomainEvent, EventRegistry

__all__ = ["APPLICATION_EVENT_TYPES", "application_registry"]

APPLICATION_EVENT_TYPES: tuple[type[DomainEvent], ...] = (ProgramCodeReserved,)
"""Events the application records for rules that span aggregates."""


def application_registry() -> EventRegistry:
    """A fresh registry of every stored event type, to which upcasters can be added."""
    registry = domain_registry()
    for cls in APPLICATION_EVENT_TYPES:
        registry.register(cls)
    return registry
