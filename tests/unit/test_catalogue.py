"""The event catalogue: stable names, explicit versions, exact JSON, routable by program."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import get_args

import msgspec
import pytest
from msgspec import inspect

from programledger.domain import EVENT_TYPES, domain_registry, program_id_of
from programledger.domain.assumption import AssumptionEvent
from programledger.domain.events import DomainEvent
from programledger.domain.issue import IssueEvent
from programledger.domain.objective import (
    KeyResultAdded,
    KeyResultCheckedIn,
    ObjectiveClosed,
    ObjectiveDefined,
    ObjectiveEvent,
)
from programledger.domain.portfolio import PortfolioEvent
from programledger.domain.program import ProgramEvent
from programledger.domain.report import StatusReportEvent
from programledger.domain.resource import (
    ResourceCapacityChanged,
    ResourceDetailsUpdated,
    ResourceEvent,
    ResourceRegistered,
)
from programledger.domain.risk import RiskEvent
from programledger.domain.scenario import ScenarioAllocationAdded, ScenarioEvent
from programledger.domain.schedule import ScheduleEvent
from tests.unit.examples import PROGRAM, alice_registered, program_proposed, proposed_allocation

STORED_NAMES = {
    "ActualSpendReported",
    "AllocationAdjusted",
    "AllocationConfirmed",
    "AllocationProposed",
    "AllocationReleased",
    "AssumptionDetailsUpdated",
    "AssumptionInvalidated",
    "AssumptionRecorded",
    "AssumptionValidated",
    "BudgetAllocated",
    "BudgetAllocationRevised",
    "ChangeRequestApproved",
    "ChangeRequestAssessed",
    "ChangeRequestRaised",
    "ChangeRequestRejected",
    "DecisionRecorded",
    "DependencyFlaggedAtRisk",
    "DependencyNeededByChanged",
    "DependencyRegistered",
    "DependencyReopened",
    "DependencyResolved",
    "DependencyRiskCleared",
    "IssueDetailsUpdated",
    "IssueEscalated",
    "IssueRaised",
    "IssueReopened",
    "IssueResolved",
    "LessonRecorded",
    "MilestoneCompleted",
    "MilestoneDurationSet",
    "MilestoneFlaggedAtRisk",
    "MilestoneMissed",
    "MilestonePlanned",
    "MilestoneRescheduled",
    "MilestoneRiskCleared",
    "MilestonesLinked",
    "MilestonesUnlinked",
    "ObjectiveClosed",
    "ObjectiveDefined",
    "ObjectiveLinkedToProgram",
    "ObjectiveUnlinkedFromProgram",
    "KeyResultAdded",
    "KeyResultCheckedIn",
    "PortfolioArchived",
    "PortfolioCreated",
    "PortfolioReopened",
    "ProgramMovedToPortfolio",
    "PlannedBudgetRevised",
    "ProgramActivated",
    "ProgramCancelled",
    "ProgramCompleted",
    "ProgramDetailsUpdated",
    "ProgramHealthReported",
    "ProgramProposed",
    "ProgramPutOnHold",
    "ProgramResumed",
    "ResourceCapacityChanged",
    "ResourceDetailsUpdated",
    "ResourceRegistered",
    "RiskAccepted",
    "RiskAssessed",
    "RiskClosed",
    "RiskDetailsUpdated",
    "RiskEscalated",
    "RiskIdentified",
    "RiskMaterialised",
    "RiskMitigationPlanRevised",
    "RiskMitigationStarted",
    "RiskReopened",
    "RiskReviewed",
    "ScenarioAllocationAdded",
    "ScenarioCapacityChangeAdded",
    "ScenarioChangeRemoved",
    "ScenarioCommitted",
    "ScenarioCreated",
    "ScenarioDiscarded",
    "RiskRoamChanged",
    "StakeholderAdded",
    "StakeholderRemoved",
    "StatusReportCorrectionStarted",
    "StatusReportDrafted",
    "StatusReportEdited",
    "StatusReportPublished",
    "WorkstreamAdded",
    "WorkstreamUpdated",
}
"""Names already stored somewhere are forever: extend this set, never edit or shrink it."""

RESOURCE_ONLY = {ResourceRegistered, ResourceDetailsUpdated, ResourceCapacityChanged}
NETWORK_WIDE = set(get_args(ScheduleEvent))
"""Links name a program at each end, so the network's events name none."""
SCENARIO_WIDE = set(get_args(ScenarioEvent)) - {ScenarioAllocationAdded}
"""A scenario spans programs; only hypothetical work names its program."""
PORTFOLIO_OR_OBJECTIVE = {
    *get_args(PortfolioEvent),
    ObjectiveDefined,
    KeyResultAdded,
    KeyResultCheckedIn,
    ObjectiveClosed,
}
"""A portfolio and an objective span programs; only an objective's links name one."""


def test_the_registry_holds_every_event_under_its_stable_name() -> None:
    registry = domain_registry()
    assert set(registry.names()) == STORED_NAMES
    assert len(EVENT_TYPES) == len(STORED_NAMES)
    unions = {
        *get_args(ProgramEvent),
        *get_args(RiskEvent),
        *get_args(AssumptionEvent),
        *get_args(IssueEvent),
        *get_args(ResourceEvent),
        *get_args(ScheduleEvent),
        *get_args(PortfolioEvent),
        *get_args(ObjectiveEvent),
        *get_args(StatusReportEvent),
        *get_args(ScenarioEvent),
    }
    assert set(EVENT_TYPES) == unions
    for cls in EVENT_TYPES:
        assert registry.type_for(cls.event_type) is cls


def test_the_domain_guide_describes_every_event() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "domain.md").read_text(encoding="utf-8")
    missing = sorted(name for name in STORED_NAMES if f"`{name}`" not in guide)
    assert not missing, f"docs/domain.md does not describe {missing}"


def test_each_call_builds_a_fresh_registry() -> None:
    assert domain_registry() is not domain_registry()


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
def test_every_event_states_its_name_and_version(cls: type[DomainEvent]) -> None:
    assert "event_type" in vars(cls)
    assert "schema_version" in vars(cls)
    assert cls.schema_version == 1
    assert issubclass(cls, DomainEvent)


def _types_within(info: inspect.Type) -> list[inspect.Type]:
    found: list[inspect.Type] = []
    stack = [info]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        if isinstance(item, inspect.StructType):
            stack.extend(field.type for field in item.fields)
        elif isinstance(item, inspect.UnionType):
            stack.extend(item.types)
        elif isinstance(item, inspect.VarTupleType | inspect.ListType):
            stack.append(item.item_type)
    return found


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
def test_no_event_can_hold_a_float(cls: type[DomainEvent]) -> None:
    kinds = {type(t) for t in _types_within(inspect.type_info(cls))}
    assert inspect.FloatType not in kinds
    assert inspect.DecimalType not in kinds
    assert inspect.AnyType not in kinds


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
def test_every_event_about_a_program_names_it(cls: type[DomainEvent]) -> None:
    fields = {f.name for f in msgspec.structs.fields(cls)}
    if cls in RESOURCE_ONLY:
        assert "program_id" not in fields
        assert "resource_key" in fields
    elif cls in NETWORK_WIDE:
        assert "program_id" not in fields
        assert "links" in fields
    elif cls in PORTFOLIO_OR_OBJECTIVE:
        assert "program_id" not in fields
        assert fields & {"portfolio_id", "objective_id"}
    elif cls in SCENARIO_WIDE:
        assert "program_id" not in fields
        assert "scenario_id" in fields
    else:
        assert "program_id" in fields


def test_program_id_of_routes_events() -> None:
    assert program_id_of(program_proposed()) == PROGRAM
    assert program_id_of(proposed_allocation()) == PROGRAM
    assert program_id_of(alice_registered()) is None


def test_json_schemas_can_be_generated_for_the_catalogue() -> None:
    schemas, components = msgspec.json.schema_components(EVENT_TYPES)
    assert len(schemas) == len(EVENT_TYPES)
    assert "ProgramProposed" in components
    money = components["Money"]["properties"]
    assert money["amount_minor"] == {"type": "integer"}


def test_stored_json_is_plain_and_exact() -> None:
    event = program_proposed()
    stored = msgspec.json.decode(msgspec.json.encode(event))
    assert stored["planned_budget"] == {"amount_minor": 100_000_00, "currency": "EUR"}
    assert stored["start_date"] == date(2027, 1, 1).isoformat()
    assert stored["program_id"] == str(PROGRAM)
    assert msgspec.json.decode(msgspec.json.encode(event), type=type(event)) == event
