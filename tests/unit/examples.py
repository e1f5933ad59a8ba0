"""Example data for domain tests: fixed ids and histories that read like a story."""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from programledger.domain.assumption import AssumptionRecorded, Confidence
from programledger.domain.events import DomainEvent
from programledger.domain.issue import IssueRaised, IssueSeverity
from programledger.domain.program import (
    MilestonePlanned,
    ProgramActivated,
    ProgramProposed,
    ProposeProgram,
    WorkstreamAdded,
)
from programledger.domain.resource import (
    AllocationConfirmed,
    AllocationProposed,
    ResourceRegistered,
)
from programledger.domain.risk import RiskCategory, RiskIdentified
from programledger.domain.values import Department, Money, PartyKind

PROGRAM = UUID("00000000-0000-4000-8000-000000000001")
OTHER_PROGRAM = UUID("00000000-0000-4000-8000-000000000002")
WORKSTREAM = UUID("00000000-0000-4000-8000-0000000000a1")
MILESTONE = UUID("00000000-0000-4000-8000-0000000000b1")
RISK = UUID("00000000-0000-4000-8000-0000000000c1")
ASSUMPTION = UUID("00000000-0000-4000-8000-0000000000e1")
ISSUE = UUID("00000000-0000-4000-8000-0000000000f1")
ALLOCATION = UUID("00000000-0000-4000-8000-0000000000d1")
OTHER_ALLOCATION = UUID("00000000-0000-4000-8000-0000000000d2")
MISSING = UUID("00000000-0000-4000-8000-00000000ffff")

ALICE = "alice.martin"


def eur(amount_minor: int) -> Money:
    return Money(amount_minor=amount_minor, currency="EUR")


def propose_program(**changes: Any) -> ProposeProgram:
    fields: dict[str, Any] = {
        "program_id": PROGRAM,
        "code": "PAY-2027",
        "name": "Payments platform 2027",
        "description": "Move every card payment to the new platform.",
        "objective": "Halve payment failures",
        "objective_key": "OKR-2027-03",
        "sponsor": "Dana CFO",
        "owner": "Tom TPM",
        "priority": 1,
        "start_date": date(2027, 1, 1),
        "target_end_date": date(2027, 12, 31),
        "planned_budget": eur(100_000_00),
    }
    return ProposeProgram(**{**fields, **changes})


def program_proposed(**changes: Any) -> ProgramProposed:
    command = propose_program(**changes)
    return ProgramProposed(
        program_id=command.program_id,
        code=command.code,
        name=command.name,
        description=command.description,
        objective=command.objective,
        objective_key=command.objective_key,
        sponsor=command.sponsor,
        owner=command.owner,
        priority=command.priority,
        start_date=command.start_date,
        target_end_date=command.target_end_date,
        planned_budget=command.planned_budget,
    )


def active_program() -> list[Any]:
    return [program_proposed(), ProgramActivated(program_id=PROGRAM)]


def with_workstream() -> list[Any]:
    return [
        *active_program(),
        WorkstreamAdded(
            program_id=PROGRAM,
            workstream_id=WORKSTREAM,
            name="Card acquiring",
            lead="Priya",
            department=Department.ENGINEERING,
        ),
    ]


def with_milestone() -> list[Any]:
    return [
        *with_workstream(),
        MilestonePlanned(
            program_id=PROGRAM,
            milestone_id=MILESTONE,
            name="Pilot live",
            workstream_id=WORKSTREAM,
            description=None,
            baseline_date=date(2027, 6, 30),
        ),
    ]


def risk_identified(**changes: Any) -> RiskIdentified:
    fields: dict[str, Any] = {
        "risk_id": RISK,
        "program_id": PROGRAM,
        "title": "Acquirer certification slips",
        "category": RiskCategory.VENDOR,
        "probability": 3,
        "impact": 4,
        "owner": "Priya",
        "workstream_id": WORKSTREAM,
        "description": None,
        "trigger": "No test slot booked by March",
        "contingency_plan": None,
        "next_review_on": date(2027, 3, 1),
    }
    return RiskIdentified(**{**fields, **changes})


def assumption_recorded(**changes: Any) -> AssumptionRecorded:
    fields: dict[str, Any] = {
        "assumption_id": ASSUMPTION,
        "program_id": PROGRAM,
        "statement": "The acquirer's sandbox supports 3-D Secure 2.2",
        "owner": "Priya",
        "confidence": Confidence.MEDIUM,
        "validate_by": date(2027, 2, 15),
        "description": None,
        "workstream_id": WORKSTREAM,
    }
    return AssumptionRecorded(**{**fields, **changes})


def issue_raised(**changes: Any) -> IssueRaised:
    fields: dict[str, Any] = {
        "issue_id": ISSUE,
        "program_id": PROGRAM,
        "title": "Sandbox rejects 3-D Secure 2.2 challenges",
        "severity": IssueSeverity.HIGH,
        "owner": "Priya",
        "due_on": date(2027, 3, 1),
    }
    return IssueRaised(**{**fields, **changes})


def alice_registered(capacity: int = 100) -> ResourceRegistered:
    return ResourceRegistered(
        resource_key=ALICE,
        name="Alice Martin",
        kind=PartyKind.PERSON,
        department=Department.ENGINEERING,
        role="Backend engineer",
        capacity=capacity,
    )


def proposed_allocation(
    allocation_id: UUID = ALLOCATION,
    *,
    program_id: UUID = PROGRAM,
    start: date = date(2027, 4, 1),
    end: date = date(2027, 4, 30),
    percentage: int = 60,
) -> AllocationProposed:
    return AllocationProposed(
        resource_key=ALICE,
        allocation_id=allocation_id,
        program_id=program_id,
        workstream_id=None,
        start_date=start,
        end_date=end,
        percentage=percentage,
    )


Event = TypeVar("Event", bound=DomainEvent)

_ALLOCATION_FIELDS = (
    "resource_key",
    "allocation_id",
    "program_id",
    "workstream_id",
    "start_date",
    "end_date",
    "percentage",
)


def allocation_event(cls: type[Event], proposal: AllocationProposed, **changes: Any) -> Event:
    """An event about the proposed allocation, with ``changes`` to its fields or extras."""
    fields = {name: getattr(proposal, name) for name in _ALLOCATION_FIELDS}
    return cls(**{**fields, **changes})


def confirmed(proposal: AllocationProposed) -> AllocationConfirmed:
    return allocation_event(AllocationConfirmed, proposal)
