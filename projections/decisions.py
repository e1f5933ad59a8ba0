"""The decision log and the lessons learned of every program.

A recorded decision is never edited: a later decision supersedes it, and the earlier row
gets a new version with ``superseded_by`` set (both decisions stay in the log, and as of
a moment before the supersession the earlier one reads as in force). Lessons are recorded
once and never change. Both come from folding the program stream with ``evolve``.

Tables: ``rm_decisions`` (key ``decision_id``), ``rm_lessons`` (key ``lesson_id``),
both versioned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from programledger.domain.program import (
    PROGRAM_EVENT_TYPES,
    Decision,
    DecisionRecorded,
    Lesson,
    LessonRecorded,
    Program,
)
from programledger.projections.engine.core import (
    Context,
    ProjectedEvent,
    Projection,
    Tracked,
    fold,
)
from programledger.projections.engine.queries import (
    AsOf,
    Filters,
    ListSpec,
    Page,
    Reader,
    VersionedRow,
    fetch_by_key,
    fetch_grouped,
    fetch_one,
    fetch_page,
)
from programledger.projections.engine.tables import CURRENT, Column, Index, SortKey, Table

__all__ = [
    "DECISIONS",
    "LESSONS",
    "PROJECTION",
    "DecisionRow",
    "LessonRow",
    "decisions_by_id",
    "decisions_of_programs",
    "get_decision",
    "lessons_by_id",
    "lessons_of_programs",
    "list_decisions",
    "list_lessons",
]

DECISIONS = Table(
    "rm_decisions",
    key=(Column("decision_id", "uuid", True),),
    columns=(
        Column("program_id", "uuid", True),
        Column("title", "text", True),
        Column("context", "text", True),
        Column("outcome", "text", True),
        Column("alternatives", "text[]", True),
        Column("decided_by", "text", True),
        Column("decided_on", "date", True),
        Column("supersedes", "uuid"),
        Column("superseded_by", "uuid"),
    ),
    indexes=(
        Index("program", "(program_id, decided_on, decision_id)", CURRENT),
        Index("program_history", "(program_id, valid_from_pos)"),
    ),
    sorts={"decided_on": SortKey("decided_on", "date"), "title": SortKey("title", "text")},
)

LESSONS = Table(
    "rm_lessons",
    key=(Column("lesson_id", "uuid", True),),
    columns=(
        Column("program_id", "uuid", True),
        Column("what_happened", "text", True),
        Column("learned", "text", True),
        Column("follow_up_action", "text"),
        Column("recorded_at", "timestamptz", True),
    ),
    indexes=(
        Index("program", "(program_id, recorded_at, lesson_id)", CURRENT),
        Index("program_history", "(program_id, valid_from_pos)"),
    ),
    sorts={"recorded_at": SortKey("recorded_at", "timestamptz")},
)


def _decision(program_id: UUID, d: Decision) -> tuple[Any, ...]:
    return (
        program_id,
        d.title,
        d.context,
        d.outcome,
        list(d.alternatives),
        d.decided_by,
        d.decided_on,
        d.supersedes,
        d.superseded_by,
    )


def _decision_of(p: Program | None, decision_id: UUID) -> tuple[Any, ...] | None:
    if p is None:
        return None
    found = next((d for d in p.decisions if d.decision_id == decision_id), None)
    return None if found is None else _decision(p.program_id, found)


def _lesson(program_id: UUID, lesson: Lesson, recorded: datetime) -> tuple[Any, ...]:
    return (program_id, lesson.what_happened, lesson.learned, lesson.follow_up_action, recorded)


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    before, after = fold(ctx, event)
    match event.event:
        case DecisionRecorded(decision_id=decision_id, supersedes=supersedes):
            for changed in (supersedes, decision_id):
                if changed is not None:
                    key = (changed,)
                    ctx.change(
                        DECISIONS, key, _decision_of(before, changed), _decision_of(after, changed)
                    )
        case LessonRecorded(lesson_id=lesson_id):
            lesson = next(x for x in after.lessons if x.lesson_id == lesson_id)
            ctx.change(
                LESSONS, (lesson_id,), None, _lesson(after.program_id, lesson, event.recorded_at)
            )


PROJECTION = Projection(
    name="decisions",
    description="the decision log (with supersession) and lessons learned",
    handles=frozenset(t.event_type for t in PROGRAM_EVENT_TYPES),
    tables=(DECISIONS, LESSONS),
    states={"program": Tracked[Program]},
    handle=_handle,
    row_events=frozenset({DecisionRecorded.event_type, LessonRecorded.event_type}),
)


# Queries


class DecisionRow(VersionedRow, frozen=True, kw_only=True):
    decision_id: UUID
    program_id: UUID
    title: str
    context: str
    outcome: str
    alternatives: list[str]
    decided_by: str
    decided_on: date
    supersedes: UUID | None
    superseded_by: UUID | None
    """Set once a later decision replaced this one; the log keeps both."""


class LessonRow(VersionedRow, frozen=True, kw_only=True):
    lesson_id: UUID
    program_id: UUID
    what_happened: str
    learned: str
    follow_up_action: str | None
    recorded_at: datetime


def _decision_row(data: dict[str, Any]) -> DecisionRow:
    return DecisionRow(**data)


def _lesson_row(data: dict[str, Any]) -> LessonRow:
    return LessonRow(**data)


DECISION_LIST = ListSpec(table=DECISIONS, convert=_decision_row)

LESSON_LIST = ListSpec(table=LESSONS, convert=_lesson_row)


async def list_decisions(
    pool: Reader,
    *,
    program_id: UUID | None = None,
    in_force: bool | None = None,
    decided_by: str | None = None,
    sort: str = "decided_on",
    descending: bool = True,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[DecisionRow]:
    """The decision log; ``in_force=True`` leaves out superseded decisions, ``False``
    keeps only them."""
    filters = Filters()
    filters.equals("program_id", program_id)
    filters.equals("decided_by", decided_by)
    if in_force is not None:
        filters.where("superseded_by IS NULL" if in_force else "superseded_by IS NOT NULL")
    return await fetch_page(
        pool,
        DECISION_LIST,
        filters,
        sort=sort,
        descending=descending,
        first=first,
        after=after,
        last=last,
        before=before,
        as_of=as_of,
        count=count,
    )


async def get_decision(
    pool: Reader, decision_id: UUID, *, as_of: AsOf = None
) -> DecisionRow | None:
    return await fetch_one(pool, DECISIONS, _decision_row, (decision_id,), as_of)


async def list_lessons(
    pool: Reader,
    *,
    program_id: UUID | None = None,
    sort: str = "recorded_at",
    descending: bool = True,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[LessonRow]:
    filters = Filters()
    filters.equals("program_id", program_id)
    return await fetch_page(
        pool,
        LESSON_LIST,
        filters,
        sort=sort,
        descending=descending,
        first=first,
        after=after,
        last=last,
        before=before,
        as_of=as_of,
        count=count,
    )


async def decisions_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, DecisionRow]:
    """The decisions of ``ids`` in one statement."""
    return await fetch_by_key(pool, DECISION_LIST, ids, as_of=as_of)


async def lessons_by_id(
    pool: Reader, ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, LessonRow]:
    """The lessons of ``ids`` in one statement."""
    return await fetch_by_key(pool, LESSON_LIST, ids, as_of=as_of)


async def decisions_of_programs(
    pool: Reader, program_ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, list[DecisionRow]]:
    """The decision log of each of ``program_ids``, latest first, in one statement."""
    return await fetch_grouped(
        pool,
        DECISION_LIST,
        "program_id",
        program_ids,
        sort="decided_on",
        descending=True,
        as_of=as_of,
    )


async def lessons_of_programs(
    pool: Reader, program_ids: Sequence[UUID], *, as_of: int | None = None
) -> Mapping[UUID, list[LessonRow]]:
    """The lessons of each of ``program_ids``, latest first, in one statement."""
    return await fetch_grouped(
        pool,
        LESSON_LIST,
        "program_id",
        program_ids,
        sort="recorded_at",
        descending=True,
        as_of=as_of,
    )
