"""Events of the schedule network. Each carries the links it concerns in full, so a read
model applies it without looking anything up."""

from __future__ import annotations

from typing import ClassVar, get_args

from programledger.domain.events import DomainEvent
from programledger.domain.schedule.state import ScheduleLink

__all__ = ["SCHEDULE_EVENT_TYPES", "MilestonesLinked", "MilestonesUnlinked", "ScheduleEvent"]


class MilestonesLinked(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "MilestonesLinked"
    schema_version: ClassVar[int] = 1
    links: tuple[ScheduleLink, ...]


class MilestonesUnlinked(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "MilestonesUnlinked"
    schema_version: ClassVar[int] = 1
    links: tuple[ScheduleLink, ...]
    reason: str


ScheduleEvent = MilestonesLinked | MilestonesUnlinked

SCHEDULE_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(ScheduleEvent)
