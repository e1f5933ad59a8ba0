"""A program's staffing in GraphQL: ``staffing``, what each department and role gives a
program week by week (or month by month), over the ``allocations`` read model."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Annotated

import strawberry

from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.reads import AS_OF, an_id, enum_argument, moment, read, read_field
from programledger.api.graphql.types import SafeInt
from programledger.domain.values import Department
from programledger.projections import allocations
from programledger.projections.allocations import StaffingPeriod, StaffingRow

__all__ = ["StaffingQueries", "StaffingType"]


@strawberry.type(
    name="Staffing",
    description="What one department and role give a program in one week or month: live "
    "allocations (not released), confirmed and proposed apart.",
)
class StaffingType:
    period_start: date
    period_end: date = strawberry.field(description="The period's last day.")
    department: str = strawberry.field(graphql_type=domain_enum(Department))
    role: str
    confirmed_fte: float = strawberry.field(
        description="Average confirmed FTE over the period (1.0: one full-time person)."
    )
    proposed_fte: float
    confirmed_days: int = strawberry.field(
        description="Confirmed load in percent-days (percentage times days): exact."
    )
    proposed_days: int
    resources: int = strawberry.field(
        description="People and teams of this department and role on the program then."
    )

    @staticmethod
    def of(row: StaffingRow) -> StaffingType:
        return StaffingType(
            period_start=row.period_start,
            period_end=row.period_end,
            department=row.department,
            role=row.role,
            confirmed_fte=row.confirmed_fte,
            proposed_fte=row.proposed_fte,
            confirmed_days=row.confirmed_days,
            proposed_days=row.proposed_days,
            resources=row.resources,
        )


async def _staffing(
    info: ApiInfo,
    program_id: strawberry.ID,
    from_: Annotated[date, strawberry.argument(name="from")],
    to: date,
    period: Annotated[Enum, enum_argument(StaffingPeriod, many=False)] = StaffingPeriod.WEEK,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> list[StaffingType]:
    when = moment(as_of, as_of_position)
    rows = await read(
        allocations.staffing(
            info.context.services.pool,
            program_id=an_id(program_id, "programId"),
            start=from_,
            end=to,
            period=StaffingPeriod(period.value),
            as_of=when,
        )
    )
    return [StaffingType.of(row) for row in rows]


@strawberry.type
class StaffingQueries:
    staffing: list[StaffingType] = read_field(
        _staffing,
        "A program's staffing by department and role in each week (or month) touching "
        "from..to (at most three years), periods in order." + AS_OF,
    )
