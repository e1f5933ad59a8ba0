"""The decision log in GraphQL: ``decisions``, over the ``decisions`` read model."""

from __future__ import annotations

import enum
from datetime import date, datetime

import strawberry

from programledger.api.graphql.connections import Connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    an_id,
    list_page,
    moment,
    paging,
    read,
    reader,
    uuid,
)
from programledger.api.graphql.types import SafeInt
from programledger.projections import decisions
from programledger.projections.decisions import DecisionRow, LessonRow

__all__ = ["DecisionQueries", "DecisionSort", "DecisionType", "LessonSort", "LessonType"]


@strawberry.enum(description="Sort keys of decisions.")
class DecisionSort(enum.Enum):
    DECIDED_ON = "decided_on"
    TITLE = "title"


@strawberry.type(name="Decision")
class DecisionType(Node):
    decision_id: strawberry.ID
    program_id: strawberry.ID
    title: str
    context: str
    outcome: str
    alternatives: list[str]
    decided_by: str
    decided_on: date
    supersedes: strawberry.ID | None
    superseded_by: strawberry.ID | None
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )

    @staticmethod
    def of(d: DecisionRow) -> DecisionType:
        return DecisionType(
            id=global_id("Decision", d.decision_id),
            decision_id=strawberry.ID(str(d.decision_id)),
            program_id=strawberry.ID(str(d.program_id)),
            title=d.title,
            context=d.context,
            outcome=d.outcome,
            alternatives=list(d.alternatives),
            decided_by=d.decided_by,
            decided_on=d.decided_on,
            supersedes=None if d.supersedes is None else strawberry.ID(str(d.supersedes)),
            superseded_by=None if d.superseded_by is None else strawberry.ID(str(d.superseded_by)),
            updated_at=d.valid_from_time,
        )


@strawberry.enum(description="Sort keys of lessons learned.")
class LessonSort(enum.Enum):
    RECORDED_AT = "recorded_at"


@strawberry.type(name="Lesson", description="A lesson learned, recorded on a program.")
class LessonType(Node):
    lesson_id: strawberry.ID
    program_id: strawberry.ID
    what_happened: str
    learned: str
    follow_up_action: str | None
    recorded_at: datetime

    @staticmethod
    def of(lesson: LessonRow) -> LessonType:
        return LessonType(
            id=global_id("Lesson", lesson.lesson_id),
            lesson_id=strawberry.ID(str(lesson.lesson_id)),
            program_id=strawberry.ID(str(lesson.program_id)),
            what_happened=lesson.what_happened,
            learned=lesson.learned,
            follow_up_action=lesson.follow_up_action,
            recorded_at=lesson.recorded_at,
        )


async def _decisions(
    info: ApiInfo,
    program_id: strawberry.ID | None = None,
    in_force: bool | None = None,
    decided_by: str | None = None,
    order_by: DecisionSort = DecisionSort.DECIDED_ON,
    descending: bool = True,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[DecisionType]:
    when = moment(as_of, as_of_position)
    return await list_page(
        info,
        decisions.list_decisions,
        DecisionType.of,
        when,
        order_by,
        descending,
        paging(first, after, last, before),
        program_id=uuid(program_id, "programId"),
        in_force=in_force,
        decided_by=decided_by,
    )


async def _lessons(
    info: ApiInfo,
    program_id: strawberry.ID | None = None,
    order_by: LessonSort = LessonSort.RECORDED_AT,
    descending: bool = True,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[LessonType]:
    when = moment(as_of, as_of_position)
    return await list_page(
        info,
        decisions.list_lessons,
        LessonType.of,
        when,
        order_by,
        descending,
        paging(first, after, last, before),
        program_id=uuid(program_id, "programId"),
    )


async def _decision(
    info: ApiInfo,
    id: strawberry.ID,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> DecisionType | None:
    when = moment(as_of, as_of_position)
    row = await read(
        decisions.get_decision(info.context.services.pool, an_id(id, "id"), as_of=when)
    )
    return None if row is None else DecisionType.of(row)


@strawberry.type
class DecisionQueries:
    decision: DecisionType | None = strawberry.field(
        resolver=_decision, extensions=reader(), description="One decision." + AS_OF
    )
    decisions: Connection[DecisionType] = strawberry.field(
        resolver=_decisions, extensions=reader(), description="The decision log." + AS_OF
    )
    lessons: Connection[LessonType] = strawberry.field(
        resolver=_lessons, extensions=reader(), description="Lessons learned." + AS_OF
    )
