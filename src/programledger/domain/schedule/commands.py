"""Commands to the schedule network: link milestones (in a batch, as a schedule is laid
out or imported) and remove links."""

from __future__ import annotations

from uuid import UUID

import msgspec

from programledger.domain.schedule.state import ScheduleLink

__all__ = ["LinkMilestones", "ScheduleCommand", "UnlinkMilestones"]


class LinkMilestones(msgspec.Struct, frozen=True, kw_only=True):
    """Adds ``links`` (ids chosen by the caller), all or none."""

    links: tuple[ScheduleLink, ...]


class UnlinkMilestones(msgspec.Struct, frozen=True, kw_only=True):
    link_ids: tuple[UUID, ...]
    reason: str


ScheduleCommand = LinkMilestones | UnlinkMilestones
