"""The RAID log through the API as a frontend reads it: assumptions and issues written by
mutations, an invalidation that raises its issue in the same mutation, ROAM, and the
``raid`` connection across kinds, filtered, paged and as of an earlier position."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from tests.e2e.conftest import Api, ApiFactory, new_id, program_input
from tests.support.projection_process import LiveSystem

RAID = """
query Raid($programs: [ID!], $at: SafeInt, $kind: [RaidKind!], $first: Int, $after: String) {
  raid(filter: {programIds: $programs, kind: $kind}, first: $first, after: $after,
       asOfPosition: $at) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      kind itemId title status isOpen owner severity dueOn escalated roam
      risk { riskId roam roamReason materialisedIssueId }
      assumption { assumptionId confidence status invalidationEvidence raisedIssueId }
      issue { issueId severity riskId assumptionId escalatedTo }
      dependency { dependencyId }
    }
  }
}
"""


@pytest_asyncio.fixture
async def reader(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[Api]:
    async with (
        api_with(watch=True) as api,
        LiveSystem(api.store, pg_url, nats_url, subject_prefix),
    ):
        yield api


async def _query(
    api: Api, query: str, variables: dict[str, Any], *, after: int | None = None
) -> dict[str, Any]:
    """``after``: a mutation's position, for a read of read models its own wait did not
    cover (a field nested in another read model's items)."""
    headers = api.auth()
    if after is not None:
        headers["Programledger-Min-Position"] = str(after)
    response = await api.post(query, variables, headers=headers)
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def _raised_issue(issue_id: str, severity: str = "HIGH") -> dict[str, Any]:
    return {
        "issueId": issue_id,
        "title": "Sandbox rejects 3-D Secure 2.2",
        "severity": severity,
        "owner": "Priya",
        "dueOn": "2027-03-01",
    }


async def test_a_raid_log_across_kinds_with_the_issue_an_invalidation_raised(
    reader: Api,
) -> None:
    program, risk, assumption, issue = new_id(), new_id(), new_id(), new_id()
    await reader.accepted("proposeProgram", program_input(program))
    recorded = await reader.accepted(
        "recordAssumption",
        {
            "assumptionId": assumption,
            "programId": program,
            "statement": "The acquirer sandbox supports 3-D Secure 2.2",
            "owner": "Priya",
            "confidence": "LOW",
            "validateBy": "2027-02-15",
        },
    )
    await reader.accepted(
        "identifyRisk",
        {
            "riskId": risk,
            "programId": program,
            "title": "Vendor late",
            "category": "VENDOR",
            "probability": 4,
            "impact": 4,
            "owner": "Olga",
        },
    )
    await reader.accepted(
        "changeRiskRoam", {"riskId": risk, "roam": "OWNED", "reason": "Olga took it"}
    )
    invalidated = await reader.post(
        """mutation I($input: InvalidateAssumptionInput!) {
          invalidateAssumption(input: $input) {
            __typename
            ... on InvalidateAssumptionSuccess {
              eventTypes projectionsCaughtUp position
              assumption { status invalidationEvidence raisedIssueId }
            }
          }
        }""",
        {
            "input": {
                "assumptionId": assumption,
                "evidence": "Sandbox run 15 failed",
                "invalidatedOn": "2027-02-10",
                "raiseIssue": _raised_issue(issue),
                "waitForProjections": True,
            }
        },
        headers=reader.auth(),
    )
    success = invalidated.json()["data"]["invalidateAssumption"]
    assert success["eventTypes"] == ["AssumptionInvalidated"]
    assert success["projectionsCaughtUp"] is True
    assert success["assumption"] == {
        "status": "INVALIDATED",
        "invalidationEvidence": "Sandbox run 15 failed",
        "raisedIssueId": issue,
    }
    found = await _query(
        reader,
        "query I($id: ID!) { issue(id: $id) { assumptionId status severity } }",
        {"id": issue},
    )
    assert found["issue"] == {"assumptionId": assumption, "status": "OPEN", "severity": "HIGH"}

    # The invalidation waited for the RAID log, not for the risks the log's items nest
    # (the risk's ROAM reason): the header waits for every read model the query selects.
    log = await _query(reader, RAID, {"programs": [program]}, after=success["position"])
    items = log["raid"]["nodes"]
    assert log["raid"]["totalCount"] == 3
    assert [(i["kind"], i["severity"]) for i in items] == [
        ("RISK", 16),
        ("ISSUE", 16),
        ("ASSUMPTION", 0),
    ]
    assert items[0]["roam"] == "OWNED"
    assert items[0]["risk"]["roamReason"] == "Olga took it"
    assert items[1]["issue"]["assumptionId"] == assumption
    assert items[2]["assumption"]["raisedIssueId"] == issue
    assert all(i["dependency"] is None for i in items)

    first = await _query(reader, RAID, {"programs": [program], "first": 1})
    rest = await _query(
        reader,
        RAID,
        {"programs": [program], "first": 5, "after": first["raid"]["pageInfo"]["endCursor"]},
    )
    assert [i["itemId"] for i in rest["raid"]["nodes"]] == [items[1]["itemId"], assumption]
    before = await _query(reader, RAID, {"programs": [program], "at": int(recorded["position"])})
    assert [(i["kind"], i["status"]) for i in before["raid"]["nodes"]] == [("ASSUMPTION", "OPEN")]
    only = await _query(reader, RAID, {"programs": [program], "kind": ["ISSUE"]})
    assert [i["itemId"] for i in only["raid"]["nodes"]] == [issue]


async def test_raising_both_a_risk_and_an_issue_is_a_typed_error_on_the_input(
    reader: Api,
) -> None:
    program, assumption = new_id(), new_id()
    await reader.accepted("proposeProgram", program_input(program))
    await reader.accepted(
        "recordAssumption",
        {
            "assumptionId": assumption,
            "programId": program,
            "statement": "Sales freeze data",
            "owner": "Mia",
            "confidence": "MEDIUM",
            "validateBy": "2027-02-15",
        },
    )
    refused = await reader.mutate(
        "invalidateAssumption",
        {
            "assumptionId": assumption,
            "evidence": "They will not",
            "invalidatedOn": "2027-02-10",
            "raiseIssue": _raised_issue(new_id()),
            "raiseRisk": {
                "riskId": new_id(),
                "title": "Data drifts",
                "category": "OTHER",
                "probability": 3,
                "impact": 3,
                "owner": "Mia",
            },
        },
    )
    assert refused["__typename"] == "ValidationError"
    assert refused["path"] == ["input", "raiseIssue"]
    unknown = await reader.post(
        "{ raid(filter: {kind: [RISKS]}) { totalCount } }", headers=reader.auth()
    )
    assert "errors" in unknown.json()
