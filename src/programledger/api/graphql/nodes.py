"""``node(id)`` and ``nodes(ids)``: any entity by its global id (Relay).

``nodes`` reads the ids of one type in one statement (each read model's ``*_by_id``),
so a client refetching a cache of 50 entities costs a statement per type, not per id; a
program's nested lists and an allocation's resource are read as the fields returning
programs and allocations read them. An id that names nothing is ``null``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import strawberry

from programledger.api.graphql.allocations import AllocationType, ResourceType
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.decisions import DecisionType, LessonType
from programledger.api.graphql.milestones import DependencyType, MilestoneType
from programledger.api.graphql.node import Node, parse_global_id
from programledger.api.graphql.objectives import ObjectiveType
from programledger.api.graphql.parts import (
    BudgetAllocationType,
    StakeholderType,
    WorkstreamType,
    parse_part_key,
)
from programledger.api.graphql.portfolios import PortfolioType
from programledger.api.graphql.programs import with_nested
from programledger.api.graphql.raid import AssumptionType, IssueType
from programledger.api.graphql.reads import (
    AS_OF,
    Prepare,
    bad_input,
    moment,
    one_connection,
    plain,
    position_of,
    reader,
)
from programledger.api.graphql.risks import RiskType
from programledger.api.graphql.scenarios import ScenarioType
from programledger.api.graphql.status_reports import StatusReportType, parse_report_key
from programledger.api.graphql.types import SafeInt
from programledger.projections import (
    allocations,
    decisions,
    milestones,
    portfolios,
    programs,
    raid,
    risks,
    scenarios,
    status_reports,
)
from programledger.projections.engine.queries import MAX_PAGE_SIZE

__all__ = ["NodeQueries", "read_entity"]


@dataclass(frozen=True, slots=True)
class _Kind:
    read: Callable[..., Awaitable[Mapping[Any, Any]]]
    """The read model's ``*_by_id``: keys to rows, one statement."""
    key: Callable[[str], Any]
    """The key in a global id, as the read model takes it."""
    prepare: Prepare
    """The rows' conversion, with what their selected nested lists need read."""


_KINDS: Mapping[str, _Kind] = {
    "Program": _Kind(programs.programs_by_id, UUID, with_nested),
    "Risk": _Kind(risks.risks_by_id, UUID, plain(RiskType.of)),
    "Assumption": _Kind(raid.assumptions_by_id, UUID, plain(AssumptionType.of)),
    "Issue": _Kind(raid.issues_by_id, UUID, plain(IssueType.of)),
    "Milestone": _Kind(milestones.milestones_by_id, UUID, plain(MilestoneType.of)),
    "Dependency": _Kind(milestones.dependencies_by_id, UUID, plain(DependencyType.of)),
    "Decision": _Kind(decisions.decisions_by_id, UUID, plain(DecisionType.of)),
    "Lesson": _Kind(decisions.lessons_by_id, UUID, plain(LessonType.of)),
    "Allocation": _Kind(allocations.allocations_by_id, UUID, plain(AllocationType.of)),
    "Resource": _Kind(allocations.resources_by_key, str, plain(ResourceType.of)),
    "Workstream": _Kind(programs.workstreams_by_id, parse_part_key, plain(WorkstreamType.of)),
    "Stakeholder": _Kind(programs.stakeholders_by_id, parse_part_key, plain(StakeholderType.of)),
    "BudgetAllocation": _Kind(
        programs.budget_allocations_by_id, parse_part_key, plain(BudgetAllocationType.of)
    ),
    "Portfolio": _Kind(portfolios.portfolios_by_id, UUID, plain(PortfolioType.of)),
    "Objective": _Kind(portfolios.objectives_by_id, UUID, plain(ObjectiveType.of)),
    "StatusReport": _Kind(
        status_reports.status_reports_by_key, parse_report_key, plain(StatusReportType.of)
    ),
    "Scenario": _Kind(scenarios.scenarios_by_id, UUID, plain(ScenarioType.of)),
}


def _parse(value: str) -> tuple[str, Any]:
    try:
        type_name, key = parse_global_id(value)
        kind = _KINDS[type_name]
        return type_name, kind.key(key)
    except (KeyError, ValueError):
        raise bad_input(f"not an id this API issued: {value!r}") from None


async def _read(info: ApiInfo, ids: Sequence[str], when: Any) -> list[Node | None]:
    parsed = [_parse(i) for i in ids]
    wanted: defaultdict[str, list[Any]] = defaultdict(list)
    for type_name, key in parsed:
        wanted[type_name].append(key)
    found: dict[tuple[str, Any], Node] = {}
    async with one_connection(info.context.services.pool) as reads:
        position = await position_of(reads, when)  # one position for every entity
        for type_name, keys in wanted.items():
            kind = _KINDS[type_name]
            rows = await kind.read(reads, keys, as_of=position)
            convert = await kind.prepare(info, reads, list(rows.values()), position, ((),))
            for key, row in rows.items():
                found[(type_name, key)] = convert(row, position)
    return [found.get(item) for item in parsed]


async def read_entity(info: ApiInfo, type_name: str, key: Any) -> Node | None:
    """The entity of type ``type_name`` and key ``key`` as it is now, with the nested
    lists selected on this field: what a mutation's payload reads back."""
    kind = _KINDS[type_name]
    async with one_connection(info.context.services.pool) as reads:
        rows = await kind.read(reads, [key], as_of=None)
        row = rows.get(key)
        if row is None:
            return None
        convert = await kind.prepare(info, reads, [row], None, ((),))
    node: Node = convert(row, None)
    return node


async def _node(
    info: ApiInfo,
    id: strawberry.ID,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Node | None:
    when = moment(as_of, as_of_position)
    return (await _read(info, [id], when))[0]


async def _nodes(
    info: ApiInfo,
    ids: list[strawberry.ID],
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> list[Node | None]:
    when = moment(as_of, as_of_position)
    if len(ids) > MAX_PAGE_SIZE:
        raise bad_input(f"ids holds at most {MAX_PAGE_SIZE} ids, got {len(ids)}")
    return await _read(info, ids, when)


@strawberry.type
class NodeQueries:
    node: Node | None = strawberry.field(
        resolver=_node, extensions=reader(), description="Any entity by its global id." + AS_OF
    )
    nodes: list[Node | None] = strawberry.field(
        resolver=_nodes,
        extensions=reader(),
        description="Entities by global id, in the order asked, null for an unknown one; "
        "one statement per type." + AS_OF,
    )
