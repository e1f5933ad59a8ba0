"""Portfolios and objectives through the API: generated mutations, the roll-up and its
nested lists now and as of a past position, with the relay and runners filling the read
model as in production."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from programledger.api import Role
from tests.e2e.conftest import Api, ApiFactory, new_id, program_input
from tests.support.projection_process import LiveSystem


@pytest_asyncio.fixture
async def reader(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[Api]:
    async with api_with(watch=True) as api, LiveSystem(api.store, pg_url, nats_url, subject_prefix):
        yield api


async def _query(api: Api, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(query, variables, headers=api.auth(Role.VIEWER))
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


ROLL_UP = """query P($id: ID!, $at: SafeInt) {
  portfolio(id: $id, asOfPosition: $at) {
    name status programCount health programsRed programsUnreported
    openRisks riskExposure objectives keyResults keyResultProgress keyResultConfidence
    budgets { currency programs planned { amountMinor currency } }
    programs(first: 10) { totalCount nodes { programId code } }
    moves { nodes { programId fromPortfolioId toPortfolioId reason actor } }
    createdAt updatedAt lastChange lastChangeReason
  }
}"""


async def test_a_portfolio_rolls_up_its_programs_now_and_as_of_a_past_position(
    reader: Api,
) -> None:
    growth, platform, program = new_id(), new_id(), new_id()
    await reader.accepted(
        "createPortfolio", {"portfolioId": growth, "name": "Growth", "owner": "Pat"}
    )
    await reader.accepted(
        "createPortfolio", {"portfolioId": platform, "name": "Platform", "owner": "Sam"}
    )
    await reader.accepted("proposeProgram", program_input(program))
    joined = await reader.accepted(
        "moveProgramToPortfolio", {"programId": program, "portfolioId": growth, "reason": "Q1"}
    )
    okr, kr = new_id(), new_id()
    await reader.accepted(
        "defineObjective",
        {
            "objectiveId": okr,
            "title": "Grow",
            "owner": "Dana",
            "startsOn": "2027-01-01",
            "endsOn": "2027-12-31",
            "key": "OKR-2027-01",
        },
    )
    await reader.accepted(
        "addKeyResult",
        {
            "objectiveId": okr,
            "keyResultId": kr,
            "name": "Customers",
            "unit": "customers",
            "baseline": 100,
            "target": 300,
            "confidence": 40,
        },
    )
    await reader.accepted("linkObjectiveToProgram", {"objectiveId": okr, "programId": program})
    await reader.accepted(
        "checkInKeyResult",
        {
            "objectiveId": okr,
            "keyResultId": kr,
            "value": 150,
            "confidence": 60,
            "checkedOn": "2027-02-01",
            "note": "Pilot",
        },
    )
    await reader.accepted(
        "reportProgramHealth", {"programId": program, "health": "RED", "summary": "Late"}
    )
    moved = await reader.accepted(
        "moveProgramToPortfolio",
        {"programId": program, "portfolioId": platform, "waitForProjections": True},
    )
    assert moved["projectionsCaughtUp"]

    now = (await _query(reader, ROLL_UP, {"id": growth}))["portfolio"]
    assert (now["programCount"], now["health"], now["budgets"]) == (0, None, [])
    assert [m["toPortfolioId"] for m in now["moves"]["nodes"]] == [growth, platform]
    then = (await _query(reader, ROLL_UP, {"id": growth, "at": joined["position"]}))["portfolio"]
    assert (then["programCount"], then["programsUnreported"]) == (1, 1)
    assert then["programs"]["nodes"][0]["programId"] == program
    assert then["budgets"][0]["planned"]["currency"] == "EUR"
    assert [m["reason"] for m in then["moves"]["nodes"]] == ["Q1"]
    # A roll-up's last change is what moved its figures: here the program moving in.
    assert (then["lastChange"], then["lastChangeReason"]) == ("ProgramMovedToPortfolio", "Q1")
    assert then["createdAt"] < then["updatedAt"] <= now["updatedAt"]

    other = (await _query(reader, ROLL_UP, {"id": platform}))["portfolio"]
    assert (other["programCount"], other["health"], other["programsRed"]) == (1, "RED", 1)
    assert (other["objectives"], other["keyResults"], other["keyResultProgress"]) == (1, 1, 25)
    assert other["keyResultConfidence"] == 60

    found = await _query(
        reader,
        """query O($p: ID!, $o: ID!) {
          portfolioOfProgram(programId: $p) { id portfolioId name }
          programObjectives(programId: $p) { nodes { objectiveId linkedAt } }
          objective(id: $o) {
            id title key progress programCount createdBy lastChange
            keyResults { name baseline target current confidence progress checkedOn lastChange
              checkIns { nodes { value confidence note actor } } }
            links { nodes { programId linked } }
          }
          objectives(filter: {key: "OKR-2027-01"}) { totalCount }
        }""",
        {"p": program, "o": okr},
    )
    assert found["portfolioOfProgram"]["portfolioId"] == platform
    assert found["programObjectives"]["nodes"][0]["objectiveId"] == okr
    objective = found["objective"]
    assert (objective["progress"], objective["programCount"]) == (25, 1)
    (key_result,) = objective["keyResults"]
    assert (key_result["current"], key_result["checkedOn"]) == (150, "2027-02-01")
    assert key_result["lastChange"] == objective["lastChange"] == "KeyResultCheckedIn"
    assert objective["createdBy"]
    assert key_result["checkIns"]["nodes"][0]["note"] == "Pilot"
    assert found["objectives"]["totalCount"] == 1
    nodes = await _query(
        reader,
        """query N($ids: [ID!]!) { nodes(ids: $ids) {
          ... on Portfolio { name programCount } ... on Objective { title } } }""",
        {"ids": [found["portfolioOfProgram"]["id"], objective["id"]]},
    )
    assert nodes["nodes"] == [{"name": "Platform", "programCount": 1}, {"title": "Grow"}]


async def test_a_move_into_an_archived_portfolio_is_a_typed_error(reader: Api) -> None:
    archived, program = new_id(), new_id()
    await reader.accepted("createPortfolio", {"portfolioId": archived, "name": "Old", "owner": "P"})
    await reader.accepted("archivePortfolio", {"portfolioId": archived, "reason": "Merged"})
    await reader.accepted("proposeProgram", program_input(program))
    response = await reader.post(
        """mutation M($input: MoveProgramToPortfolioInput!) {
          moveProgramToPortfolio(input: $input) {
            __typename ... on ValidationError { issues { path message } }
          }
        }""",
        {"input": {"programId": program, "portfolioId": archived}},
        headers=reader.auth(Role.EDITOR),
    )
    result = response.json()["data"]["moveProgramToPortfolio"]
    assert result["__typename"] == "ValidationError"
    assert result["issues"][0]["path"] == ["input", "portfolioId"]
