"""A program's whole recorded history as JSON Lines, for auditors.

The export is everything the event store holds about one program, as of one global
position: the program's stream, its RAID items (risks, assumptions, issues), its code
reservation, every allocation event that names it, and the resource facts (registration,
capacity) of the people and teams allocated to it, since an allocation is judged against
them. The first line is a header
saying what the export covers; each following line is one stored event with all of its
metadata, in global position order, so replaying the lines stream by stream rebuilds what
the system knew.

Lines use the same field names as the envelopes the relay publishes to NATS
(``docs/schemas/EventEnvelope.json``), plus what only an auditor needs: the schema version
as stored and the event's hash in its stream's chain.

Events are read up to the store's safe head position taken at the start, through the
store's index of events by program (and the allocated resources' own streams): every
event at or below that position is committed, so the export is a consistent cut however
many appends happen while it runs, and its cost follows the program's size, not the
log's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

import msgspec

from programledger.application.eventstore import RecordedEvent
from programledger.application.ports import StreamReader, require_intact
from programledger.application.reservations import ProgramCodeReserved, program_code_stream_id
from programledger.domain.events import DomainEvent, EventRegistry
from programledger.domain.integrity import SignedHead, head_to_json
from programledger.domain.program import ProgramProposed, program_stream_id

__all__ = [
    "FORMAT",
    "ExportHeader",
    "ExportSource",
    "ExportedEvent",
    "ExportedStream",
    "LedgerProofs",
    "ProgramExport",
    "ProgramNotFound",
    "decode_line",
    "export_program",
    "resolve_program",
]

FORMAT = "programledger.audit-export/1"

_PAGE = 1000


class ExportSource(StreamReader, Protocol):
    """The part of the event store an export reads; ``PostgresEventStore`` fits."""

    async def read_program(
        self, program_id: UUID, from_position: int, through: int, limit: int = 1000
    ) -> list[RecordedEvent]: ...

    async def head_position(self) -> int: ...

    async def program_streams(self, program_id: UUID, through: int) -> list[str]:
        """The streams holding events about ``program_id`` up to ``through``."""
        ...


class LedgerProofs(Protocol):
    """The ledger's signed heads and inclusion proofs; ``LedgerStore`` fits."""

    async def latest_head(self) -> SignedHead | None: ...

    async def leaf_positions(self, size: int) -> int:
        """The position of the last leaf of a tree of ``size`` leaves."""
        ...

    async def inclusion_proofs(
        self, positions: Sequence[int], size: int
    ) -> dict[int, tuple[int, list[bytes]]]:
        """Each position's leaf index and RFC 9162 inclusion path in a tree of ``size``."""
        ...


class ProgramNotFound(LookupError):
    """No program with that id or code in the event store."""


class ExportedStream(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    stream_type: str
    events: int
    first_version: int
    last_version: int
    complete: bool
    """Every event of the stream up to ``through_position`` is in the export. False for a
    resource that also works for other programs: their allocations are left out."""


class ExportHeader(msgspec.Struct, frozen=True, kw_only=True, tag="header", tag_field="record"):
    format: str
    program_id: UUID
    program_code: str | None
    exported_at: datetime
    through_position: int
    """The export holds every event of the program up to this global position."""
    events: int
    streams: tuple[ExportedStream, ...]
    tree_head: dict[str, object] | None = None
    """The signed tree head the export was cut at (``head_to_json``): every event in it has
    an inclusion proof under it; null when the ledger had no signed head yet."""


class ExportedEvent(msgspec.Struct, frozen=True, kw_only=True, tag="event", tag_field="record"):
    """One stored event with all its metadata; ``data`` is at ``schema_version`` (the
    current one, upcast if it was stored older, which ``stored_schema_version`` tells)."""

    event_id: UUID
    position: int
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    schema_version: int
    stored_schema_version: int
    recorded_at: datetime
    actor: str
    correlation_id: UUID | None
    causation_id: UUID | None
    reason: str | None
    program_id: UUID | None
    hash: str
    """The event's link in its stream's hash chain (hex), as ``verify`` checks it."""
    data: msgspec.Raw
    leaf_index: int | None = None
    inclusion_proof: list[str] | None = None
    """RFC 9162 path (hex) from ``hash``'s leaf to the header's ``tree_head`` root."""

    def domain_event(self, registry: EventRegistry) -> DomainEvent:
        """The typed event, for replaying an export with the domain's ``fold``."""
        decoded: DomainEvent = msgspec.json.decode(
            self.data, type=registry.type_for(self.event_type)
        )
        return decoded


class ProgramExport(msgspec.Struct, frozen=True, kw_only=True):
    header: ExportHeader
    events: tuple[ExportedEvent, ...]

    def lines(self) -> Iterator[bytes]:
        """The JSON Lines, header first, each ending with a newline."""
        yield _encoder.encode(self.header) + b"\n"
        for event in self.events:
            yield _encoder.encode(event) + b"\n"


_encoder = msgspec.json.Encoder()
_line_decoder: msgspec.json.Decoder[ExportHeader | ExportedEvent] = msgspec.json.Decoder(
    ExportHeader | ExportedEvent
)


def decode_line(line: bytes | str) -> ExportHeader | ExportedEvent:
    """Read one line of an export back (tools and tests that replay it)."""
    return _line_decoder.decode(line)


async def resolve_program(source: ExportSource, reference: str) -> UUID:
    """A program id from its id or its code (``PAY-2027``), as auditors know it by either.

    A code's stream may hold several reservations (see ``reservations``); the program is
    the latest holder that was proposed with that code.
    """
    try:
        return UUID(reference)
    except ValueError:
        pass
    records = await source.read_stream(program_code_stream_id(reference))
    for record in reversed(records):
        holder = record.data
        if not isinstance(holder, ProgramCodeReserved):
            continue
        first = await source.read_stream(program_stream_id(holder.program_id), to_version=1)
        if first and isinstance(first[0].data, ProgramProposed) and first[0].data.code == reference:
            return holder.program_id
    raise ProgramNotFound(f"no program has the id or code {reference!r}")


async def _signed_cut(
    source: ExportSource, ledger: LedgerProofs, within: float
) -> tuple[SignedHead | None, int]:
    """The signed head to cut an export at, and the position of its last leaf.

    The sealer signs what is readable within about a second, so an export waits (up to
    ``within`` seconds) for a head that covers the log as it is now: cut at an older
    head, it would leave out the latest events (a program proposed a moment ago would
    be "not found"). A ledger that signs nothing in that time (no sealer running) gives
    its newest head, or, with none at all, the readable head and no proofs.
    """
    target = await source.head_position()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        head = await ledger.latest_head()
        if head is not None and head.head.size > 0:
            through = await ledger.leaf_positions(head.head.size)
            if through >= target or loop.time() >= deadline:
                return head, through
        elif target == 0 or loop.time() >= deadline:
            return None, target
        await asyncio.sleep(0.1)


async def export_program(
    source: ExportSource,
    program_id: UUID,
    ledger: LedgerProofs | None = None,
    *,
    seal_wait: float = 10.0,
) -> ProgramExport:
    """Everything recorded about ``program_id``, up to the head position at the start.

    The events whose metadata names the program, then the own facts (registration,
    capacity: events naming no program) of every resource allocated to it. Raises
    :class:`ProgramNotFound` when the program has no stream, and
    :class:`~programledger.application.eventstore.BrokenChain` when the hash chain of
    one of its streams does not hold: an export is evidence, and altered data is none.
    With ``ledger``, the export is cut at a signed tree head that covers the log as it
    was at the start (waiting for the sealer, up to ``seal_wait`` seconds), and every
    event carries its inclusion proof.
    """
    if ledger is None:
        head, through = None, await source.head_position()
    else:
        head, through = await _signed_cut(source, ledger, seal_wait)
    await require_intact(source, await source.program_streams(program_id, through))
    kept: list[RecordedEvent] = []
    position = 0
    while True:
        page = await source.read_program(program_id, position, through, _PAGE)
        kept += page
        if len(page) < _PAGE:
            break
        position = page[-1].position
    allocated = sorted({r.stream_id for r in kept if r.stream_type == "resource"})
    for stream_id in allocated:
        kept += [
            r
            for r in await source.read_stream(stream_id)
            if r.metadata.program_id is None and r.position <= through
        ]
    records = sorted(kept, key=lambda r: r.position)
    if not any(r.stream_id == program_stream_id(program_id) for r in records):
        raise ProgramNotFound(f"no program {program_id} in the event store")
    code = next((r.data.code for r in records if isinstance(r.data, ProgramProposed)), None)
    header = ExportHeader(
        format=FORMAT,
        program_id=program_id,
        program_code=code,
        exported_at=datetime.now(UTC),
        through_position=through,
        events=len(records),
        streams=await _streams(source, records, through),
        tree_head=head_to_json(head) if head is not None else None,
    )
    exported = [_exported(r) for r in records]
    if ledger is not None and head is not None:
        proofs = await ledger.inclusion_proofs([r.position for r in records], head.head.size)
        exported = [
            msgspec.structs.replace(
                e,
                leaf_index=proofs[e.position][0],
                inclusion_proof=[h.hex() for h in proofs[e.position][1]],
            )
            for e in exported
        ]
    return ProgramExport(header=header, events=tuple(exported))


async def _streams(
    source: ExportSource, records: Sequence[RecordedEvent], through: int
) -> tuple[ExportedStream, ...]:
    """Each stream in the export, and whether all of it is: a resource shared with other
    programs, or a code once held by another program, is there only in part."""
    by_stream: dict[str, list[RecordedEvent]] = {}
    for record in records:
        by_stream.setdefault(record.stream_id, []).append(record)
    streams = []
    for stream_id, events in sorted(by_stream.items()):
        last = events[-1].version
        later = await source.read_stream(stream_id, from_version=last + 1)
        complete = [e.version for e in events] == list(range(1, last + 1)) and not any(
            e.position <= through for e in later
        )
        streams.append(
            ExportedStream(
                stream_id=stream_id,
                stream_type=events[0].stream_type,
                events=len(events),
                first_version=events[0].version,
                last_version=last,
                complete=complete,
            )
        )
    return tuple(streams)


def _exported(record: RecordedEvent) -> ExportedEvent:
    meta = record.metadata
    return ExportedEvent(
        event_id=record.event_id,
        position=record.position,
        stream_id=record.stream_id,
        stream_type=record.stream_type,
        version=record.version,
        event_type=record.event_type,
        schema_version=record.schema_version,
        stored_schema_version=record.stored_schema_version,
        recorded_at=record.recorded_at,
        actor=meta.actor,
        correlation_id=meta.correlation_id,
        causation_id=meta.causation_id,
        reason=meta.reason,
        program_id=meta.program_id,
        hash=record.hash.hex(),
        data=msgspec.Raw(_encoder.encode(record.data)),
    )
