"""A capacity what-if (stream ``scenario-<uuid>``): hypothetical allocations and capacity
changes, evaluated against the real resources without changing them, and committed as
real commands in one step.

A stream of its own rather than state outside the ledger: a scenario is planning that
people discuss and decide on, so who proposed which change and when is worth the same
record as everything else, and as-of, the audit trail, the NATS feed and the read-model
machinery come with it. Nothing in it touches a resource: its events are handled only by
the ``scenarios`` read model, so the real allocations and utilisation stay as they are
until the scenario is committed, and then each change goes through the Resource
aggregate's own commands and rules.
"""

from __future__ import annotations

import enum
from datetime import date
from uuid import UUID

import msgspec

__all__ = [
    "CommitOutcome",
    "HypotheticalAllocation",
    "HypotheticalCapacity",
    "Scenario",
    "ScenarioStatus",
    "scenario_stream_id",
]


class ScenarioStatus(enum.StrEnum):
    OPEN = "OPEN"
    """Changes can be added, removed and evaluated."""
    COMMITTED = "COMMITTED"
    """Its changes were sent as real commands; final."""
    DISCARDED = "DISCARDED"
    """Given up; final."""


class HypotheticalAllocation(msgspec.Struct, frozen=True, kw_only=True):
    """Work that would be allocated and confirmed; committed, ``change_id`` becomes the
    allocation's id."""

    change_id: UUID
    resource_key: str
    program_id: UUID
    start_date: date
    end_date: date
    percentage: int
    workstream_id: UUID | None = None


class HypotheticalCapacity(msgspec.Struct, frozen=True, kw_only=True):
    """A capacity that would apply from ``effective_from`` (all time when ``None``)."""

    change_id: UUID
    resource_key: str
    capacity: int
    reason: str
    effective_from: date | None = None


class CommitOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one real command sent for a change did: accepted (its stream and the position
    of its last event) or refused (the error's code and message)."""

    change_id: UUID
    command: str
    """The command's name: ``ChangeCapacity``, ``ProposeAllocation``, ``ConfirmAllocation``."""
    accepted: bool
    stream_id: str | None = None
    position: int | None = None
    error_code: str | None = None
    message: str | None = None


class Scenario(msgspec.Struct, frozen=True, kw_only=True):
    scenario_id: UUID
    name: str
    description: str | None
    status: ScenarioStatus
    allocations: tuple[HypotheticalAllocation, ...] = ()
    capacity_changes: tuple[HypotheticalCapacity, ...] = ()
    outcomes: tuple[CommitOutcome, ...] = ()


def scenario_stream_id(scenario_id: UUID) -> str:
    return f"scenario-{scenario_id}"
