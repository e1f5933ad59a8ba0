"""Events of the Objective aggregate. Link events carry ``program_id``, so they reach
the program's subscribers; the others concern the objective alone."""

from __future__ import annotations

from datetime import date
from typing import ClassVar, get_args
from uuid import UUID

from programledger.domain.events import DomainEvent

__all__ = [
    "OBJECTIVE_EVENT_TYPES",
    "KeyResultAdded",
    "KeyResultCheckedIn",
    "ObjectiveClosed",
    "ObjectiveDefined",
    "ObjectiveEvent",
    "ObjectiveLinkedToProgram",
    "ObjectiveUnlinkedFromProgram",
]


class _ObjectiveEvent(DomainEvent, frozen=True, kw_only=True):
    objective_id: UUID


class ObjectiveDefined(_ObjectiveEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ObjectiveDefined"
    schema_version: ClassVar[int] = 1
    title: str
    owner: str
    starts_on: date
    ends_on: date
    key: str | None = None
    description: str | None = None


class KeyResultAdded(_ObjectiveEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "KeyResultAdded"
    schema_version: ClassVar[int] = 1
    key_result_id: UUID
    name: str
    unit: str
    baseline: int
    target: int
    confidence: int


class KeyResultCheckedIn(_ObjectiveEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "KeyResultCheckedIn"
    schema_version: ClassVar[int] = 1
    key_result_id: UUID
    value: int
    confidence: int
    checked_on: date
    note: str | None = None


class ObjectiveLinkedToProgram(_ObjectiveEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ObjectiveLinkedToProgram"
    schema_version: ClassVar[int] = 1
    program_id: UUID


class ObjectiveUnlinkedFromProgram(_ObjectiveEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ObjectiveUnlinkedFromProgram"
    schema_version: ClassVar[int] = 1
    program_id: UUID
    reason: str


class ObjectiveClosed(_ObjectiveEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ObjectiveClosed"
    schema_version: ClassVar[int] = 1
    reason: str


ObjectiveEvent = (
    ObjectiveDefined
    | KeyResultAdded
    | KeyResultCheckedIn
    | ObjectiveLinkedToProgram
    | ObjectiveUnlinkedFromProgram
    | ObjectiveClosed
)

OBJECTIVE_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(ObjectiveEvent)
