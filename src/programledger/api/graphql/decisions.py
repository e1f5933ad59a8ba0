"""The decision log in GraphQL: ``decisions``, over the ``decisions`` read model."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from programledger.api.graphql.connections import Connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.links import Link, linked, program_of
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import AS_OF, an_id, listing, lookup, plain, read_field, uuid
from programledger.projections import decisions
from programledger.projections.decisions import DecisionRow, LessonRow
from programledger.projections.engine.queries import Reader

if TYPE_CHECKING:
    from programledger.api.graphql.programs import ProgramType

__all__ = ["DecisionQueries", "DecisionSort", "DecisionType", "LessonSort", "LessonType"]


@strawberry.enum(description="Sort keys of decisions.")
class DecisionSort(enum.Enum):
    DECIDED_ON = "decided_on"
    TITLE = "title"


def _program(root: strawberry.Parent[DecisionType | LessonType], info: ApiInfo) -> Any:
    return program_of(info, root.at, UUID(root.program_id))


def _linked_decision(at: int | None, decision_id: strawberry.ID | None, info: ApiInfo) -> Any:
    return None if decision_id is None else DECISION.load(info, at, UUID(decision_id))


def _supersedes(root: strawberry.Parent[DecisionType], info: ApiInfo) -> Any:
    return _linked_decision(root.at, root.supersedes_id, info)


def _superseded_by(root: strawberry.Parent[DecisionType], info: ApiInfo) -> Any:
    return _linked_decision(root.at, root.superseded_by_id, info)


_PROGRAM = Annotated["ProgramType", strawberry.lazy("programledger.api.graphql.programs")]


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
    supersedes_id: strawberry.ID | None = strawberry.field(
        description="The decision this one replaced."
    )
    superseded_by_id: strawberry.ID | None = strawberry.field(
        description="The decision that replaced this one (null: in force)."
    )
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )
    at: strawberry.Private[int | None]
    program: _PROGRAM = strawberry.field(resolver=_program, description=linked("The program"))
    supersedes: DecisionType | None = strawberry.field(
        resolver=_supersedes, description=linked("The decision this one replaced")
    )
    superseded_by: DecisionType | None = strawberry.field(
        resolver=_superseded_by,
        description=linked("The decision that replaced this one (null: in force)"),
    )

    @staticmethod
    def of(d: DecisionRow, at: int | None) -> DecisionType:
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
            supersedes_id=None if d.supersedes is None else strawberry.ID(str(d.supersedes)),
            superseded_by_id=None
            if d.superseded_by is None
            else strawberry.ID(str(d.superseded_by)),
            updated_at=d.valid_from_time,
            at=at,
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
    at: strawberry.Private[int | None]
    program: _PROGRAM = strawberry.field(resolver=_program, description=linked("The program"))

    @staticmethod
    def of(lesson: LessonRow, at: int | None) -> LessonType:
        return LessonType(
            id=global_id("Lesson", lesson.lesson_id),
            lesson_id=strawberry.ID(str(lesson.lesson_id)),
            program_id=strawberry.ID(str(lesson.program_id)),
            what_happened=lesson.what_happened,
            learned=lesson.learned,
            follow_up_action=lesson.follow_up_action,
            recorded_at=lesson.recorded_at,
            at=at,
        )


async def _decisions_by_id(
    reads: Reader, keys: Sequence[UUID], at: int | None
) -> Mapping[UUID, DecisionType]:
    found = await decisions.decisions_by_id(reads, keys, as_of=at)
    return {key: DecisionType.of(row, at) for key, row in found.items()}


DECISION: Link[UUID, DecisionType | None] = Link("decision", _decisions_by_id, None)


def _decision_filters(
    program_id: strawberry.ID | None = None,
    in_force: bool | None = None,
    decided_by: str | None = None,
) -> dict[str, Any]:
    return {
        "program_id": uuid(program_id, "programId"),
        "in_force": in_force,
        "decided_by": decided_by,
    }


def _lesson_filters(program_id: strawberry.ID | None = None) -> dict[str, Any]:
    return {"program_id": uuid(program_id, "programId")}


def _decision_id(id: strawberry.ID) -> UUID:
    return an_id(id, "id")


_decision = lookup(decisions.get_decision, plain(DecisionType.of), _decision_id)


_decisions = listing(
    decisions.list_decisions,
    plain(DecisionType.of),
    _decision_filters,
    DecisionSort.DECIDED_ON,
    descending=True,
)


_lessons = listing(
    decisions.list_lessons,
    plain(LessonType.of),
    _lesson_filters,
    LessonSort.RECORDED_AT,
    descending=True,
)


@strawberry.type
class DecisionQueries:
    decision: DecisionType | None = read_field(_decision, "One decision." + AS_OF)
    decisions: Connection[DecisionType] = read_field(_decisions, "The decision log." + AS_OF)
    lessons: Connection[LessonType] = read_field(_lessons, "Lessons learned." + AS_OF)
