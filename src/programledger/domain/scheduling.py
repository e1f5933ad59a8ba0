"""Schedule arithmetic over milestones and their links: forecasts, float, the critical
path, "what slips if", and variance against baselines. Pure functions, no I/O: the read
side feeds them the network as of a position, so every answer is reproducible from the
events up to it.

Every link reduces to one constraint between two finish dates (a milestone is the finish
of the work leading to it, which takes ``duration`` days)::

    FINISH_TO_START   successor.finish >= predecessor.finish + lag + successor.duration
    START_TO_START    successor.finish >= predecessor.finish - predecessor.duration
                                          + lag + successor.duration
    FINISH_TO_FINISH  successor.finish >= predecessor.finish + lag

so a forecast is a longest path over a DAG whose edges weigh :func:`weight` days, started
from each milestone's own estimate. Days are calendar days (see docs/domain.md).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Generic, NamedTuple, TypeVar

from programledger.domain.errors import InconsistentHistory

__all__ = [
    "Activity",
    "Analysis",
    "Edge",
    "LinkType",
    "MilestoneVariance",
    "Network",
    "Slip",
    "Timing",
    "analyse",
    "find_cycle",
    "forecast",
    "milestone_variance",
    "weight",
    "what_if",
]

K = TypeVar("K", bound=Hashable)


class LinkType(enum.StrEnum):
    FINISH_TO_START = "FINISH_TO_START"
    START_TO_START = "START_TO_START"
    FINISH_TO_FINISH = "FINISH_TO_FINISH"


class Activity(NamedTuple, Generic[K]):
    """A milestone as the arithmetic sees it: its own estimate (the forecast its program
    set, or the actual date once done), the days of work leading to it, and whether it is
    done (a done milestone's date is a fact no predecessor moves)."""

    key: K
    group: Hashable
    """The program it belongs to."""
    own: date
    duration: int = 0
    done: bool = False


class Edge(NamedTuple, Generic[K]):
    predecessor: K
    successor: K
    type: LinkType
    lag: int


def weight(
    edge_type: LinkType, lag: int, predecessor_duration: int, successor_duration: int
) -> int:
    """Days the successor's finish lies at least after the predecessor's finish."""
    if edge_type is LinkType.FINISH_TO_START:
        return lag + successor_duration
    if edge_type is LinkType.START_TO_START:
        return lag - predecessor_duration + successor_duration
    return lag


def find_cycle(successors: Mapping[K, Iterable[K]], predecessor: K, successor: K) -> list[K] | None:
    """The cycle a new link ``predecessor -> successor`` would close, as the milestones
    around it from ``predecessor`` back to itself; ``None`` when it closes none.

    A cycle exists exactly when ``successor`` already reaches ``predecessor``: a
    breadth-first search from ``successor`` finds the shortest such path.
    """
    if predecessor == successor:
        return [predecessor, predecessor]
    parent: dict[K, K] = {successor: successor}
    frontier = [successor]
    while frontier:
        following: list[K] = []
        for node in frontier:
            for nxt in successors.get(node, ()):
                if nxt in parent:
                    continue
                parent[nxt] = node
                if nxt == predecessor:
                    path = [nxt]
                    while path[-1] != successor:
                        path.append(parent[path[-1]])
                    return [predecessor, *reversed(path)]
                following.append(nxt)
        frontier = following
    return None


@dataclass(frozen=True, slots=True, eq=False)
class Network(Generic[K]):
    """Activities and weighted edges indexed for the passes (by position in
    ``activities``), with a topological ``order`` of those positions.

    Lists rather than nested tuples, and positions rather than keys: a pass over 5,000
    milestones and 20,000 links is a few tight loops over integers (bench/schedule.py).
    Nothing mutates them after :meth:`build`.
    """

    activities: Sequence[Activity[K]]
    index: Mapping[K, int]
    order: Sequence[int]
    incoming: Sequence[Sequence[tuple[int, int]]]
    """Per activity: (predecessor position, weight)."""
    outgoing: Sequence[Sequence[tuple[int, int]]]

    @classmethod
    def build(cls, activities: Iterable[Activity[K]], edges: Iterable[Edge[K]]) -> Network[K]:
        """Edges naming an unknown milestone are left out: a read as of a moment may see a
        link to a milestone whose plan it does not (a bulk import's order).

        The answer never depends on the order rows arrive in: activities are placed by
        their key's text and each one's links by position, so the topological order, and
        with it every tie (which of two equal predecessors drives, which of two equally
        late milestones ends the program), is the same for the same network.
        """
        given = sorted(activities, key=lambda a: str(a.key))
        position = {a.key: i for i, a in enumerate(given)}
        durations = [a.duration for a in given]
        ins: list[list[tuple[int, int]]] = [[] for _ in given]
        outs: list[list[tuple[int, int]]] = [[] for _ in given]
        get = position.get
        fs, ss = LinkType.FINISH_TO_START, LinkType.START_TO_START
        for pred, succ, edge_type, lag in edges:
            p, s = get(pred), get(succ)
            if p is None or s is None:
                continue
            if edge_type is fs:
                w = lag + durations[s]
            elif edge_type is ss:
                w = lag - durations[p] + durations[s]
            else:
                w = lag
            ins[s].append((p, w))
            outs[p].append((s, w))
        for links in (*ins, *outs):
            links.sort()
        remaining = [len(x) for x in ins]
        order = [i for i, n in enumerate(remaining) if n == 0]
        for i in order:
            for s, _ in outs[i]:
                remaining[s] -= 1
                if not remaining[s]:
                    order.append(s)
        if len(order) != len(given):
            # decide refuses such links: this history is not one it can have produced
            raise InconsistentHistory("the schedule network has a cycle")
        return cls(activities=given, index=position, order=order, incoming=ins, outgoing=outs)


def _forward(
    network: Network[K], override: tuple[int, int] | None = None
) -> tuple[list[int], list[int]]:
    """Finish days (ordinals) and each one's driving predecessor (-1: its own estimate),
    by position."""
    acts = network.activities
    incoming = network.incoming
    finish = [a.own.toordinal() for a in acts]
    if override is not None:
        finish[override[0]] = override[1]
    driver = [-1] * len(acts)
    for i in network.order:
        if acts[i].done:
            continue
        best = finish[i]
        by = -1
        for p, w in incoming[i]:
            candidate = finish[p] + w
            if candidate > best:
                best, by = candidate, p
        finish[i] = best
        driver[i] = by
    return finish, driver


class Timing(NamedTuple, Generic[K]):
    """One milestone in an analysis."""

    key: K
    group: Hashable
    own: date
    forecast: date
    """The later of its own estimate and what its predecessors allow."""
    driven_by: K | None
    """The predecessor whose link sets the forecast; ``None``: its own estimate does."""
    first_domino: K
    """Where the chain of drivers starts: the milestone whose own estimate moved this one
    (itself when nothing upstream drives it)."""
    total_float: int | None
    """Days it can slip without moving the end date; ``None`` outside the analysed scope."""
    free_float: int | None
    """Days it can slip without moving any successor in scope."""


def forecast(network: Network[K]) -> dict[K, Timing[K]]:
    """Every milestone's forecast and why, with no float (no scope asked for)."""
    finish, driver = _forward(network)
    return {t.key: t for t in _timings(network, finish, driver, None, None, None)}


def _timings(
    network: Network[K],
    finish: Sequence[int],
    driver: Sequence[int],
    total: Sequence[int] | None,
    free: Sequence[int] | None,
    in_scope: Sequence[bool] | None,
) -> list[Timing[K]]:
    """In topological order; only those ``in_scope`` when given."""
    acts = network.activities
    roots = list(range(len(acts)))
    for i in network.order:
        if driver[i] >= 0:
            roots[i] = roots[driver[i]]
    fromordinal = date.fromordinal
    return [
        Timing(
            acts[i].key,
            acts[i].group,
            acts[i].own,
            fromordinal(finish[i]),
            None if driver[i] < 0 else acts[driver[i]].key,
            acts[roots[i]].key,
            None if total is None else total[i],
            None if free is None else free[i],
        )
        for i in network.order
        if in_scope is None or in_scope[i]
    ]


class Analysis(NamedTuple, Generic[K]):
    """The schedule of a set of programs: the milestones they hold and every milestone
    upstream of them (in any program), with float towards the set's end milestone."""

    end: K | None
    """The set's latest-forecast milestone; ``None`` when the set has no milestone."""
    finish: date | None
    critical_path: tuple[K, ...]
    """From the first milestone of the driving chain to ``end``."""
    timings: tuple[Timing[K], ...]
    """Every milestone in scope, in topological order."""

    def near_critical(self, threshold: int) -> tuple[K, ...]:
        """Milestones with a total float above zero and at most ``threshold`` days."""
        return tuple(
            t.key
            for t in self.timings
            if t.total_float is not None and 0 < t.total_float <= threshold
        )

    def critical(self) -> tuple[K, ...]:
        """Milestones with no float (or negative float: already late for the end date)."""
        return tuple(
            t.key for t in self.timings if t.total_float is not None and t.total_float <= 0
        )


def analyse(network: Network[K], groups: Iterable[Hashable] | None = None) -> Analysis[K]:
    """Critical path and total and free float for the milestones of ``groups`` (every
    program when ``None``), towards the latest of their forecasts.

    Backward pass: every milestone in scope must finish by the end date (the late finish
    is capped by it) and early enough for each successor in scope; total float is late
    minus early finish. Free float is the days until the earliest successor (or the end)
    would move.
    """
    finish, driver = _forward(network)
    acts = network.activities
    order = network.order
    wanted = None if groups is None else set(groups)
    members = [i for i in order if wanted is None or acts[i].group in wanted]
    if not members:
        return Analysis(None, None, (), ())
    in_scope = [wanted is None] * len(acts)
    if wanted is not None:
        for i in members:
            in_scope[i] = True
        for i in reversed(order):
            if in_scope[i]:
                for p, _ in network.incoming[i]:
                    in_scope[p] = True
    end = members[0]
    for i in members:  # the latest finish; the last in order among equals
        if finish[i] >= finish[end]:
            end = i
    end_day = finish[end]
    late = [end_day] * len(acts)
    total = [0] * len(acts)
    free = [0] * len(acts)
    outgoing = network.outgoing
    for i in reversed(order):
        if not in_scope[i]:
            continue
        own = finish[i]
        lf = end_day
        ff = end_day - own
        for s, w in outgoing[i]:
            if in_scope[s]:
                if late[s] - w < lf:
                    lf = late[s] - w
                if finish[s] - w - own < ff:
                    ff = finish[s] - w - own
        late[i] = lf
        total[i] = lf - own
        free[i] = ff
    path = [end]
    while driver[path[-1]] >= 0:
        path.append(driver[path[-1]])
    return Analysis(
        end=acts[end].key,
        finish=date.fromordinal(end_day),
        critical_path=tuple(acts[i].key for i in reversed(path)),
        timings=tuple(_timings(network, finish, driver, total, free, in_scope)),
    )


class Slip(NamedTuple, Generic[K]):
    key: K
    group: Hashable
    before: date
    after: date

    @property
    def days(self) -> int:
        return (self.after - self.before).days


def what_if(network: Network[K], key: K, days: int) -> list[Slip[K]]:
    """Every milestone whose forecast would move if ``key``'s forecast slipped ``days``
    days (in topological order, ``key`` first); nothing is changed or recorded."""
    start = network.index.get(key)
    if start is None:
        raise KeyError(key)
    finish, _ = _forward(network)
    moved, _ = _forward(network, (start, finish[start] + days))
    acts = network.activities
    return [
        Slip(acts[i].key, acts[i].group, date.fromordinal(finish[i]), date.fromordinal(moved[i]))
        for i in network.order
        if moved[i] != finish[i]
    ]


class MilestoneVariance(NamedTuple, Generic[K]):
    key: K
    baseline: date | None
    """``None``: the milestone is not in the baseline (planned after it was set)."""
    compared: date | None
    """The forecast, or the date in the other baseline."""

    @property
    def days(self) -> int | None:
        if self.baseline is None or self.compared is None:
            return None
        return (self.compared - self.baseline).days


def milestone_variance(
    baseline: Mapping[K, date], compared: Mapping[K, date]
) -> list[MilestoneVariance[K]]:
    """Per milestone: ``compared`` (a plan or a later baseline) against ``baseline``, in
    the baseline's order and then the milestones only ``compared`` has."""
    keys = [*baseline, *(k for k in compared if k not in baseline)]
    return [MilestoneVariance(k, baseline.get(k), compared.get(k)) for k in keys]
