"""Command handling on real PostgreSQL: routing, cross-stream rules, concurrency and
idempotency, with every outcome read back from the event store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from programledger.adapters.codec import EventCodec
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.commands import Command, CommandContext, CommandResult
from programledger.application.eventstore import (
    AppendResult,
    ConcurrencyConflict,
    EventMetadata,
    ExpectedVersion,
    IdempotencyKeyReused,
    RecordedEvent,
    StreamVerification,
    Version,
)
from programledger.application.handlers import Application, RetryPolicy
from programledger.application.registry import application_registry
from programledger.application.reservations import ProgramCodeReserved, program_code_stream_id
from programledger.domain import program, resource, risk
from programledger.domain.capacity import AllocationStatus
from programledger.domain.errors import (
    AlreadyExists,
    OverAllocation,
    TerminalState,
    ValidationError,
)
from programledger.domain.events import DomainEvent, EventRegistry
from programledger.domain.program import (
    ActivateProgram,
    AddWorkstream,
    CancelProgram,
    CompleteProgram,
    Health,
    PlanMilestone,
    ProgramHealthReported,
    ProgramProposed,
    ProgramStatus,
    RecordDecision,
    ReportProgramHealth,
    UpdateProgramDetails,
)
from programledger.domain.resource import (
    AllocationConfirmed,
    ConfirmAllocation,
    ProposeAllocation,
    RegisterResource,
    ReleaseAllocation,
)
from programledger.domain.risk import (
    AcceptRisk,
    AssessRisk,
    CloseRisk,
    IdentifyRisk,
    RiskCategory,
    RiskStatus,
    UpdateRiskDetails,
)
from programledger.domain.values import Department, PartyKind
from tests.support.ledger import settled
from tests.unit.examples import propose_program

ACTOR = "tom.tpm"
APRIL = (date(2027, 4, 1), date(2027, 4, 30))


@pytest.fixture
def registry() -> EventRegistry:
    return application_registry()


@pytest.fixture
def app(event_store: PostgresEventStore) -> Application:
    return Application(event_store)


def ctx(**fields: Any) -> CommandContext:
    return CommandContext(actor=ACTOR, **fields)


async def new_program(app: Application, *, code: str | None = None, active: bool = True) -> UUID:
    program_id = uuid4()
    await app.handle(
        propose_program(program_id=program_id, code=code or f"P{program_id.hex[:8].upper()}"),
        ctx(),
    )
    if active:
        await app.handle(ActivateProgram(program_id=program_id), ctx())
    return program_id


async def add_workstream(app: Application, program_id: UUID, name: str = "Card acquiring") -> UUID:
    workstream_id = uuid4()
    await app.handle(
        AddWorkstream(
            program_id=program_id,
            workstream_id=workstream_id,
            name=name,
            lead="Priya",
            department=Department.ENGINEERING,
        ),
        ctx(),
    )
    return workstream_id


def identify(program_id: UUID, workstream_id: UUID | None = None, **changes: Any) -> IdentifyRisk:
    fields: dict[str, Any] = {
        "risk_id": uuid4(),
        "program_id": program_id,
        "workstream_id": workstream_id,
        "title": "Acquirer certification slips",
        "category": RiskCategory.VENDOR,
        "probability": 3,
        "impact": 4,
        "owner": "Priya",
    }
    return IdentifyRisk(**{**fields, **changes})


def register(key: str, capacity: int = 100) -> RegisterResource:
    return RegisterResource(
        resource_key=key,
        name=f"Person {key}",
        kind=PartyKind.PERSON,
        department=Department.ENGINEERING,
        role="Backend engineer",
        capacity=capacity,
    )


def propose_allocation(
    key: str, program_id: UUID, percentage: int = 60, workstream_id: UUID | None = None
) -> ProposeAllocation:
    return ProposeAllocation(
        resource_key=key,
        allocation_id=uuid4(),
        program_id=program_id,
        workstream_id=workstream_id,
        start_date=APRIL[0],
        end_date=APRIL[1],
        percentage=percentage,
    )


async def head(store: PostgresEventStore) -> int:
    return await settled(store)


async def stored_count(store: PostgresEventStore) -> int:
    """Every committed event, whether or not readers of the log may see it yet: they wait
    for the xmin horizon, which other transactions on the server hold back."""
    return int(await store.pool.fetchval("SELECT count(*) FROM events"))


class CompetingWriter:
    """The real store, with another writer's append slipped in right after the handler
    reads ``stream_id``: the conflict a handler must survive, at a moment the test picks."""

    def __init__(
        self, store: PostgresEventStore, stream_id: str, event: DomainEvent, times: int
    ) -> None:
        self.store = store
        self.stream_id = stream_id
        self.event = event
        self.times = times
        self.reads = 0

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        recorded_before: datetime | None = None,
    ) -> list[RecordedEvent]:
        records = await self.store.read_stream(
            stream_id,
            from_version=from_version,
            to_version=to_version,
            recorded_before=recorded_before,
        )
        if stream_id == self.stream_id:
            self.reads += 1
            if self.reads <= self.times:
                await self.store.append(
                    stream_id, ExpectedVersion.ANY, [self.event], EventMetadata(actor="rival")
                )
        return records

    async def verify(self, stream_id: str) -> StreamVerification:
        return await self.store.verify(stream_id)

    async def append(
        self,
        stream_id: str,
        expected_version: Version,
        events: Sequence[DomainEvent],
        metadata: EventMetadata,
        *,
        idempotency_key: str | None = None,
        fingerprint: bytes | None = None,
    ) -> AppendResult:
        return await self.store.append(
            stream_id,
            expected_version,
            events,
            metadata,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )

    def check_events(self, events: Sequence[DomainEvent]) -> None:
        self.store.check_events(events)

    async def find_idempotent(
        self, key: str, fingerprint: bytes | None = None
    ) -> AppendResult | None:
        return await self.store.find_idempotent(key, fingerprint)


# The whole flow


async def test_a_program_from_proposal_to_confirmed_staffing(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = uuid4()
    proposed = await app.handle(propose_program(program_id=program_id), ctx())
    assert proposed.stream_id == f"program-{program_id}"
    assert proposed.entity_id == program_id
    assert proposed.version == 1
    assert not proposed.replayed
    assert [type(e) for e in proposed.events] == [ProgramProposed]
    activated = await app.handle(ActivateProgram(program_id=program_id, reason="approved"), ctx())
    assert activated.version == 2
    assert activated.last_position > proposed.last_position
    workstream_id = await add_workstream(app, program_id)
    planned = await app.handle(
        PlanMilestone(
            program_id=program_id,
            milestone_id=uuid4(),
            name="Pilot live",
            due_date=date(2027, 6, 30),
            workstream_id=workstream_id,
        ),
        ctx(),
    )
    assert planned.version == 4

    identify_risk = identify(program_id, workstream_id)
    identified = await app.handle(identify_risk, ctx())
    assert (identified.stream_id, identified.version) == (f"risk-{identify_risk.risk_id}", 1)
    assessed = await app.handle(
        AssessRisk(risk_id=identify_risk.risk_id, probability=4, impact=5), ctx()
    )
    assert assessed.version == 2

    await app.handle(register("alice.martin"), ctx())
    first = propose_allocation("alice.martin", program_id, 60, workstream_id)
    second = propose_allocation("alice.martin", program_id, 40)
    for command in (first, second):
        await app.handle(command, ctx())
    await app.handle(
        ConfirmAllocation(resource_key="alice.martin", allocation_id=first.allocation_id), ctx()
    )
    confirmed = await app.handle(
        ConfirmAllocation(resource_key="alice.martin", allocation_id=second.allocation_id), ctx()
    )
    assert confirmed.entity_id == "alice.martin"
    assert confirmed.version == 5

    loaded = await app.load_program(program_id)
    assert loaded.state is not None
    assert loaded.state.status is ProgramStatus.ACTIVE
    assert [m.name for m in loaded.state.milestones] == ["Pilot live"]
    assert (loaded.version, loaded.last_position) == (4, planned.last_position)
    risk_state = (await app.load_risk(identify_risk.risk_id)).state
    assert risk_state is not None
    assert (risk_state.status, risk_state.score) == (RiskStatus.ASSESSED, 20)
    person = await app.load_resource("alice.martin")
    assert person.state is not None
    assert [a.status for a in person.state.allocations] == [AllocationStatus.CONFIRMED] * 2
    assert person.last_position == confirmed.last_position == await head(event_store)
    assert (await app.load_program(uuid4())) == (None, 0, 0)


async def test_metadata_lands_on_every_stored_event(
    app: Application, event_store: PostgresEventStore
) -> None:
    correlation, causation = uuid4(), uuid4()
    context = ctx(correlation_id=correlation, causation_id=causation, reason="quarterly plan")
    program_id = uuid4()
    await app.handle(propose_program(program_id=program_id), context)
    await app.handle(ActivateProgram(program_id=program_id), context)
    await app.handle(identify(program_id), context)
    await app.handle(register("bob"), context)
    await app.handle(propose_allocation("bob", program_id), context)

    await settled(event_store)
    stored = await event_store.read_all()
    assert [e.stream_id for e in stored][:2] == [
        program_code_stream_id("PAY-2027"),
        f"program-{program_id}",
    ]
    assert len(stored) == 6
    for event in stored:
        expected_program = None if event.event_type == "ResourceRegistered" else program_id
        assert event.metadata == EventMetadata(
            actor=ACTOR,
            correlation_id=correlation,
            causation_id=causation,
            reason="quarterly plan",
            program_id=expected_program,
        ), event.event_type


async def test_a_context_without_correlation_id_gets_one_shared_by_its_appends(
    app: Application, event_store: PostgresEventStore
) -> None:
    context = ctx()
    await app.handle(propose_program(program_id=uuid4()), context)
    await settled(event_store)
    stored = await event_store.read_all()
    assert len(stored) == 2
    assert {e.metadata.correlation_id for e in stored} == {context.correlation_id}


async def test_history_gives_the_state_after_each_event(app: Application) -> None:
    program_id = await new_program(app)
    workstream_id = await add_workstream(app, program_id)
    await app.handle(
        ReportProgramHealth(program_id=program_id, health=Health.AMBER, summary="vendor late"),
        ctx(),
    )
    identify_risk = identify(program_id, workstream_id)
    await app.handle(identify_risk, ctx())
    await app.handle(AssessRisk(risk_id=identify_risk.risk_id, probability=2, impact=2), ctx())
    await app.handle(register("carol"), ctx())
    await app.handle(propose_allocation("carol", program_id), ctx())

    cases: list[tuple[str, Any]] = [
        (f"program-{program_id}", program.fold),
        (f"risk-{identify_risk.risk_id}", risk.fold),
        ("resource-carol", resource.fold),
    ]
    for stream_id, fold in cases:
        steps = await app.history(stream_id)
        events = [step.event.data for step in steps]
        assert [step.event.version for step in steps] == list(range(1, len(steps) + 1))
        for i, step in enumerate(steps):
            assert step.state == fold(events[: i + 1])
    program_steps = await app.history(f"program-{program_id}")
    assert program_steps[-1].state == (await app.load_program(program_id)).state
    # Page by page: the same entries, each state folded from the stream's start.
    paged, after = [], 0
    while page := await app.history(f"program-{program_id}", after_version=after, limit=2):
        assert len(page) <= 2
        paged += page
        after = page[-1].event.version
    assert paged == program_steps
    with pytest.raises(ValueError, match="limit at least 1"):
        await app.history(f"program-{program_id}", limit=0)
    assert await app.history(f"program-{uuid4()}") == []
    with pytest.raises(ValueError, match="not a program, risk, assumption, issue, resource, "):
        await app.history(program_code_stream_id("PAY-2027"))


async def test_history_and_load_as_of_a_recorded_time(app: Application) -> None:
    program_id = await new_program(app)
    steps = await app.history(f"program-{program_id}")
    proposed_at = steps[0].event.recorded_at
    earlier = await app.load_program(program_id, recorded_before=proposed_at)
    assert earlier.state is not None
    assert earlier.state.status is ProgramStatus.PROPOSED
    assert earlier.version == 1
    assert len(await app.history(f"program-{program_id}", recorded_before=proposed_at)) == 1


# Rules that span streams


async def test_a_risk_must_name_an_existing_program(
    app: Application, event_store: PostgresEventStore
) -> None:
    before = await head(event_store)
    unknown = uuid4()
    with pytest.raises(ValidationError) as refused:
        await app.handle(identify(unknown), ctx())
    assert [issue.path for issue in refused.value.issues] == ["program_id"]
    assert str(unknown) in refused.value.issues[0].message
    assert await head(event_store) == before


async def test_a_risk_on_a_cancelled_program_is_refused(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app, active=False)
    await app.handle(CancelProgram(program_id=program_id, reason="turned down"), ctx())
    before = await head(event_store)
    with pytest.raises(TerminalState) as refused:
        await app.handle(identify(program_id), ctx())
    assert (refused.value.entity, refused.value.entity_id) == ("program", program_id)
    assert (refused.value.from_status, refused.value.attempted) == ("CANCELLED", "IdentifyRisk")
    assert await head(event_store) == before


async def test_a_risk_must_name_a_workstream_of_its_program(app: Application) -> None:
    program_id = await new_program(app)
    other_program_workstream = await add_workstream(app, await new_program(app))
    with pytest.raises(ValidationError) as refused:
        await app.handle(identify(program_id, other_program_workstream), ctx())
    assert [issue.path for issue in refused.value.issues] == ["workstream_id"]


async def test_wrong_references_are_reported_with_the_commands_own_mistakes(
    app: Application,
) -> None:
    program_id = await new_program(app)
    with pytest.raises(ValidationError) as refused:
        await app.handle(identify(program_id, uuid4(), title=" ", probability=9), ctx())
    assert [issue.path for issue in refused.value.issues] == [
        "title",
        "probability",
        "workstream_id",
    ]


async def test_moving_a_risk_to_a_workstream_checks_it_exists(app: Application) -> None:
    program_id = await new_program(app)
    workstream_id = await add_workstream(app, program_id)
    identify_risk = identify(program_id)
    await app.handle(identify_risk, ctx())
    with pytest.raises(ValidationError) as refused:
        await app.handle(
            UpdateRiskDetails(risk_id=identify_risk.risk_id, workstream_id=uuid4()), ctx()
        )
    assert [issue.path for issue in refused.value.issues] == ["workstream_id"]
    moved = await app.handle(
        UpdateRiskDetails(risk_id=identify_risk.risk_id, workstream_id=workstream_id), ctx()
    )
    assert moved.version == 2


async def test_risks_of_a_finished_program_can_still_be_wound_down(app: Application) -> None:
    program_id = await new_program(app)
    identify_risk = identify(program_id)
    await app.handle(identify_risk, ctx())
    await app.handle(AssessRisk(risk_id=identify_risk.risk_id, probability=1, impact=1), ctx())
    await app.handle(
        AcceptRisk(risk_id=identify_risk.risk_id, rationale="tiny", approved_by="Dana"), ctx()
    )
    await app.handle(CompleteProgram(program_id=program_id, reason="shipped"), ctx())
    closed = await app.handle(
        CloseRisk(risk_id=identify_risk.risk_id, reason="program done"), ctx()
    )
    assert closed.version == 4


async def test_an_allocation_for_a_completed_program_is_refused(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    await app.handle(CompleteProgram(program_id=program_id, reason="shipped"), ctx())
    await app.handle(register("dave"), ctx())
    before = await head(event_store)
    with pytest.raises(TerminalState) as refused:
        await app.handle(propose_allocation("dave", program_id), ctx())
    assert (refused.value.from_status, refused.value.attempted) == (
        "COMPLETED",
        "ProposeAllocation",
    )
    assert await head(event_store) == before


async def test_confirming_work_for_a_program_closed_since_the_proposal_is_refused(
    app: Application,
) -> None:
    program_id = await new_program(app)
    await app.handle(register("erin"), ctx())
    proposal = propose_allocation("erin", program_id)
    await app.handle(proposal, ctx())
    await app.handle(CancelProgram(program_id=program_id, reason="budget cut"), ctx())
    with pytest.raises(TerminalState):
        await app.handle(
            ConfirmAllocation(resource_key="erin", allocation_id=proposal.allocation_id), ctx()
        )
    released = await app.handle(
        ReleaseAllocation(resource_key="erin", allocation_id=proposal.allocation_id), ctx()
    )
    assert released.version == 3


async def test_an_allocation_must_name_an_existing_program_and_workstream(
    app: Application,
) -> None:
    await app.handle(register("fay"), ctx())
    with pytest.raises(ValidationError) as no_program:
        await app.handle(propose_allocation("fay", uuid4()), ctx())
    assert [issue.path for issue in no_program.value.issues] == ["program_id"]
    program_id = await new_program(app)
    with pytest.raises(ValidationError) as no_workstream:
        await app.handle(propose_allocation("fay", program_id, workstream_id=uuid4()), ctx())
    assert [issue.path for issue in no_workstream.value.issues] == ["workstream_id"]


# Program codes


async def test_a_program_code_is_taken_once(
    app: Application, event_store: PostgresEventStore
) -> None:
    await app.handle(propose_program(program_id=uuid4(), code="CRM-2027"), ctx())
    before = await head(event_store)
    with pytest.raises(AlreadyExists) as refused:
        await app.handle(propose_program(program_id=uuid4(), code="CRM-2027"), ctx())
    assert (refused.value.entity, refused.value.entity_id) == ("program code", "CRM-2027")
    assert await head(event_store) == before


async def test_eight_concurrent_proposals_of_one_code_make_one_program(
    app: Application, event_store: PostgresEventStore
) -> None:
    ids = [uuid4() for _ in range(8)]
    start = asyncio.Event()

    async def propose(program_id: UUID) -> CommandResult | AlreadyExists:
        await start.wait()
        try:
            return await app.handle(propose_program(program_id=program_id, code="RACE-1"), ctx())
        except AlreadyExists as refused:
            return refused

    tasks = [asyncio.create_task(propose(program_id)) for program_id in ids]
    await asyncio.sleep(0.05)
    start.set()
    outcomes = await asyncio.gather(*tasks)

    winners = [o for o in outcomes if isinstance(o, CommandResult)]
    assert len(winners) == 1
    assert all(o.entity == "program code" for o in outcomes if isinstance(o, AlreadyExists))
    existing = [pid for pid in ids if (await app.load_program(pid)).state is not None]
    assert existing == [winners[0].entity_id]
    reservations = await event_store.read_stream(program_code_stream_id("RACE-1"))
    assert [r.data for r in reservations] == [
        ProgramCodeReserved(code="RACE-1", program_id=existing[0])
    ]


async def test_a_proposal_that_failed_after_reserving_can_be_retried(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = uuid4()
    # What a crash between the two appends leaves behind: the code held, no program.
    await event_store.append(
        program_code_stream_id("OPS-2027"),
        ExpectedVersion.NO_STREAM,
        [ProgramCodeReserved(code="OPS-2027", program_id=program_id)],
        EventMetadata(actor=ACTOR, program_id=program_id),
    )
    with pytest.raises(AlreadyExists):
        await app.handle(propose_program(program_id=uuid4(), code="OPS-2027"), ctx())
    retried = await app.handle(propose_program(program_id=program_id, code="OPS-2027"), ctx())
    assert retried.version == 1
    assert len(await event_store.read_stream(program_code_stream_id("OPS-2027"))) == 1


async def test_a_code_held_by_an_abandoned_proposal_is_taken_over(
    event_store: PostgresEventStore,
) -> None:
    abandoned = uuid4()
    await event_store.append(
        program_code_stream_id("GONE-1"),
        ExpectedVersion.NO_STREAM,
        [ProgramCodeReserved(code="GONE-1", program_id=abandoned)],
        EventMetadata(actor=ACTOR, program_id=abandoned),
    )
    # Within the window the holder may still be proposing; after it, it has given up.
    with pytest.raises(AlreadyExists):
        await Application(event_store).handle(
            propose_program(program_id=uuid4(), code="GONE-1"), ctx()
        )
    later = Application(event_store, abandoned_reservation_after=timedelta(0))
    second = uuid4()
    taken_over = await later.handle(propose_program(program_id=second, code="GONE-1"), ctx())
    assert taken_over.version == 1
    holders = await event_store.read_stream(program_code_stream_id("GONE-1"))
    assert [r.data.program_id for r in holders] == [abandoned, second]  # type: ignore[attr-defined]
    with pytest.raises(AlreadyExists):
        await later.handle(propose_program(program_id=abandoned, code="GONE-1"), ctx())


async def test_a_code_held_for_a_program_that_took_another_code_is_freed(
    app: Application, event_store: PostgresEventStore
) -> None:
    first = uuid4()
    await event_store.append(
        program_code_stream_id("OLD-1"),
        ExpectedVersion.NO_STREAM,
        [ProgramCodeReserved(code="OLD-1", program_id=first)],
        EventMetadata(actor=ACTOR, program_id=first),
    )
    # Its proposer changed the code and retried with the same program id.
    await app.handle(propose_program(program_id=first, code="NEW-1"), ctx())
    second = uuid4()
    taken_over = await app.handle(propose_program(program_id=second, code="OLD-1"), ctx())
    assert taken_over.version == 1
    holders = await event_store.read_stream(program_code_stream_id("OLD-1"))
    assert [
        r.data.program_id  # type: ignore[attr-defined]
        for r in holders
    ] == [first, second]
    with pytest.raises(AlreadyExists):
        await app.handle(propose_program(program_id=uuid4(), code="NEW-1"), ctx())


async def test_a_refused_proposal_reserves_nothing(
    app: Application, event_store: PostgresEventStore
) -> None:
    with pytest.raises(ValidationError):
        await app.handle(propose_program(program_id=uuid4(), code="not a code"), ctx())
    program_id = await new_program(app, code="KEPT-1")
    with pytest.raises(AlreadyExists) as again:
        await app.handle(propose_program(program_id=program_id, code="OTHER-1"), ctx())
    assert again.value.entity == "program"
    assert await event_store.read_stream(program_code_stream_id("OTHER-1")) == []
    await settled(event_store)
    assert {e.stream_id for e in await event_store.read_all()} == {
        program_code_stream_id("KEPT-1"),
        f"program-{program_id}",
    }


async def test_text_no_store_can_hold_is_refused_before_the_code_is_reserved(
    app: Application, event_store: PostgresEventStore
) -> None:
    with pytest.raises(ValidationError) as surrogate:
        await app.handle(propose_program(program_id=uuid4(), name="Pay\ud800ments"), ctx())
    with pytest.raises(ValidationError) as separator:
        await app.handle(propose_program(program_id=uuid4(), name="Pay\u2028ments"), ctx())
    with pytest.raises(ValidationError) as reason:
        await app.handle(propose_program(program_id=uuid4()), ctx(reason="why\udc00"))

    assert [i.path for i in surrogate.value.issues] == ["name"]
    assert [i.path for i in separator.value.issues] == ["name"]
    assert [i.path for i in reason.value.issues] == ["reason"]
    assert await stored_count(event_store) == 0


async def test_a_surrogate_in_a_field_decide_does_not_read_is_refused(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    before = await stored_count(event_store)
    with pytest.raises(ValidationError) as refused:
        await app.handle(
            RecordDecision(
                program_id=program_id,
                decision_id=uuid4(),
                title="Vendor",
                context="c",
                outcome="o",
                decided_by="Dana",
                decided_on=date(2027, 2, 1),
                alternatives=("fine", "half \ud83d"),
            ),
            ctx(),
        )
    assert [i.path for i in refused.value.issues] == ["alternatives.1"]
    assert await stored_count(event_store) == before


async def test_a_proposal_the_store_would_refuse_reserves_nothing(
    event_store: PostgresEventStore, registry: EventRegistry
) -> None:
    small = PostgresEventStore(
        event_store.pool, EventCodec(registry, max_event_bytes=600), schema=event_store.schema
    )
    with pytest.raises(ValidationError) as refused:
        await Application(small).handle(
            propose_program(program_id=uuid4(), code="BIG-1", description="x" * 2000), ctx()
        )
    assert "over the limit" in refused.value.issues[0].message
    assert await stored_count(event_store) == 0


# Concurrency


async def test_a_stale_expected_version_is_a_conflict_with_the_current_version(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    before = await head(event_store)
    health = ReportProgramHealth(program_id=program_id, health=Health.GREEN, summary="on track")
    with pytest.raises(ConcurrencyConflict) as stale:
        await app.handle(health, ctx(expected_version=1))
    assert (stale.value.stream_id, stale.value.actual_version) == (f"program-{program_id}", 2)
    assert await head(event_store) == before
    accepted = await app.handle(health, ctx(expected_version=2))
    assert accepted.version == 3


async def test_a_conflict_under_a_client_version_is_not_retried(
    event_store: PostgresEventStore, app: Application
) -> None:
    program_id = await new_program(app)
    rival = ProgramHealthReported(program_id=program_id, health=Health.RED, summary="rival")
    store = CompetingWriter(event_store, f"program-{program_id}", rival, times=1)
    racing = Application(store)
    health = ReportProgramHealth(program_id=program_id, health=Health.GREEN, summary="mine")
    with pytest.raises(ConcurrencyConflict) as conflict:
        await racing.handle(health, ctx(expected_version=2))
    assert conflict.value.actual_version == 3
    assert store.reads == 1


async def test_a_conflict_without_a_client_version_is_decided_again(
    event_store: PostgresEventStore, app: Application
) -> None:
    program_id = await new_program(app)
    rival = ProgramHealthReported(program_id=program_id, health=Health.RED, summary="rival")
    store = CompetingWriter(event_store, f"program-{program_id}", rival, times=2)
    health = ReportProgramHealth(program_id=program_id, health=Health.GREEN, summary="mine")
    result = await Application(store).handle(health, ctx())
    assert store.reads == 3
    assert result.version == 5
    stored = await event_store.read_stream(f"program-{program_id}")
    assert [e.data.summary for e in stored[2:]] == [  # type: ignore[attr-defined]
        "rival",
        "rival",
        "mine",
    ]


async def test_retries_stop_at_the_deadline(
    event_store: PostgresEventStore, app: Application
) -> None:
    program_id = await new_program(app)
    rival = ProgramHealthReported(program_id=program_id, health=Health.RED, summary="rival")
    store = CompetingWriter(event_store, f"program-{program_id}", rival, times=10_000)
    racing = Application(store, retry=RetryPolicy(deadline=0.2, base_delay=0.001))
    health = ReportProgramHealth(program_id=program_id, health=Health.GREEN, summary="mine")
    with pytest.raises(ConcurrencyConflict) as exhausted:
        await racing.handle(health, ctx())
    assert store.reads >= 2
    assert exhausted.value.actual_version == 2 + store.reads
    stored = await event_store.read_stream(f"program-{program_id}")
    assert all(e.data.summary == "rival" for e in stored[2:])  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_four_sustained_writers_on_one_stream_all_get_through(
    app: Application, event_store: PostgresEventStore
) -> None:
    """What docs/domain.md promises for commands without an expected version: 4 writers
    x 100 commands on one program, each decided on the latest state, none refused (with
    10 attempts at most, about one command in 80-360 was refused this way)."""
    program_id = await new_program(app)

    async def writer(w: int) -> list[int]:
        versions = []
        for i in range(100):
            health = ReportProgramHealth(
                program_id=program_id, health=Health.GREEN, summary=f"writer {w}, report {i}"
            )
            versions.append((await app.handle(health, ctx())).version)
        return versions

    results = await asyncio.gather(*(writer(w) for w in range(4)))

    assert sorted(v for versions in results for v in versions) == list(range(3, 403))
    assert all(versions == sorted(versions) for versions in results)


async def test_concurrent_commands_on_one_program_all_succeed(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    start = asyncio.Event()

    async def add(i: int) -> CommandResult:
        await start.wait()
        return await app.handle(
            AddWorkstream(
                program_id=program_id,
                workstream_id=uuid4(),
                name=f"Stream {i}",
                lead="Priya",
                department=Department.ENGINEERING,
            ),
            ctx(),
        )

    tasks = [asyncio.create_task(add(i)) for i in range(8)]
    await asyncio.sleep(0.05)
    start.set()
    results = await asyncio.gather(*tasks)
    assert sorted(r.version for r in results) == list(range(3, 11))
    state = (await app.load_program(program_id)).state
    assert state is not None
    assert sorted(w.name for w in state.workstreams) == sorted(f"Stream {i}" for i in range(8))


@pytest.mark.parametrize("round_no", range(5))
async def test_two_concurrent_confirmations_that_overbook_one_person_refuse_one(
    app: Application, event_store: PostgresEventStore, round_no: int
) -> None:
    program_id = await new_program(app)
    other_program = await new_program(app)
    key = f"person-{round_no}"
    await app.handle(register(key), ctx())
    proposals = [
        propose_allocation(key, program_id, 60),
        propose_allocation(key, other_program, 60),
    ]
    for proposal in proposals:
        await app.handle(proposal, ctx())
    start = asyncio.Event()

    async def confirm(allocation_id: UUID) -> CommandResult | OverAllocation:
        await start.wait()
        try:
            return await app.handle(
                ConfirmAllocation(resource_key=key, allocation_id=allocation_id), ctx()
            )
        except OverAllocation as refused:
            return refused

    tasks = [asyncio.create_task(confirm(p.allocation_id)) for p in proposals]
    await asyncio.sleep(0.02)
    start.set()
    outcomes = await asyncio.gather(*tasks)

    refusals = [o for o in outcomes if isinstance(o, OverAllocation)]
    assert len(refusals) == 1
    assert [c.total_percentage for c in refusals[0].conflicts] == [120]
    assert set(refusals[0].conflicts[0].program_ids) == {program_id, other_program}
    person = (await app.load_resource(key)).state
    assert person is not None
    assert sorted(a.status for a in person.allocations) == [
        AllocationStatus.CONFIRMED,
        AllocationStatus.PROPOSED,
    ]


async def test_an_override_with_a_reason_is_accepted_and_recorded(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    await app.handle(register("gus"), ctx())
    first, second = propose_allocation("gus", program_id, 70), propose_allocation("gus", program_id)
    for command in (first, second):
        await app.handle(command, ctx())
    await app.handle(
        ConfirmAllocation(resource_key="gus", allocation_id=first.allocation_id), ctx()
    )
    result = await app.handle(
        ConfirmAllocation(
            resource_key="gus",
            allocation_id=second.allocation_id,
            override_reason="launch week, agreed with Gus",
        ),
        ctx(reason="launch"),
    )
    stored = (await event_store.read_stream("resource-gus"))[-1]
    assert stored.event_id == result.event_ids[0]
    assert isinstance(stored.data, AllocationConfirmed)
    assert stored.data.override_reason == "launch week, agreed with Gus"
    assert [p.total_percentage for p in stored.data.over_allocation] == [130]
    assert stored.metadata.reason == "launch"


# Idempotency and no-ops


def assert_first_result(again: CommandResult, first: CommandResult) -> None:
    assert again.replayed
    assert (again.last_position, again.version, again.event_ids, again.events) == (
        first.last_position,
        first.version,
        first.event_ids,
        first.events,
    )


async def test_a_repeated_command_returns_the_first_result_and_writes_nothing(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    command = ReportProgramHealth(program_id=program_id, health=Health.AMBER, summary="late")
    first = await app.handle(command, ctx(idempotency_key="req-1"))
    written = await head(event_store)
    again = await app.handle(command, ctx(idempotency_key="req-1"))
    assert not first.replayed
    assert_first_result(again, first)
    assert await head(event_store) == written
    assert (await app.load_program(program_id)).version == 3


async def test_a_repeated_proposal_is_answered_not_refused(
    app: Application, event_store: PostgresEventStore
) -> None:
    command = propose_program(program_id=uuid4(), code="IDEM-1")
    first = await app.handle(command, ctx(idempotency_key="propose-1"))
    again = await app.handle(command, ctx(idempotency_key="propose-1", expected_version=0))
    assert again.replayed
    assert (again.stream_id, again.last_position) == (first.stream_id, first.last_position)
    await settled(event_store)
    assert len(await event_store.read_all()) == 2


async def test_a_repeat_that_deciding_again_would_refuse_gets_the_first_result(
    app: Application, event_store: PostgresEventStore
) -> None:
    """The key is looked up where the fresh decision cannot be appended: registering the
    same resource again is refused as already existing, and the repeat is answered."""
    first = await app.handle(register("idem-res"), ctx(idempotency_key="register-1"))
    written = await head(event_store)
    again = await app.handle(register("idem-res"), ctx(idempotency_key="register-1"))
    assert_first_result(again, first)
    assert await head(event_store) == written
    with pytest.raises(AlreadyExists):
        await app.handle(register("idem-res"), ctx(idempotency_key="register-2"))


async def test_a_repeat_after_the_stream_moved_gets_the_first_result_from_the_append(
    app: Application, event_store: PostgresEventStore
) -> None:
    """Deciding again on the moved stream yields an event (amber again, after red); the
    append recognises the key and writes nothing."""
    program_id = await new_program(app)
    command = ReportProgramHealth(program_id=program_id, health=Health.AMBER, summary="late")
    first = await app.handle(command, ctx(idempotency_key="moved-1"))
    await app.handle(
        ReportProgramHealth(program_id=program_id, health=Health.RED, summary="blocked"), ctx()
    )
    written = await head(event_store)
    again = await app.handle(command, ctx(idempotency_key="moved-1"))
    assert_first_result(again, first)
    assert await head(event_store) == written
    assert (await app.load_program(program_id)).version == 4


async def test_a_first_keyed_command_costs_no_key_lookup(
    app: Application, event_store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lookup is a round trip: only a command whose fresh decision cannot be appended
    pays it (a refused repeat); the append checks the key of every other one, repeats
    included."""
    program_id = await new_program(app)
    lookups: list[str] = []
    find = event_store.find_idempotent

    async def counted(key: str, fingerprint: bytes | None = None) -> AppendResult | None:
        lookups.append(key)
        return await find(key, fingerprint)

    monkeypatch.setattr(event_store, "find_idempotent", counted)
    command = ReportProgramHealth(program_id=program_id, health=Health.AMBER, summary="late")
    await app.handle(command, ctx(idempotency_key="lookup-1"))
    await app.handle(register("lookup-res"), ctx(idempotency_key="lookup-2"))
    assert lookups == []
    assert (await app.handle(command, ctx(idempotency_key="lookup-1"))).replayed
    assert lookups == []
    assert (await app.handle(register("lookup-res"), ctx(idempotency_key="lookup-2"))).replayed
    assert lookups == ["lookup-2"]


async def test_concurrent_repeats_write_once(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    command = ReportProgramHealth(program_id=program_id, health=Health.RED, summary="blocked")
    results = await asyncio.gather(
        *(app.handle(command, ctx(idempotency_key="burst")) for _ in range(6))
    )
    assert len({r.last_position for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert (await app.load_program(program_id)).version == 3


async def test_a_key_reused_for_another_command_is_refused(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    await app.handle(
        ReportProgramHealth(program_id=program_id, health=Health.AMBER, summary="late"),
        ctx(idempotency_key="req-2"),
    )
    written = await head(event_store)
    with pytest.raises(IdempotencyKeyReused):
        await app.handle(
            ReportProgramHealth(program_id=program_id, health=Health.RED, summary="later"),
            ctx(idempotency_key="req-2"),
        )
    with pytest.raises(IdempotencyKeyReused):
        await app.handle(
            ReportProgramHealth(program_id=program_id, health=Health.AMBER, summary="late"),
            CommandContext(actor="someone.else", idempotency_key="req-2"),
        )
    assert await head(event_store) == written


async def test_a_command_that_changes_nothing_records_nothing(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    current = await app.load_program(program_id)
    assert current.state is not None
    result = await app.handle(
        UpdateProgramDetails(program_id=program_id, name=current.state.name),
        ctx(idempotency_key="noop"),
    )
    assert result.events == result.event_ids == ()
    assert (result.version, result.last_position) == (current.version, current.last_position)
    assert await head(event_store) == current.last_position
    assert await event_store.find_idempotent("noop") is None


async def test_data_too_large_to_store_is_a_validation_error(
    app: Application, event_store: PostgresEventStore
) -> None:
    program_id = await new_program(app)
    before = await head(event_store)
    huge = RecordDecision(
        program_id=program_id,
        decision_id=uuid4(),
        title="Vendor",
        context="c",
        outcome="o",
        decided_by="Dana",
        decided_on=date(2027, 2, 1),
        alternatives=tuple("é" * 10_000 for _ in range(20)),
    )
    with pytest.raises(ValidationError) as refused:
        await app.handle(huge, ctx())
    assert refused.value.issues[0].path == ""
    assert "over the limit" in refused.value.issues[0].message
    assert await head(event_store) == before


async def test_an_invalid_context_is_refused_before_anything_is_read(app: Application) -> None:
    command: Command = ActivateProgram(program_id=uuid4())
    with pytest.raises(ValidationError) as refused:
        await app.handle(command, ctx(idempotency_key="", expected_version=-1))
    assert [issue.path for issue in refused.value.issues] == [
        "idempotency_key",
        "expected_version",
    ]
