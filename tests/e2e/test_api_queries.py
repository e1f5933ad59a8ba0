"""Reading through the API the way a frontend and an auditor do, with the relay and the
projection runners filling the read models as in production.

A write with ``waitForProjections`` is followed by reads that must show it
(read-your-writes); looking back in time is for auditors only; and a page of programs
with their nested lists costs the same SQL statements for one program as for three.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from programledger.api import Role
from tests.e2e.conftest import Api, ApiFactory, new_id, program_input, resource_input
from tests.support.projection_process import LiveSystem
from tests.support.statements import counting_statements
from tests.support.tamper import tamper


def _waiting_api(api_with: ApiFactory) -> contextlib.AbstractAsyncContextManager[Api]:
    """The app, with mutations able to wait for the read models (``waitForProjections``)."""
    return api_with(watch=True)


@pytest_asyncio.fixture
async def reader(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[Api]:
    async with (
        _waiting_api(api_with) as api,
        LiveSystem(api.store, pg_url, nats_url, subject_prefix),
    ):
        yield api


async def _query(
    api: Api,
    query: str,
    variables: dict[str, Any] | None = None,
    *roles: Role,
    after: int | None = None,
) -> dict[str, Any]:
    """The query's data, read once the read models it reads have reached ``after``."""
    headers = api.auth(*(roles or (Role.VIEWER,)))
    if after is not None:
        headers["Programledger-Min-Position"] = str(after)
    response = await api.post(query, variables, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def _refused(api: Api, query: str, *roles: Role) -> None:
    response = await api.post(query, headers=api.auth(*roles))
    body = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body


async def _plan_program(api: Api, *, milestones: int = 2, wait: bool = True) -> dict[str, str]:
    """A proposed and activated program with milestones and one assessed risk; with
    ``wait``, every read model they touch has caught up (a command waits only for the read
    models its own events touch, so the last milestone waits for the milestones')."""
    program, risk = new_id(), new_id()
    await api.accepted("proposeProgram", program_input(program))
    await api.accepted("activateProgram", {"programId": program})
    for n in range(milestones):
        await api.accepted(
            "planMilestone",
            {
                "programId": program,
                "milestoneId": new_id(),
                "name": f"Milestone {n}",
                "dueDate": f"2027-0{n + 3}-30",
                "waitForProjections": wait and n == milestones - 1,
            },
        )
    await api.accepted(
        "identifyRisk",
        {
            "riskId": risk,
            "programId": program,
            "title": "Card vendor is late",
            "category": "VENDOR",
            "probability": 3,
            "impact": 4,
            "owner": "Tia",
        },
    )
    done = await api.accepted(
        "assessRisk",
        {"riskId": risk, "probability": 4, "impact": 5, "waitForProjections": wait},
    )
    if wait:
        assert done["projectionsCaughtUp"] is True
    return {"program": program, "risk": risk, "position": str(done["position"])}


def _allocation(program: str, percentage: int, start: str, end: str) -> dict[str, Any]:
    return {
        "resourceKey": "alice.martin",
        "allocationId": new_id(),
        "programId": program,
        "percentage": percentage,
        "startDate": start,
        "endDate": end,
    }


DASHBOARD = """
query Dashboard($id: ID!) {
  program(id: $id) {
    code name status openRisks openRisksCritical nextMilestoneName
    budgetPlanned { amountMinor currency }
    risks { riskId score band probability impact reviewOverdue }
    milestones { name forecastDate slipDays status }
    allocations { resourceKey percentage status }
  }
  riskHeatmap(programId: $id) { total cells { probability impact count } }
  programs(first: 10) { totalCount pageInfo { hasNextPage endCursor } nodes { programId } }
  utilisation(from: "2027-04-01", to: "2027-04-30", resourceKey: "alice.martin") {
    weeks { totalCount nodes { weekStart confirmed overAllocated } }
    overAllocated { weekStart confirmed capacity programIds }
  }
}
"""


async def test_a_dashboard_shows_the_program_as_just_planned(reader: Api) -> None:
    ids = await _plan_program(reader)
    program = ids["program"]
    await reader.accepted("registerResource", resource_input("alice.martin"))
    first = _allocation(program, 60, "2027-04-01", "2027-04-30")
    second = _allocation(program, 50, "2027-04-01", "2027-04-30")
    for allocation in (first, second):
        await reader.accepted("proposeAllocation", allocation)
    await reader.accepted(
        "confirmAllocation", {"resourceKey": "alice.martin", "allocationId": first["allocationId"]}
    )
    confirmed = await reader.accepted(
        "confirmAllocation",
        {
            "resourceKey": "alice.martin",
            "allocationId": second["allocationId"],
            "overrideReason": "launch crunch",
            "waitForProjections": True,
        },
    )
    assert confirmed["projectionsCaughtUp"] is True

    data = await _query(reader, DASHBOARD, {"id": program})

    shown = data["program"]
    assert (shown["status"], shown["openRisks"], shown["openRisksCritical"]) == ("ACTIVE", 1, 1)
    assert shown["nextMilestoneName"] == "Milestone 0"
    assert shown["risks"] == [
        {
            "riskId": ids["risk"],
            "score": 20,
            "band": "CRITICAL",
            "probability": 4,
            "impact": 5,
            "reviewOverdue": False,
        }
    ]
    assert [m["name"] for m in shown["milestones"]] == ["Milestone 0", "Milestone 1"]
    assert sorted(a["percentage"] for a in shown["allocations"]) == [50, 60]
    assert {a["status"] for a in shown["allocations"]} == {"CONFIRMED"}
    heat = data["riskHeatmap"]
    assert heat["total"] == 1
    assert [c for c in heat["cells"] if c["count"]] == [{"probability": 4, "impact": 5, "count": 1}]
    assert len(heat["cells"]) == 25
    assert data["programs"]["totalCount"] == 1
    assert data["programs"]["pageInfo"]["hasNextPage"] is False
    assert data["programs"]["nodes"] == [{"programId": program}]
    utilisation = data["utilisation"]
    assert utilisation["weeks"]["totalCount"] >= 4
    assert utilisation["overAllocated"], utilisation
    full_week = {"weekStart": "2027-04-05", "confirmed": 110.0, "capacity": 100.0}
    assert {**full_week, "programIds": [program]} in utilisation["overAllocated"]
    assert all(w["programIds"] == [program] for w in utilisation["overAllocated"])


async def test_programs_page_with_cursors_and_filters(reader: Api) -> None:
    for _ in range(3):
        await _plan_program(reader, milestones=0)
    query = """query Page($after: String) {
      programs(first: 2, after: $after, orderBy: CODE) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { code } }
      }
      risks(filter: {minScore: 20, band: [CRITICAL]}) { totalCount }
      none: risks(filter: {minScore: 21}) { totalCount }
    }"""
    first = await _query(reader, query)
    page = first["programs"]
    assert (page["totalCount"], page["pageInfo"]["hasNextPage"]) == (3, True)
    assert (first["risks"]["totalCount"], first["none"]["totalCount"]) == (3, 0)
    rest = await _query(reader, query, {"after": page["pageInfo"]["endCursor"]})
    codes = [e["node"]["code"] for e in page["edges"] + rest["programs"]["edges"]]
    assert codes == sorted(codes)
    assert len(set(codes)) == 3
    assert rest["programs"]["pageInfo"]["hasNextPage"] is False
    # Every edge has its own cursor: resuming after the first edge of the first page
    # gives the rest, the page's second item first.
    edges = page["edges"]
    assert edges[-1]["cursor"] == page["pageInfo"]["endCursor"]
    assert edges[0]["cursor"] != edges[1]["cursor"]
    after_first = await _query(reader, query, {"after": edges[0]["cursor"]})
    assert [e["node"]["code"] for e in after_first["programs"]["edges"]] == codes[1:3]

    # Backward: the last two, then the one before them, in the list's order.
    back = """query Back($before: String) {
      programs(last: 2, before: $before, orderBy: CODE) {
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nodes { code }
      }
    }"""
    tail = (await _query(reader, back))["programs"]
    assert [n["code"] for n in tail["nodes"]] == codes[1:3]
    assert (tail["pageInfo"]["hasPreviousPage"], tail["pageInfo"]["hasNextPage"]) == (True, False)
    head = (await _query(reader, back, {"before": tail["pageInfo"]["startCursor"]}))["programs"]
    assert [n["code"] for n in head["nodes"]] == codes[:1]
    assert (head["pageInfo"]["hasPreviousPage"], head["pageInfo"]["hasNextPage"]) == (False, True)
    typo = await reader.post("{ risks(filter: {band: [CRITCAL]}) { totalCount } }")
    assert [e["extensions"]["code"] for e in typo.json()["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
    both_ways = await reader.post("{ programs(first: 1, last: 1) { totalCount } }")
    assert [e["extensions"]["code"] for e in both_ways.json()["errors"]] == ["BAD_USER_INPUT"]

    bad_cursor = await reader.post('{ programs(after: "nonsense") { totalCount } }')
    assert [e["extensions"]["code"] for e in bad_cursor.json()["errors"]] == ["BAD_USER_INPUT"]
    too_many = await reader.post("{ programs(first: 201) { totalCount } }")
    assert "errors" in too_many.json()


AS_OF_READS = {
    "asOfPosition": """query($id: ID!, $at: SafeInt) {
      program(id: $id, asOfPosition: $at) { name status }
      programs(asOfPosition: $at) { totalCount asOfPosition }
    }""",
    "asOf": """query($id: ID!, $at: DateTime) {
      program(id: $id, asOf: $at) { name status }
      programs(asOf: $at) { totalCount asOfPosition }
    }""",
}


@pytest.mark.parametrize("argument", AS_OF_READS)
async def test_a_read_as_of_a_mutation_shows_it_at_once(reader: Api, argument: str) -> None:
    """What docs/api.md suggests: a mutation's ``position`` read back at once as
    ``asOfPosition``, or the moment after it as ``asOf``. Read before the read models had
    it, it showed the state before the mutation under the mutation's position, and a read
    a moment later another state."""
    as_of = AS_OF_READS[argument]
    for proposed_before in range(5):
        program = new_id()
        proposed = await reader.accepted("proposeProgram", program_input(program))
        at = proposed["position"] if argument == "asOfPosition" else datetime.now(UTC).isoformat()
        read = await _query(reader, as_of, {"id": program, "at": at})
        assert read["program"] == {"name": "Payments platform", "status": "PROPOSED"}
        assert read["programs"] == {
            "totalCount": proposed_before + 1,
            "asOfPosition": proposed["position"],
        }
        activated = await reader.accepted("activateProgram", {"programId": program})
        then = await _query(reader, as_of, {"id": program, "at": at})
        assert then == read, "a read as of a moment gives the same answer every time"
    now = await _query(
        reader,
        AS_OF_READS["asOfPosition"],
        {"id": program, "at": None},
        after=activated["position"],
    )
    assert now["program"]["status"] == "ACTIVE"


async def test_an_auditor_sees_what_changed_when(reader: Api) -> None:
    ids = await _plan_program(reader)
    risk = ids["risk"]
    trail = await _query(
        reader,
        """query Trail($stream: String!) {
          auditTrail(filter: {streamId: $stream}, newestFirst: false) {
            totalCount
            nodes { version eventType actor position changes { path before after } }
          }
        }""",
        {"stream": f"risk-{risk}"},
        Role.AUDITOR,
    )
    entries = trail["auditTrail"]["nodes"]
    assert [e["eventType"] for e in entries] == ["RiskIdentified", "RiskAssessed"]
    assert entries[1]["actor"] == "alice@example.com"
    changes = {c["path"]: (c["before"], c["after"]) for c in entries[1]["changes"]}
    assert changes["probability"] == (3, 4)
    assert changes["impact"] == (4, 5)

    identified_at = entries[0]["position"]
    as_of = """query AsOf($id: ID!, $at: SafeInt) {
      program(id: $id, asOfPosition: $at) { risks { score } }
      risks(asOfPosition: $at) { asOfPosition nodes { score probability } }
    }"""
    then = await _query(reader, as_of, {"id": ids["program"], "at": identified_at}, Role.AUDITOR)
    assert then["risks"]["nodes"] == [{"score": 12, "probability": 3}]
    assert then["risks"]["asOfPosition"] == identified_at
    assert then["program"]["risks"] == [{"score": 12}]
    now = await _query(reader, as_of, {"id": ids["program"], "at": None}, Role.AUDITOR)
    assert now["risks"]["nodes"] == [{"score": 20, "probability": 4}]
    assert now["risks"]["asOfPosition"] is None

    history = await _query(
        reader,
        """query H($stream: String!) {
          history(streamId: $stream) { version eventType actor state data }
        }""",
        {"stream": f"risk-{risk}"},
        Role.AUDITOR,
    )
    steps = history["history"]
    assert [(s["version"], s["eventType"]) for s in steps] == [
        (1, "RiskIdentified"),
        (2, "RiskAssessed"),
    ]
    assert (steps[0]["state"]["probability"], steps[1]["state"]["probability"]) == (3, 4)
    page = await _query(
        reader,
        """query H($stream: String!) {
          history(streamId: $stream, afterVersion: 1, first: 1) { version state }
        }""",
        {"stream": f"risk-{risk}"},
        Role.AUDITOR,
    )
    assert page["history"] == [{"version": 2, "state": steps[1]["state"]}]
    too_many = await reader.post(
        '{ history(streamId: "risk-x", first: 100000) { version } }',
        headers=reader.auth(Role.AUDITOR),
    )
    assert "must be between 1 and 200" in too_many.json()["errors"][0]["message"]

    verified = await _query(
        reader,
        """query V($stream: String) {
          all: verifyIntegrity { ok streams events broken { streamId } }
          one: verifyIntegrity(streamId: $stream) { ok streams events }
        }""",
        {"stream": f"risk-{risk}"},
        Role.AUDITOR,
    )
    assert verified["all"]["ok"] is True
    assert verified["all"]["broken"] == []
    assert verified["all"]["streams"] >= 2  # the program, the risk, a program code's claim
    assert verified["one"] == {"ok": True, "streams": 1, "events": 2}
    # Page by page: the same streams, each once.
    walked, after = 0, None
    while True:
        paged = await _query(
            reader,
            """query V($after: String) {
              verifyIntegrity(afterStreamId: $after, first: 1) { ok streams nextAfterStreamId }
            }""",
            {"after": after},
            Role.AUDITOR,
        )
        report = paged["verifyIntegrity"]
        assert report["ok"] is True
        walked += report["streams"]
        after = report["nextAfterStreamId"]
        if after is None:
            break
    assert walked == verified["all"]["streams"]


async def test_every_reader_looks_back_and_auditors_see_how_it_came_to_be(reader: Api) -> None:
    planned = await _plan_program(reader, milestones=0)
    at = int(planned["position"])
    for role in (Role.VIEWER, Role.EDITOR, Role.AUDITOR, Role.ADMIN):
        looked = await _query(
            reader,
            """query Q($at: SafeInt) {
              programs(asOfPosition: $at) { totalCount asOfPosition }
              risks(asOf: "2027-01-01T00:00:00Z") { totalCount }
              utilisation(from: "2027-01-01", to: "2027-01-31", knownAtPosition: $at) {
                overAllocated { weekStart }
              }
            }""",
            {"at": at},
            role,
        )
        assert looked["programs"] == {"totalCount": 1, "asOfPosition": at}
    for role in (Role.VIEWER, Role.EDITOR):
        await _refused(reader, "{ auditTrail { totalCount } }", role)
        await _refused(reader, '{ history(streamId: "program-x") { version } }', role)
        await _refused(reader, "{ verifyIntegrity { ok } }", role)
        # A refused field is null with its error; the rest of the answer stands.
        response = await reader.post(
            "{ programs { totalCount } auditTrail { totalCount } }", headers=reader.auth(role)
        )
        body = response.json()
        assert body["data"] == {"programs": {"totalCount": 1}, "auditTrail": None}
        assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
            (["auditTrail"], "FORBIDDEN")
        ]
    current = await _query(
        reader, "{ programs { totalCount } projectionStatus { name state lagPositions } }"
    )
    assert current["programs"]["totalCount"] == 1
    assert {s["name"] for s in current["projectionStatus"]} >= {"programs", "risks"}
    for role in (Role.AUDITOR, Role.ADMIN):
        looked = await _query(reader, "{ auditTrail { totalCount } }", None, role)
        assert looked["auditTrail"]["totalCount"] >= 3


NESTED = """query Nested($first: Int!) {
  programs(first: $first) {
    totalCount
    nodes { code risks { score } milestones { name } allocations { percentage } }
  }
}"""


async def test_nested_lists_cost_the_same_statements_for_one_program_or_three(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with _waiting_api(api_with) as api:
        async with LiveSystem(api.store, pg_url, nats_url, subject_prefix):
            for _ in range(3):
                await _plan_program(api)
        # The runners and relay have stopped: only the API's statements are counted.
        with counting_statements() as one:
            data = await _query(api, NESTED, {"first": 1})
        assert len(data["programs"]["nodes"]) == 1
        with counting_statements() as three:
            data = await _query(api, NESTED, {"first": 3})
    nodes = data["programs"]["nodes"]
    assert len(nodes) == 3
    assert all(len(p["milestones"]) == 2 and len(p["risks"]) == 1 for p in nodes)
    # count + page of programs in one transaction, then a page for each nested list,
    # whatever the size
    assert len(one) == len(three) == 6, (one, three)
    assert [s.split()[0] for s in one].count("BEGIN") == 1, one


UNCOUNTED = """query Uncounted($id: ID!) {
  program(id: $id) { code risks { score } milestones { name } allocations { percentage } }
  programs(first: 5) { nodes { code } }
}"""


async def test_lists_without_total_count_are_one_statement_each_without_a_transaction(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with _waiting_api(api_with) as api:
        async with LiveSystem(api.store, pg_url, nats_url, subject_prefix):
            ids = await _plan_program(api)
        acquired: list[object] = []
        original = asyncpg.pool.Pool.acquire

        def acquire(self: asyncpg.Pool, **kwargs: Any) -> Any:
            acquired.append(self)
            return original(self, **kwargs)

        with counting_statements() as seen, pytest.MonkeyPatch.context() as patch:
            patch.setattr(asyncpg.pool.Pool, "acquire", acquire)
            data = await _query(api, UNCOUNTED, {"id": ids["program"]})
        with counting_statements() as counted:
            fragment = "fragment Size on ProgramConnection { totalCount }"
            await _query(api, "{ programs { ...Size } } " + fragment)

    assert len(data["program"]["milestones"]) == 2
    assert len(data["programs"]["nodes"]) == 1
    # The program, its three nested lists, and the page of programs: nothing else, and one
    # connection taken for each of the two fields.
    assert len(seen) == 5, seen
    assert len(acquired) == 2, acquired
    assert not [s for s in seen if "count(" in s or s.startswith("BEGIN")], seen
    # Who made each row is read only for an operation that asks (Recorded's fields).
    assert not [s for s in seen if "'actor'" in s], seen
    # Asked for inside a fragment, the count is read, with the page, in one snapshot.
    assert [s.split()[0] for s in counted] == ["BEGIN", "SELECT", "SELECT"], counted
    assert "count(*)" in counted[1]


async def test_nested_lists_are_read_as_selected_fragments_included(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    query = """query($id: ID!) {
      program(id: $id) { code ...Risks }
      programs { edges { node { ... on Program { milestones { name } } } } }
    }
    fragment Risks on Program { risks { title } }"""
    async with _waiting_api(api_with) as api:
        async with LiveSystem(api.store, pg_url, nats_url, subject_prefix):
            ids = await _plan_program(api)
        with counting_statements() as seen:
            data = await _query(api, query, {"id": ids["program"]})

    assert len(data["program"]["risks"]) == 1
    assert len(data["programs"]["edges"][0]["node"]["milestones"]) == 2
    # The program and its risks; the page of programs and their milestones: no
    # allocations, which nothing selects.
    assert len(seen) == 4, seen
    assert not [s for s in seen if "rm_allocations" in s], seen


async def test_the_plan_the_log_and_the_people_are_listed(reader: Api) -> None:
    ids = await _plan_program(reader, milestones=0)
    program, milestone = ids["program"], new_id()
    await reader.accepted(
        "planMilestone",
        {"programId": program, "milestoneId": milestone, "name": "Pilot", "dueDate": "2027-05-31"},
    )
    await reader.accepted(
        "registerDependency",
        {
            "programId": program,
            "dependencyId": new_id(),
            "title": "Card scheme certification",
            "dependent": {"kind": "MILESTONE", "itemId": milestone},
            "dependsOn": {"external": {"party": "Visa"}},
            "neededBy": "2027-05-01",
        },
    )
    await reader.accepted(
        "recordDecision",
        {
            "programId": program,
            "decisionId": new_id(),
            "title": "Buy the gateway",
            "context": "time to market",
            "outcome": "vendor",
            "decidedBy": "Sam",
            "decidedOn": "2027-01-15",
        },
    )
    registered = await reader.accepted("registerResource", resource_input("bob.stone"))

    # A read of five read models: a mutation's wait covers only those its events change.
    data = await _query(
        reader,
        """query Plan($id: ID!) {
          milestones(programId: $id) { totalCount nodes { name baselineDate forecastDate } }
          dependencies(programId: $id) { nodes { title targetType externalParty neededBy } }
          decisions(programId: $id, inForce: true) { nodes { title outcome decidedBy } }
          resources { nodes { resourceKey capacitySchedule { effectiveFrom capacity } } }
          allocations(filter: {programId: $id}) { totalCount }
        }""",
        {"id": program},
        after=registered["position"],
    )
    assert data["milestones"]["nodes"] == [
        {"name": "Pilot", "baselineDate": "2027-05-31", "forecastDate": "2027-05-31"}
    ]
    assert data["dependencies"]["nodes"] == [
        {
            "title": "Card scheme certification",
            "targetType": "EXTERNAL",
            "externalParty": "Visa",
            "neededBy": "2027-05-01",
        }
    ]
    assert data["decisions"]["nodes"] == [
        {"title": "Buy the gateway", "outcome": "vendor", "decidedBy": "Sam"}
    ]
    assert data["resources"]["nodes"] == [
        {"resourceKey": "bob.stone", "capacitySchedule": [{"effectiveFrom": None, "capacity": 100}]}
    ]
    assert data["allocations"]["totalCount"] == 0

    trail = await _query(
        reader,
        """query T($id: ID!) {
          auditTrail(filter: {programId: $id, eventTypes: ["DecisionRecorded"],
                              from: "2000-01-01T00:00:00Z", to: "2100-01-01T00:00:00Z"}) {
            totalCount nodes { eventType changes { path } }
          }
          none: auditTrail(filter: {programId: $id, to: "2000-01-01T00:00:00Z"}) { totalCount }
        }""",
        {"id": program},
        Role.AUDITOR,
        after=registered["position"],
    )
    assert trail["auditTrail"]["totalCount"] == 1
    assert trail["auditTrail"]["nodes"][0]["changes"], trail
    assert trail["none"]["totalCount"] == 0


async def test_a_query_can_ask_for_a_minimum_position(reader: Api) -> None:
    """Read your writes without waiting in the mutation: the query waits for the position."""
    planned = await _plan_program(reader, milestones=0, wait=False)
    headers = {**reader.auth(Role.VIEWER), "Programledger-Min-Position": planned["position"]}
    response = await reader.post(
        "query($id: ID!) { program(id: $id) { risks { score } } }",
        {"id": planned["program"]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["program"]["risks"] == [{"score": 20}]

    bad = await reader.post(
        "{ me { subject } }", headers={**reader.auth(), "Programledger-Min-Position": "soon"}
    )
    assert bad.status_code == 400
    assert "Programledger-Min-Position" in bad.text or "min-position" in bad.text


async def test_what_a_command_records_reads_back(reader: Api) -> None:
    """The fields commands record beyond the summary: the whole risk, lessons learned,
    the program's objective key and when each entity last changed."""
    ids = await _plan_program(reader, milestones=1)
    lesson = new_id()
    await reader.accepted(
        "recordLesson",
        {
            "programId": ids["program"],
            "lessonId": lesson,
            "whatHappened": "The vendor slipped",
            "learned": "Keep a second vendor warm",
            # The risk's wait below covers only the read models its own events change,
            # not the lessons: each write waits for what it wrote.
            "waitForProjections": True,
        },
    )
    await reader.accepted(
        "escalateRisk",
        {
            "riskId": ids["risk"],
            "escalatedTo": "Steering committee",
            "reason": "Launch at stake",
            "waitForProjections": True,
        },
    )
    data = await _query(
        reader,
        """query Page($program: ID!) {
          program(id: $program) {
            objectiveKey openRisksMedium openRisksLow nextMilestoneId updatedAt
            risks { escalatedTo escalationReason contingencyPlan trigger updatedAt status }
          }
          lessons(programId: $program) { totalCount nodes { lessonId learned recordedAt } }
        }""",
        {"program": ids["program"]},
    )
    program = data["program"]
    assert program["nextMilestoneId"] is not None
    assert program["updatedAt"]
    [risk] = program["risks"]
    assert (risk["escalatedTo"], risk["escalationReason"]) == (
        "Steering committee",
        "Launch at stake",
    )
    assert risk["updatedAt"] >= program["updatedAt"]
    lessons = data["lessons"]
    assert lessons["totalCount"] == 1
    assert lessons["nodes"][0]["lessonId"] == lesson
    assert lessons["nodes"][0]["learned"] == "Keep a second vendor warm"


PARTS = """query Parts($program: ID!, $risk: ID!) {
  program(id: $program) { createdAt createdBy updatedAt updatedBy lastChange }
  risk(id: $risk) { lastReviewedOn lastReviewNote lastChange createdBy }
  workstreams(programId: $program) {
    totalCount nodes { id name lead department createdBy lastChange }
  }
  stakeholders(programId: $program, includeRemoved: true, orderBy: ROLE) {
    nodes { name role kind department removed lastChange lastChangeReason }
  }
  budgetAllocations(programId: $program) {
    nodes { amount { amountMinor } costCentre purpose lastChange lastChangeReason }
  }
  spendReports(programId: $program) { nodes { amount { amountMinor } asOf note programVersion } }
  allocations(filter: { programId: $program }, orderBy: PERCENTAGE, descending: true) {
    nodes { percentage overrideReason overAllocation { totalPercentage capacity } }
  }
  staffing(programId: $program, from: "2027-04-01", to: "2027-04-07") {
    periodStart periodEnd department role confirmedFte proposedFte resources
  }
}"""


async def test_a_program_s_parts_staffing_and_who_changed_them_read_back(reader: Api) -> None:
    """Workstreams, stakeholders with their RACI role (and why one left), budget
    allocations and their revision, the history of spend reports, an allocation's
    override, a program's staffing by department and role, and on each entity who made
    it and its last change."""
    ids = await _plan_program(reader, milestones=0)
    program = ids["program"]
    workstream, budget = new_id(), new_id()
    await reader.accepted(
        "addWorkstream",
        {
            "programId": program,
            "workstreamId": workstream,
            "name": "Checkout",
            "lead": "Lee",
            "department": "ENGINEERING",
        },
    )
    stakeholders = {"ACCOUNTABLE": new_id(), "INFORMED": new_id()}
    for role, stakeholder in stakeholders.items():
        await reader.accepted(
            "addStakeholder",
            {
                "programId": program,
                "stakeholderId": stakeholder,
                "name": role.title(),
                "kind": "TEAM",
                "department": "LEGAL",
                "role": role,
            },
        )
    await reader.accepted(
        "removeStakeholder",
        {"programId": program, "stakeholderId": stakeholders["INFORMED"], "reason": "Left"},
    )
    await reader.accepted(
        "allocateBudget",
        {
            "programId": program,
            "budgetAllocationId": budget,
            "workstreamId": workstream,
            "amount": {"amountMinor": 1_000_00, "currency": "EUR"},
            "purpose": "Licences",
        },
    )
    await reader.accepted(
        "reviseBudgetAllocation",
        {
            "programId": program,
            "budgetAllocationId": budget,
            "amount": {"amountMinor": 2_000_00, "currency": "EUR"},
            "reason": "More seats",
        },
    )
    for amount, day in ((500_00, "2027-03-31"), (900_00, "2027-04-30")):
        await reader.accepted(
            "reportActualSpend",
            {
                "programId": program,
                "amount": {"amountMinor": amount, "currency": "EUR"},
                "asOf": day,
                "note": f"to {day}",
                "waitForProjections": True,
            },
        )
    await reader.accepted(
        "reviewRisk",
        {
            "riskId": ids["risk"],
            "reviewedOn": "2027-03-01",
            "nextReviewOn": "2027-03-15",
            "note": "Vendor confirmed the date",
            "waitForProjections": True,
        },
    )
    await reader.accepted("registerResource", resource_input("alice.martin"))
    for percentage, override in ((60, None), (50, "Launch week")):
        allocation = _allocation(program, percentage, "2027-04-01", "2027-04-30")
        await reader.accepted("proposeAllocation", allocation)
        await reader.accepted(
            "confirmAllocation",
            {
                "resourceKey": "alice.martin",
                "allocationId": allocation["allocationId"],
                "overrideReason": override,
                "waitForProjections": True,
            },
        )

    data = await _query(reader, PARTS, {"program": program, "risk": ids["risk"]})
    assert data["risk"] == {
        "lastReviewedOn": "2027-03-01",
        "lastReviewNote": "Vendor confirmed the date",
        "lastChange": "RiskReviewed",
        "createdBy": "alice@example.com",
    }
    assert data["program"]["createdBy"] == "alice@example.com"
    assert data["program"]["lastChange"] == "ActualSpendReported"
    assert data["program"]["createdAt"] < data["program"]["updatedAt"]
    [ws] = data["workstreams"]["nodes"]
    assert (ws["name"], ws["department"], ws["lastChange"]) == (
        "Checkout",
        "ENGINEERING",
        "WorkstreamAdded",
    )
    assert [
        (s["role"], s["removed"], s["lastChange"], s["lastChangeReason"])
        for s in data["stakeholders"]["nodes"]
    ] == [
        ("ACCOUNTABLE", False, "StakeholderAdded", None),
        ("INFORMED", True, "StakeholderRemoved", "Left"),
    ]
    [allocated] = data["budgetAllocations"]["nodes"]
    assert (allocated["amount"]["amountMinor"], allocated["purpose"]) == (2_000_00, "Licences")
    assert (allocated["lastChange"], allocated["lastChangeReason"]) == (
        "BudgetAllocationRevised",
        "More seats",
    )
    reports = data["spendReports"]["nodes"]
    assert [(r["amount"]["amountMinor"], r["note"]) for r in reports] == [
        (900_00, "to 2027-04-30"),
        (500_00, "to 2027-03-31"),
    ]
    assert reports[0]["programVersion"] > reports[1]["programVersion"]
    assert [
        (a["percentage"], a["overrideReason"], a["overAllocation"])
        for a in data["allocations"]["nodes"]
    ] == [
        (60, None, []),
        (50, "Launch week", [{"totalPercentage": 110, "capacity": 100}]),
    ]
    assert data["staffing"] == [
        {
            "periodStart": "2027-03-29",
            "periodEnd": "2027-04-04",
            "department": "ENGINEERING",
            "role": "Engineer",
            "confirmedFte": pytest.approx(1.1 * 4 / 7),
            "proposedFte": 0.0,
            "resources": 1,
        },
        {
            "periodStart": "2027-04-05",
            "periodEnd": "2027-04-11",
            "department": "ENGINEERING",
            "role": "Engineer",
            "confirmedFte": pytest.approx(1.1),
            "proposedFte": 0.0,
            "resources": 1,
        },
    ]
    with counting_statements() as seen:
        found = await _query(
            reader,
            "query N($id: ID!) { node(id: $id) { ... on Workstream { lead createdBy } } }",
            {"id": ws["id"]},
        )
    assert found["node"] == {"lead": "Lee", "createdBy": "alice@example.com"}
    assert [s for s in seen if "'actor'" in s], seen
    typo = await reader.post(
        "{ stakeholders(role: [BOSS]) { totalCount } }", headers=reader.auth(Role.VIEWER)
    )
    assert typo.json()["errors"], typo.json()


async def test_single_lookups(reader: Api) -> None:
    ids = await _plan_program(reader, milestones=1)
    data = await _query(
        reader,
        """query One($risk: ID!, $program: ID!, $none: ID!) {
          risk(id: $risk) { riskId score programId }
          missing: risk(id: $none) { riskId }
          programs { nodes { code milestones { milestoneId } } }
          byId: program(id: $program) { code }
        }""",
        {"risk": ids["risk"], "program": ids["program"], "none": new_id()},
    )
    assert (data["risk"]["riskId"], data["risk"]["score"]) == (ids["risk"], 20)
    assert data["risk"]["programId"] == ids["program"]
    assert data["missing"] is None
    code = data["byId"]["code"]
    [milestone] = next(p for p in data["programs"]["nodes"] if p["code"] == code)["milestones"]
    found = await _query(
        reader,
        """query ByCode($code: String!, $milestone: ID!) {
          programByCode(code: $code) { programId }
          milestone(id: $milestone) { milestoneId programId }
          resource(resourceKey: "nobody") { resourceKey }
        }""",
        {"code": code, "milestone": milestone["milestoneId"]},
    )
    assert found["programByCode"]["programId"] == ids["program"]
    assert found["milestone"]["programId"] == ids["program"]
    assert found["resource"] is None
    bad = await reader.post('{ risk(id: "nope") { riskId } }', headers=reader.auth(Role.VIEWER))
    assert [e["extensions"]["code"] for e in bad.json()["errors"]] == ["BAD_USER_INPUT"]


RESOURCES = """query Resources($first: Int!) {
  programs(first: $first) { nodes { code allocations { percentage resource { name role } } } }
  allocations(first: $first) { nodes { percentage resource { name department } } }
}"""
RESOURCE_PATHS = (
    "programs(first: $first) { nodes { allocations { resource { name } } } }",
    "allocations(first: $first) { nodes { resource { name } } }",
)


async def test_allocations_reach_their_resources_in_one_statement_per_path(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with _waiting_api(api_with) as api:
        async with LiveSystem(api.store, pg_url, nats_url, subject_prefix):
            for n in range(3):
                key = f"person.{n}"
                await api.accepted("registerResource", resource_input(key))
                planned = await _plan_program(api, milestones=0)
                allocation = {
                    **_allocation(planned["program"], 50, "2027-02-01", "2027-02-28"),
                    "resourceKey": key,
                    "waitForProjections": True,
                }
                await api.accepted("proposeAllocation", allocation)
        data = await _query(api, RESOURCES, {"first": 3})
        # The runners and relay have stopped: only the API's statements are counted. Each
        # path alone: two paths in one query may share a batch of resources.
        counted = {}
        for path in RESOURCE_PATHS:
            query = f"query Path($first: Int!) {{ {path} }}"
            with counting_statements() as one:
                await _query(api, query, {"first": 1})
            with counting_statements() as three:
                await _query(api, query, {"first": 3})
            counted[path] = (len(one), len(three))
    nested = [a for p in data["programs"]["nodes"] for a in p["allocations"]]
    assert [a["resource"] for a in nested] == [{"name": "Alice Martin", "role": "Engineer"}] * 3
    listed = data["allocations"]["nodes"]
    assert [a["resource"]["department"] for a in listed] == ["ENGINEERING"] * 3
    # programs: page, allocations, their resources; allocations: page, their resources.
    assert list(counted.values()) == [(3, 3), (2, 2)], counted


CHANGED = """mutation Changed($program: ProposeProgramInput!, $resource: RegisterResourceInput!) {
  proposeProgram(input: $program) {
    __typename
    ... on ProposeProgramSuccess { version program { code status version milestones { name } } }
  }
  registerResource(input: $resource) {
    ... on RegisterResourceSuccess { resource { resourceKey name version } }
  }
}"""


async def test_a_success_returns_the_entity_as_read_after_the_command(reader: Api) -> None:
    program = new_id()
    response = await reader.post(
        CHANGED, {"program": program_input(program), "resource": resource_input("ana.lima")}
    )
    body = response.json()
    assert "errors" not in body, body
    proposed = body["data"]["proposeProgram"]
    assert proposed["program"]["status"] == "PROPOSED"
    assert proposed["program"]["version"] == proposed["version"] == 1
    assert proposed["program"]["milestones"] == []
    assert body["data"]["registerResource"]["resource"] == {
        "resourceKey": "ana.lima",
        "name": "Alice Martin",
        "version": 1,
    }
    risk = new_id()
    identified = await reader.post(
        """mutation R($input: IdentifyRiskInput!) {
          identifyRisk(input: $input) { ... on IdentifyRiskSuccess { risk { riskId score } } }
        }""",
        {
            "input": {
                "riskId": risk,
                "programId": program,
                "title": "Vendor",
                "category": "VENDOR",
                "probability": 2,
                "impact": 3,
                "owner": "Tia",
            }
        },
    )
    assert identified.json()["data"]["identifyRisk"]["risk"] == {"riskId": risk, "score": 6}


NODES = """query Nodes($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename id
    ... on Program { code risks { id score } }
    ... on Risk { title }
    ... on Allocation { percentage resource { name } }
  }
}"""


async def test_every_entity_refetches_by_its_global_id_in_a_statement_per_type(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with _waiting_api(api_with) as api:
        async with LiveSystem(api.store, pg_url, nats_url, subject_prefix):
            await api.accepted("registerResource", resource_input("alice.martin"))
            for _ in range(2):
                planned = await _plan_program(api, milestones=0)
                allocation = _allocation(planned["program"], 20, "2027-02-01", "2027-02-28")
                await api.accepted("proposeAllocation", {**allocation, "waitForProjections": True})
        listed = await _query(
            api,
            "{ programs { nodes { id } } risks { nodes { id } } allocations { nodes { id } } }",
        )
        ids = [n["id"] for field in listed.values() for n in field["nodes"]]
        assert len(ids) == len(set(ids)) == 6
        with counting_statements() as statements:
            found = await _query(api, NODES, {"ids": [*ids, ids[0]]})
        one = await _query(api, "query N($id: ID!) { node(id: $id) { id } }", {"id": ids[2]})
        unknown = await api.post('{ node(id: "bm9wZTox") { id } }', headers=api.auth())
    nodes = found["nodes"]
    assert [n["id"] for n in nodes] == [*ids, ids[0]]
    assert [n["__typename"] for n in nodes] == ["Program"] * 2 + ["Risk"] * 2 + [
        "Allocation"
    ] * 2 + ["Program"]
    assert all(n["resource"] == {"name": "Alice Martin"} for n in nodes if "resource" in n)
    assert one["node"] == {"id": ids[2]}
    assert [e["extensions"]["code"] for e in unknown.json()["errors"]] == ["BAD_USER_INPUT"]
    # programs, their risks, risks, allocations, their resources: one statement each.
    assert len(statements) == 5, statements


async def test_history_of_a_tampered_stream_is_an_integrity_violation(
    api: Api, pg_url: str, schema: str
) -> None:
    program_id = new_id()
    await api.accepted("proposeProgram", program_input(program_id))
    stream = f"program-{program_id}"
    query = "query H($stream: String!) { history(streamId: $stream) { version } }"
    ok = await api.post(query, {"stream": stream}, headers=api.auth(Role.AUDITOR))
    assert ok.json()["data"]["history"] == [{"version": 1}]
    await tamper(
        pg_url,
        schema,
        f"UPDATE events SET data = data || '{{\"name\": \"Forged\"}}' WHERE stream_id = '{stream}'",
    )
    refused = (await api.post(query, {"stream": stream}, headers=api.auth(Role.AUDITOR))).json()
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "INTEGRITY_VIOLATION"
    assert (error["extensions"]["streamId"], error["extensions"]["brokenAtVersion"]) == (stream, 1)
    assert f"the hash chain of stream {stream!r} is broken at version 1" in error["message"]
