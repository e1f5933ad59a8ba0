"""The RAID read model on real PostgreSQL and NATS: assumptions, issues and the one index
of all four kinds of item, filtered, sorted, paged and read as of any moment; and a
rebuild gives the same rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from uuid import uuid4

import asyncpg
import pytest
import pytest_asyncio

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.commands import Command, CommandContext, CommandResult
from programledger.application.handlers import Application
from programledger.domain.assumption import Confidence, InvalidateAssumption, RecordAssumption
from programledger.domain.issue import EscalateIssue, IssueSeverity, RaisedIssue, ResolveIssue
from programledger.domain.program import (
    ActivateProgram,
    AddWorkstream,
    ExternalTarget,
    FlagDependencyAtRisk,
    ItemKind,
    ItemRef,
    RegisterDependency,
)
from programledger.domain.risk import (
    ChangeRiskRoam,
    IdentifyRisk,
    ReportRiskMaterialised,
    RiskCategory,
    RoamStatus,
)
from programledger.domain.values import Department
from programledger.projections.engine.status import wait_for_position
from programledger.projections.raid import get_assumption, get_issue, list_raid
from programledger.projections.registry import PROJECTIONS
from programledger.projections.risks import get_risk
from tests.support.projection_process import LiveSystem, app_store
from tests.unit.examples import propose_program


@pytest_asyncio.fixture
async def store(pool: asyncpg.Pool, schema: str) -> PostgresEventStore:
    return app_store(pool, schema)


@pytest.fixture
def app(store: PostgresEventStore) -> Application:
    return Application(store)


@pytest_asyncio.fixture
async def live(
    store: PostgresEventStore, pg_url: str, nats_url: str, subject_prefix: str
) -> AsyncIterator[LiveSystem]:
    raid = [PROJECTIONS["raid"], PROJECTIONS["risks"]]
    async with LiveSystem(store, pg_url, nats_url, subject_prefix, projections=raid) as system:
        yield system


class RaidStory:
    """A program whose RAID log holds one item of each kind, and an issue each from a
    materialised risk and an invalidated assumption."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.program, self.workstream = uuid4(), uuid4()
        self.risk, self.assumption, self.dependency = uuid4(), uuid4(), uuid4()
        self.from_risk, self.from_assumption = uuid4(), uuid4()
        self.positions: dict[str, int] = {}

    async def do(self, label: str, command: Command) -> CommandResult:
        result = await self.app.handle(command, CommandContext(actor="tom", reason=label))
        self.positions[label] = result.last_position
        return result

    async def tell(self) -> int:
        p = self.program
        await self.do("propose", propose_program(program_id=p, code=f"R{p.hex[:8].upper()}"))
        await self.do("activate", ActivateProgram(program_id=p))
        await self.do(
            "workstream",
            AddWorkstream(
                program_id=p,
                workstream_id=self.workstream,
                name="Core",
                lead="Lee",
                department=Department.ENGINEERING,
            ),
        )
        await self.do(
            "dependency",
            RegisterDependency(
                program_id=p,
                dependency_id=self.dependency,
                title="Acquirer test slot",
                dependent=ItemRef(kind=ItemKind.WORKSTREAM, item_id=self.workstream),
                depends_on=ExternalTarget(party="Acquirer", contact="ops@acquirer.example"),
                needed_by=date(2027, 3, 1),
            ),
        )
        await self.do(
            "dependency at risk",
            FlagDependencyAtRisk(program_id=p, dependency_id=self.dependency, reason="silent"),
        )
        await self.do(
            "risk",
            IdentifyRisk(
                risk_id=self.risk,
                program_id=p,
                title="Vendor late",
                category=RiskCategory.VENDOR,
                probability=3,
                impact=4,
                owner="Olga",
                next_review_on=date(2027, 2, 15),
            ),
        )
        await self.do(
            "owned",
            ChangeRiskRoam(risk_id=self.risk, roam=RoamStatus.OWNED, reason="Olga owns it"),
        )
        await self.do(
            "assumption",
            RecordAssumption(
                assumption_id=self.assumption,
                program_id=p,
                statement="Sandbox supports 3-D Secure 2.2",
                owner="Priya",
                confidence=Confidence.LOW,
                validate_by=date(2027, 2, 1),
            ),
        )
        await self.do(
            "invalidated",
            InvalidateAssumption(
                assumption_id=self.assumption,
                evidence="Run 15 failed",
                invalidated_on=date(2027, 2, 2),
                raise_issue=RaisedIssue(
                    issue_id=self.from_assumption,
                    title="Sandbox rejects 2.2",
                    severity=IssueSeverity.MEDIUM,
                    owner="Priya",
                    due_on=date(2027, 2, 20),
                ),
            ),
        )
        await self.do(
            "materialised",
            ReportRiskMaterialised(
                risk_id=self.risk,
                what_happened="Vendor missed the date",
                impact_description="Pilot four weeks late",
                occurred_on=date(2027, 3, 2),
                raise_issue=RaisedIssue(
                    issue_id=self.from_risk,
                    title="Pilot late",
                    severity=IssueSeverity.CRITICAL,
                    owner="Olga",
                    due_on=date(2027, 3, 30),
                ),
            ),
        )
        await self.do(
            "escalated",
            EscalateIssue(issue_id=self.from_risk, escalated_to="VP", reason="Pilot at stake"),
        )
        result = await self.do(
            "resolved",
            ResolveIssue(
                issue_id=self.from_assumption, resolution="Enabled", resolved_on=date(2027, 2, 18)
            ),
        )
        return result.last_position


async def test_the_raid_log_holds_every_kind_filtered_sorted_and_as_of(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    story = RaidStory(app)
    head = await story.tell()
    assert await wait_for_position(pool, head, 20, ["raid", "risks"])

    page = await list_raid(pool, program_ids=[story.program])
    assert page.total_count == 5
    assert [(i.kind, i.severity) for i in page.items] == [
        ("ISSUE", 25),  # CRITICAL
        ("RISK", 12),
        ("ISSUE", 9),  # MEDIUM, resolved; ties go by kind, in the order asked
        ("DEPENDENCY", 9),  # at risk
        ("ASSUMPTION", 0),  # no longer open: no doubt left to rank
    ]
    open_items = await list_raid(pool, program_ids=[story.program], open_only=True)
    assert {i.kind for i in open_items.items} == {"ISSUE", "RISK", "DEPENDENCY"}
    escalated = await list_raid(pool, escalated=True, program_ids=[story.program])
    assert [i.item_id for i in escalated.items] == [story.from_risk]
    owned = await list_raid(pool, roam=["OWNED"], program_ids=[story.program])
    assert [i.item_id for i in owned.items] == [story.risk]
    by_due = await list_raid(
        pool, program_ids=[story.program], sort="due_on", descending=False, first=2
    )
    assert [i.item_id for i in by_due.items] == [story.assumption, story.risk]
    rest = await list_raid(
        pool, program_ids=[story.program], sort="due_on", descending=False, after=by_due.end_cursor
    )
    assert len(rest.items) == 3
    assert not rest.has_next_page

    before = await list_raid(pool, program_ids=[story.program], as_of=story.positions["owned"])
    assert [(i.kind, i.status) for i in before.items] == [
        ("RISK", "IDENTIFIED"),
        ("DEPENDENCY", "AT_RISK"),
    ]
    everywhere = await list_raid(pool, kinds=["ASSUMPTION"])
    assert story.assumption in {i.item_id for i in everywhere.items}


async def test_assumptions_issues_and_risks_show_every_recorded_field(
    app: Application, live: LiveSystem, pool: asyncpg.Pool
) -> None:
    story = RaidStory(app)
    head = await story.tell()
    assert await wait_for_position(pool, head, 20, ["raid", "risks"])

    assumption = await get_assumption(pool, story.assumption)
    assert assumption is not None
    assert (assumption.status, assumption.invalidation_evidence, assumption.raised_issue_id) == (
        "INVALIDATED",
        "Run 15 failed",
        story.from_assumption,
    )
    issue = await get_issue(pool, story.from_risk)
    assert issue is not None
    assert (issue.risk_id, issue.severity, issue.escalated_to) == (
        story.risk,
        "CRITICAL",
        "VP",
    )
    resolved = await get_issue(pool, story.from_assumption)
    assert resolved is not None
    assert (resolved.assumption_id, resolved.status, resolved.resolution) == (
        story.assumption,
        "RESOLVED",
        "Enabled",
    )
    opened = await get_issue(pool, story.from_assumption, as_of=story.positions["invalidated"])
    assert opened is not None
    assert opened.status == "OPEN"
    risk = await get_risk(pool, story.risk)
    assert risk is not None
    assert (risk.roam, risk.roam_reason, risk.materialised_issue_id) == (
        "OWNED",
        "Olga owns it",
        story.from_risk,
    )
