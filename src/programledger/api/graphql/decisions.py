"""The decision log in GraphQL: ``decisions``, over the ``decisions`` read model."""

from __future__ import annotations

import enum
from datetime import date, datetime

import strawberry

from programledger.api.graphql.connections import Connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.reads import (
    AS_OF,
    list_page,
    moment,
    paging,
    reader,
    uuid,
)
from programledger.api.graphql.types import SafeInt
from programledger.projections import decisions
from programledger.projections.decisions import DecisionRow

__all__ = ["DecisionQueries", "DecisionSort", "DecisionType"]


@strawberry.enum(description="Sort keys of decisions.")
class DecisionSort(enum.Enum):
    DECIDED_ON = "decided_on"
    TITLE = "title"


@strawberry.type(name="Decision")
class DecisionType:
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

    @staticmethod
    def of(d: DecisionRow) -> DecisionType:
        return DecisionType(
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
    when = moment(info, as_of, as_of_position)
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


@strawberry.type
class DecisionQueries:
    decisions: Connection[DecisionType] = strawberry.field(
        resolver=_decisions, extensions=reader(), description="The decision log." + AS_OF
    )
