"""``evolve`` for the schedule network."""

from __future__ import annotations

from collections.abc import Iterable

from programledger.domain.errors import InconsistentHistory
from programledger.domain.events import replay
from programledger.domain.schedule.events import MilestonesLinked, MilestonesUnlinked, ScheduleEvent
from programledger.domain.schedule.state import ScheduleNetwork

__all__ = ["evolve", "fold"]


def evolve(state: ScheduleNetwork | None, event: ScheduleEvent) -> ScheduleNetwork:
    network = state or ScheduleNetwork()
    match event:
        case MilestonesLinked():
            return ScheduleNetwork(links=(*network.links, *event.links))
        case MilestonesUnlinked():
            gone = {link.link_id for link in event.links}
            kept = tuple(link for link in network.links if link.link_id not in gone)
            if len(kept) != len(network.links) - len(gone):
                raise InconsistentHistory("MilestonesUnlinked names a link never added")
            return ScheduleNetwork(links=kept)


def fold(events: Iterable[ScheduleEvent]) -> ScheduleNetwork | None:
    return replay(evolve, events)
