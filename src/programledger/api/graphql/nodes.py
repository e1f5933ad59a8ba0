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

from programledger.api.graphql.allocations import AllocationType, ResourceType, resources_of
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.decisions import DecisionType, LessonType
from programledger.api.graphql.milestones import DependencyType, MilestoneType
from programledger.api.graphql.node import Node, parse_global_id
from programledger.api.graphql.objectives import ObjectiveType
from programledger.api.graphql.portfolios import PortfolioType
from programledger.api.graphql.programs import ProgramType, nested_lists, read_nested
from programledger.api.graphql.reads import AS_OF, bad_input, moment, one_connection, reader
from programledger.api.graphql.reads import selected as selected_fields
from programledger.api.graphql.risks import RiskType
from programledger.api.graphql.types import SafeInt
from programledger.projections import (
    allocations,
    decisions,
    milestones,
    portfolios,
    programs,
    risks,
)
from programledger.projections.engine.queries import MAX_PAGE_SIZE, Reader, resolve_position

__all__ = ["NodeQueries"]


@dataclass(frozen=True, slots=True)
class _Kind:
    read: Callable[..., Awaitable[Mapping[Any, Any]]]
    """The read model's ``*_by_id``: keys to rows, one statement."""
    key: Callable[[str], Any]
    """The key in a global id, as the read model takes it."""


_KINDS: Mapping[str, _Kind] = {
    "Program": _Kind(programs.programs_by_id, UUID),
    "Risk": _Kind(risks.risks_by_id, UUID),
    "Milestone": _Kind(milestones.milestones_by_id, UUID),
    "Dependency": _Kind(milestones.dependencies_by_id, UUID),
    "Decision": _Kind(decisions.decisions_by_id, UUID),
    "Lesson": _Kind(decisions.lessons_by_id, UUID),
    "Allocation": _Kind(allocations.allocations_by_id, UUID),
    "Resource": _Kind(allocations.resources_by_key, str),
    "Portfolio": _Kind(portfolios.portfolios_by_id, UUID),
    "Objective": _Kind(portfolios.objectives_by_id, UUID),
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
        position: int | None
        if isinstance(when, datetime):  # one position for every entity
            async with reads.acquire() as conn:
                position = await resolve_position(conn, when)
        else:
            position = when
        for type_name, keys in wanted.items():
            rows = await _KINDS[type_name].read(reads, keys, as_of=position)
            for key, node in (await _convert(info, reads, type_name, rows, position)).items():
                found[(type_name, key)] = node
    return [found.get(item) for item in parsed]


async def _convert(
    info: ApiInfo, reads: Reader, type_name: str, rows: Mapping[Any, Any], position: int | None
) -> Mapping[Any, Node]:
    """The GraphQL objects of ``rows``, with what their selected links need read."""
    if type_name == "Program":
        nested = await read_nested(reads, list(rows), position, nested_lists(info))
        return {k: ProgramType.of(r, nested) for k, r in rows.items()}
    if type_name == "Allocation":
        wanted = "resource" in selected_fields(info, ())
        found = await resources_of(reads, list(rows.values()), position, wanted)
        return {k: AllocationType.of(r, found) for k, r in rows.items()}
    if type_name == "Portfolio":
        return {k: PortfolioType.of(r, position) for k, r in rows.items()}
    if type_name == "Objective":
        return {k: ObjectiveType.of(r, position) for k, r in rows.items()}
    convert = _CONVERT[type_name]
    return {k: convert(r) for k, r in rows.items()}


_CONVERT: Mapping[str, Callable[[Any], Node]] = {
    "Risk": RiskType.of,
    "Milestone": MilestoneType.of,
    "Dependency": DependencyType.of,
    "Decision": DecisionType.of,
    "Lesson": LessonType.of,
    "Resource": ResourceType.of,
}
"""The row conversions of the types whose fields need nothing more read."""


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
