"""The demo portfolio's story: every command of ``programledger demo``, in order.

Six programs in every lifecycle status, with workstreams, stakeholders, milestones that
slip, cross-program and external dependencies, decisions (one superseded), budgets and
spend, lessons; risks in every status and every ROAM class; assumptions validated, open
and invalidated (one raising a risk, one an issue); issues raised directly, by a
materialised risk and by a false assumption, escalated and resolved; people and teams
allocated across programs, with one over-allocation refused and one accepted with an
override reason; a schedule network across four programs (a slip of the identity
program's SSO drives the payments pilot), and change requests on the payments program,
one approved (a new baseline) and one rejected; three portfolios (one archived) with a
program moved between two of them, and objectives with key results checked in, linked to
the programs that serve them; weekly status reports of the payments program (published by
its owner, one corrected, one still a draft) and two capacity what-ifs, one committed and
one open.

This module is the data, :mod:`programledger.application.demo` the loader that sends it;
it is one module over 500 lines because the story is read top to bottom, as it happened.
Every step goes through :meth:`Application.handle`, the same path as an API mutation, so
the demo data obeys every rule and produces the events a real organisation would. Ids are
derived from names and every command carries an idempotency key, so running the demo
again writes nothing new: each step is answered with its first result. The one command
the story expects to be refused is decided again on each run and refused again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from uuid import UUID, uuid5

from programledger.application.commands import Command
from programledger.domain.assumption import (
    Confidence,
    InvalidateAssumption,
    RecordAssumption,
    ValidateAssumption,
)
from programledger.domain.errors import DomainError, OverAllocation
from programledger.domain.issue import (
    EscalateIssue,
    IssueSeverity,
    RaisedIssue,
    RaiseIssue,
    ResolveIssue,
)
from programledger.domain.objective import (
    AddKeyResult,
    CheckInKeyResult,
    CloseObjective,
    DefineObjective,
    LinkObjectiveToProgram,
)
from programledger.domain.portfolio import ArchivePortfolio, CreatePortfolio
from programledger.domain.program import (
    ActivateProgram,
    AddStakeholder,
    AddWorkstream,
    AllocateBudget,
    ApproveChangeRequest,
    AssessChangeRequest,
    CancelProgram,
    CompleteMilestone,
    CompleteProgram,
    ExternalTarget,
    FlagDependencyAtRisk,
    FlagMilestoneAtRisk,
    Health,
    ItemKind,
    ItemRef,
    MarkMilestoneMissed,
    MilestoneDate,
    MoveProgramToPortfolio,
    PlanMilestone,
    ProgramItemTarget,
    ProposeProgram,
    PutProgramOnHold,
    RaciRole,
    RaiseChangeRequest,
    RecordDecision,
    RecordLesson,
    RegisterDependency,
    RejectChangeRequest,
    ReportActualSpend,
    ReportProgramHealth,
    RescheduleMilestone,
    ResolveDependency,
    RevisePlannedBudget,
    SetMilestoneDuration,
    SupersedeDecision,
    UpdateProgramDetails,
)
from programledger.domain.report import (
    CorrectStatusReport,
    Dimension,
    DimensionRag,
    DraftStatusReport,
    EditStatusReport,
    PublishStatusReport,
    Rag,
    ReportContent,
)
from programledger.domain.resource import (
    AdjustAllocation,
    ChangeCapacity,
    ConfirmAllocation,
    ProposeAllocation,
    RegisterResource,
    ReleaseAllocation,
)
from programledger.domain.risk import (
    AcceptRisk,
    AssessRisk,
    ChangeRiskRoam,
    CloseRisk,
    EscalateRisk,
    IdentifyRisk,
    RaisedRisk,
    ReopenRisk,
    ReportRiskMaterialised,
    ResponseStrategy,
    ReviewRisk,
    ReviseMitigationPlan,
    RiskCategory,
    RoamStatus,
    StartMitigation,
)
from programledger.domain.scenario import (
    AddScenarioAllocation,
    AddScenarioCapacityChange,
    CommitScenario,
    CreateScenario,
)
from programledger.domain.schedule import LinkMilestones, MilestoneRef, ScheduleLink
from programledger.domain.scheduling import LinkType
from programledger.domain.values import Department, Money, PartyKind

__all__ = ["DEMO_PROGRAMS", "KEY_PREFIX", "Step", "story"]

_NAMESPACE = UUID("6f1d3c2e-5b7a-4e0f-9a51-2c8d7e4b9f10")
KEY_PREFIX = "demo/v1/"
"""Every step's idempotency key starts with it."""


def _id(name: str) -> UUID:
    """The same name gives the same id on every run, which is what makes reruns no-ops."""
    return uuid5(_NAMESPACE, name)


def _eur(euros: int) -> Money:
    return Money(amount_minor=euros * 100, currency="EUR")


PAY = _id("program/PAY-2027")
IDN = _id("program/ID-2027")
DWH = _id("program/DWH-2026")
CRM = _id("program/CRM-2027")
MOB = _id("program/MOB-2027")
KIOSK = _id("program/KIOSK-2026")

DEMO_PROGRAMS: dict[str, UUID] = {
    "PAY-2027": PAY,
    "ID-2027": IDN,
    "DWH-2026": DWH,
    "CRM-2027": CRM,
    "MOB-2027": MOB,
    "KIOSK-2026": KIOSK,
}
"""Program code → id of every demo program."""

DEMO_SCENARIOS: dict[str, UUID] = {
    "pay-pilot": _id("scenario/pay-pilot"),
    "identity-crunch": _id("scenario/identity-crunch"),
}
"""The demo's capacity what-ifs: the committed one and the one left open."""

# Actors: who sends each command, as an authenticated user would.
_PMO = "eva.novak"
_TOM = "tom.reyes"
_SARA = "sara.kim"
_LI = "li.na"
_OMAR = "omar.haddad"
_MARTA = "marta.lopez"
"""Engineering manager: registers people and teams and confirms their allocations."""


@dataclass(frozen=True, slots=True)
class Step:
    """One command of the story, sent by ``actor`` under idempotency key ``key``."""

    key: str
    actor: str
    command: Command
    refused_with: type[DomainError] | None = None
    """The refusal the story expects (the over-allocation); ``None``: must be accepted."""


def story() -> Iterator[Step]:
    """The portfolio, in the order it happened."""
    yield from _programs()
    yield from _payments()
    yield from _identity()
    yield from _warehouse()
    yield from _crm()
    yield from _risks()
    yield from _raid()
    yield from _people()
    yield from _schedule()
    yield from _portfolios()
    yield from _objectives()
    yield from _closing()
    yield from _status_reports()
    yield from _scenarios()


# --- programs -----------------------------------------------------------------------------


def _propose(
    key: str,
    actor: str,
    program_id: UUID,
    code: str,
    name: str,
    objective: str,
    owner: str,
    priority: int,
    period: tuple[date, date],
    budget_euros: int,
    description: str,
) -> Iterator[Step]:
    yield Step(
        f"{key}/propose",
        actor,
        ProposeProgram(
            program_id=program_id,
            code=code,
            name=name,
            description=description,
            objective=objective,
            objective_key=f"OKR-{period[1].year}-{priority:02d}",
            sponsor="Dana Okafor" if priority <= 2 else "Victor Hale",
            owner=owner,
            priority=priority,
            start_date=period[0],
            target_end_date=period[1],
            planned_budget=_eur(budget_euros),
        ),
    )


def _programs() -> Iterator[Step]:
    yield from _propose(
        "PAY",
        _PMO,
        PAY,
        "PAY-2027",
        "Payments platform 2027",
        "Halve card payment failures",
        "Tom Reyes",
        1,
        (date(2026, 3, 1), date(2027, 12, 31)),
        2_400_000,
        "Move every card payment from the legacy gateway to the new platform, with "
        "in-house fraud scoring.",
    )
    yield from _propose(
        "ID",
        _PMO,
        IDN,
        "ID-2027",
        "Customer identity consolidation",
        "One login for every customer-facing product",
        "Sara Kim",
        2,
        (date(2026, 5, 1), date(2027, 9, 30)),
        1_100_000,
        "Replace four customer identity stores with one, with SSO and passkeys.",
    )
    yield from _propose(
        "DWH",
        _PMO,
        DWH,
        "DWH-2026",
        "Data warehouse migration",
        "Finance closes the month in three days",
        "Li Na",
        2,
        (date(2025, 10, 1), date(2026, 9, 30)),
        650_000,
        "Move reporting from the on-premise warehouse to the cloud lakehouse.",
    )
    yield from _propose(
        "CRM",
        _PMO,
        CRM,
        "CRM-2027",
        "Sales CRM replacement",
        "Sales cycle down by 20%",
        "Omar Haddad",
        3,
        (date(2026, 7, 1), date(2027, 6, 30)),
        800_000,
        "Replace the home-grown CRM with a SaaS product and migrate five years of deals.",
    )
    yield from _propose(
        "MOB",
        _PMO,
        MOB,
        "MOB-2027",
        "Mobile app redesign",
        "App store rating above 4.5",
        "Sara Kim",
        4,
        (date(2027, 2, 1), date(2027, 11, 30)),
        500_000,
        "Redesign onboarding and payments in the mobile app; awaiting portfolio approval.",
    )
    yield from _propose(
        "KIOSK",
        _PMO,
        KIOSK,
        "KIOSK-2026",
        "In-store kiosks",
        "Shorter queues in flagship stores",
        "Omar Haddad",
        5,
        (date(2026, 4, 1), date(2026, 12, 31)),
        300_000,
        "Self-service kiosks in ten flagship stores.",
    )
    for key, program_id in (("PAY", PAY), ("ID", IDN), ("DWH", DWH), ("CRM", CRM)):
        yield Step(
            f"{key}/activate",
            _PMO,
            ActivateProgram(
                program_id=program_id, reason="Approved at the quarterly portfolio review"
            ),
        )


def _workstream(
    key: str, actor: str, program_id: UUID, name: str, lead: str, department: Department
) -> Step:
    return Step(
        f"{key}/workstream/{name}",
        actor,
        AddWorkstream(
            program_id=program_id,
            workstream_id=_id(f"{key}/workstream/{name}"),
            name=name,
            lead=lead,
            department=department,
        ),
    )


def _stakeholder(
    key: str,
    actor: str,
    program_id: UUID,
    name: str,
    kind: PartyKind,
    department: Department,
    role: RaciRole,
) -> Step:
    return Step(
        f"{key}/stakeholder/{name}/{role}",
        actor,
        AddStakeholder(
            program_id=program_id,
            stakeholder_id=_id(f"{key}/stakeholder/{name}/{role}"),
            name=name,
            kind=kind,
            department=department,
            role=role,
        ),
    )


def _milestone(
    key: str, actor: str, program_id: UUID, name: str, due: date, workstream: str | None
) -> Step:
    return Step(
        f"{key}/milestone/{name}",
        actor,
        PlanMilestone(
            program_id=program_id,
            milestone_id=_id(f"{key}/milestone/{name}"),
            name=name,
            due_date=due,
            workstream_id=_id(f"{key}/workstream/{workstream}") if workstream else None,
        ),
    )


# --- PAY-2027: the flagship, active and slipping --------------------------------------


def _payments() -> Iterator[Step]:
    k, a, p = "PAY", _TOM, PAY
    ws = {
        "acquiring": "Card acquiring",
        "fraud": "Fraud scoring",
        "migration": "Merchant migration",
    }
    yield _workstream(k, a, p, ws["acquiring"], "Priya Nair", Department.ENGINEERING)
    yield _workstream(k, a, p, ws["fraud"], "Bruno Silva", Department.ENGINEERING)
    yield _workstream(k, a, p, ws["migration"], "Hana Sato", Department.OPERATIONS)
    yield _stakeholder(
        k, a, p, "Dana Okafor", PartyKind.PERSON, Department.FINANCE, RaciRole.ACCOUNTABLE
    )
    yield _stakeholder(
        k, a, p, "Tom Reyes", PartyKind.PERSON, Department.ENGINEERING, RaciRole.RESPONSIBLE
    )
    yield _stakeholder(
        k, a, p, "Legal & Compliance", PartyKind.TEAM, Department.LEGAL, RaciRole.CONSULTED
    )
    yield _stakeholder(
        k, a, p, "Customer Support", PartyKind.TEAM, Department.SUPPORT, RaciRole.INFORMED
    )

    certification = "Acquirer certification passed"
    shadow = "Fraud model v2 in shadow mode"
    pilot = "Pilot merchants live"
    switch_off = "Legacy gateway switched off"
    yield _milestone(k, a, p, shadow, date(2026, 9, 15), ws["fraud"])
    yield _milestone(k, a, p, certification, date(2026, 11, 30), ws["acquiring"])
    yield _milestone(k, a, p, pilot, date(2027, 2, 28), ws["migration"])
    yield _milestone(k, a, p, switch_off, date(2027, 11, 30), ws["migration"])
    yield Step(
        f"{k}/milestone/{shadow}/complete",
        a,
        CompleteMilestone(
            program_id=p, milestone_id=_id(f"{k}/milestone/{shadow}"), actual_date=date(2026, 9, 22)
        ),
    )
    yield Step(
        f"{k}/milestone/{certification}/slip",
        a,
        RescheduleMilestone(
            program_id=p,
            milestone_id=_id(f"{k}/milestone/{certification}"),
            forecast_date=date(2027, 1, 29),
            reason="The acquirer's test lab has no slot before January",
        ),
    )
    yield Step(
        f"{k}/milestone/{certification}/at-risk",
        a,
        FlagMilestoneAtRisk(
            program_id=p,
            milestone_id=_id(f"{k}/milestone/{certification}"),
            reason="Second test slot not yet confirmed by the acquirer",
        ),
    )
    yield Step(
        f"{k}/milestone/{pilot}/slip",
        a,
        RescheduleMilestone(
            program_id=p,
            milestone_id=_id(f"{k}/milestone/{pilot}"),
            forecast_date=date(2027, 4, 15),
            reason="Follows the certification slip",
        ),
    )

    yield Step(
        f"{k}/dependency/acquirer-lab",
        a,
        RegisterDependency(
            program_id=p,
            dependency_id=_id(f"{k}/dependency/acquirer-lab"),
            title="Acquirer certification lab slot",
            dependent=ItemRef(
                kind=ItemKind.MILESTONE, item_id=_id(f"{k}/milestone/{certification}")
            ),
            depends_on=ExternalTarget(
                party="Acquirer certification lab", contact="certification@acquirer.example"
            ),
            needed_by=date(2027, 1, 15),
        ),
    )
    yield Step(
        f"{k}/dependency/acquirer-lab/at-risk",
        a,
        FlagDependencyAtRisk(
            program_id=p,
            dependency_id=_id(f"{k}/dependency/acquirer-lab"),
            reason="The lab offered one slot, we need two",
        ),
    )
    yield Step(
        f"{k}/dependency/sso",
        a,
        RegisterDependency(
            program_id=p,
            dependency_id=_id(f"{k}/dependency/sso"),
            title="Merchant portal SSO from the identity program",
            dependent=ItemRef(kind=ItemKind.MILESTONE, item_id=_id(f"{k}/milestone/{pilot}")),
            depends_on=ProgramItemTarget(
                program_id=IDN,
                kind=ItemKind.MILESTONE,
                item_id=_id("ID/milestone/SSO for the merchant portal"),
            ),
            needed_by=date(2027, 3, 1),
        ),
    )
    yield Step(
        f"{k}/dependency/pci-scope",
        a,
        RegisterDependency(
            program_id=p,
            dependency_id=_id(f"{k}/dependency/pci-scope"),
            title="PCI DSS scope confirmed by the assessor",
            dependent=ItemRef(
                kind=ItemKind.WORKSTREAM, item_id=_id(f"{k}/workstream/{ws['acquiring']}")
            ),
            depends_on=ExternalTarget(party="Qualified Security Assessor"),
            needed_by=date(2026, 6, 30),
        ),
    )
    yield Step(
        f"{k}/dependency/pci-scope/resolve",
        a,
        ResolveDependency(
            program_id=p,
            dependency_id=_id(f"{k}/dependency/pci-scope"),
            resolution="Scope letter received; tokenisation keeps the new platform out of scope",
        ),
    )

    pilot_size = _id(f"{k}/decision/pilot-size")
    yield Step(
        f"{k}/decision/fraud-build",
        a,
        RecordDecision(
            program_id=p,
            decision_id=_id(f"{k}/decision/fraud-build"),
            title="Build fraud scoring in house",
            context="The vendor's model cannot use our merchant history.",
            outcome="Build, with the data science team; revisit if v2 misses its target.",
            alternatives=("Buy the vendor's scoring", "Keep the legacy rules engine"),
            decided_by="Dana Okafor",
            decided_on=date(2026, 4, 10),
        ),
    )
    yield Step(
        f"{k}/decision/pilot-size",
        a,
        RecordDecision(
            program_id=p,
            decision_id=pilot_size,
            title="Pilot with 20 merchants",
            context="A pilot must cover every terminal type.",
            outcome="Twenty merchants, chosen by the migration workstream.",
            alternatives=("Five merchants", "One region"),
            decided_by="Tom Reyes",
            decided_on=date(2026, 6, 2),
        ),
    )
    yield Step(
        f"{k}/decision/pilot-size-v2",
        a,
        SupersedeDecision(
            program_id=p,
            decision_id=_id(f"{k}/decision/pilot-size-v2"),
            supersedes=pilot_size,
            title="Pilot with 5 merchants",
            context="Certification slipped; support cannot staff twenty onboardings in April.",
            outcome="Five merchants covering the three most common terminal types.",
            alternatives=("Keep twenty and slip the pilot to June",),
            decided_by="Tom Reyes",
            decided_on=date(2026, 11, 12),
        ),
    )

    yield Step(
        f"{k}/budget/acquiring",
        a,
        AllocateBudget(
            program_id=p,
            budget_allocation_id=_id(f"{k}/budget/acquiring"),
            amount=_eur(900_000),
            workstream_id=_id(f"{k}/workstream/{ws['acquiring']}"),
            purpose="Platform build and certification",
        ),
    )
    yield Step(
        f"{k}/budget/fraud",
        a,
        AllocateBudget(
            program_id=p,
            budget_allocation_id=_id(f"{k}/budget/fraud"),
            amount=_eur(600_000),
            workstream_id=_id(f"{k}/workstream/{ws['fraud']}"),
        ),
    )
    yield Step(
        f"{k}/budget/raise",
        a,
        RevisePlannedBudget(
            program_id=p,
            planned_budget=_eur(2_650_000),
            reason="Second certification round and extended pilot support",
        ),
    )
    yield Step(
        f"{k}/budget/support",
        a,
        AllocateBudget(
            program_id=p,
            budget_allocation_id=_id(f"{k}/budget/support"),
            amount=_eur(350_000),
            cost_centre="CC-4410",
            purpose="Merchant support during pilot",
        ),
    )
    yield Step(
        f"{k}/spend/2026-06",
        a,
        ReportActualSpend(program_id=p, amount=_eur(620_000), as_of=date(2026, 6, 30)),
    )
    yield Step(
        f"{k}/spend/2026-10",
        a,
        ReportActualSpend(
            program_id=p,
            amount=_eur(1_180_000),
            as_of=date(2026, 10, 31),
            note="Includes the first certification fee",
        ),
    )
    yield Step(
        f"{k}/health/2026-06",
        a,
        ReportProgramHealth(
            program_id=p, health=Health.GREEN, summary="On plan; fraud model ahead of schedule"
        ),
    )
    yield Step(
        f"{k}/health/2026-11",
        a,
        ReportProgramHealth(
            program_id=p,
            health=Health.AMBER,
            summary="Certification slipped two months; pilot moved to April",
        ),
    )


# --- ID-2027: active, in trouble --------------------------------------------------------


def _identity() -> Iterator[Step]:
    k, a, p = "ID", _SARA, IDN
    platform = "Identity platform"
    yield _workstream(k, a, p, platform, "Ken Ito", Department.ENGINEERING)
    yield _workstream(k, a, p, "Customer migration", "Ana Costa", Department.PRODUCT)
    yield _stakeholder(
        k, a, p, "Dana Okafor", PartyKind.PERSON, Department.FINANCE, RaciRole.ACCOUNTABLE
    )
    yield _stakeholder(
        k, a, p, "Security Office", PartyKind.TEAM, Department.OPERATIONS, RaciRole.CONSULTED
    )
    sso = "SSO for the merchant portal"
    passkeys = "Passkeys generally available"
    yield _milestone(k, a, p, sso, date(2026, 10, 31), platform)
    yield _milestone(k, a, p, passkeys, date(2027, 6, 30), platform)
    yield Step(
        f"{k}/milestone/{sso}/missed",
        a,
        MarkMilestoneMissed(
            program_id=p,
            milestone_id=_id(f"{k}/milestone/{sso}"),
            reason="Token exchange failed the security review",
        ),
    )
    yield Step(
        f"{k}/milestone/{sso}/replan",
        a,
        RescheduleMilestone(
            program_id=p,
            milestone_id=_id(f"{k}/milestone/{sso}"),
            forecast_date=date(2027, 1, 31),
            reason="Redesign of the token exchange",
        ),
    )
    yield Step(
        f"{k}/decision/oidc",
        a,
        RecordDecision(
            program_id=p,
            decision_id=_id(f"{k}/decision/oidc"),
            title="Standardise on OpenID Connect",
            context="Two products still use SAML; every new one uses OIDC.",
            outcome="OIDC everywhere; SAML bridged until the products migrate.",
            decided_by="Ken Ito",
            decided_on=date(2026, 5, 20),
        ),
    )
    yield Step(
        f"{k}/budget/platform",
        a,
        AllocateBudget(
            program_id=p,
            budget_allocation_id=_id(f"{k}/budget/platform"),
            amount=_eur(700_000),
            workstream_id=_id(f"{k}/workstream/{platform}"),
        ),
    )
    yield Step(
        f"{k}/health/2026-11",
        a,
        ReportProgramHealth(
            program_id=p, health=Health.RED, summary="SSO missed; security redesign under way"
        ),
    )


# --- DWH-2026: delivered --------------------------------------------------------------


def _warehouse() -> Iterator[Step]:
    k, a, p = "DWH", _LI, DWH
    yield _workstream(k, a, p, "Pipelines", "Lars Berg", Department.ENGINEERING)
    cutover = "Finance reports on the lakehouse"
    yield _milestone(k, a, p, cutover, date(2026, 8, 31), "Pipelines")
    yield Step(
        f"{k}/milestone/{cutover}/complete",
        a,
        CompleteMilestone(
            program_id=p,
            milestone_id=_id(f"{k}/milestone/{cutover}"),
            actual_date=date(2026, 9, 14),
        ),
    )
    yield Step(
        f"{k}/spend/final",
        a,
        ReportActualSpend(program_id=p, amount=_eur(612_000), as_of=date(2026, 9, 30)),
    )
    yield Step(
        f"{k}/health/final",
        a,
        ReportProgramHealth(
            program_id=p, health=Health.GREEN, summary="Delivered two weeks late, under budget"
        ),
    )


# --- CRM-2027: on hold -------------------------------------------------------------------


def _crm() -> Iterator[Step]:
    k, a, p = "CRM", _OMAR, CRM
    yield _workstream(k, a, p, "Vendor selection", "Mia Wong", Department.SALES)
    yield _milestone(k, a, p, "Vendor contract signed", date(2026, 12, 15), "Vendor selection")
    yield Step(
        f"{k}/decision/shortlist",
        a,
        RecordDecision(
            program_id=p,
            decision_id=_id(f"{k}/decision/shortlist"),
            title="Shortlist two vendors",
            context="Five vendors answered the RFP; two meet the data residency rules.",
            outcome="Run proofs of concept with both.",
            decided_by="Omar Haddad",
            decided_on=date(2026, 9, 1),
        ),
    )


# --- risks ----------------------------------------------------------------------------


def _risk_id(name: str) -> UUID:
    return _id(f"risk/{name}")


def _identify(
    name: str,
    actor: str,
    program_id: UUID,
    title: str,
    category: RiskCategory,
    probability: int,
    impact: int,
    owner: str,
    trigger: str | None = None,
) -> Step:
    return Step(
        f"risk/{name}/identify",
        actor,
        IdentifyRisk(
            risk_id=_risk_id(name),
            program_id=program_id,
            title=title,
            category=category,
            probability=probability,
            impact=impact,
            owner=owner,
            trigger=trigger,
            next_review_on=date(2026, 12, 10),
        ),
    )


def _risks() -> Iterator[Step]:
    # IDENTIFIED
    yield _identify(
        "3ds",
        _TOM,
        PAY,
        "Card schemes change the 3-D Secure rules",
        RiskCategory.COMPLIANCE,
        2,
        4,
        "Legal & Compliance",
        trigger="Scheme bulletin announcing a mandate",
    )
    # ASSESSED
    yield _identify(
        "drift",
        _TOM,
        PAY,
        "Fraud model drifts after the migration",
        RiskCategory.TECHNICAL,
        3,
        3,
        "Bruno Silva",
    )
    yield Step(
        "risk/drift/assess",
        _TOM,
        AssessRisk(
            risk_id=_risk_id("drift"),
            probability=3,
            impact=4,
            reason="Shadow-mode results show a 4% precision drop on new merchants",
        ),
    )
    # MITIGATING, escalated and reviewed
    yield _identify(
        "lab",
        _TOM,
        PAY,
        "Acquirer certification slot unavailable",
        RiskCategory.VENDOR,
        3,
        4,
        "Priya Nair",
        trigger="No second slot confirmed by 15 December",
    )
    yield Step(
        "risk/lab/assess", _TOM, AssessRisk(risk_id=_risk_id("lab"), probability=4, impact=4)
    )
    yield Step(
        "risk/lab/mitigate",
        _TOM,
        StartMitigation(
            risk_id=_risk_id("lab"),
            response_strategy=ResponseStrategy.MITIGATE,
            mitigation_plan="Book a backup slot with a second accredited lab; prepare test "
            "evidence in advance so one slot is enough.",
            mitigation_due_on=date(2026, 12, 20),
            contingency_plan="Slip the pilot by one month and keep the legacy gateway warm.",
        ),
    )
    yield Step(
        "risk/lab/escalate",
        _TOM,
        EscalateRisk(
            risk_id=_risk_id("lab"),
            escalated_to="Dana Okafor",
            reason="Needs a sponsor call to the acquirer's account director",
        ),
    )
    yield Step(
        "risk/lab/review",
        _TOM,
        ReviewRisk(
            risk_id=_risk_id("lab"),
            reviewed_on=date(2026, 11, 20),
            next_review_on=date(2026, 12, 4),
            note="Backup lab answered; quote expected",
        ),
    )
    # ACCEPTED
    yield _identify(
        "terminals",
        _TOM,
        PAY,
        "Legacy terminals need manual onboarding",
        RiskCategory.SCHEDULE,
        4,
        2,
        "Hana Sato",
    )
    yield Step(
        "risk/terminals/assess",
        _TOM,
        AssessRisk(risk_id=_risk_id("terminals"), probability=4, impact=2),
    )
    yield Step(
        "risk/terminals/accept",
        _TOM,
        AcceptRisk(
            risk_id=_risk_id("terminals"),
            rationale="Only 3% of merchants; support can onboard them by hand.",
            approved_by="Dana Okafor",
        ),
    )
    # MATERIALISED, with a revised plan
    yield _identify(
        "attrition",
        _SARA,
        IDN,
        "Key identity engineer leaves",
        RiskCategory.RESOURCE,
        2,
        5,
        "Ken Ito",
    )
    yield Step(
        "risk/attrition/assess",
        _SARA,
        AssessRisk(risk_id=_risk_id("attrition"), probability=3, impact=5),
    )
    yield Step(
        "risk/attrition/mitigate",
        _SARA,
        StartMitigation(
            risk_id=_risk_id("attrition"),
            response_strategy=ResponseStrategy.MITIGATE,
            mitigation_plan="Pair a second engineer on the token service.",
            mitigation_due_on=date(2026, 9, 30),
        ),
    )
    yield Step(
        "risk/attrition/materialised",
        _SARA,
        ReportRiskMaterialised(
            risk_id=_risk_id("attrition"),
            what_happened="The token service lead resigned before the pairing finished.",
            impact_description="SSO milestone missed; security review findings unresolved.",
            occurred_on=date(2026, 10, 6),
        ),
    )
    yield Step(
        "risk/attrition/replan",
        _SARA,
        ReviseMitigationPlan(
            risk_id=_risk_id("attrition"),
            mitigation_plan="Contractor with OIDC experience for three months; knowledge "
            "transfer sessions recorded.",
            mitigation_due_on=date(2027, 1, 31),
            reason="The original pairing plan can no longer work",
        ),
    )
    # CLOSED
    yield _identify(
        "pci",
        _TOM,
        PAY,
        "PCI DSS scope grows to the new platform",
        RiskCategory.COMPLIANCE,
        3,
        5,
        "Legal & Compliance",
    )
    yield Step(
        "risk/pci/assess", _TOM, AssessRisk(risk_id=_risk_id("pci"), probability=3, impact=5)
    )
    yield Step(
        "risk/pci/mitigate",
        _TOM,
        StartMitigation(
            risk_id=_risk_id("pci"),
            response_strategy=ResponseStrategy.AVOID,
            mitigation_plan="Tokenise card data at the edge so the platform never stores it.",
            mitigation_due_on=date(2026, 6, 30),
        ),
    )
    yield Step(
        "risk/pci/close",
        _TOM,
        CloseRisk(
            risk_id=_risk_id("pci"), reason="The assessor confirmed the reduced scope in writing"
        ),
    )
    # Closed, then reopened: back to ASSESSED
    yield _identify(
        "residency",
        _OMAR,
        CRM,
        "Vendor stores data outside the EU",
        RiskCategory.COMPLIANCE,
        2,
        4,
        "Mia Wong",
    )
    yield Step(
        "risk/residency/assess",
        _OMAR,
        AssessRisk(risk_id=_risk_id("residency"), probability=2, impact=4),
    )
    yield Step(
        "risk/residency/accept",
        _OMAR,
        AcceptRisk(
            risk_id=_risk_id("residency"),
            rationale="Both shortlisted vendors offer EU hosting.",
            approved_by="Victor Hale",
        ),
    )
    yield Step(
        "risk/residency/close",
        _OMAR,
        CloseRisk(risk_id=_risk_id("residency"), reason="Contract clause drafted"),
    )
    yield Step(
        "risk/residency/reopen",
        _OMAR,
        ReopenRisk(
            risk_id=_risk_id("residency"),
            reason="One vendor's support team accesses data from outside the EU",
        ),
    )


# --- assumptions, issues and ROAM ---------------------------------------------------------


def _assumption_id(name: str) -> UUID:
    return _id(f"assumption/{name}")


def _issue_id(name: str) -> UUID:
    return _id(f"issue/{name}")


def _assume(
    name: str,
    actor: str,
    program_id: UUID,
    statement: str,
    owner: str,
    confidence: Confidence,
    validate_by: date,
) -> Step:
    return Step(
        f"assumption/{name}/record",
        actor,
        RecordAssumption(
            assumption_id=_assumption_id(name),
            program_id=program_id,
            statement=statement,
            owner=owner,
            confidence=confidence,
            validate_by=validate_by,
        ),
    )


def _roam(name: str, actor: str, roam: RoamStatus, reason: str) -> Step:
    return Step(
        f"risk/{name}/roam", actor, ChangeRiskRoam(risk_id=_risk_id(name), roam=roam, reason=reason)
    )


def _raid() -> Iterator[Step]:
    # The ROAM board of the risks still open
    yield _roam("lab", _TOM, RoamStatus.OWNED, "Priya books the backup lab and reports weekly")
    yield _roam("terminals", _TOM, RoamStatus.ACCEPTED, "Accepted at the steering committee")
    yield _roam("attrition", _SARA, RoamStatus.MITIGATED, "The contractor covers the gap")
    yield _roam("drift", _TOM, RoamStatus.RESOLVED, "The fraud vendor pinned the model version")
    # A risk that materialises raises its issue in the same step
    yield _identify(
        "acquirer-api",
        _TOM,
        PAY,
        "Acquirer API rate limits too low for launch traffic",
        RiskCategory.VENDOR,
        3,
        4,
        "Priya Nair",
    )
    yield Step(
        "risk/acquirer-api/materialised",
        _TOM,
        ReportRiskMaterialised(
            risk_id=_risk_id("acquirer-api"),
            what_happened="Load test throttled at 200 requests per second.",
            impact_description="Launch capacity is a fifth of the forecast peak.",
            occurred_on=date(2026, 11, 20),
            raise_issue=RaisedIssue(
                issue_id=_issue_id("acquirer-throttling"),
                title="Acquirer throttles the load test at 200 rps",
                severity=IssueSeverity.CRITICAL,
                owner="Priya Nair",
                due_on=date(2026, 12, 18),
            ),
        ),
    )
    yield Step(
        "issue/acquirer-throttling/escalate",
        _TOM,
        EscalateIssue(
            issue_id=_issue_id("acquirer-throttling"),
            escalated_to="Dana Whitfield (sponsor)",
            reason="Only the acquirer's account executive can raise the limit before launch",
        ),
    )
    # An issue raised directly, linked to the risk it realises
    yield Step(
        "issue/security-findings/raise",
        _SARA,
        RaiseIssue(
            issue_id=_issue_id("security-findings"),
            program_id=IDN,
            title="Security review findings on the token service unresolved",
            severity=IssueSeverity.HIGH,
            owner="Ken Ito",
            due_on=date(2026, 12, 15),
            risk_id=_risk_id("attrition"),
        ),
    )
    # Assumptions: validated, still open (and past its date), found false twice
    yield _assume(
        "sandbox",
        _TOM,
        PAY,
        "The acquirer sandbox supports 3-D Secure 2.2",
        "Priya Nair",
        Confidence.HIGH,
        date(2026, 9, 30),
    )
    yield Step(
        "assumption/sandbox/validate",
        _TOM,
        ValidateAssumption(
            assumption_id=_assumption_id("sandbox"),
            evidence="Sandbox run 14 passed every 2.2 challenge flow",
            validated_on=date(2026, 9, 12),
        ),
    )
    yield _assume(
        "pilot-window",
        _TOM,
        PAY,
        "Pilot merchants accept a two-week pilot window in January",
        "Bruno Silva",
        Confidence.MEDIUM,
        date(2026, 11, 30),
    )
    yield _assume(
        "pkce",
        _SARA,
        IDN,
        "The identity vendor's SDK supports PKCE for the mobile apps",
        "Ken Ito",
        Confidence.MEDIUM,
        date(2026, 10, 31),
    )
    yield Step(
        "assumption/pkce/invalidate",
        _SARA,
        InvalidateAssumption(
            assumption_id=_assumption_id("pkce"),
            evidence="Vendor support confirmed PKCE arrives in SDK 5, due next spring",
            invalidated_on=date(2026, 10, 20),
            raise_risk=RaisedRisk(
                risk_id=_risk_id("pkce"),
                title="Mobile sign-in waits for the vendor's SDK 5",
                category=RiskCategory.VENDOR,
                probability=4,
                impact=3,
                owner="Ken Ito",
            ),
        ),
    )
    yield _assume(
        "data-freeze",
        _OMAR,
        CRM,
        "Sales freeze account data during the migration weekend",
        "Mia Wong",
        Confidence.LOW,
        date(2026, 8, 31),
    )
    yield Step(
        "assumption/data-freeze/invalidate",
        _OMAR,
        InvalidateAssumption(
            assumption_id=_assumption_id("data-freeze"),
            evidence="Quarter-end deals are booked that weekend; Sales will not freeze",
            invalidated_on=date(2026, 8, 25),
            raise_issue=RaisedIssue(
                issue_id=_issue_id("data-freeze"),
                title="Account data changes during the migration weekend",
                severity=IssueSeverity.MEDIUM,
                owner="Mia Wong",
                due_on=date(2026, 9, 15),
            ),
        ),
    )
    yield Step(
        "issue/data-freeze/resolve",
        _OMAR,
        ResolveIssue(
            issue_id=_issue_id("data-freeze"),
            resolution="A delta sync replays the weekend's changes after the cut-over",
            resolved_on=date(2026, 9, 10),
        ),
    )


# --- people and teams -------------------------------------------------------------------


def _resource(key: str, name: str, kind: PartyKind, role: str, capacity: int) -> Step:
    return Step(
        f"resource/{key}",
        _MARTA,
        RegisterResource(
            resource_key=key,
            name=name,
            kind=kind,
            department=Department.ENGINEERING,
            role=role,
            capacity=capacity,
        ),
    )


def _allocate(
    resource: str,
    name: str,
    program_id: UUID,
    period: tuple[date, date],
    percentage: int,
    workstream: str | None = None,
) -> Step:
    return Step(
        f"allocation/{resource}/{name}/propose",
        _MARTA,
        ProposeAllocation(
            resource_key=resource,
            allocation_id=_id(f"allocation/{resource}/{name}"),
            program_id=program_id,
            start_date=period[0],
            end_date=period[1],
            percentage=percentage,
            workstream_id=_id(workstream) if workstream else None,
        ),
    )


def _confirm(resource: str, name: str, override_reason: str | None = None) -> Step:
    return Step(
        f"allocation/{resource}/{name}/confirm",
        _MARTA,
        ConfirmAllocation(
            resource_key=resource,
            allocation_id=_id(f"allocation/{resource}/{name}"),
            override_reason=override_reason,
        ),
    )


def _people() -> Iterator[Step]:
    h1 = (date(2026, 9, 1), date(2027, 2, 28))
    yield _resource("alice.martin", "Alice Martin", PartyKind.PERSON, "Backend engineer", 100)
    yield _resource("bruno.silva", "Bruno Silva", PartyKind.PERSON, "Data scientist", 100)
    yield _resource("chen.wei", "Chen Wei", PartyKind.PERSON, "Product manager", 80)
    yield _resource("team-payments", "Payments squad", PartyKind.TEAM, "Delivery team", 600)
    yield _resource("team-identity", "Identity squad", PartyKind.TEAM, "Delivery team", 400)

    yield _allocate("alice.martin", "pay", PAY, h1, 70, "PAY/workstream/Card acquiring")
    yield _confirm("alice.martin", "pay")
    # The refusal: 70% on payments plus 50% on identity is 120% of Alice.
    yield _allocate("alice.martin", "id", IDN, (date(2026, 12, 1), date(2027, 1, 31)), 50)
    yield Step(
        "allocation/alice.martin/id/confirm",
        _MARTA,
        ConfirmAllocation(
            resource_key="alice.martin",
            allocation_id=_id("allocation/alice.martin/id"),
        ),
        refused_with=OverAllocation,
    )

    yield _allocate("bruno.silva", "pay", PAY, h1, 80, "PAY/workstream/Fraud scoring")
    yield _confirm("bruno.silva", "pay")
    # The override: two weeks at 120%, approved and recorded with its reason.
    yield _allocate("bruno.silva", "id", IDN, (date(2026, 12, 1), date(2026, 12, 14)), 40)
    yield _confirm(
        "bruno.silva",
        "id",
        override_reason="Two weeks of overlap to hand the risk model over to the identity "
        "team; approved by the VP Engineering, overtime compensated",
    )

    yield _allocate("chen.wei", "pay", PAY, h1, 40)
    yield _confirm("chen.wei", "pay")
    yield _allocate("chen.wei", "crm", CRM, (date(2026, 9, 1), date(2027, 6, 30)), 40)
    yield _confirm("chen.wei", "crm")

    yield _allocate(
        "team-payments",
        "pay",
        PAY,
        (date(2026, 3, 1), date(2027, 12, 31)),
        400,
        "PAY/workstream/Card acquiring",
    )
    yield _confirm("team-payments", "pay")
    yield Step(
        "allocation/team-payments/pay/adjust",
        _MARTA,
        AdjustAllocation(
            resource_key="team-payments",
            allocation_id=_id("allocation/team-payments/pay"),
            percentage=450,
            reason="Extra engineer for the second certification round",
        ),
    )
    yield _allocate(
        "team-identity",
        "id",
        IDN,
        (date(2026, 5, 1), date(2027, 9, 30)),
        300,
        "ID/workstream/Identity platform",
    )
    yield _confirm("team-identity", "id")
    yield _allocate("team-identity", "dwh", DWH, (date(2026, 6, 1), date(2026, 9, 30)), 50)
    yield _confirm("team-identity", "dwh")

    yield Step(
        "resource/alice.martin/capacity",
        _MARTA,
        ChangeCapacity(
            resource_key="alice.martin",
            capacity=80,
            effective_from=date(2027, 3, 1),
            reason="Four-day week from March",
        ),
    )


# --- how things ended ----------------------------------------------------------------


# --- the schedule network and change control ----------------------------------------


def _ref(key: str, program_id: UUID, milestone: str) -> MilestoneRef:
    return MilestoneRef(program_id=program_id, milestone_id=_id(f"{key}/milestone/{milestone}"))


def _schedule() -> Iterator[Step]:
    """Links across PAY, ID, DWH and CRM. ID's SSO (replanned to 2027-01-31) drives PAY's
    pilot through a 45-day lag and the pilot's 30 days of work: the pilot is forecast for
    2027-04-16, a day after its own estimate, and its first domino is the SSO replan."""
    pay = {
        "shadow": _ref("PAY", PAY, "Fraud model v2 in shadow mode"),
        "cert": _ref("PAY", PAY, "Acquirer certification passed"),
        "pilot": _ref("PAY", PAY, "Pilot merchants live"),
        "off": _ref("PAY", PAY, "Legacy gateway switched off"),
    }
    sso = _ref("ID", IDN, "SSO for the merchant portal")
    passkeys = _ref("ID", IDN, "Passkeys generally available")
    cutover = _ref("DWH", DWH, "Finance reports on the lakehouse")
    vendor = _ref("CRM", CRM, "Vendor contract signed")
    for ref, days in ((pay["pilot"], 30), (passkeys, 120), (pay["off"], 60)):
        yield Step(
            f"schedule/duration/{ref.milestone_id}",
            _TOM if ref.program_id == PAY else _SARA,
            SetMilestoneDuration(
                program_id=ref.program_id,
                milestone_id=ref.milestone_id,
                duration_days=days,
                reason="Work estimated with the workstream lead",
            ),
        )
    fs, ss, ff = LinkType.FINISH_TO_START, LinkType.START_TO_START, LinkType.FINISH_TO_FINISH
    links = [
        ("shadow-cert", pay["shadow"], pay["cert"], fs, 0),
        ("cert-pilot", pay["cert"], pay["pilot"], fs, 14),
        ("sso-pilot", sso, pay["pilot"], fs, 45),
        ("pilot-off", pay["pilot"], pay["off"], fs, 180),
        ("sso-passkeys", sso, passkeys, ss, 60),
        ("cutover-off", cutover, pay["off"], ff, 0),
        ("vendor-off", vendor, pay["off"], fs, 120),
    ]
    yield Step(
        "schedule/links",
        _PMO,
        LinkMilestones(
            links=tuple(
                ScheduleLink(
                    link_id=_id(f"schedule/link/{name}"),
                    predecessor=pred,
                    successor=succ,
                    type=kind,
                    lag_days=lag,
                )
                for name, pred, succ, kind, lag in links
            )
        ),
    )
    sca = _id("PAY/change/sca")
    yield Step(
        "PAY/change/sca",
        _TOM,
        RaiseChangeRequest(
            program_id=PAY,
            change_request_id=sca,
            title="3-D Secure 2 before the SCA deadline",
            description="The regulator brought the strong customer authentication deadline "
            "forward; the switch-off must wait for the 3DS2 challenge flow.",
            raised_by="Tom Reyes",
            schedule_impact=(
                MilestoneDate(milestone_id=pay["off"].milestone_id, day=date(2028, 1, 31)),
            ),
            budget_impact=_eur(150_000),
            scope_added=("3-D Secure 2 challenge flow",),
        ),
    )
    yield Step(
        "PAY/change/sca/assess",
        _TOM,
        AssessChangeRequest(
            program_id=PAY,
            change_request_id=sca,
            assessed_by="Priya Nair",
            assessment="Two months on the switch-off, off the critical path of the pilot; "
            "two engineers for a quarter.",
        ),
    )
    yield Step(
        "PAY/change/sca/approve",
        _PMO,
        ApproveChangeRequest(
            program_id=PAY,
            change_request_id=sca,
            decided_by="Dana Okafor",
            reason="Regulatory: there is no alternative to meeting the deadline",
            baseline_name="Re-baseline for SCA",
        ),
    )
    wallets = _id("PAY/change/wallets")
    yield Step(
        "PAY/change/wallets",
        _TOM,
        RaiseChangeRequest(
            program_id=PAY,
            change_request_id=wallets,
            title="Apple Pay and Google Pay in the pilot",
            description="Two pilot merchants asked for wallets at launch.",
            raised_by="Tom Reyes",
            schedule_impact=(
                MilestoneDate(milestone_id=pay["pilot"].milestone_id, day=date(2027, 6, 30)),
            ),
            budget_impact=_eur(90_000),
            scope_added=("Wallet payments",),
        ),
    )
    yield Step(
        "PAY/change/wallets/reject",
        _PMO,
        RejectChangeRequest(
            program_id=PAY,
            change_request_id=wallets,
            decided_by="Dana Okafor",
            reason="Not this program's objective; propose it to MOB-2027",
        ),
    )


# --- portfolios and objectives -------------------------------------------------------------

CUSTOMER = _id("portfolio/customer")
PLATFORM = _id("portfolio/platform")
RETAIL = _id("portfolio/retail")


def _portfolios() -> Iterator[Step]:
    """Two portfolios share the programs; the mobile app moves between them at a review,
    and a third portfolio is archived once its only idea is dropped."""
    for key, portfolio_id, name, owner in (
        ("customer", CUSTOMER, "Customer experience", "Dana Okafor"),
        ("platform", PLATFORM, "Platform and data", "Victor Hale"),
        ("retail", RETAIL, "Retail experiments", "Victor Hale"),
    ):
        yield Step(
            f"portfolio/{key}/create",
            _PMO,
            CreatePortfolio(portfolio_id=portfolio_id, name=name, owner=owner),
        )
    for code, portfolio_id in (
        ("PAY", CUSTOMER),
        ("CRM", CUSTOMER),
        ("KIOSK", CUSTOMER),
        ("ID", PLATFORM),
        ("DWH", PLATFORM),
        ("MOB", PLATFORM),
    ):
        program_id = DEMO_PROGRAMS[next(c for c in DEMO_PROGRAMS if c.startswith(f"{code}-"))]
        yield Step(
            f"portfolio/{code}/join",
            _PMO,
            MoveProgramToPortfolio(program_id=program_id, portfolio_id=portfolio_id),
        )
    yield Step(
        "portfolio/MOB/move",
        _PMO,
        MoveProgramToPortfolio(
            program_id=MOB,
            portfolio_id=CUSTOMER,
            reason="The app is the customer journey's front door: moved at the Q4 review",
        ),
    )
    yield Step(
        "portfolio/retail/archive",
        _PMO,
        ArchivePortfolio(portfolio_id=RETAIL, reason="No retail experiment is funded in 2027"),
    )


def _key_result(
    objective: str, name: str, unit: str, baseline: int, target: int, confidence: int
) -> Step:
    return Step(
        f"objective/{objective}/kr/{name}",
        "dana.okafor",
        AddKeyResult(
            objective_id=_id(f"objective/{objective}"),
            key_result_id=_id(f"objective/{objective}/kr/{name}"),
            name=name,
            unit=unit,
            baseline=baseline,
            target=target,
            confidence=confidence,
        ),
    )


def _check_in(objective: str, name: str, value: int, confidence: int, day: date) -> Step:
    return Step(
        f"objective/{objective}/kr/{name}/{day.isoformat()}",
        "dana.okafor",
        CheckInKeyResult(
            objective_id=_id(f"objective/{objective}"),
            key_result_id=_id(f"objective/{objective}/kr/{name}"),
            value=value,
            confidence=confidence,
            checked_on=day,
        ),
    )


def _objectives() -> Iterator[Step]:
    """Objectives with key results (the OKR ids the programs were proposed with), checked
    in; the warehouse's objective is closed as achieved."""
    for key, title, okr, period, programs in (
        ("payments", "Halve payment failures", "OKR-2027-01", 2027, (PAY, MOB)),
        ("login", "One login for every product", "OKR-2027-02", 2027, (IDN,)),
        ("lakehouse", "Finance reporting on the lakehouse", "OKR-2026-02", 2026, (DWH,)),
    ):
        yield Step(
            f"objective/{key}/define",
            "dana.okafor",
            DefineObjective(
                objective_id=_id(f"objective/{key}"),
                title=title,
                owner="Dana Okafor",
                key=okr,
                starts_on=date(period, 1, 1),
                ends_on=date(period, 12, 31),
            ),
        )
        for program_id in programs:
            yield Step(
                f"objective/{key}/link/{program_id}",
                _PMO,
                LinkObjectiveToProgram(objective_id=_id(f"objective/{key}"), program_id=program_id),
            )
    yield _key_result("payments", "Card payment failure rate", "basis points", 420, 210, 60)
    yield _key_result("payments", "Checkout conversion", "basis points", 6100, 6600, 50)
    yield _key_result("login", "Products on single sign-on", "products", 1, 8, 70)
    yield _key_result("lakehouse", "Finance reports migrated", "reports", 0, 120, 80)
    yield _check_in("payments", "Card payment failure rate", 380, 65, date(2026, 11, 2))
    yield _check_in("payments", "Checkout conversion", 6250, 55, date(2026, 11, 2))
    yield _check_in("login", "Products on single sign-on", 3, 75, date(2026, 11, 2))
    yield _check_in("lakehouse", "Finance reports migrated", 120, 100, date(2026, 9, 28))
    yield Step(
        "objective/lakehouse/close",
        "dana.okafor",
        CloseObjective(
            objective_id=_id("objective/lakehouse"),
            reason="Achieved: every finance report runs on the lakehouse",
        ),
    )


def _closing() -> Iterator[Step]:
    yield Step(
        "CRM/hold",
        _OMAR,
        PutProgramOnHold(program_id=CRM, reason="Budget freeze until the Q1 portfolio review"),
    )
    yield Step(
        "allocation/chen.wei/crm/release",
        _MARTA,
        ReleaseAllocation(
            resource_key="chen.wei",
            allocation_id=_id("allocation/chen.wei/crm"),
            reason="CRM-2027 is on hold",
        ),
    )
    yield Step(
        "DWH/lesson/reconciliation",
        _LI,
        RecordLesson(
            program_id=DWH,
            lesson_id=_id("DWH/lesson/reconciliation"),
            what_happened="Finance found reconciliation gaps two weeks before cutover.",
            learned="Run parallel reconciliation from the first migrated report, not the last.",
            follow_up_action="Add parallel-run criteria to the migration playbook",
        ),
    )
    yield Step(
        "DWH/complete",
        _LI,
        CompleteProgram(program_id=DWH, reason="Finance closed September on the lakehouse"),
    )
    yield Step(
        "DWH/lesson/retro",
        _LI,
        RecordLesson(
            program_id=DWH,
            lesson_id=_id("DWH/lesson/retro"),
            what_happened="Retrospective after the close: the cutover weekend ran 9 hours over.",
            learned="Rehearse the cutover end to end with production volumes.",
        ),
    )
    yield Step(
        "KIOSK/cancel",
        _PMO,
        CancelProgram(
            program_id=KIOSK, reason="Turned down: store footfall data does not support it"
        ),
    )


# --- weekly status reports --------------------------------------------------------------


def _report(
    overall: Rag, why: str, rags: dict[Dimension, tuple[Rag, str]], **lists: tuple[str, ...]
) -> ReportContent:
    return ReportContent(
        overall=overall,
        overall_reason=why,
        dimensions=tuple(
            DimensionRag(dimension=d, rag=rag, reason=reason)
            for d in Dimension
            for rag, reason in (rags.get(d, (Rag.GREEN, "on plan")),)
        ),
        **lists,
    )


def _status_reports() -> Iterator[Step]:
    k, p = "PAY/report", PAY
    # The owner publishes, and publishing checks the caller against the owner: the
    # program names its owner by login.
    yield Step(f"{k}/owner", _PMO, UpdateProgramDetails(program_id=p, owner=_TOM))
    slipped = (Rag.AMBER, "Certification slipped two months; pilot moved to April")
    w47 = _report(
        Rag.GREEN,
        "Fraud model ahead of plan",
        {},
        highlights=("Fraud scoring model passed its offline evaluation",),
        next_steps=("Start acquirer certification round two",),
    )
    w48 = _report(
        Rag.AMBER,
        "AMBER because of SCHEDULE",
        {Dimension.SCHEDULE: slipped},
        highlights=("Second engineer joined the card acquiring team",),
        lowlights=("Acquirer certification round one failed on 3DS flows",),
        asks=("Vendor escalation on the certification slot",),
        next_steps=("Re-run certification in week 50",),
    )
    w49 = _report(
        Rag.AMBER,
        "AMBER because of SCHEDULE",
        {Dimension.SCHEDULE: slipped},
        next_steps=("Certification slot confirmed for week 50",),
    )
    w49_fixed = _report(
        Rag.RED,
        "RED because of SCHEDULE and BUDGET",
        {
            Dimension.SCHEDULE: slipped,
            Dimension.BUDGET: (Rag.RED, "Certification rework spent 15% over the quarter"),
        },
        asks=("Approve the budget revision at the steering committee",),
        next_steps=("Certification slot confirmed for week 50",),
    )
    for week, content in (("2026-W47", w47), ("2026-W48", w48), ("2026-W49", w49)):
        yield Step(
            f"{k}/{week}/draft",
            _SARA,
            DraftStatusReport(program_id=p, period=week, content=content),
        )
        yield Step(f"{k}/{week}/publish", _TOM, PublishStatusReport(program_id=p, period=week))
    yield Step(
        f"{k}/2026-W49/correct",
        _TOM,
        CorrectStatusReport(
            program_id=p,
            period="2026-W49",
            content=w49_fixed,
            reason="Finance's month-end figures arrived after publishing",
        ),
    )
    yield Step(
        f"{k}/2026-W49/republish", _TOM, PublishStatusReport(program_id=p, period="2026-W49")
    )
    yield Step(
        f"{k}/2026-W50/draft",
        _SARA,
        DraftStatusReport(program_id=p, period="2026-W50", content=w49_fixed),
    )
    yield Step(
        f"{k}/2026-W50/edit",
        _SARA,
        EditStatusReport(
            program_id=p,
            period="2026-W50",
            content=_report(
                Rag.AMBER,
                "AMBER because of SCHEDULE",
                {Dimension.SCHEDULE: slipped},
                highlights=("Certification round two passed",),
            ),
        ),
    )


# --- capacity what-ifs ---------------------------------------------------------------------


def _scenarios() -> Iterator[Step]:
    pilot = DEMO_SCENARIOS["pay-pilot"]
    yield Step(
        "scenario/pay-pilot/create",
        _MARTA,
        CreateScenario(
            scenario_id=pilot,
            name="Payments pilot push",
            description="Two contractors for the squad and Chen on the pilot in March-April",
        ),
    )
    yield Step(
        "scenario/pay-pilot/contractors",
        _MARTA,
        AddScenarioCapacityChange(
            scenario_id=pilot,
            change_id=_id("scenario/pay-pilot/contractors"),
            resource_key="team-payments",
            capacity=700,
            effective_from=date(2027, 3, 1),
            reason="Two contractors join for the pilot",
        ),
    )
    yield Step(
        "scenario/pay-pilot/chen",
        _MARTA,
        AddScenarioAllocation(
            scenario_id=pilot,
            change_id=_id("scenario/pay-pilot/chen"),
            resource_key="chen.wei",
            program_id=PAY,
            start_date=date(2027, 3, 1),
            end_date=date(2027, 4, 30),
            percentage=30,
        ),
    )
    yield Step("scenario/pay-pilot/commit", _MARTA, CommitScenario(scenario_id=pilot))
    crunch = DEMO_SCENARIOS["identity-crunch"]
    yield Step(
        "scenario/identity-crunch/create",
        _MARTA,
        CreateScenario(scenario_id=crunch, name="Identity crunch in January"),
    )
    for key, percentage in (("bruno.silva", 40), ("alice.martin", 50)):
        yield Step(
            f"scenario/identity-crunch/{key}",
            _MARTA,
            AddScenarioAllocation(
                scenario_id=crunch,
                change_id=_id(f"scenario/identity-crunch/{key}"),
                resource_key=key,
                program_id=IDN,
                start_date=date(2027, 1, 4),
                end_date=date(2027, 1, 31),
                percentage=percentage,
            ),
        )
