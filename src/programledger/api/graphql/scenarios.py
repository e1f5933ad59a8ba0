"""Capacity what-ifs in GraphQL: ``scenario`` (with its changes and, once committed, what
each real command did), ``scenarios`` (a connection) and ``scenarioEvaluation`` (the
scenario laid over the real resources: over-allocations per resource and utilisation per
department and week, now and with the scenario), over the ``scenarios`` read model and
the real ``allocations`` one, which an evaluation only reads.

Every field of the scenario events is here: the scenario, each change (hypothetical work
or capacity), and each commit outcome.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from enum import Enum

import strawberry

from programledger.api.graphql.connections import Connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    an_id,
    enum_filter,
    list_page,
    moment,
    paging,
    read,
    reader,
    values,
)
from programledger.api.graphql.recorded import Recorded, recorded
from programledger.api.graphql.types import OverAllocationPeriodType, SafeInt
from programledger.domain.scenario import ScenarioStatus
from programledger.domain.values import Department, OverAllocationPeriod
from programledger.projections import scenarios
from programledger.projections.scenarios import (
    DepartmentWeek,
    Evaluation,
    ResourceImpact,
    ScenarioChangeRow,
    ScenarioOutcomeRow,
    ScenarioRow,
)

__all__ = [
    "ScenarioChangeKind",
    "ScenarioEvaluationType",
    "ScenarioFilter",
    "ScenarioQueries",
    "ScenarioSort",
    "ScenarioType",
]

_STATUS = domain_enum(ScenarioStatus)


@strawberry.enum(description="Sort keys of scenarios.")
class ScenarioSort(enum.Enum):
    NAME = "name"


@strawberry.enum(description="What a scenario change would do.")
class ScenarioChangeKind(enum.Enum):
    ALLOCATION = "ALLOCATION"
    """Hypothetical work: allocated and confirmed when committed."""
    CAPACITY = "CAPACITY"
    """A hypothetical capacity from effectiveFrom on."""


@strawberry.input
class ScenarioFilter:
    status: list[Enum] | None = enum_filter(ScenarioStatus)


@strawberry.type(name="ScenarioChange")
class ScenarioChangeType:
    change_id: strawberry.ID = strawberry.field(
        description="The allocation's id once committed (hypothetical work)."
    )
    kind: ScenarioChangeKind
    resource_key: str
    program_id: strawberry.ID | None
    workstream_id: strawberry.ID | None
    start_date: date | None
    end_date: date | None
    percentage: int | None
    capacity: int | None
    effective_from: date | None = strawberry.field(
        description="From when the capacity would apply; null with a capacity: all time."
    )
    reason: str | None
    added_by: str

    @staticmethod
    def of(c: ScenarioChangeRow) -> ScenarioChangeType:
        return ScenarioChangeType(
            change_id=strawberry.ID(str(c.change_id)),
            kind=ScenarioChangeKind(c.kind),
            resource_key=c.resource_key,
            program_id=None if c.program_id is None else strawberry.ID(str(c.program_id)),
            workstream_id=None if c.workstream_id is None else strawberry.ID(str(c.workstream_id)),
            start_date=c.start_date,
            end_date=c.end_date,
            percentage=c.percentage,
            capacity=c.capacity,
            effective_from=c.effective_from,
            reason=c.reason,
            added_by=c.added_by,
        )


@strawberry.type(
    name="ScenarioCommitOutcome",
    description="What one real command of a commit did: accepted (its stream and the "
    "position of its last event), or refused (the error's code and message).",
)
class ScenarioCommitOutcomeType:
    change_id: strawberry.ID
    command: str = strawberry.field(
        description="ChangeCapacity, ProposeAllocation or ConfirmAllocation."
    )
    accepted: bool
    stream_id: str | None
    position: SafeInt | None
    error_code: str | None = strawberry.field(
        description="E.g. OVER_ALLOCATED; NOT_SENT when the proposal before was refused."
    )
    message: str | None

    @staticmethod
    def of(o: ScenarioOutcomeRow) -> ScenarioCommitOutcomeType:
        return ScenarioCommitOutcomeType(
            change_id=strawberry.ID(str(o.change_id)),
            command=o.command,
            accepted=o.accepted,
            stream_id=o.stream_id,
            position=None if o.position is None else SafeInt(o.position),
            error_code=o.error_code,
            message=o.message,
        )


async def _changes(
    root: strawberry.Parent[ScenarioType], info: ApiInfo
) -> list[ScenarioChangeType]:
    rows = await scenarios.changes_of(
        info.context.services.pool, an_id(root.scenario_id, "scenarioId"), as_of=root.as_of
    )
    return [ScenarioChangeType.of(c) for c in rows]


async def _outcomes(
    root: strawberry.Parent[ScenarioType], info: ApiInfo
) -> list[ScenarioCommitOutcomeType]:
    rows = await scenarios.outcomes_of(
        info.context.services.pool, an_id(root.scenario_id, "scenarioId"), as_of=root.as_of
    )
    return [ScenarioCommitOutcomeType.of(o) for o in rows]


@strawberry.type(name="Scenario", description="A capacity what-if.")
class ScenarioType(Node, Recorded):
    scenario_id: strawberry.ID
    name: str
    description: str | None
    status: str = strawberry.field(graphql_type=_STATUS)
    change_count: int
    override_reason: str | None = strawberry.field(
        description="The override reason the commit passed to its real commands."
    )
    discard_reason: str | None = strawberry.field(description="Why it was discarded.")
    version: int = strawberry.field(description="The scenario stream's version.")
    as_of: strawberry.Private[int | datetime | None]
    changes: list[ScenarioChangeType] = strawberry.field(
        resolver=_changes, description="Its changes in the order added (as of the same moment)."
    )
    outcomes: list[ScenarioCommitOutcomeType] = strawberry.field(
        resolver=_outcomes,
        description="Once committed: what each real command did, in the order sent.",
    )

    @staticmethod
    def of(r: ScenarioRow, as_of: int | datetime | None = None) -> ScenarioType:
        return ScenarioType(
            id=global_id("Scenario", r.scenario_id),
            scenario_id=strawberry.ID(str(r.scenario_id)),
            name=r.name,
            description=r.description,
            status=r.status,
            change_count=r.changes,
            override_reason=r.override_reason,
            discard_reason=r.discard_reason,
            version=r.version,
            **recorded(r),
            as_of=as_of,
        )


def _periods(periods: list[OverAllocationPeriod]) -> list[OverAllocationPeriodType]:
    return [OverAllocationPeriodType.of(p) for p in periods]


@strawberry.type(name="ScenarioResourceImpact")
class ResourceImpactType:
    resource_key: str
    department: str = strawberry.field(graphql_type=domain_enum(Department))
    over_allocated_now: list[OverAllocationPeriodType]
    over_allocated_with_scenario: list[OverAllocationPeriodType]
    worsened: list[OverAllocationPeriodType] = strawberry.field(
        description="Periods the scenario pushes over capacity or further over: what "
        "commitScenario without an overrideReason would see refused (as of now)."
    )

    @staticmethod
    def of(r: ResourceImpact) -> ResourceImpactType:
        return ResourceImpactType(
            resource_key=r.resource_key,
            department=r.department,
            over_allocated_now=_periods(r.over_allocated_now),
            over_allocated_with_scenario=_periods(r.over_allocated_with_scenario),
            worsened=_periods(r.worsened),
        )


@strawberry.type(
    name="ScenarioDepartmentWeek",
    description="A department's week now and with the scenario; days are person-days in "
    "percent of an FTE (a full-time week is 700), as in utilisation.",
)
class DepartmentWeekType:
    department: str = strawberry.field(graphql_type=domain_enum(Department))
    week_start: date
    iso_year: int
    iso_week: int
    capacity_days: int
    capacity_days_with_scenario: int
    confirmed_days: int
    confirmed_days_with_scenario: int
    utilisation: float | None
    utilisation_with_scenario: float | None
    over_allocated: int = strawberry.field(description="Resources over capacity that week.")
    over_allocated_with_scenario: int

    @staticmethod
    def of(w: DepartmentWeek) -> DepartmentWeekType:
        return DepartmentWeekType(
            department=w.department,
            week_start=w.week_start,
            iso_year=w.iso_year,
            iso_week=w.iso_week,
            capacity_days=w.capacity_days,
            capacity_days_with_scenario=w.capacity_days_with_scenario,
            confirmed_days=w.confirmed_days,
            confirmed_days_with_scenario=w.confirmed_days_with_scenario,
            utilisation=w.utilisation,
            utilisation_with_scenario=w.utilisation_with_scenario,
            over_allocated=w.over_allocated,
            over_allocated_with_scenario=w.over_allocated_with_scenario,
        )


@strawberry.type(
    name="ScenarioEvaluation",
    description="A scenario laid over the real resources, which it does not change.",
)
class ScenarioEvaluationType:
    start: date
    end: date
    resources: list[ResourceImpactType]
    departments: list[DepartmentWeekType]

    @staticmethod
    def of(e: Evaluation) -> ScenarioEvaluationType:
        return ScenarioEvaluationType(
            start=e.start,
            end=e.end,
            resources=[ResourceImpactType.of(r) for r in e.resources],
            departments=[DepartmentWeekType.of(w) for w in e.departments],
        )


async def _scenario(
    info: ApiInfo,
    id: strawberry.ID,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> ScenarioType | None:
    when = moment(as_of, as_of_position)
    row = await read(
        scenarios.get_scenario(info.context.services.pool, an_id(id, "id"), as_of=when)
    )
    return None if row is None else ScenarioType.of(row, when)


async def _scenarios(
    info: ApiInfo,
    filter: ScenarioFilter | None = None,
    order_by: ScenarioSort = ScenarioSort.NAME,
    descending: bool = False,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[ScenarioType]:
    when = moment(as_of, as_of_position)
    f = filter or ScenarioFilter()
    return await list_page(
        info,
        scenarios.list_scenarios,
        lambda row: ScenarioType.of(row, when),
        when,
        order_by,
        descending,
        paging(first, after, last, before),
        status=values(f.status),
    )


async def _evaluation(
    info: ApiInfo,
    scenario_id: strawberry.ID,
    start: date | None = None,
    end: date | None = None,
) -> ScenarioEvaluationType | None:
    found = await read(
        scenarios.evaluate_scenario(
            info.context.services.pool, an_id(scenario_id, "scenarioId"), start, end
        )
    )
    return None if found is None else ScenarioEvaluationType.of(found)


@strawberry.type
class ScenarioQueries:
    scenario: ScenarioType | None = strawberry.field(
        resolver=_scenario, extensions=reader(), description="One capacity what-if." + AS_OF
    )
    scenarios: Connection[ScenarioType] = strawberry.field(
        resolver=_scenarios, extensions=reader(), description="Capacity what-ifs." + AS_OF
    )
    scenario_evaluation: ScenarioEvaluationType | None = strawberry.field(
        resolver=_evaluation,
        extensions=reader(),
        description="The scenario over the real resources and allocations as they are now, "
        "in [start, end] (default: the span of its changes): over-allocations of each "
        "resource it changes, and utilisation per department and week of the departments "
        "it touches, without and with it. Nothing is recorded; null for an unknown scenario.",
    )
