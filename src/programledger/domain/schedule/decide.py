"""``decide`` for the schedule network: links are refused when they name a milestone
twice, repeat a link, or would close a cycle (:class:`ScheduleCycle`, naming it).

Whether the milestones exist is a rule across streams (their programs'), checked by the
application before deciding."""

from __future__ import annotations

from programledger.domain._checks import Checks
from programledger.domain.errors import AlreadyExists, NotFound, ScheduleCycle
from programledger.domain.schedule.commands import LinkMilestones, ScheduleCommand, UnlinkMilestones
from programledger.domain.schedule.events import MilestonesLinked, MilestonesUnlinked, ScheduleEvent
from programledger.domain.schedule.state import NETWORK_STREAM_ID, ScheduleNetwork, successors_of
from programledger.domain.scheduling import LinkType, find_cycle

__all__ = ["LAG_LIMIT", "LINKS_PER_COMMAND", "decide"]

LINKS_PER_COMMAND = 1000
LAG_LIMIT = 3650
"""Ten years either way: a lag beyond it is a typo, not a plan."""


def decide(state: ScheduleNetwork | None, command: ScheduleCommand) -> list[ScheduleEvent]:
    network = state or ScheduleNetwork()
    match command:
        case LinkMilestones():
            return [_link(network, command)]
        case UnlinkMilestones():
            return [_unlink(network, command)]


def _link(network: ScheduleNetwork, c: LinkMilestones) -> MilestonesLinked:
    checks = Checks()
    checks.integer("links", len(c.links), 1, LINKS_PER_COMMAND)
    for i, link in enumerate(c.links):
        checks.member(f"links[{i}].type", link.type, LinkType)
        checks.integer(f"links[{i}].lag_days", link.lag_days, -LAG_LIMIT, LAG_LIMIT)
    checks.done()
    known = {link.link_id for link in network.links}
    pairs = {
        (link.predecessor.milestone_id, link.successor.milestone_id): link.link_id
        for link in network.links
    }
    following = successors_of(network)
    for i, link in enumerate(c.links):
        if link.link_id in known:
            raise AlreadyExists("schedule link", link.link_id)
        pred, succ = link.predecessor.milestone_id, link.successor.milestone_id
        cycle = find_cycle(following, pred, succ)
        if cycle is not None:
            programs = {link.predecessor.milestone_id: link.predecessor.program_id}
            programs[succ] = link.successor.program_id
            for other in network.links + c.links[:i]:
                programs[other.predecessor.milestone_id] = other.predecessor.program_id
                programs[other.successor.milestone_id] = other.successor.program_id
            raise ScheduleCycle(f"links[{i}]", tuple((programs[m], m) for m in cycle))
        if (pred, succ) in pairs:
            checks.fail(
                f"links[{i}]",
                f"milestone {succ} is already linked after {pred} (link {pairs[pred, succ]})",
            )
            checks.done()
        known.add(link.link_id)
        pairs[pred, succ] = link.link_id
        following.setdefault(pred, []).append(succ)
    return MilestonesLinked(links=c.links)


def _unlink(network: ScheduleNetwork, c: UnlinkMilestones) -> MilestonesUnlinked:
    checks = Checks()
    checks.integer("link_ids", len(c.link_ids), 1, LINKS_PER_COMMAND)
    checks.text("reason", c.reason)
    if len(set(c.link_ids)) != len(c.link_ids):
        checks.fail("link_ids", "names a link more than once")
    checks.done()
    by_id = {link.link_id: link for link in network.links}
    for link_id in c.link_ids:
        if link_id not in by_id:
            raise NotFound("schedule link", link_id, within=NETWORK_STREAM_ID)
    return MilestonesUnlinked(links=tuple(by_id[i] for i in c.link_ids), reason=c.reason)
