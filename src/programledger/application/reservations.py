"""Unique program codes, kept by the event store alone.

No single program stream sees the other programs, so uniqueness needs a stream of its own
per code: ``programcode-<CODE>``. Its first event, appended with "no stream yet", is the
reservation; PostgreSQL's per-stream serialisation makes exactly one concurrent proposer win.
The reservation is written *before* the program's ``ProgramProposed``, because an append
cannot be undone. Whatever can refuse the proposal (its decision, its texts, its encoding)
is checked before the reservation, so a refused proposal reserves nothing; only an outage
between the two appends leaves the code held by a program id that may not exist. The
reservation therefore names that program id, and

- a retry of the proposal with the same program id finds its own reservation and goes on;
- a reservation whose program exists with *another* code (its proposer changed the code
  and retried with the same id) can never be used, and is taken over;
- a reservation whose program still does not exist ``abandoned_after`` it was recorded
  (15 minutes by default; a proposal's two appends are milliseconds apart, so its
  proposer has given up) is taken over too. A retry of that proposal after the takeover
  gets ``AlreadyExists``, like any proposal of a taken code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from uuid import UUID

from programledger.application.eventstore import (
    ConcurrencyConflict,
    EventMetadata,
    ExpectedVersion,
    Version,
)
from programledger.application.ports import CommandStore
from programledger.domain.errors import AlreadyExists, InconsistentHistory
from programledger.domain.events import DomainEvent

__all__ = [
    "ABANDONED_AFTER",
    "ProgramCodeReserved",
    "program_code_stream_id",
    "reserve_program_code",
]

ABANDONED_AFTER = timedelta(minutes=15)


class ProgramCodeReserved(DomainEvent, frozen=True, kw_only=True):
    """``code`` is held for ``program_id``; the last one on the stream is the holder."""

    event_type: ClassVar[str] = "ProgramCodeReserved"
    schema_version: ClassVar[int] = 1
    code: str
    program_id: UUID


def program_code_stream_id(code: str) -> str:
    return f"programcode-{code}"


async def reserve_program_code(
    store: CommandStore,
    code: str,
    program_id: UUID,
    metadata: EventMetadata,
    code_of_program: Callable[[UUID], Awaitable[str | None]],
    *,
    abandoned_after: timedelta = ABANDONED_AFTER,
) -> None:
    """Hold ``code`` for ``program_id`` or raise :class:`AlreadyExists`.

    ``code_of_program`` tells the code a program was proposed with (``None``: no such
    program yet), which is what decides whether another holder is stale.
    """
    stream_id = program_code_stream_id(code)
    expected: Version = ExpectedVersion.NO_STREAM
    reservation = ProgramCodeReserved(code=code, program_id=program_id)
    while True:
        try:
            await store.append(stream_id, expected, [reservation], metadata)
            return
        except ConcurrencyConflict:
            pass
        records = await store.read_stream(stream_id)
        holder = records[-1].data
        if not isinstance(holder, ProgramCodeReserved):
            raise InconsistentHistory(
                f"{stream_id} holds a {holder.event_type}, not a ProgramCodeReserved"
            )
        if holder.program_id == program_id:
            return
        holder_code = await code_of_program(holder.program_id)
        if holder_code == code:
            raise AlreadyExists("program code", code)
        if holder_code is None and records[-1].recorded_at > datetime.now(UTC) - abandoned_after:
            # Held by a proposal that may still be in flight: the holder may yet succeed.
            raise AlreadyExists("program code", code)
        expected = records[-1].version
