"""Schedule arithmetic against hand-worked networks, and against a brute-force longest
path on random DAGs; the schedule network aggregate refusing cycles."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

import pytest
from hypothesis import given as hypothesis_given
from hypothesis import settings
from hypothesis import strategies as st

from programledger.domain.errors import AlreadyExists, NotFound, ScheduleCycle, ValidationError
from programledger.domain.schedule import (
    LinkMilestones,
    MilestoneRef,
    MilestonesLinked,
    MilestonesUnlinked,
    ScheduleLink,
    UnlinkMilestones,
)
from programledger.domain.scheduling import (
    Activity,
    Edge,
    LinkType,
    Network,
    analyse,
    find_cycle,
    forecast,
    milestone_variance,
    what_if,
)
from tests.unit.scenario import given

FS, SS, FF = LinkType.FINISH_TO_START, LinkType.START_TO_START, LinkType.FINISH_TO_FINISH
D0 = date(2027, 3, 1)


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def _network() -> Network[str]:
    """Two programs, PAY (a, b, c, end) and KYC (k1, k2), worked by hand below.

    a: own day 0            b: own day 5, FS from a lag 2, duration 3  -> max(5, 0+2+3)=5
    k1: own day 4           k2: own day 6, FS from k1 lag 0 dur 0      -> 6
    c: own day 1, duration 4: SS from b lag 1 -> 5-3+1+4 = 7; FF from k2 lag 3 -> 9  => 9 (k2)
    end: own day 8: FS from c lag 0 dur 0 -> 9; FS from b lag 1 -> 6              => 9 (c)
    """
    activities = [
        Activity("a", "PAY", day(0)),
        Activity("b", "PAY", day(5), duration=3),
        Activity("c", "PAY", day(1), duration=4),
        Activity("end", "PAY", day(8)),
        Activity("k1", "KYC", day(4)),
        Activity("k2", "KYC", day(6)),
    ]
    edges = [
        Edge("a", "b", FS, 2),
        Edge("b", "c", SS, 1),
        Edge("k1", "k2", FS, 0),
        Edge("k2", "c", FF, 3),
        Edge("c", "end", FS, 0),
        Edge("b", "end", FS, 1),
    ]
    return Network.build(activities, edges)


def test_forecasts_are_the_later_of_own_estimate_and_predecessors_across_programs() -> None:
    timings = forecast(_network())
    assert {k: (t.forecast - D0).days for k, t in timings.items()} == {
        "a": 0,
        "b": 5,
        "c": 9,
        "end": 9,
        "k1": 4,
        "k2": 6,
    }
    assert timings["end"].driven_by == "c"
    assert timings["c"].driven_by == "k2"  # the FF link from the other program binds
    assert timings["k2"].driven_by is None  # its own estimate (6) beats k1 (4)
    assert timings["end"].first_domino == "k2"
    assert timings["b"].driven_by is None


def test_critical_path_and_float_per_program_and_across_programs() -> None:
    pay = analyse(_network(), ["PAY"])
    assert pay.end == "end"
    assert pay.finish == day(9)
    assert pay.critical_path == ("k2", "c", "end")
    floats = {t.key: (t.total_float, t.free_float) for t in pay.timings}
    # late finishes: end 9, c 9, b min(9, 9-(1-3+4)=7, 9-1=8) = 7, a 7-5=2,
    # k2 9-3=6, k1 6
    assert floats == {
        "a": (2, 0),  # a+5=5 = b's own date: no free float, though b has 2 of total
        "b": (2, 2),
        "c": (0, 0),
        "end": (0, 0),
        "k1": (2, 2),
        "k2": (0, 0),
    }
    assert set(pay.critical()) == {"k2", "c", "end"}
    assert set(pay.near_critical(2)) == {"a", "b", "k1"}
    assert pay.near_critical(1) == ()
    kyc = analyse(_network(), ["KYC"])
    assert kyc.end == "k2"
    assert kyc.critical_path == ("k2",)
    assert {t.key for t in kyc.timings} == {"k1", "k2"}  # nothing upstream of KYC


def test_several_predecessors_the_latest_one_drives() -> None:
    network = Network.build(
        [Activity(k, "P", day(0)) for k in ("x", "y", "z", "join")],
        [Edge("x", "join", FS, 3), Edge("y", "join", FS, 7), Edge("z", "join", FS, -2)],
    )
    result = analyse(network)
    assert result.critical_path == ("y", "join")
    assert {t.key: t.total_float for t in result.timings} == {"x": 4, "y": 0, "z": 7, "join": 0}


def test_a_done_milestone_is_fixed_at_its_actual_date() -> None:
    network = Network.build(
        [Activity("p", "P", day(10)), Activity("s", "P", day(2), done=True)],
        [Edge("p", "s", FS, 0)],
    )
    assert forecast(network)["s"].forecast == day(2)


def test_what_if_moves_only_the_successors_it_pushes_and_changes_nothing() -> None:
    network = _network()
    before = forecast(network)
    slips = what_if(network, "k1", 3)
    assert [(s.key, s.days) for s in slips] == [("k1", 3), ("k2", 1), ("c", 1), ("end", 1)]
    assert [(s.key, s.days) for s in what_if(network, "b", 2)] == [("b", 2)]  # free float 2
    assert forecast(network) == before
    with pytest.raises(KeyError):
        what_if(network, "nope", 1)


def test_variance_per_milestone_against_a_baseline() -> None:
    rows = milestone_variance({"a": day(0), "b": day(5)}, {"b": day(9), "c": day(1)})
    assert [(r.key, r.days) for r in rows] == [("a", None), ("b", 4), ("c", None)]


def test_find_cycle_names_the_milestones_around_it() -> None:
    following = {"a": ["b"], "b": ["c"], "c": []}
    assert find_cycle(following, "c", "a") == ["c", "a", "b", "c"]
    assert find_cycle(following, "a", "c") is None
    assert find_cycle(following, "a", "a") == ["a", "a"]


# Brute force: every path, enumerated


def _brute_force(
    activities: list[Activity[int]], edges: list[Edge[int]]
) -> tuple[dict[int, int], dict[int, int]]:
    """Early finish = the longest path ending at each node (paths stop at a done node);
    late finish = the end day minus the longest path leaving it, capped by the end day."""
    by_key = {a.key: a for a in activities}

    def w(e: Edge[int]) -> int:
        p, s = by_key[e.predecessor], by_key[e.successor]
        if e.type is FS:
            return e.lag + s.duration
        if e.type is SS:
            return e.lag - p.duration + s.duration
        return e.lag

    def early(k: int) -> int:
        best = by_key[k].own.toordinal()
        if by_key[k].done:
            return best
        for e in edges:
            if e.successor == k:
                best = max(best, early(e.predecessor) + w(e))
        return best

    finish = {a.key: early(a.key) for a in activities}
    end = max(finish.values())

    def longest_out(k: int) -> int:
        return max([0, *(w(e) + longest_out(e.successor) for e in edges if e.predecessor == k)])

    return finish, {k: end - longest_out(k) - finish[k] for k in finish}


@st.composite
def _dags(draw: st.DrawFn) -> tuple[list[Activity[int]], list[Edge[int]]]:
    n = draw(st.integers(1, 9))
    activities = [
        Activity(
            i,
            "P",
            day(draw(st.integers(0, 30))),
            duration=draw(st.integers(0, 6)),
            done=draw(st.booleans()) and draw(st.booleans()),
        )
        for i in range(n)
    ]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    edges = [
        Edge(i, j, draw(st.sampled_from(list(LinkType))), draw(st.integers(-5, 10)))
        for i, j in chosen
    ]
    shuffled = draw(st.permutations(activities))
    return list(shuffled), edges


@settings(max_examples=300, deadline=None)
@hypothesis_given(_dags())
def test_forecasts_and_float_equal_the_brute_force_longest_paths(
    dag: tuple[list[Activity[int]], list[Edge[int]]],
) -> None:
    activities, edges = dag
    result = analyse(Network.build(activities, edges))
    finish, total = _brute_force(activities, edges)
    assert {t.key: t.forecast.toordinal() for t in result.timings} == finish
    assert {t.key: t.total_float for t in result.timings} == total
    assert result.finish is not None
    assert result.finish.toordinal() == max(finish.values())
    path = result.critical_path
    assert path[-1] == result.end
    assert all(total[k] <= 0 for k in path)
    # Rows arrive in any order: the answer, ties and order included, is the same.
    again = analyse(Network.build(reversed(activities), reversed(edges)))
    assert again == result


# The schedule network aggregate

P1 = UUID("00000000-0000-4000-8000-000000000001")
P2 = UUID("00000000-0000-4000-8000-000000000002")
M = [UUID(f"00000000-0000-4000-8000-0000000001{i:02d}") for i in range(6)]
L = [UUID(f"00000000-0000-4000-8000-0000000002{i:02d}") for i in range(6)]


def link(i: int, pred: int, succ: int, **changes: object) -> ScheduleLink:
    return ScheduleLink(
        link_id=L[i],
        predecessor=MilestoneRef(program_id=P1 if pred < 3 else P2, milestone_id=M[pred]),
        successor=MilestoneRef(program_id=P1 if succ < 3 else P2, milestone_id=M[succ]),
        **changes,  # type: ignore[arg-type]
    )


def test_links_across_programs_are_recorded() -> None:
    links = (link(0, 0, 3, type=SS, lag_days=5), link(1, 3, 1))
    state = given().when(LinkMilestones(links=links)).then(MilestonesLinked(links=links))
    assert state.links == links


def test_a_link_closing_a_cycle_across_programs_is_refused_naming_it() -> None:
    history = [MilestonesLinked(links=(link(0, 0, 3), link(1, 3, 1)))]
    error = given(*history).when(LinkMilestones(links=(link(2, 1, 0),))).raises(ScheduleCycle)
    assert error.cycle == ((P1, M[1]), (P1, M[0]), (P2, M[3]), (P1, M[1]))
    assert error.issues[0].path == "links[0]"
    assert str(M[3]) in error.message
    assert str(P2) in error.message


def test_a_cycle_within_one_command_is_refused() -> None:
    outcome = given().when(LinkMilestones(links=(link(0, 0, 1), link(1, 1, 2), link(2, 2, 0))))
    assert outcome.raises(ScheduleCycle).issues[0].path == "links[2]"
    given().when(LinkMilestones(links=(link(0, 4, 4),))).raises(ScheduleCycle)


def test_bad_links_are_refused() -> None:
    history = [MilestonesLinked(links=(link(0, 0, 1),))]
    given(*history).when(LinkMilestones(links=(link(0, 1, 2),))).raises(AlreadyExists)
    error = given(*history).when(LinkMilestones(links=(link(1, 0, 1),))).raises(ValidationError)
    assert "already linked" in error.message
    error = (
        given().when(LinkMilestones(links=(link(1, 0, 1, lag_days=4000),))).raises(ValidationError)
    )
    assert error.issues[0].path == "links[0].lag_days"
    given().when(LinkMilestones(links=())).raises(ValidationError)


def test_unlinking_records_the_links_removed() -> None:
    history = [MilestonesLinked(links=(link(0, 0, 1), link(1, 1, 2)))]
    state = (
        given(*history)
        .when(UnlinkMilestones(link_ids=(L[0],), reason="descoped"))
        .then(MilestonesUnlinked(links=(link(0, 0, 1),), reason="descoped"))
    )
    assert state.links == (link(1, 1, 2),)
    given(*history).when(UnlinkMilestones(link_ids=(L[5],), reason="x")).raises(NotFound)
