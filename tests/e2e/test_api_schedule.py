"""The schedule through the API: links and change control as mutations, and the critical
path, what-if, variance, baselines and change requests as queries, now and as of a past
position, with the relay and runners filling the read models as in production."""

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


async def _query(
    api: Api, query: str, variables: dict[str, Any], role: Role = Role.VIEWER
) -> dict[str, Any]:
    response = await api.post(query, variables, headers=api.auth(role))
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def _program(api: Api, milestones: dict[str, str]) -> tuple[str, dict[str, str]]:
    program = new_id()
    await api.accepted("proposeProgram", program_input(program, sponsor="Sam Sponsor"))
    await api.accepted("activateProgram", {"programId": program})
    ids = {}
    for name, due in milestones.items():
        ids[name] = new_id()
        await api.accepted(
            "planMilestone",
            {"programId": program, "milestoneId": ids[name], "name": name, "dueDate": due},
        )
    return program, ids


def _ref(program: str, milestone: str) -> dict[str, str]:
    return {"programId": program, "milestoneId": milestone}


async def test_a_cross_program_slip_moves_the_forecast_and_names_its_first_domino(
    reader: Api,
) -> None:
    pay, m = await _program(reader, {"build": "2027-04-01", "launch": "2027-05-01"})
    kyc, k = await _program(reader, {"vendor": "2027-03-01"})
    before = await reader.accepted(
        "linkMilestones",
        {
            "links": [
                {
                    "linkId": new_id(),
                    "predecessor": _ref(pay, m["build"]),
                    "successor": _ref(pay, m["launch"]),
                    "lagDays": 10,
                },
                {
                    "linkId": new_id(),
                    "predecessor": _ref(kyc, k["vendor"]),
                    "successor": _ref(pay, m["launch"]),
                    "type": "FINISH_TO_FINISH",
                    "lagDays": 30,
                },
            ]
        },
    )
    slip = await reader.accepted(
        "rescheduleMilestone",
        {
            "programId": kyc,
            "milestoneId": k["vendor"],
            "forecastDate": "2027-04-20",
            "reason": "Vendor contract signed late",
            "waitForProjections": True,
        },
    )
    assert slip["projectionsCaughtUp"]
    analysis = """query A($p: [ID!], $at: SafeInt) {
      scheduleAnalysis(programIds: $p, asOfPosition: $at) {
        endMilestoneId finishDate asOfPosition
        criticalPath { milestoneId }
        milestones { milestoneId forecastDate drivenBy firstDomino totalFloat critical }
        firstDominoMoves { milestoneId actor reason eventType }
    } }"""
    now = (await _query(reader, analysis, {"p": [pay]}))["scheduleAnalysis"]
    assert now["endMilestoneId"] == m["launch"]
    assert now["finishDate"] == "2027-05-20"  # vendor 04-20 + 30 (FF)
    assert [x["milestoneId"] for x in now["criticalPath"]] == [k["vendor"], m["launch"]]
    assert now["firstDominoMoves"][0]["reason"] == "Vendor contract signed late"
    launch = next(x for x in now["milestones"] if x["milestoneId"] == m["launch"])
    assert (launch["drivenBy"], launch["firstDomino"]) == (k["vendor"], k["vendor"])
    past = {"p": [pay], "at": before["position"]}
    then = (await _query(reader, analysis, past, Role.AUDITOR))["scheduleAnalysis"]
    assert then["finishDate"] == "2027-05-01"
    assert [x["milestoneId"] for x in then["criticalPath"]] == [m["launch"]]
    what_if = """query W($m: ID!, $d: Int!) {
      scheduleWhatIf(milestoneId: $m, slipDays: $d) { milestoneId slipDays } }"""
    # build 04-21 + 10 = 05-01: the launch, held at 05-20 by the vendor, does not move
    moved = await _query(reader, what_if, {"m": m["build"], "d": 20})
    assert moved["scheduleWhatIf"] == [{"milestoneId": m["build"], "slipDays": 20}]
    moved = await _query(reader, what_if, {"m": k["vendor"], "d": 3})
    assert moved["scheduleWhatIf"] == [
        {"milestoneId": k["vendor"], "slipDays": 3},
        {"milestoneId": m["launch"], "slipDays": 3},
    ]


async def test_change_control_through_the_api(reader: Api) -> None:
    pay, m = await _program(reader, {"pilot": "2027-06-30"})
    cr = new_id()
    await reader.accepted(
        "raiseChangeRequest",
        {
            "programId": pay,
            "changeRequestId": cr,
            "title": "3DS2",
            "description": "Regulator",
            "raisedBy": "Tom",
            "scheduleImpact": [{"milestoneId": m["pilot"], "day": "2027-08-31"}],
            "budgetImpact": {"amountMinor": 500000, "currency": "EUR"},
            "scopeAdded": ["3-D Secure 2"],
        },
    )
    refused = await reader.mutate(
        "approveChangeRequest",
        {
            "programId": pay,
            "changeRequestId": cr,
            "decidedBy": "Sam Sponsor",
            "reason": "r",
            "baselineName": "B1",
        },
    )
    assert refused["__typename"] == "InvalidTransitionError"
    await reader.accepted(
        "assessChangeRequest",
        {"programId": pay, "changeRequestId": cr, "assessedBy": "Priya", "assessment": "ok"},
    )
    await reader.accepted(
        "approveChangeRequest",
        {
            "programId": pay,
            "changeRequestId": cr,
            "decidedBy": "Sam Sponsor",
            "reason": "Regulatory",
            "baselineName": "After SCA",
            "waitForProjections": True,
        },
    )
    data = await _query(
        reader,
        """query C($p: ID!) {
             baselines(programId: $p) { version name budget { amountMinor } scope }
             changeRequests(programId: $p) { status baselineVersion createdBy lastChange }
             plan: scheduleVariance(programId: $p) {
               baselineVersion milestones { varianceDays } lateCount }
             between: scheduleVariance(programId: $p, baselineVersion: 0, againstVersion: 1) {
               endVarianceDays budgetVariance { amountMinor } scopeAdded } }""",
        {"p": pay},
    )
    assert [(b["version"], b["name"]) for b in data["baselines"]] == [
        (0, "Original plan"),
        (1, "After SCA"),
    ]
    assert data["changeRequests"] == [
        {
            "status": "APPROVED",
            "baselineVersion": 1,
            "createdBy": "alice@example.com",
            "lastChange": "ChangeRequestApproved",
        }
    ]
    assert data["plan"]["baselineVersion"] == 1
    assert data["plan"]["milestones"] == [{"varianceDays": -62}]  # forecast 06-30, base 08-31
    assert data["plan"]["lateCount"] == 0
    assert data["between"]["endVarianceDays"] == 62
    assert data["between"]["budgetVariance"] == {"amountMinor": 500000}
    assert data["between"]["scopeAdded"] == ["3-D Secure 2"]


async def test_a_link_closing_a_cycle_is_a_typed_refusal_naming_it(reader: Api) -> None:
    pay, m = await _program(reader, {"a": "2027-04-01", "b": "2027-05-01"})
    kyc, k = await _program(reader, {"c": "2027-03-01"})
    for pred, succ in (((pay, m["a"]), (kyc, k["c"])), ((kyc, k["c"]), (pay, m["b"]))):
        await reader.accepted(
            "linkMilestones",
            {"links": [{"linkId": new_id(), "predecessor": _ref(*pred), "successor": _ref(*succ)}]},
        )
    refused = await reader.mutate(
        "linkMilestones",
        {
            "links": [
                {
                    "linkId": new_id(),
                    "predecessor": _ref(pay, m["b"]),
                    "successor": _ref(pay, m["a"]),
                }
            ]
        },
    )
    assert refused["__typename"] == "ValidationError"
    assert refused["code"] == "SCHEDULE_CYCLE"
    assert refused["path"] == ["input", "links[0]"]
    assert all(x in refused["message"] for x in (m["a"], m["b"], k["c"], kyc))


LINKS = """query Links($program: ID!, $milestone: ID!, $then: SafeInt!) {
  scheduleLinks(programId: $program) { linkId lagDays type removed createdBy lastChange }
  everything: scheduleLinks(programId: $program, includeRemoved: true, asOfPosition: $then) {
    linkId removed lastChange lastChangeReason updatedBy
  }
  milestone(id: $milestone) { durationDays lastChange lastChangeReason }
  changeRequests(programId: $program) { changeRequestId }
}"""


async def test_links_read_back_with_who_made_them_and_why_one_went(reader: Api) -> None:
    pay, m = await _program(reader, {"a": "2027-04-01", "b": "2027-05-01"})
    link = new_id()
    spec = {"linkId": link, "predecessor": _ref(pay, m["a"]), "successor": _ref(pay, m["b"])}
    await reader.accepted("linkMilestones", {"links": [{**spec, "lagDays": 3}]})
    unlinked = await reader.accepted(
        "unlinkMilestones", {"linkIds": [link], "reason": "Not needed after all"}
    )
    # The same link id again, after its unlink: its row comes back.
    await reader.accepted(
        "linkMilestones", {"links": [{**spec, "lagDays": 5}], "waitForProjections": True}
    )
    await reader.accepted(
        "setMilestoneDuration",
        {
            "programId": pay,
            "milestoneId": m["b"],
            "durationDays": 4,
            "reason": "Two testers",
            "waitForProjections": True,
        },
    )
    data = await _query(
        reader, LINKS, {"program": pay, "milestone": m["b"], "then": unlinked["position"]}
    )
    assert data["scheduleLinks"] == [
        {
            "linkId": link,
            "lagDays": 5,
            "type": "FINISH_TO_START",
            "removed": False,
            "createdBy": "alice@example.com",
            "lastChange": "MilestonesLinked",
        }
    ]
    assert data["everything"] == [
        {
            "linkId": link,
            "removed": True,
            "lastChange": "MilestonesUnlinked",
            "lastChangeReason": "Not needed after all",
            "updatedBy": "alice@example.com",
        }
    ]
    assert data["milestone"] == {
        "durationDays": 4,
        "lastChange": "MilestoneDurationSet",
        "lastChangeReason": "Two testers",
    }
    assert data["changeRequests"] == []
