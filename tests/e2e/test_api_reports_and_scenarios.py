"""Status reports and capacity what-ifs through the API, as a frontend uses them, with the
relay and projection runners filling the read models: the proposed draft, the owner's
publication (another editor's is a NotProgramOwnerError), the trend, and a scenario
evaluated and committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from programledger.api import Role
from tests.e2e.conftest import Api, ApiFactory, new_id, program_input, resource_input
from tests.support.projection_process import LiveSystem

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


async def _data(api: Api, query: str, variables: dict[str, Any], subject: str = OWNER) -> Any:
    response = await api.post(query, variables, headers=api.auth(Role.EDITOR, subject=subject))
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
    ... on PublishStatusReportSuccess { statusReport { status revision lastPublishedBy } }
    ... on NotProgramOwnerError { code owner actor }
  }
}"""

READ = """
query ($programId: ID!, $period: String!, $from: Date!, $to: Date!) {
  statusReport(programId: $programId, period: $period) {
    status revision overall highlights createdBy updatedBy lastChange
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
    proposed = (await _data(api, PROPOSE, week))["statusReportDraft"]
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
    assert published["statusReport"] == {
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
        status outcomes { command accepted errorCode stream: streamId }
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
    await api.accepted(
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
    read = await _data(api, EVALUATE, {"id": scenario})
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
    assert committed["scenario"]["lastChange"] == "ScenarioCommitted"
    assert committed["scenario"]["createdAt"] < committed["scenario"]["updatedAt"]
    assert [
        (o["command"], o["accepted"], o["errorCode"]) for o in committed["scenario"]["outcomes"]
    ] == [
        ("ProposeAllocation", False, "VALIDATION_FAILED"),
        ("ConfirmAllocation", False, "NOT_SENT"),
    ]
