"""Writing through the API the way a frontend does: commands, typed refusals, retries."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from programledger.api import Role
from programledger.projections.engine.progress import WaitOutcome, projections_for_event_types
from programledger.projections.registry import PROJECTIONS
from tests.e2e.conftest import (
    Api,
    ApiFactory,
    new_id,
    payload_fields,
    program_input,
    resource_input,
)
from tests.support.ledger import settled


async def test_a_frontend_plans_a_program_and_staffs_it(api: Api) -> None:
    tia = api.auth(Role.EDITOR, subject="tia@example.com")
    program = new_id()
    proposed = await api.accepted("proposeProgram", program_input(program), headers=tia)
    assert proposed["entityId"] == program
    assert proposed["streamId"] == f"program-{program}"
    assert (proposed["version"], proposed["eventTypes"]) == (1, ["ProgramProposed"])
    assert proposed["replayed"] is False

    activated = await api.accepted(
        "activateProgram",
        {"programId": program, "expectedVersion": 1, "reason": "approved by the board"},
        headers=tia,
    )
    assert activated["version"] == 2
    assert activated["position"] > proposed["position"]

    workstream = new_id()
    await api.accepted(
        "addWorkstream",
        {
            "programId": program,
            "workstreamId": workstream,
            "name": "Checkout",
            "lead": "Lee",
            "department": "ENGINEERING",
        },
        headers=tia,
    )
    for name, due in (("Beta", "2027-04-30"), ("Launch", "2027-09-30")):
        planned = await api.accepted(
            "planMilestone",
            {
                "programId": program,
                "milestoneId": new_id(),
                "name": name,
                "dueDate": due,
                "workstreamId": workstream,
            },
            headers=tia,
        )
        assert planned["eventTypes"] == ["MilestonePlanned"]

    risk = new_id()
    identified = await api.accepted(
        "identifyRisk",
        {
            "riskId": risk,
            "programId": program,
            "title": "Card vendor is late",
            "category": "VENDOR",
            "probability": 3,
            "impact": 4,
            "owner": "Tia",
            "workstreamId": workstream,
        },
        headers=tia,
    )
    assert (identified["entityId"], identified["streamId"]) == (risk, f"risk-{risk}")
    assessed = await api.accepted(
        "assessRisk", {"riskId": risk, "probability": 4, "impact": 5}, headers=tia
    )
    assert assessed["eventTypes"] == ["RiskAssessed"]

    registered = await api.accepted("registerResource", resource_input("alice.martin"), headers=tia)
    assert registered["entityId"] == "alice.martin"
    first, second = new_id(), new_id()
    await api.accepted(
        "proposeAllocation",
        _allocation(program, first, 60, "2027-02-01", "2027-04-30"),
        headers=tia,
    )
    confirmed = await api.accepted(
        "confirmAllocation", {"resourceKey": "alice.martin", "allocationId": first}, headers=tia
    )
    assert confirmed["eventTypes"] == ["AllocationConfirmed"]
    await api.accepted(
        "proposeAllocation",
        _allocation(program, second, 50, "2027-04-01", "2027-05-31"),
        headers=tia,
    )

    refused = await api.mutate(
        "confirmAllocation", {"resourceKey": "alice.martin", "allocationId": second}, headers=tia
    )
    assert refused["__typename"] == "OverAllocationError"
    assert refused["code"] == "OVER_ALLOCATED"
    assert refused["resourceKey"] == "alice.martin"
    assert refused["conflicts"] == [
        {
            "start": "2027-04-01",
            "end": "2027-04-30",
            "totalPercentage": 110,
            "capacity": 100,
            "programIds": [program],
            "allocationIds": sorted([first, second]),
        }
    ]

    overridden = await api.accepted(
        "confirmAllocation",
        {
            "resourceKey": "alice.martin",
            "allocationId": second,
            "overrideReason": "Alice agreed to the crunch for April",
        },
        headers=tia,
    )
    assert overridden["eventTypes"] == ["AllocationConfirmed"]

    await settled(api.store)
    events = await api.store.read_all()
    assert {event.metadata.actor for event in events} == {"tia@example.com"}
    activation = next(e for e in events if e.event_type == "ProgramActivated")
    assert activation.metadata.reason == "approved by the board"
    assert any(getattr(e.data, "override_reason", None) for e in events)


async def test_a_stale_expected_version_is_a_conflict_with_the_current_version(api: Api) -> None:
    program = new_id()
    await api.accepted("proposeProgram", program_input(program))
    await api.accepted(
        "reportProgramHealth",
        {"programId": program, "health": "AMBER", "summary": "vendor slipping"},
    )

    conflict = await api.mutate("activateProgram", {"programId": program, "expectedVersion": 1})

    assert conflict["__typename"] == "ConflictError"
    assert (conflict["expectedVersion"], conflict["currentVersion"]) == (1, 2)
    assert conflict["path"] == ["input", "expectedVersion"]
    assert len(await api.store.read_stream(f"program-{program}")) == 2


async def test_an_idempotency_key_header_replays_the_first_result(api: Api) -> None:
    values = program_input(new_id())
    headers = {**api.auth(), "Idempotency-Key": new_id()}

    first = await api.accepted("proposeProgram", values, headers=headers)
    again = await api.accepted("proposeProgram", values, headers=headers)

    assert first["replayed"] is False
    assert again["replayed"] is True
    for field in ("position", "version", "eventIds", "entityId"):
        assert again[field] == first[field]
    assert len(await api.store.read_stream(first["streamId"])) == 1


async def test_an_idempotency_key_in_the_input_replays_and_refuses_another_command(
    api: Api,
) -> None:
    program, key = new_id(), new_id()
    await api.accepted("proposeProgram", program_input(program))
    activate = {"programId": program, "idempotencyKey": key}

    first = await api.accepted("activateProgram", activate)
    again = await api.accepted("activateProgram", activate)
    other = await api.mutate(
        "reportProgramHealth",
        {"programId": program, "health": "GREEN", "summary": "fine", "idempotencyKey": key},
    )

    assert (again["replayed"], again["position"]) == (True, first["position"])
    assert other["__typename"] == "IdempotencyKeyReusedError"
    assert (other["key"], other["path"]) == (key, ["input", "idempotencyKey"])


async def test_one_idempotency_key_header_cannot_cover_several_mutations(api: Api) -> None:
    query = """
        mutation Two($a: ProposeProgramInput!, $b: ProposeProgramInput!) {
          a: proposeProgram(input: $a) { __typename ... on ValidationError { path } }
          b: proposeProgram(input: $b) { __typename }
        }
    """
    response = await api.post(
        query,
        {"a": program_input(new_id()), "b": program_input(new_id())},
        headers={**api.auth(), "Idempotency-Key": new_id()},
    )

    data = response.json()["data"]
    assert data["a"] == {"__typename": "ValidationError", "path": ["input", "idempotencyKey"]}
    assert await api.store.read_all() == []


async def test_the_actor_is_the_token_subject_whatever_the_input_says(api: Api) -> None:
    values = {**program_input(new_id()), "actor": "mallory"}
    query = (
        "mutation($input: ProposeProgramInput!) { proposeProgram(input: $input) { __typename } }"
    )

    smuggled = await api.post(query, {"input": values}, headers=api.auth(subject="bob"))
    accepted = await api.accepted(
        "proposeProgram", program_input(new_id()), headers=api.auth(subject="bob")
    )

    assert smuggled.status_code == 200
    assert smuggled.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    events = await api.store.read_stream(accepted["streamId"])
    assert [event.metadata.actor for event in events] == ["bob"]


async def test_domain_refusals_map_one_to_one_to_typed_errors(api: Api) -> None:
    program = new_id()
    proposal = program_input(program)
    await api.accepted("proposeProgram", proposal)

    on_hold = await api.mutate("putProgramOnHold", {"programId": program, "reason": "budget"})
    assert on_hold["__typename"] == "InvalidTransitionError"
    assert (on_hold["code"], on_hold["fromStatus"], on_hold["attempted"]) == (
        "INVALID_TRANSITION",
        "PROPOSED",
        "PutProgramOnHold",
    )

    missing = new_id()
    not_found = await api.mutate("activateProgram", {"programId": missing})
    assert not_found["__typename"] == "NotFoundError"
    assert (not_found["entityId"], not_found["path"]) == (missing, ["input", "programId"])

    taken = await api.mutate(
        "proposeProgram", {**program_input(new_id()), "code": proposal["code"]}
    )
    assert taken["__typename"] == "AlreadyExistsError"
    assert (taken["entity"], taken["path"]) == ("program code", ["input", "code"])

    too_much = await api.mutate(
        "allocateBudget",
        {
            "programId": program,
            "budgetAllocationId": new_id(),
            "costCentre": "CC-1",
            "amount": {"amountMinor": 250_000_000_01, "currency": "EUR"},
        },
    )
    assert too_much["__typename"] == "BudgetExceededError"

    await api.accepted("cancelProgram", {"programId": program, "reason": "superseded"})
    final = await api.mutate("activateProgram", {"programId": program})
    assert (final["__typename"], final["code"]) == ("InvalidTransitionError", "TERMINAL_STATE")


async def test_validation_errors_name_every_wrong_field_by_its_graphql_path(api: Api) -> None:
    program = new_id()
    await api.accepted("proposeProgram", program_input(program))
    wrong = await api.mutate(
        "registerDependency",
        {
            "programId": program,
            "dependencyId": new_id(),
            "title": "bad\nline",
            "neededBy": "2027-03-01",
            "dependent": {"kind": "MILESTONE", "itemId": new_id()},
            "dependsOn": {"external": {"party": " "}},
        },
    )

    assert wrong["__typename"] == "ValidationError"
    assert wrong["path"] == ["input"]
    paths = [issue["path"] for issue in wrong["issues"]]
    assert ["input", "title"] in paths
    assert ["input", "dependent", "itemId"] in paths
    assert ["input", "dependsOn", "external", "party"] in paths
    # Messages name fields as GraphQL does, like the paths.
    assert "depends_on" not in wrong["message"]
    assert "dependsOn.party" in wrong["message"], wrong["message"]
    assert "dependent.itemId" in wrong["message"], wrong["message"]


async def test_partial_updates_tell_leave_out_from_null(api: Api) -> None:
    program = new_id()
    await api.accepted("proposeProgram", program_input(program, description="first draft"))

    cleared = await api.accepted(
        "updateProgramDetails", {"programId": program, "description": None}
    )
    unchanged = await api.accepted("updateProgramDetails", {"programId": program})
    not_nullable = await api.mutate("updateProgramDetails", {"programId": program, "name": None})

    assert cleared["eventTypes"] == ["ProgramDetailsUpdated"]
    assert (unchanged["eventTypes"], unchanged["version"]) == ([], cleared["version"])
    assert not_nullable["__typename"] == "ValidationError"
    assert not_nullable["issues"][0]["path"] == ["input", "name"]
    assert "null" in not_nullable["issues"][0]["message"]


async def test_an_id_that_is_not_a_uuid_is_a_validation_error(api: Api) -> None:
    refused = await api.mutate("activateProgram", {"programId": "not-a-uuid"})

    assert refused["__typename"] == "ValidationError"
    assert refused["path"] == ["input", "programId"]


async def test_wait_for_projections_waits_for_the_read_models_its_events_touch(
    api_with: ApiFactory,
) -> None:
    asked: list[tuple[int, float, frozenset[str], bool]] = []

    async def read_side_caught_up(
        position: int,
        within: float,
        projections: Collection[str] | None = None,
        *,
        committed: bool = False,
    ) -> WaitOutcome:
        asked.append((position, within, frozenset(projections or ()), committed))
        return WaitOutcome()

    async def read_side_down(
        position: int,
        within: float,
        projections: Collection[str] | None = None,
        *,
        committed: bool = False,
    ) -> WaitOutcome:
        raise ConnectionError("projection database unreachable")

    async with api_with(wait_for_position=read_side_caught_up) as api:
        waited = await api.accepted(
            "proposeProgram", program_input(new_id(), waitForProjections=True)
        )
        not_asked = await api.accepted("proposeProgram", program_input(new_id()))
    async with api_with(wait_for_position=read_side_down) as api:
        response = await api.post(
            "mutation Run($input: ProposeProgramInput!) { proposeProgram(input: $input) { "
            f"{payload_fields('proposeProgram')} }} }}",
            {"input": program_input(new_id(), waitForProjections=True)},
            headers=api.auth(),
        )

    touched = projections_for_event_types(["ProgramProposed"])
    assert touched
    assert touched != frozenset(PROJECTIONS)  # only the ones it touches
    assert waited["projectionsCaughtUp"] is True
    assert asked == [(waited["position"], 5.0, touched, True)]
    assert not_asked["projectionsCaughtUp"] is None
    body = response.json()
    failed = body["data"]["proposeProgram"]
    assert failed["projectionsCaughtUp"] is False
    assert failed["eventTypes"] == ["ProgramProposed"]
    # Said in the response, not only in the payload: a client's cache layer sees it.
    assert body["extensions"] == {"projectionsBehind": sorted(touched), "stale": True}
    assert response.headers["Programledger-Projections-Behind"] == ",".join(sorted(touched))


def _allocation(
    program: str, allocation: str, percentage: int, start: str, end: str
) -> dict[str, Any]:
    return {
        "resourceKey": "alice.martin",
        "allocationId": allocation,
        "programId": program,
        "percentage": percentage,
        "startDate": start,
        "endDate": end,
    }
