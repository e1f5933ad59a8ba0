"""An audit export replays to the state the system holds, and holds nothing of other programs.

The export is written to JSON Lines and read back from the bytes, as an auditor would;
each stream in it is folded with the domain's own ``fold`` and compared with what the
application loads from the event store.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest

from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.ledger import LedgerStore
from programledger.application.commands import CommandContext
from programledger.application.demo import DEMO_PROGRAMS, load_demo
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.application.export import (
    FORMAT,
    ExportedEvent,
    ExportHeader,
    ProgramNotFound,
    decode_line,
    export_program,
    resolve_program,
)
from programledger.application.handlers import Application
from programledger.application.ledger_audit import verify_program_export
from programledger.application.registry import application_registry
from programledger.application.reservations import ProgramCodeReserved
from programledger.domain import assumption, issue, program, resource, risk
from programledger.domain.events import EventRegistry
from programledger.domain.integrity import SignedHead, head_to_json
from programledger.domain.objective import ObjectiveLinkedToProgram
from programledger.domain.program import Health, ProgramHealthReported, ReportProgramHealth
from tests.support.ledger import new_signer, seal_all, settled


@pytest.fixture
def registry() -> EventRegistry:
    return application_registry()


def _read(lines: list[bytes]) -> tuple[ExportHeader, list[ExportedEvent]]:
    decoded = [decode_line(line) for line in b"".join(lines).splitlines()]
    header, *events = decoded
    assert isinstance(header, ExportHeader)
    assert all(isinstance(e, ExportedEvent) for e in events)
    return header, events  # type: ignore[return-value]


async def test_the_export_replays_to_the_same_program_risks_and_allocations(
    event_store: PostgresEventStore, registry: EventRegistry
) -> None:
    app = Application(event_store)
    await load_demo(app)
    pay = DEMO_PROGRAMS["PAY-2027"]
    head = await settled(event_store)

    header, events = _read(list((await export_program(event_store, pay)).lines()))

    assert header.format == FORMAT
    assert (header.program_id, header.program_code) == (pay, "PAY-2027")
    assert header.through_position == head
    assert header.events == len(events)
    positions = [e.position for e in events]
    assert positions == sorted(set(positions)), "global position order, each event once"
    stored = {r.event_id: r for r in await event_store.read_all(0, 10_000)}
    for event in events:
        record = stored[event.event_id]
        assert (event.stream_id, event.version, event.actor, event.correlation_id) == (
            record.stream_id,
            record.version,
            record.metadata.actor,
            record.metadata.correlation_id,
        )
        assert event.hash == record.hash.hex()
        assert event.recorded_at == record.recorded_at
        # Only this program's events, and the allocated resources' own facts.
        assert event.program_id == pay or (
            event.program_id is None and event.stream_type == "resource"
        )

    by_stream: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        by_stream[event.stream_id].append(event.domain_event(registry))
    complete = {s.stream_id: s.complete for s in header.streams}
    assert set(complete) == set(by_stream)
    kinds: defaultdict[str, int] = defaultdict(int)
    for stream_id, history in by_stream.items():
        kind, _, key = stream_id.partition("-")
        kinds[kind] += 1
        if kind == "program":
            assert complete[stream_id]
            assert program.fold(history) == (await app.load_program(UUID(key))).state
        elif kind == "risk":
            assert complete[stream_id]
            assert risk.fold(history) == (await app.load_risk(UUID(key))).state
        elif kind == "assumption":
            assert complete[stream_id]
            assert assumption.fold(history) == (await app.load_assumption(UUID(key))).state
        elif kind == "issue":
            assert complete[stream_id]
            assert issue.fold(history) == (await app.load_issue(UUID(key))).state
        elif kind == "resource":
            live = (await app.load_resource(key)).state
            assert live is not None
            ours = tuple(a for a in live.allocations if a.program_id == pay)
            assert ours, "a resource is in the export because the program allocated it"
            expected = msgspec.structs.replace(live, allocations=ours)
            assert resource.fold(history) == expected
            assert complete[stream_id] == (ours == live.allocations)
        elif kind == "objective":
            assert not complete[stream_id], "its definition and key results are left out"
            assert all(isinstance(e, ObjectiveLinkedToProgram) for e in history)
            assert {e.program_id for e in history} == {pay}
        elif kind == "status_report":
            assert complete[stream_id], "a program's report is the program's alone"
            assert {e.program_id for e in history} == {pay}
        elif kind == "scenario":
            assert not complete[stream_id], "a what-if spans programs: only this one's work"
            assert {e.program_id for e in history} == {pay}
        else:
            assert kind == "programcode"
            assert [e.program_id for e in history] == [pay]
            assert all(isinstance(e, ProgramCodeReserved) for e in history)
    assert kinds == {
        "program": 1,
        "programcode": 1,
        "risk": 6,
        "assumption": 2,
        "issue": 1,
        "resource": 4,
        "objective": 1,
        "status_report": 4,
        "scenario": 1,
    }
    assert not all(complete.values()), "resources shared with other programs are partial"


async def test_events_appended_after_the_start_are_not_in_the_export(
    event_store: PostgresEventStore,
) -> None:
    """The export is a cut at the head position taken when it starts."""
    app = Application(event_store)
    await load_demo(app)
    pay = DEMO_PROGRAMS["PAY-2027"]
    await settled(event_store)
    before = await export_program(event_store, pay)
    await app.handle(
        ReportProgramHealth(program_id=pay, health=Health.RED, summary="Pilot cancelled"),
        CommandContext(actor="auditor-test"),
    )
    await settled(event_store)
    after = await export_program(event_store, pay)
    assert after.header.events == before.header.events + 1
    assert after.header.through_position > before.header.through_position
    assert after.events[: len(before.events)] == before.events


async def test_a_program_is_found_by_id_or_code(event_store: PostgresEventStore) -> None:
    await load_demo(Application(event_store))
    for code, program_id in DEMO_PROGRAMS.items():
        assert await resolve_program(event_store, code) == program_id
        assert await resolve_program(event_store, str(program_id)) == program_id
    with pytest.raises(ProgramNotFound):
        await resolve_program(event_store, "NOPE-1")
    with pytest.raises(ProgramNotFound):
        await export_program(event_store, uuid4())


async def test_a_program_longer_than_a_page_is_exported_whole_and_in_order(
    event_store: PostgresEventStore,
) -> None:
    """The export reads the program's events page by page through the store's index."""
    app = Application(event_store)
    await load_demo(app)
    pay = DEMO_PROGRAMS["PAY-2027"]
    for start in range(0, 1500, 500):
        await event_store.append(
            f"program-{pay}",
            ExpectedVersion.ANY,
            [
                ProgramHealthReported(program_id=pay, health=Health.AMBER, summary=f"week {i}")
                for i in range(start, start + 500)
            ],
            EventMetadata(actor="auditor-test", program_id=pay),
        )
    last = await settled(event_store)
    export = await export_program(event_store, pay)
    positions = [e.position for e in export.events]
    assert positions == sorted(set(positions))
    assert export.header.through_position >= last
    reports = [e for e in export.events if e.event_type == "ProgramHealthReported"]
    assert [msgspec.json.decode(e.data)["summary"] for e in reports][-1500:] == [
        f"week {i}" for i in range(1500)
    ]
    assert all(e.program_id in (pay, None) for e in export.events)
    assert all(e.stream_type == "resource" for e in export.events if e.program_id is None)


async def test_an_export_cut_at_a_signed_head_proves_every_event_offline(
    event_store: PostgresEventStore, pg_url: str
) -> None:
    """Each event's inclusion proof leads to the signed root; a changed hash does not."""
    app = Application(event_store)
    await load_demo(app)
    pay = DEMO_PROGRAMS["PAY-2027"]
    await settled(event_store)
    signer = new_signer()
    await seal_all(event_store, signer, pg_url)
    await app.handle(
        ReportProgramHealth(program_id=pay, health=Health.AMBER, summary="After the head"),
        CommandContext(actor="auditor-test"),
    )
    ledger = LedgerStore(event_store.pool)
    export = await export_program(event_store, pay, ledger, seal_wait=0)
    head = await ledger.latest_head()
    assert head is not None
    assert export.header.tree_head == head_to_json(head)
    lines = list(export.lines())
    assert b"After the head" not in b"".join(lines), "no sealer ran: cut at the newest head"
    report = verify_program_export(lines, [signer.public_key])
    assert report.ok, report.problems
    assert report.events == export.header.events
    first = export.events[0]
    forged = [line.replace(first.hash.encode(), b"0" * 64) for line in lines]
    problems = verify_program_export(forged, [signer.public_key]).problems
    assert problems == [
        f"{first.stream_id} version {first.version} (position {first.position}): "
        "its inclusion proof does not lead to the signed root"
    ]
    assert (
        "signature does not hold"
        in verify_program_export(lines, [new_signer().public_key]).problems[0]
    )


class _WatchedLedger(LedgerStore):
    """The real ledger, telling when an export first asked for its newest head."""

    def __init__(self, store: PostgresEventStore) -> None:
        super().__init__(store.pool)
        self.asked = asyncio.Event()

    async def latest_head(self) -> SignedHead | None:
        self.asked.set()
        return await super().latest_head()


async def test_an_export_waits_for_the_sealer_to_sign_what_was_just_written(
    event_store: PostgresEventStore, pg_url: str
) -> None:
    app = Application(event_store)
    await load_demo(app)
    pay = DEMO_PROGRAMS["PAY-2027"]
    signer = new_signer()
    await seal_all(event_store, signer, pg_url)
    await app.handle(
        ReportProgramHealth(program_id=pay, health=Health.AMBER, summary="Just now"),
        CommandContext(actor="auditor-test"),
    )
    through = await settled(event_store)
    ledger = _WatchedLedger(event_store)
    exporting = asyncio.create_task(export_program(event_store, pay, ledger))
    await ledger.asked.wait()
    await seal_all(event_store, signer, pg_url)
    export = await exporting
    assert export.header.through_position == through
    assert b"Just now" in b"".join(export.lines())
    assert verify_program_export(list(export.lines()), [signer.public_key]).ok
