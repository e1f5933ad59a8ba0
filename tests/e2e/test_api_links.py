"""The graph: links between entities both ways, each nested path batched (its statements
do not grow with the number of parents), and read as of the moment of its parent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from tests.e2e.conftest import Api, ApiFactory, new_id, program_input, resource_input
from tests.support.ledger import settled
from tests.support.projection_process import LiveSystem
from tests.support.statements import counting_statements


async def _query(api: Api, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = await api.post(query, variables, headers=api.auth())
    body = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body
    return body["data"]


async def _program_with_everything(api: Api, n: int) -> dict[str, Any]:
    """An active program with two milestones (the second waiting on the first), a risk, a
    decision superseded by another, a lesson, and an allocation of a resource of its own."""
    program, first, second, d1, d2, risk = (new_id() for _ in range(6))
    key = f"person.{n}"
    await api.accepted("proposeProgram", program_input(program))
    await api.accepted("activateProgram", {"programId": program})
    for milestone, due in ((first, "2027-03-31"), (second, "2027-06-30")):
        await api.accepted(
            "planMilestone",
            {"programId": program, "milestoneId": milestone, "name": due, "dueDate": due},
        )
    await api.accepted(
        "registerDependency",
        {
            "programId": program,
            "dependencyId": new_id(),
            "title": "Pilot before rollout",
            "dependent": {"kind": "MILESTONE", "itemId": second},
            "dependsOn": {
                "programItem": {"programId": program, "kind": "MILESTONE", "itemId": first}
            },
            "neededBy": "2027-04-30",
        },
    )
    decision = {
        "programId": program,
        "title": "Vendor",
        "context": "Two offers",
        "outcome": "Vendor A",
        "decidedBy": "Dana",
        "decidedOn": "2027-01-10",
    }
    await api.accepted("recordDecision", {**decision, "decisionId": d1})
    await api.accepted(
        "supersedeDecision", {**decision, "decisionId": d2, "supersedes": d1, "outcome": "B"}
    )
    await api.accepted(
        "recordLesson",
        {"programId": program, "lessonId": new_id(), "whatHappened": "Late", "learned": "Ask"},
    )
    await api.accepted(
        "identifyRisk",
        {
            "riskId": risk,
            "programId": program,
            "title": "Vendor is late",
            "category": "VENDOR",
            "probability": 3,
            "impact": 4,
            "owner": "Tia",
        },
    )
    await api.accepted("registerResource", resource_input(key))
    done = await api.accepted(
        "proposeAllocation",
        {
            "resourceKey": key,
            "allocationId": new_id(),
            "programId": program,
            "percentage": 50,
            "startDate": "2027-02-01",
            "endDate": "2027-02-28",
            "waitForProjections": True,
        },
    )
    assert done["projectionsCaughtUp"] is True
    return {"program": program, "first": first, "second": second, "d1": d1, "d2": d2}


async def _all_caught_up(api: Api) -> None:
    """Every read model at the last event written before the runners stop: a command
    waits only for the read models its own events change. ``settled``, since the safe head
    alone can lag the last event while another suite's transaction runs."""
    assert api.watch is not None
    outcome = await api.watch.wait(await settled(api.store), 30.0, committed=True)
    assert outcome.caught_up, outcome.behind


@pytest_asyncio.fixture
async def graph(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[tuple[Api, list[dict[str, Any]]]]:
    """Three such programs; the relay and runners stopped, so only the API's statements
    are counted."""
    async with api_with(watch=True) as api:
        async with LiveSystem(api.store, pg_url, nats_url, subject_prefix):
            made = [await _program_with_everything(api, n) for n in range(3)]
            await _all_caught_up(api)
        yield api, made


PATHS = {
    "risk.program": ("risks(first: $n) { nodes { program { code } } }", 2),
    "milestone.program, dependencies both ways": (
        "milestones(first: $n) { nodes { program { code } dependencies { title } "
        "dependents { title } } }",
        4,
    ),
    "dependency.programs and milestones": (
        "dependencies(first: $n) { nodes { program { code } targetProgram { code } "
        "dependentMilestone { name } targetMilestone { name } } }",
        3,
    ),
    "decision.supersedes, supersededBy, program": (
        "decisions(first: $n) { nodes { supersedes { title } supersededBy { title } "
        "program { code } } }",
        3,
    ),
    "lesson.program": ("lessons(first: $n) { nodes { program { code } } }", 2),
    "allocation.resource and program": (
        "allocations(first: $n) { nodes { resource { name } program { code } } }",
        3,
    ),
    "resource.allocations.program": (
        "resources(first: $n) { nodes { allocations { percentage program { code } } } }",
        3,
    ),
    "program.decisions, lessons, dependencies both ways": (
        "programs(first: $n) { nodes { decisions { title } lessons { learned } "
        "dependencies { title } dependents { title } } }",
        5,
    ),
    "program.nextMilestone": ("programs(first: $n) { nodes { nextMilestone { name } } }", 2),
    "risk.program.risks, milestones.dependencies": (
        "risks(first: $n) { nodes { program { risks { title } milestones { "
        "dependencies { title } } } } }",
        5,
    ),
}


async def test_links_lead_both_ways_and_each_nested_path_is_batched(
    graph: tuple[Api, list[dict[str, Any]]],
) -> None:
    """Each path costs the same statements for one parent or three."""
    api, made = graph
    await _links_lead_both_ways(api, made[0])
    counted = {}
    for path, (selection, _) in PATHS.items():
        query = f"query Path($n: Int!) {{ {selection} }}"
        with counting_statements() as one:
            await _query(api, query, {"n": 1})
        with counting_statements() as three:
            data = await _query(api, query, {"n": 3})
        [listed] = data.values()
        assert len(listed["nodes"]) == 3, path
        counted[path] = (len(one), len(three))
    assert counted == {path: (expected, expected) for path, (_, expected) in PATHS.items()}


async def _links_lead_both_ways(api: Api, ids: dict[str, Any]) -> None:
    data = await _query(
        api,
        """query Links($program: ID!, $first: ID!, $second: ID!, $d1: ID!) {
          program(id: $program) { code }
          first: milestone(id: $first) {
            program { programId }
            dependents { title dependentMilestone { milestoneId } }
          }
          second: milestone(id: $second) {
            dependencies { targetMilestone { milestoneId } targetProgram { programId } }
          }
          decision(id: $d1) { supersededById supersededBy { decisionId supersedes { decisionId } } }
          resource(resourceKey: "person.0") { allocations { program { programId } } }
        }""",
        ids,
    )
    program = {"programId": ids["program"]}
    assert data["first"]["program"] == program
    [waiting] = data["first"]["dependents"]
    assert waiting["dependentMilestone"] == {"milestoneId": ids["second"]}
    [waits_on] = data["second"]["dependencies"]
    assert waits_on == {"targetMilestone": {"milestoneId": ids["first"]}, "targetProgram": program}
    decision = data["decision"]
    assert decision["supersededById"] == ids["d2"]
    assert decision["supersededBy"] == {
        "decisionId": ids["d2"],
        "supersedes": {"decisionId": ids["d1"]},
    }
    assert data["resource"]["allocations"] == [{"program": program}]


async def test_a_link_reads_as_of_its_parent(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with api_with(watch=True) as api:
        async with LiveSystem(api.store, pg_url, nats_url, subject_prefix):
            program, risk = new_id(), new_id()
            await api.accepted("proposeProgram", program_input(program, name="Before"))
            before = await api.accepted(
                "identifyRisk",
                {
                    "riskId": risk,
                    "programId": program,
                    "title": "Vendor",
                    "category": "VENDOR",
                    "probability": 2,
                    "impact": 2,
                    "owner": "Tia",
                },
            )
            await api.accepted(
                "updateProgramDetails",
                {"programId": program, "name": "After", "waitForProjections": True},
            )
            await _all_caught_up(api)
        query = """query R($risk: ID!, $at: SafeInt) {
          risk(id: $risk, asOfPosition: $at) { program { name risks { title } } }
        }"""
        then = await _query(api, query, {"risk": risk, "at": before["position"]})
        now = await _query(api, query, {"risk": risk, "at": None})
    assert then["risk"]["program"] == {"name": "Before", "risks": [{"title": "Vendor"}]}
    assert now["risk"]["program"]["name"] == "After"


ITEMS = """mutation Items(
  $milestone: PlanMilestoneInput!, $decision: RecordDecisionInput!,
  $superseding: SupersedeDecisionInput!
) {
  planMilestone(input: $milestone) {
    ... on PlanMilestoneSuccess { program { version } milestone { name program { code } } }
  }
  recordDecision(input: $decision) { ... on RecordDecisionSuccess { decision { title } } }
  supersedeDecision(input: $superseding) {
    ... on SupersedeDecisionSuccess {
      decision { title supersedes { title supersededBy { title } } }
    }
  }
}"""


async def test_a_success_returns_the_item_the_command_names(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    async with (
        api_with(watch=True) as api,
        LiveSystem(api.store, pg_url, nats_url, subject_prefix),
    ):
        program, d1 = new_id(), new_id()
        values = program_input(program)
        await api.accepted("proposeProgram", values)
        decision = {
            "programId": program,
            "context": "Two offers",
            "outcome": "A",
            "decidedBy": "Dana",
            "decidedOn": "2027-01-10",
        }
        response = await api.post(
            ITEMS,
            {
                "milestone": {
                    "programId": program,
                    "milestoneId": new_id(),
                    "name": "Beta",
                    "dueDate": "2027-04-30",
                },
                "decision": {**decision, "decisionId": d1, "title": "First"},
                "superseding": {
                    **decision,
                    "decisionId": new_id(),
                    "title": "Second",
                    "supersedes": d1,
                },
            },
            headers=api.auth(),
        )
    body = response.json()
    assert "errors" not in body, body
    data = body["data"]
    planned = data["planMilestone"]
    assert planned["milestone"] == {"name": "Beta", "program": {"code": values["code"]}}
    assert planned["program"]["version"] == 2
    assert data["recordDecision"]["decision"] == {"title": "First"}
    assert data["supersedeDecision"]["decision"] == {
        "title": "Second",
        "supersedes": {"title": "First", "supersededBy": {"title": "Second"}},
    }


PARTS = """mutation Parts(
  $workstream: AddWorkstreamInput!, $stakeholder: AddStakeholderInput!,
  $budget: AllocateBudgetInput!, $milestone: PlanMilestoneInput!,
  $assumption: RecordAssumptionInput!
) {
  addWorkstream(input: $workstream) {
    ... on AddWorkstreamSuccess { workstream { name program { code } createdBy } }
  }
  addStakeholder(input: $stakeholder) {
    ... on AddStakeholderSuccess { stakeholder { name role lastChange } }
  }
  allocateBudget(input: $budget) {
    ... on AllocateBudgetSuccess {
      budgetAllocation { purpose program { code } } workstream { name }
    }
  }
  planMilestone(input: $milestone) { ... on PlanMilestoneSuccess { workstream { name } } }
  recordAssumption(input: $assumption) {
    ... on RecordAssumptionSuccess { assumption { statement createdBy lastChange } }
  }
}"""


async def test_a_success_returns_the_part_of_the_program_the_command_names(
    api_with: ApiFactory, pg_url: str, nats_url: str, subject_prefix: str
) -> None:
    """Workstreams, stakeholders and budget allocations are keyed within their program:
    a program command naming one reads it back; one that leaves an optional id out reads
    null. A RAID item says who made it (Recorded) like every entity."""
    async with (
        api_with(watch=True) as api,
        LiveSystem(api.store, pg_url, nats_url, subject_prefix),
    ):
        program, workstream = new_id(), new_id()
        values = program_input(program)
        await api.accepted("proposeProgram", values)
        response = await api.post(
            PARTS,
            {
                "workstream": {
                    "programId": program,
                    "workstreamId": workstream,
                    "name": "Checkout",
                    "lead": "Lee",
                    "department": "ENGINEERING",
                },
                "stakeholder": {
                    "programId": program,
                    "stakeholderId": new_id(),
                    "name": "Legal",
                    "kind": "TEAM",
                    "department": "LEGAL",
                    "role": "CONSULTED",
                },
                "budget": {
                    "programId": program,
                    "budgetAllocationId": new_id(),
                    "workstreamId": workstream,
                    "amount": {"amountMinor": 1_000_00, "currency": "EUR"},
                    "purpose": "Licences",
                },
                "milestone": {
                    "programId": program,
                    "milestoneId": new_id(),
                    "name": "Beta",
                    "dueDate": "2027-04-30",
                },
                "assumption": {
                    "assumptionId": new_id(),
                    "programId": program,
                    "statement": "Sandbox ready",
                    "owner": "Priya",
                    "confidence": "LOW",
                    "validateBy": "2027-02-15",
                },
            },
            headers=api.auth(),
        )
    body = response.json()
    assert "errors" not in body, body
    data = body["data"]
    actor = data["addWorkstream"]["workstream"].pop("createdBy")
    assert data["addWorkstream"]["workstream"] == {
        "name": "Checkout",
        "program": {"code": values["code"]},
    }
    assert data["addStakeholder"]["stakeholder"] == {
        "name": "Legal",
        "role": "CONSULTED",
        "lastChange": "StakeholderAdded",
    }
    assert data["allocateBudget"] == {
        "budgetAllocation": {"purpose": "Licences", "program": {"code": values["code"]}},
        "workstream": {"name": "Checkout"},
    }
    assert data["planMilestone"] == {"workstream": None}
    assert data["recordAssumption"]["assumption"] == {
        "statement": "Sandbox ready",
        "createdBy": actor,
        "lastChange": "AssumptionRecorded",
    }
