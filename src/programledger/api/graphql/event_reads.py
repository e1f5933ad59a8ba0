"""Where each field of each stored event is read back through GraphQL: the one place that
says so, and the one place a field no client reads is declared, with why.

``tests/unit/test_event_reads.py`` holds every event type of the registry (the domain's
and the application's, as the event catalogue accepts them) to this table, so an event
or a field added without a read fails the build, with a message saying what to do.

For each event type, :class:`Reads` names the GraphQL types that show it. A field is
read when one of them has a field of the same name in camelCase (``objective_key`` is
``Program.objectiveKey``), or when ``fields`` names where it is read under another name
(``"summary": "Program.healthSummary"``). An event's ``reason``, when the first type
implements ``Recorded``, reads as that type's ``lastChangeReason``: the reason of the
change that made the version shown (earlier ones as of earlier moments). Name the entity
the event changes first.

A field no client should read goes in :data:`INTERNAL` with the reason, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["EVENT_READS", "INTERNAL", "Reads"]


@dataclass(frozen=True, slots=True)
class Reads:
    types: tuple[str, ...]
    """The GraphQL types showing the event's fields by name, the entity it changes first."""
    fields: Mapping[str, str] = field(default_factory=dict)
    """Fields read under another name: event field to ``"Type.field"``."""


_PROGRAM = Reads(("Program",))
_MILESTONE = Reads(("Milestone",))
_DEPENDENCY = Reads(("Dependency",))
_RISK = Reads(("Risk",))
_ALLOCATION = Reads(("Allocation",))
_CHANGE_REQUEST = Reads(("ChangeRequest",))
_ASSUMPTION = Reads(("Assumption",))
_ISSUE = Reads(("Issue",))
_OBJECTIVE_LINK = Reads(("ObjectiveLink",))
_STATUS_REPORT = Reads(
    ("StatusReport", "StatusReportRevision"), {"content": "StatusReport.overall"}
)
_SCENARIO = Reads(("Scenario",))
_SCENARIO_CHANGE = Reads(("ScenarioChange", "Scenario"))

EVENT_READS: Mapping[str, Reads] = {
    # Program: lifecycle and details
    "ProgramProposed": Reads(("Program",), {"planned_budget": "Program.budgetPlanned"}),
    "ProgramActivated": _PROGRAM,
    "ProgramPutOnHold": _PROGRAM,
    "ProgramResumed": _PROGRAM,
    "ProgramCompleted": _PROGRAM,
    "ProgramCancelled": _PROGRAM,
    "ProgramDetailsUpdated": _PROGRAM,
    "ProgramHealthReported": Reads(("Program",), {"summary": "Program.healthSummary"}),
    "ProgramCodeReserved": _PROGRAM,
    # Program: its parts
    "StakeholderAdded": Reads(("Stakeholder",)),
    "StakeholderRemoved": Reads(("Stakeholder",)),
    "WorkstreamAdded": Reads(("Workstream",)),
    "WorkstreamUpdated": Reads(("Workstream",)),
    "PlannedBudgetRevised": Reads(("Program",), {"planned_budget": "Program.budgetPlanned"}),
    "BudgetAllocated": Reads(("BudgetAllocation",)),
    "BudgetAllocationRevised": Reads(("BudgetAllocation",)),
    "ActualSpendReported": Reads(("SpendReport",)),
    "LessonRecorded": Reads(("Lesson",)),
    "DecisionRecorded": Reads(("Decision",)),
    # Program: milestones and dependencies
    "MilestonePlanned": _MILESTONE,
    "MilestoneRescheduled": _MILESTONE,
    "MilestoneFlaggedAtRisk": _MILESTONE,
    "MilestoneRiskCleared": _MILESTONE,
    "MilestoneCompleted": _MILESTONE,
    "MilestoneMissed": _MILESTONE,
    "MilestoneDurationSet": _MILESTONE,
    "DependencyRegistered": Reads(
        ("Dependency",),
        {"dependent": "Dependency.dependentId", "depends_on": "Dependency.targetType"},
    ),
    "DependencyNeededByChanged": _DEPENDENCY,
    "DependencyFlaggedAtRisk": _DEPENDENCY,
    "DependencyRiskCleared": _DEPENDENCY,
    "DependencyResolved": _DEPENDENCY,
    "DependencyReopened": _DEPENDENCY,
    # Program: change control
    "ChangeRequestRaised": _CHANGE_REQUEST,
    "ChangeRequestAssessed": _CHANGE_REQUEST,
    "ChangeRequestApproved": Reads(
        ("ChangeRequest", "Baseline"),
        {"reason": "ChangeRequest.decisionReason", "baseline": "Baseline.version"},
    ),
    "ChangeRequestRejected": Reads(("ChangeRequest",), {"reason": "ChangeRequest.decisionReason"}),
    # Risk
    "RiskIdentified": _RISK,
    "RiskAssessed": _RISK,
    "RiskMitigationStarted": _RISK,
    "RiskMitigationPlanRevised": _RISK,
    "RiskAccepted": Reads(
        ("Risk",),
        {"rationale": "Risk.acceptanceRationale", "approved_by": "Risk.acceptedBy"},
    ),
    "RiskMaterialised": Reads(
        ("Risk",),
        # the raised issue's own first event (IssueRaised) carries the rest of it
        {"occurred_on": "Risk.materialisedOn", "raised_issue": "Risk.materialisedIssueId"},
    ),
    "RiskEscalated": Reads(("Risk",), {"reason": "Risk.escalationReason"}),
    "RiskClosed": Reads(("Risk",), {"reason": "Risk.closedReason"}),
    "RiskReopened": _RISK,
    "RiskDetailsUpdated": _RISK,
    "RiskReviewed": Reads(
        ("Risk",),
        {"reviewed_on": "Risk.lastReviewedOn", "note": "Risk.lastReviewNote"},
    ),
    "RiskRoamChanged": Reads(("Risk",), {"reason": "Risk.roamReason"}),
    # RAID: assumptions and issues (a raised risk or issue is read as its own first event,
    # RiskIdentified or IssueRaised, which the raising step records from the same struct)
    "AssumptionRecorded": _ASSUMPTION,
    "AssumptionDetailsUpdated": _ASSUMPTION,
    "AssumptionValidated": Reads(
        ("Assumption",),
        {"evidence": "Assumption.validationEvidence"},
    ),
    "AssumptionInvalidated": Reads(
        ("Assumption",),
        {
            "evidence": "Assumption.invalidationEvidence",
            "raised_risk": "Assumption.raisedRiskId",
            "raised_issue": "Assumption.raisedIssueId",
        },
    ),
    "IssueRaised": _ISSUE,
    "IssueDetailsUpdated": _ISSUE,
    "IssueEscalated": Reads(("Issue",), {"reason": "Issue.escalationReason"}),
    "IssueResolved": _ISSUE,
    "IssueReopened": _ISSUE,
    # Resource and allocations
    "ResourceRegistered": Reads(("Resource", "CapacityStep")),
    "ResourceDetailsUpdated": Reads(("Resource",)),
    "ResourceCapacityChanged": Reads(("CapacityStep", "Resource")),
    "AllocationProposed": _ALLOCATION,
    "AllocationConfirmed": _ALLOCATION,
    "AllocationAdjusted": _ALLOCATION,
    "AllocationReleased": _ALLOCATION,
    # Schedule network
    "MilestonesLinked": Reads(("ScheduleLink",), {"links": "ScheduleLink.linkId"}),
    "MilestonesUnlinked": Reads(("ScheduleLink",), {"links": "ScheduleLink.linkId"}),
    # Portfolios and objectives
    "PortfolioCreated": Reads(("Portfolio",)),
    "PortfolioArchived": Reads(("Portfolio",), {"reason": "Portfolio.archivedReason"}),
    "PortfolioReopened": Reads(("Portfolio",), {"reason": "Portfolio.reopenedReason"}),
    "ProgramMovedToPortfolio": Reads(("PortfolioMove",)),
    "ObjectiveDefined": Reads(("Objective",)),
    "KeyResultAdded": Reads(("KeyResult",)),
    "KeyResultCheckedIn": Reads(("KeyResultCheckIn",)),
    "ObjectiveLinkedToProgram": _OBJECTIVE_LINK,
    "ObjectiveUnlinkedFromProgram": _OBJECTIVE_LINK,
    "ObjectiveClosed": Reads(("Objective",), {"reason": "Objective.closedReason"}),
    # Status reports: a report's content is read field by field (overall, overallReason,
    # dimensions, highlights, lowlights, asks, nextSteps), on the report as it stands and
    # on each revision
    "StatusReportDrafted": _STATUS_REPORT,
    "StatusReportEdited": _STATUS_REPORT,
    "StatusReportPublished": _STATUS_REPORT,
    "StatusReportCorrectionStarted": Reads(
        ("StatusReport", "StatusReportRevision"),
        {"content": "StatusReport.overall", "reason": "StatusReport.correctionReason"},
    ),
    # Scenarios: a capacity change is read field by field on ScenarioChange (changeId,
    # resourceKey, capacity, effectiveFrom, reason)
    "ScenarioCreated": _SCENARIO,
    "ScenarioAllocationAdded": _SCENARIO_CHANGE,
    "ScenarioCapacityChangeAdded": Reads(
        ("ScenarioChange", "Scenario"), {"change": "ScenarioChange.changeId"}
    ),
    "ScenarioChangeRemoved": _SCENARIO_CHANGE,
    "ScenarioCommitted": _SCENARIO,
    "ScenarioDiscarded": Reads(("Scenario",), {"reason": "Scenario.discardReason"}),
}
"""Every stored event type, by its stable name: the GraphQL types that read it."""

INTERNAL: Mapping[tuple[str, str], str] = {}
"""(event type, field) that no GraphQL type shows on purpose, with why."""
