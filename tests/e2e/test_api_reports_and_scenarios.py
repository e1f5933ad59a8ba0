"""Status reports and capacity what-ifs through the API, as a frontend uses them, with the
relay and projection runners filling the read models: the proposed draft, the owner's
publication (another editor's is a NotProgramOwnerError), the trend, and a scenario
evaluated and committed; both refetched by global id (Relay ``node``/``nodes``), now and
as of a position."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from programledger.api import Role
from programledger.api.graphql.node import global_id
from tests.e2e.conftest import Api, ApiFactory, new_id, program_input, resource_input
from tests.support.projection_process import LiveSystem
from tests.support.statements import counting_statements

OWNER = "tia@example.com"


@pytest_asyncio.fixture
async def reader(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[Api]:
    async with (
        api_with(watch=True) as api,
        LiveSystem(api.store, pg_url, nats_url, subject_prefix),
    ):
        yield api


async def _data(
    api: Api,
    query: str,
    variables: dict[str, Any],
    subject: str = OWNER,
    *,
    after: int | None = None,
) -> Any:
    """The query's data, read once the read models it reads have reached ``after``."""
    headers = api.auth(Role.EDITOR, subject=subject)
    if after is not None:
        headers["Programledger-Min-Position"] = str(after)
    response = await api.post(query, variables, headers=headers)
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


PROPOSE = """
query ($programId: ID!, $period: String!) {
  statusReportDraft(programId: $programId, period: $period) {
    overall overallReason dimensions { dimension rag reason }
    facts { maxSlipDays milestonesOpen overAllocatedResources }
  }
}"""

PUBLISH = """
mutation ($programId: ID!, $period: String!) {
  publishStatusReport(input: {programId: $programId, period: $period, waitForProjections: true}) {
    __typename
    ... on PublishStatusReportSuccess { statusReport { id status revision lastPublishedBy } }
    ... on NotProgramOwnerError { code owner actor }
  }
}"""

READ = """
query ($programId: ID!, $period: String!, $from: Date!, $to: Date!) {
  statusReport(programId: $programId, period: $period) {
    id status revision overall highlights createdBy updatedBy lastChange
    revisions {
      revision status overall publishedBy publishedAt corrects correctionReason
      createdBy updatedBy lastChange
    }
  }
  statusReportTrend(programId: $programId, weekFrom: $from, weekTo: $to) {
    period overall dimensions { dimension rag }
  }
  statusReports(filter: {programId: $programId}) { totalCount nodes { period status } }
}"""


NODES = """
query ($id: ID!, $ids: [ID!]!, $at: SafeInt!) {
  now: node(id: $id) { ...entity }
  then: node(id: $id, asOfPosition: $at) { ...entity }
  all: nodes(ids: $ids) { ...entity }
  allThen: nodes(ids: $ids, asOfPosition: $at) { ...entity }
}
fragment entity on Node {
  __typename id
  ... on StatusReport { programId period status revision }
  ... on Scenario { scenarioId scenarioStatus: status changeCount }
}"""


async def _errors(api: Api, ids: list[str]) -> list[str]:
    response = await api.post(
        "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}, headers=api.auth()
    )
    return [e["extensions"]["code"] for e in response.json()["errors"]]


async def test_a_report_is_proposed_drafted_and_published_by_the_owner(reader: Api) -> None:
    api = reader
    program = new_id()
    tia = api.auth(Role.EDITOR, subject=OWNER)
    await api.accepted("proposeProgram", program_input(program, owner=OWNER), headers=tia)
    await api.accepted(
        "planMilestone",
        {"programId": program, "milestoneId": new_id(), "name": "Beta", "dueDate": "2027-03-31"},
        headers=tia,
    )
    milestone_moved = await api.accepted(
        "activateProgram", {"programId": program, "waitForProjections": True}, headers=tia
    )
    assert milestone_moved["projectionsCaughtUp"] is True
    week = {"programId": program, "period": "2027-W14"}
    # The activation's wait covers the read models it changes, not the milestones the draft
    # reads too: the header waits for those.
    proposed = (await _data(api, PROPOSE, week, after=milestone_moved["position"]))[
        "statusReportDraft"
    ]
    assert proposed["overall"] == "GREEN"
    assert proposed["facts"]["milestonesOpen"] == 1
    content = {
        "overall": "AMBER",
        "overallReason": "Vendor late",
        "dimensions": [
            {"dimension": d["dimension"], "rag": d["rag"], "reason": d["reason"]}
            for d in proposed["dimensions"]
        ],
        "highlights": ["Beta scope frozen"],
    }
    drafted = await api.accepted(
        "draftStatusReport",
        {**week, "content": content},
        headers=api.auth(Role.EDITOR, subject="eve@example.com"),
    )
    assert drafted["streamId"] == f"status_report-{program}:2027-W14"
    refused = (await _data(api, PUBLISH, week, subject="eve@example.com"))["publishStatusReport"]
    assert refused == {
        "__typename": "NotProgramOwnerError",
        "code": "NOT_PROGRAM_OWNER",
        "owner": OWNER,
        "actor": "eve@example.com",
    }
    published = (await _data(api, PUBLISH, week))["publishStatusReport"]
    report_id = global_id("StatusReport", f"{program}/2027-W14")
    assert published["statusReport"] == {
        "id": report_id,
        "status": "PUBLISHED",
        "revision": 1,
        "lastPublishedBy": OWNER,
    }
    read = await _data(api, READ, {**week, "from": "2027-03-29", "to": "2027-04-05"})
    report = read["statusReport"]
    assert (report["status"], report["overall"], report["highlights"]) == (
        "PUBLISHED",
        "AMBER",
        ["Beta scope frozen"],
    )
    # Who wrote it and who published it, as every entity says (Recorded).
    assert (report["createdBy"], report["updatedBy"], report["lastChange"]) == (
        "eve@example.com",
        OWNER,
        "StatusReportPublished",
    )
    (revision,) = report["revisions"]
    assert (revision["createdBy"], revision["updatedBy"], revision["lastChange"]) == (
        "eve@example.com",
        OWNER,
        "StatusReportPublished",
    )
    assert revision["publishedBy"] == OWNER
    assert revision["publishedAt"] is not None
    (point,) = read["statusReportTrend"]
    assert (point["period"], point["overall"], len(point["dimensions"])) == ("2027-W14", "AMBER", 5)
    assert read["statusReports"]["totalCount"] == 1
    assert report["id"] == report_id

    unreported = global_id("StatusReport", f"{program}/2027-W15")
    nodes = {"id": report_id, "ids": [unreported, report_id], "at": drafted["position"]}
    found = await _data(api, NODES, nodes)
    entity = {"__typename": "StatusReport", "id": report_id, "programId": program}
    now = {**entity, "period": "2027-W14", "status": "PUBLISHED", "revision": 1}
    then = {**now, "status": "DRAFT"}
    assert (found["now"], found["all"]) == (now, [None, now])
    assert (found["then"], found["allThen"]) == (then, [None, then])
    earlier = global_id("StatusReport", f"{program}/2027-W13")
    with counting_statements() as statements:
        await _data(
            api,
            "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            {"ids": [earlier, *nodes["ids"]]},
        )
    reads = [s for s in statements if "rm_status_reports" in s]
    assert len(reads) == 1, statements  # the reports of every key, in one statement
    malformed = [
        global_id("StatusReport", f"{program}/2027-W54"),  # no such ISO week
        global_id("StatusReport", f"{program}:2027-W14"),  # the stream's key, not the id's
        global_id("StatusReport", "not-a-program/2027-W14"),
    ]
    for bad in malformed:
        assert await _errors(api, [report_id, bad]) == ["BAD_USER_INPUT"], bad


EVALUATE = """
query ($id: ID!) {
  scenarioEvaluation(scenarioId: $id) {
    resources { resourceKey worsened { start end totalPercentage capacity } }
    departments { department weekStart confirmedDays confirmedDaysWithScenario }
  }
  scenario(id: $id) {
    status changeCount changes { changeId kind resourceKey percentage }
    createdBy updatedBy lastChange
  }
}"""

COMMIT = """
mutation ($id: ID!) {
  commitScenario(input: {scenarioId: $id, waitForProjections: true}) {
    __typename
    ... on CommitScenarioSuccess {
      scenario {
        id status outcomes { command accepted errorCode stream: streamId }
        createdAt updatedAt lastChange
      }
    }
  }
}"""


async def test_a_scenario_is_evaluated_then_committed(reader: Api) -> None:
    api = reader
    program, scenario, change = new_id(), new_id(), new_id()
    key = f"ana.{scenario[:6]}"
    await api.accepted("proposeProgram", program_input(program))
    await api.accepted("activateProgram", {"programId": program})
    await api.accepted("registerResource", resource_input(key))
    await api.accepted("createScenario", {"scenarioId": scenario, "name": "Pilot push"})
    added = await api.accepted(
        "addScenarioAllocation",
        {
            "scenarioId": scenario,
            "changeId": change,
            "resourceKey": key,
            "programId": program,
            "startDate": "2027-04-05",
            "endDate": "2027-04-11",
            "percentage": 120,
            "waitForProjections": True,
        },
    )
    # The evaluation is made over the resources and allocations too, which the mutation's
    # wait (the scenarios) does not cover: the read says what it has to see.
    read = await _data(api, EVALUATE, {"id": scenario}, after=added["position"])
    (impact,) = read["scenarioEvaluation"]["resources"]
    assert impact["worsened"] == [
        {"start": "2027-04-05", "end": "2027-04-11", "totalPercentage": 120, "capacity": 100}
    ]
    (week,) = read["scenarioEvaluation"]["departments"]
    assert (week["confirmedDays"], week["confirmedDaysWithScenario"]) == (0, 840)
    assert read["scenario"]["changes"] == [
        {"changeId": change, "kind": "ALLOCATION", "resourceKey": key, "percentage": 120}
    ]
    assert read["scenario"]["lastChange"] == "ScenarioAllocationAdded"
    assert read["scenario"]["createdBy"] == read["scenario"]["updatedBy"]
    committed = (await _data(api, COMMIT, {"id": scenario}))["commitScenario"]
    assert committed["scenario"]["status"] == "COMMITTED"
    scenario_id = global_id("Scenario", scenario)
    assert committed["scenario"]["id"] == scenario_id
    assert committed["scenario"]["lastChange"] == "ScenarioCommitted"
    assert committed["scenario"]["createdAt"] < committed["scenario"]["updatedAt"]
    assert [
        (o["command"], o["accepted"], o["errorCode"]) for o in committed["scenario"]["outcomes"]
    ] == [
        ("ProposeAllocation", False, "VALIDATION_FAILED"),
        ("ConfirmAllocation", False, "NOT_SENT"),
    ]

    unknown = global_id("Scenario", new_id())
    nodes = {"id": scenario_id, "ids": [scenario_id, unknown], "at": added["position"]}
    found = await _data(api, NODES, nodes)
    entity = {"__typename": "Scenario", "id": scenario_id, "scenarioId": scenario}
    now = {**entity, "scenarioStatus": "COMMITTED", "changeCount": 1}
    then = {**now, "scenarioStatus": "OPEN"}
    assert (found["now"], found["all"]) == (now, [now, None])
    assert (found["then"], found["allThen"]) == (then, [then, None])
    assert await _errors(api, [global_id("Scenario", "not-a-uuid")]) == ["BAD_USER_INPUT"]
