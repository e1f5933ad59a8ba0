"""The schedule network's state (one stream, ``schedule-network``): every link between
milestones, of every program.

One stream for the whole network, because a cycle can run through any number of programs:
only a single stream gives a decision a consistent view of all links, and the event
store's per-stream optimistic concurrency then serialises two link commands that would
each be acyclic alone but close a cycle together (the second is decided again on the
first and refused).
"""

from __future__ import annotations

from uuid import UUID

import msgspec

from programledger.domain.scheduling import LinkType

__all__ = [
    "NETWORK_STREAM_ID",
    "MilestoneRef",
    "ScheduleLink",
    "ScheduleNetwork",
    "successors_of",
]

NETWORK_STREAM_ID = "schedule-network"


class MilestoneRef(msgspec.Struct, frozen=True, kw_only=True):
    """A milestone of any program."""

    program_id: UUID
    milestone_id: UUID


class ScheduleLink(msgspec.Struct, frozen=True, kw_only=True):
    """``successor`` cannot finish before ``predecessor`` allows (see
    ``domain.scheduling``); ``lag_days`` are calendar days, negative for a lead."""

    link_id: UUID
    predecessor: MilestoneRef
    successor: MilestoneRef
    type: LinkType = LinkType.FINISH_TO_START
    lag_days: int = 0


class ScheduleNetwork(msgspec.Struct, frozen=True, kw_only=True):
    links: tuple[ScheduleLink, ...] = ()


def successors_of(network: ScheduleNetwork) -> dict[UUID, list[UUID]]:
    """Milestone id -> the milestones linked after it (milestone ids are unique across
    programs, being drawn as UUIDs)."""
    following: dict[UUID, list[UUID]] = {}
    for link in network.links:
        following.setdefault(link.predecessor.milestone_id, []).append(link.successor.milestone_id)
    return following
