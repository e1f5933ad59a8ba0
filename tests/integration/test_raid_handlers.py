"""The RAID items on real PostgreSQL: an assumption found false raises its risk or issue,
a materialised risk its issue, in one step that a crash between its two appends cannot
leave half done once the command is sent again."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID, uuid4

import pytest

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import EventMetadata
from programledger.application.handlers import Application
from programledger.application.registry import application_registry
from programledger.domain.assumption import (
    AssumptionInvalidated,
    AssumptionStatus,
    Confidence,
    InvalidateAssumption,
    RecordAssumption,
    assumption_stream_id,
)
from programledger.domain.errors import TerminalState, ValidationError
from programledger.domain.events import EventRegistry
from programledger.domain.issue import (
    IssueSeverity,
    IssueStatus,
    RaisedIssue,
    RaiseIssue,
    ResolveIssue,
)
from programledger.domain.program import CancelProgram
from programledger.domain.risk import (
    RaisedRisk,
    ReportRiskMaterialised,
    RiskCategory,
    RiskStatus,
)
from tests.integration.test_handlers import ctx, identify, new_program, stored_count


@pytest.fixture
def registry() -> EventRegistry:
    return application_registry()


@pytest.fixture
def app(event_store: PostgresEventStore) -> Application:
    return Application(event_store)


def record(program_id: UUID, **changes: Any) -> RecordAssumption:
    fields: dict[str, Any] = {
        "assumption_id": uuid4(),
        "program_id": program_id,
        "statement": "The acquirer's sandbox supports 3-D Secure 2.2",
        "owner": "Priya",
        "confidence": Confidence.MEDIUM,
        "validate_by": date(2027, 2, 15),
    }
    return RecordAssumption(**{**fields, **changes})


def raised_issue(**changes: Any) -> RaisedIssue:
    fields: dict[str, Any] = {
        "issue_id": uuid4(),
        "title": "Sandbox rejects 3-D Secure 2.2 challenges",
        "severity": IssueSeverity.HIGH,
        "owner": "Priya",
        "due_on": date(2027, 3, 1),
    }
    return RaisedIssue(**{**fields, **changes})


def invalidate(assumption_id: UUID, **changes: Any) -> InvalidateAssumption:
    fields: dict[str, Any] = {
        "assumption_id": assumption_id,
        "evidence": "Sandbox run 15 failed the challenge flow",
        "invalidated_on": date(2027, 2, 10),
    }
    return InvalidateAssumption(**{**fields, **changes})


async def test_an_invalidated_assumption_raises_its_risk_in_the_same_step(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    assumption = record(program_id)
    await app.handle(assumption, ctx())
    risk_id = uuid4()
    raised = RaisedRisk(
        risk_id=risk_id,
        title="Certification slips without a 2.2 sandbox",
        category=RiskCategory.VENDOR,
        probability=4,
        impact=4,
        owner="Priya",
    )
    result = await app.handle(
        invalidate(assumption.assumption_id, raise_risk=raised), ctx(reason="sandbox failed")
    )
    risk = (await app.load_risk(risk_id)).state
    assert risk is not None
    assert (risk.status, risk.assumption_id, risk.score) == (
        RiskStatus.IDENTIFIED,
        assumption.assumption_id,
        16,
    )
    opened = (await event_store.read_stream(f"risk-{risk_id}"))[0]
    assert opened.metadata.causation_id == result.event_ids[0], "caused by the invalidation"
    assert opened.metadata.reason == "sandbox failed"
    assert result.last_position == opened.position, "waiting for the result shows the risk"
    assert [type(e).__name__ for e in result.raised] == ["RiskIdentified"]
    state = (await app.load_assumption(assumption.assumption_id)).state
    assert state is not None
    assert (state.status, state.raised_risk_id) == (AssumptionStatus.INVALIDATED, risk_id)


async def test_a_crash_between_the_two_appends_is_completed_by_sending_the_command_again(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    assumption = record(program_id)
    await app.handle(assumption, ctx())
    issue = raised_issue()
    command = invalidate(assumption.assumption_id, raise_issue=issue)
    # The first append alone, as a process killed right after it would leave it.
    await event_store.append(
        assumption_stream_id(assumption.assumption_id),
        1,
        [
            AssumptionInvalidated(
                assumption_id=assumption.assumption_id,
                program_id=program_id,
                evidence=command.evidence,
                invalidated_on=command.invalidated_on,
                raised_issue=issue,
            )
        ],
        EventMetadata(actor="tom.tpm", program_id=program_id),
    )
    assert (await app.load_issue(issue.issue_id)).state is None
    result = await app.handle(command, ctx())
    assert result.events == (), "nothing more on the assumption"
    assert [type(e).__name__ for e in result.raised] == ["IssueRaised"], "the step completed"
    opened = (await app.load_issue(issue.issue_id)).state
    assert opened is not None
    assert (opened.assumption_id, opened.status) == (assumption.assumption_id, IssueStatus.OPEN)
    before = await stored_count(event_store)
    third = await app.handle(command, ctx())
    assert await stored_count(event_store) == before, "a third time records nothing"
    assert third.raised == ()


async def test_a_repeat_with_the_idempotency_key_opens_nothing_twice(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    assumption = record(program_id)
    await app.handle(assumption, ctx())
    command = invalidate(assumption.assumption_id, raise_issue=raised_issue())
    first = await app.handle(command, ctx(idempotency_key="invalidate-1"))
    before = await stored_count(event_store)
    again = await app.handle(command, ctx(idempotency_key="invalidate-1"))
    assert again.replayed
    assert again.event_ids == first.event_ids
    assert await stored_count(event_store) == before


async def test_a_raised_item_whose_id_is_taken_refuses_the_whole_command(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    taken = identify(program_id)
    await app.handle(taken, ctx())
    assumption = record(program_id)
    await app.handle(assumption, ctx())
    before = await stored_count(event_store)
    raised = RaisedRisk(
        risk_id=taken.risk_id,
        title="t",
        category=RiskCategory.OTHER,
        probability=1,
        impact=1,
        owner="o",
    )
    with pytest.raises(ValidationError) as refused:
        await app.handle(invalidate(assumption.assumption_id, raise_risk=raised), ctx())
    assert [i.path for i in refused.value.issues] == ["raise_risk.risk_id"]
    assert await stored_count(event_store) == before


async def test_a_materialised_risk_raises_its_linked_issue(app: Application) -> None:
    program_id = await new_program(app)
    risk = identify(program_id)
    await app.handle(risk, ctx())
    issue = raised_issue()
    await app.handle(
        ReportRiskMaterialised(
            risk_id=risk.risk_id,
            what_happened="Certification failed.",
            impact_description="Pilot moves four weeks.",
            occurred_on=date(2027, 4, 2),
            raise_issue=issue,
        ),
        ctx(),
    )
    opened = (await app.load_issue(issue.issue_id)).state
    assert opened is not None
    assert opened.risk_id == risk.risk_id
    await app.handle(
        ResolveIssue(
            issue_id=issue.issue_id, resolution="Re-certified", resolved_on=date(2027, 5, 1)
        ),
        ctx(),
    )
    history = await app.history(f"issue-{issue.issue_id}")
    assert [h.event.event_type for h in history] == ["IssueRaised", "IssueResolved"]


async def test_an_issue_links_only_a_risk_of_its_own_program(app: Application) -> None:
    program_id, other = await new_program(app), await new_program(app)
    risk = identify(other)
    await app.handle(risk, ctx())
    command = RaiseIssue(
        issue_id=uuid4(),
        program_id=program_id,
        title="Sandbox down",
        severity=IssueSeverity.MEDIUM,
        owner="Priya",
        due_on=date(2027, 3, 1),
        risk_id=risk.risk_id,
    )
    with pytest.raises(ValidationError) as refused:
        await app.handle(command, ctx())
    assert [i.path for i in refused.value.issues] == ["risk_id"]


async def test_no_new_assumption_or_issue_on_a_cancelled_program(app: Application) -> None:
    program_id = await new_program(app)
    await app.handle(CancelProgram(program_id=program_id, reason="Merged into PAY"), ctx())
    with pytest.raises(TerminalState):
        await app.handle(record(program_id), ctx())
    with pytest.raises(ValidationError):
        await app.handle(record(uuid4()), ctx())
