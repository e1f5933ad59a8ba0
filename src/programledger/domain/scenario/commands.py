"""Commands to a capacity scenario."""

from __future__ import annotations

from datetime import date
from typing import ClassVar
from uuid import UUID

import msgspec

from programledger.domain.scenario.state import CommitOutcome

__all__ = [
    "AddScenarioAllocation",
    "AddScenarioCapacityChange",
    "CommitScenario",
    "CreateScenario",
    "DiscardScenario",
    "RemoveScenarioChange",
    "ScenarioCommand",
]


class _ScenarioCommand(msgspec.Struct, frozen=True, kw_only=True):
    scenario_id: UUID


class CreateScenario(_ScenarioCommand, frozen=True, kw_only=True):
    """Opens an empty what-if."""

    name: str
    description: str | None = None


class AddScenarioAllocation(_ScenarioCommand, frozen=True, kw_only=True):
    """Work that would be allocated and confirmed (``change_id`` becomes the allocation's
    id when committed)."""

    change_id: UUID
    resource_key: str
    program_id: UUID
    start_date: date
    end_date: date
    percentage: int
    workstream_id: UUID | None = None


class AddScenarioCapacityChange(_ScenarioCommand, frozen=True, kw_only=True):
    """A capacity that would apply from ``effective_from`` (all time when left out)."""

    change_id: UUID
    resource_key: str
    capacity: int
    reason: str
    effective_from: date | None = None


class RemoveScenarioChange(_ScenarioCommand, frozen=True, kw_only=True):
    change_id: UUID


class CommitScenario(_ScenarioCommand, frozen=True, kw_only=True):
    """Sends every change as real commands, each decided by its resource at that moment,
    and records what each did."""

    filled_by_application: ClassVar[tuple[str, ...]] = ("outcomes",)
    override_reason: str | None = None
    """Passed to each confirmation and capacity change: accepts over-allocating them."""
    outcomes: tuple[CommitOutcome, ...] = ()
    """What the real commands did, set by the application once it sent them."""


class DiscardScenario(_ScenarioCommand, frozen=True, kw_only=True):
    reason: str


ScenarioCommand = (
    CreateScenario
    | AddScenarioAllocation
    | AddScenarioCapacityChange
    | RemoveScenarioChange
    | CommitScenario
    | DiscardScenario
)
