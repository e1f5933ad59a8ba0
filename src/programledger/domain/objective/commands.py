"""Commands to the Objective aggregate."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import msgspec

__all__ = [
    "AddKeyResult",
    "CheckInKeyResult",
    "CloseObjective",
    "DefineObjective",
    "LinkObjectiveToProgram",
    "ObjectiveCommand",
    "UnlinkObjectiveFromProgram",
]


class _ObjectiveCommand(msgspec.Struct, frozen=True, kw_only=True):
    objective_id: UUID


class DefineObjective(_ObjectiveCommand, frozen=True, kw_only=True):
    title: str
    owner: str
    starts_on: date
    ends_on: date
    key: str | None = None
    description: str | None = None


class AddKeyResult(_ObjectiveCommand, frozen=True, kw_only=True):
    """A measurable result; its current value starts at the baseline."""

    key_result_id: UUID
    name: str
    unit: str
    baseline: int
    target: int
    confidence: int


class CheckInKeyResult(_ObjectiveCommand, frozen=True, kw_only=True):
    """Records where a key result stands on ``checked_on``; every check-in is kept."""

    key_result_id: UUID
    value: int
    confidence: int
    checked_on: date
    note: str | None = None


class LinkObjectiveToProgram(_ObjectiveCommand, frozen=True, kw_only=True):
    program_id: UUID


class UnlinkObjectiveFromProgram(_ObjectiveCommand, frozen=True, kw_only=True):
    program_id: UUID
    reason: str


class CloseObjective(_ObjectiveCommand, frozen=True, kw_only=True):
    reason: str


ObjectiveCommand = (
    DefineObjective
    | AddKeyResult
    | CheckInKeyResult
    | LinkObjectiveToProgram
    | UnlinkObjectiveFromProgram
    | CloseObjective
)
