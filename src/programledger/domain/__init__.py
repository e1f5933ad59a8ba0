"""The functional core: ten aggregates, their commands, events and rules, and no I/O.

Each aggregate is a package of the same shape (``program``, ``risk``, ``assumption``,
``issue``, ``resource``, ``schedule``, ``portfolio``, ``objective``, ``report`` (weekly
status reports), ``scenario`` (capacity what-ifs): ``commands``, ``events``, ``state``,
``decide``, ``evolve``) that re-exports its public names:
``from programledger.domain.program import ProposeProgram``, or
``program.decide(state, command)``. Pieces shared by the aggregates are modules of their
own: ``events`` (event base and registry), ``errors``, ``values``, ``capacity``,
``scheduling`` (forecasts, float and the critical path over the schedule network).

``domain_registry()`` lists every event type under its stable stored name; the codec and
the event store are built from it in the composition root, never at import time.
"""

from __future__ import annotations

from uuid import UUID

from programledger.domain import (
    assumption,
    capacity,
    errors,
    events,
    issue,
    objective,
    portfolio,
    program,
    report,
    resource,
    risk,
    scenario,
    schedule,
    scheduling,
    values,
)
from programledger.domain.events import DomainEvent, EventRegistry

__all__ = [
    "EVENT_TYPES",
    "assumption",
    "capacity",
    "domain_registry",
    "errors",
    "events",
    "issue",
    "objective",
    "portfolio",
    "program",
    "program_id_of",
    "report",
    "resource",
    "risk",
    "scenario",
    "schedule",
    "scheduling",
    "values",
]

EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    *program.PROGRAM_EVENT_TYPES,
    *risk.RISK_EVENT_TYPES,
    *assumption.ASSUMPTION_EVENT_TYPES,
    *issue.ISSUE_EVENT_TYPES,
    *resource.RESOURCE_EVENT_TYPES,
    *schedule.SCHEDULE_EVENT_TYPES,
    *portfolio.PORTFOLIO_EVENT_TYPES,
    *objective.OBJECTIVE_EVENT_TYPES,
    *report.STATUS_REPORT_EVENT_TYPES,
    *scenario.SCENARIO_EVENT_TYPES,
)
"""Every event class of the domain; stored names are unique across aggregates."""


def domain_registry() -> EventRegistry:
    """A fresh registry of every domain event type, to which upcasters can be added."""
    return EventRegistry(EVENT_TYPES)


def program_id_of(event: DomainEvent) -> UUID | None:
    """The program an event concerns, for routing (``<prefix>.<program id>...``); ``None``
    for events about a resource itself (registration, capacity, details), a portfolio or
    an objective (but for its links to programs)."""
    program_id = getattr(event, "program_id", None)
    return program_id if isinstance(program_id, UUID) else None
