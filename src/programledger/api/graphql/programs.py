"""The portfolio in GraphQL: ``program`` and ``programs``, over the ``programs`` read
model, with each program's nested lists (risks, milestones, allocations).

The nested lists are read in batches, so a page of programs with its nested lists costs a
fixed number of SQL statements, however many programs it shows. The field that returns
programs looks ahead in the operation for the nested lists it selects and reads each of
them for all its programs at once (each read model's ``*_of_programs``), at the position
the programs were read at: nested lists show the same moment as their parent, as of a
position or current. The nested fields then resolve from memory, synchronously. Batching
by DataLoader would cost, for each nested field of each program, a future, a batch task
and an asynchronous resolver, for the same statements.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

import strawberry

from programledger.api.graphql.allocations import AllocationType, resources_of
from programledger.api.graphql.connections import Connection, connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.milestones import MilestoneType
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    an_id,
    counts,
    enum_filter,
    moment,
    one_connection,
    paging,
    read,
    reader,
    selected,
    values,
)
from programledger.api.graphql.risks import RiskType
from programledger.api.graphql.types import MoneyType, SafeInt
from programledger.domain.program import Health, ProgramStatus
from programledger.projections import allocations, milestones, programs, risks
from programledger.projections.allocations import AllocationRow, ResourceRow
from programledger.projections.engine.queries import AsOf, Reader, resolve_position
from programledger.projections.milestones import MilestoneRow
from programledger.projections.programs import ProgramRow
from programledger.projections.risks import RiskRow

__all__ = [
    "NESTED_LISTS",
    "ProgramFilter",
    "ProgramQueries",
    "ProgramSort",
    "ProgramType",
    "nested_lists",
    "one_program",
    "read_nested",
]

R = TypeVar("R")

NESTED_LISTS = ("risks", "milestones", "allocations")
"""The GraphQL names of a program's nested lists."""


@strawberry.enum(description="Sort keys of programs.")
class ProgramSort(enum.Enum):
    CODE = "code"
    NAME = "name"
    PRIORITY = "priority"
    STATUS = "status"
    TARGET_END_DATE = "target_end_date"
    OPEN_RISKS = "open_risks"
    BUDGET_PLANNED = "budget_planned"


@strawberry.input
class ProgramFilter:
    status: list[Enum] | None = enum_filter(ProgramStatus)
    health: list[Enum] | None = enum_filter(Health)
    priority: list[int] | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class NestedRows:
    """The nested lists of the programs of one answer, by program id; ``None`` for a list
    the operation does not select, which was therefore not read."""

    risks: Mapping[UUID, list[RiskRow]] | None = None
    milestones: Mapping[UUID, list[MilestoneRow]] | None = None
    allocations: Mapping[UUID, list[AllocationRow]] | None = None
    resources: Mapping[str, ResourceRow] | None = None
    """The allocations' resources, when the operation selects them."""


async def read_nested(
    reads: Reader, program_ids: Sequence[UUID], position: int | None, wanted: set[str]
) -> NestedRows:
    """The ``wanted`` nested lists of ``program_ids``, one statement per list (and one for
    the allocations' resources, ``allocations.resource`` in ``wanted``)."""
    if not program_ids or not wanted:
        return NestedRows(
            risks={} if "risks" in wanted else None,
            milestones={} if "milestones" in wanted else None,
            allocations={} if "allocations" in wanted else None,
        )
    found: dict[str, Any] = {}
    if "risks" in wanted:
        found["risks"] = await risks.risks_of_programs(reads, program_ids, as_of=position)
    if "milestones" in wanted:
        found["milestones"] = await milestones.milestones_of_programs(
            reads, program_ids, as_of=position
        )
    if "allocations" in wanted:
        found["allocations"] = rows = await allocations.allocations_of_programs(
            reads, program_ids, as_of=position
        )
        every = [a for listed in rows.values() for a in listed]
        found["resources"] = await resources_of(reads, every, position, _RESOURCE in wanted)
    return NestedRows(**found)


_RESOURCE = "allocations.resource"


def nested_lists(info: ApiInfo, *paths: Sequence[str]) -> set[str]:
    """The nested lists selected on the programs this field returns (at ``paths`` inside
    it, or itself), and :data:`_RESOURCE` if their allocations' resources are."""
    paths = paths or ((),)
    found = set().union(*(selected(info, path) for path in paths))
    wanted = found.intersection(NESTED_LISTS)
    if any("resource" in selected(info, (*path, "allocations")) for path in paths):
        wanted.add(_RESOURCE)
    return wanted


def _nested(rows: Mapping[UUID, list[R]] | None, root: ProgramType) -> list[R]:
    if rows is None:
        # The field returning programs reads the nested lists its selection names; one
        # missing here means the selection was misread: fail rather than answer "none".
        raise RuntimeError("a nested list was selected but not read")
    return rows.get(root.key, [])


def _program_risks(root: strawberry.Parent[ProgramType]) -> list[RiskType]:
    return [RiskType.of(r) for r in _nested(root.nested.risks, root)]


def _program_milestones(root: strawberry.Parent[ProgramType]) -> list[MilestoneType]:
    return [MilestoneType.of(m) for m in _nested(root.nested.milestones, root)]


def _program_allocations(root: strawberry.Parent[ProgramType]) -> list[AllocationType]:
    resources = root.nested.resources
    return [AllocationType.of(a, resources) for a in _nested(root.nested.allocations, root)]


@strawberry.type(name="Program")
class ProgramType(Node):
    program_id: strawberry.ID
    code: str
    name: str
    description: str | None
    objective: str
    objective_key: str | None = strawberry.field(
        description="The portfolio objective (OKR key) the program serves."
    )
    sponsor: str
    owner: str
    priority: int
    start_date: date
    target_end_date: date
    status: str = strawberry.field(graphql_type=domain_enum(ProgramStatus))
    health: str | None = strawberry.field(graphql_type=domain_enum(Health) | None)
    health_summary: str | None
    budget_planned: MoneyType
    budget_allocated: MoneyType
    budget_actual: MoneyType | None
    actual_spend_as_of: date | None = strawberry.field(
        description="The day the last spend report (budgetActual) was made up to."
    )
    open_risks: int
    open_risks_critical: int
    open_risks_high: int
    open_risks_medium: int
    open_risks_low: int
    next_milestone_id: strawberry.ID | None
    next_milestone_name: str | None
    next_milestone_date: date | None
    version: int = strawberry.field(description="The expectedVersion for the next command.")
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )
    key: strawberry.Private[UUID]
    nested: strawberry.Private[NestedRows]

    risks: list[RiskType] = strawberry.field(
        resolver=_program_risks,
        description="The program's risks, highest score first (at most 500).",
    )
    milestones: list[MilestoneType] = strawberry.field(
        resolver=_program_milestones,
        description="The program's milestones by forecast date (at most 500).",
    )
    allocations: list[AllocationType] = strawberry.field(
        resolver=_program_allocations,
        description="People's time on the program by start date (at most 500).",
    )

    @staticmethod
    def of(p: ProgramRow, nested: NestedRows) -> ProgramType:
        def money(amount: int) -> MoneyType:
            return MoneyType(amount_minor=SafeInt(amount), currency=p.currency)

        return ProgramType(
            id=global_id("Program", p.program_id),
            program_id=strawberry.ID(str(p.program_id)),
            code=p.code,
            name=p.name,
            description=p.description,
            objective=p.objective,
            objective_key=p.objective_key,
            sponsor=p.sponsor,
            owner=p.owner,
            priority=p.priority,
            start_date=p.start_date,
            target_end_date=p.target_end_date,
            status=p.status,
            health=p.health,
            health_summary=p.health_summary,
            budget_planned=money(p.budget_planned),
            budget_allocated=money(p.budget_allocated),
            budget_actual=None if p.budget_actual is None else money(p.budget_actual),
            actual_spend_as_of=p.actual_spend_as_of,
            open_risks=p.open_risks,
            open_risks_critical=p.open_risks_critical,
            open_risks_high=p.open_risks_high,
            open_risks_medium=p.open_risks_medium,
            open_risks_low=p.open_risks_low,
            next_milestone_id=None
            if p.next_milestone_id is None
            else strawberry.ID(str(p.next_milestone_id)),
            next_milestone_name=p.next_milestone_name,
            next_milestone_date=p.next_milestone_date,
            version=p.version,
            updated_at=p.valid_from_time,
            key=p.program_id,
            nested=nested,
        )


async def _program(
    info: ApiInfo,
    id: strawberry.ID,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> ProgramType | None:
    when = moment(as_of, as_of_position)
    program_id = an_id(id, "id")
    return await one_program(
        info, when, lambda reads, at: programs.get_program(reads, program_id, as_of=at)
    )


async def _program_by_code(
    info: ApiInfo,
    code: str,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> ProgramType | None:
    when = moment(as_of, as_of_position)
    return await one_program(
        info, when, lambda reads, at: programs.get_program_by_code(reads, code, as_of=at)
    )


async def one_program(
    info: ApiInfo,
    when: AsOf,
    find: Callable[[Reader, int | None], Awaitable[ProgramRow | None]],
) -> ProgramType | None:
    """The program ``find`` reads, and its selected nested lists, at one position."""
    position: int | None
    async with one_connection(info.context.services.pool) as reads:
        if isinstance(when, datetime):  # one position for the program and its nested lists
            async with reads.acquire() as conn:
                position = await resolve_position(conn, when)
        else:
            position = when
        row = await find(reads, position)
        if row is None:
            return None
        nested = await read_nested(reads, [row.program_id], position, nested_lists(info))
    return ProgramType.of(row, nested)


async def _programs(
    info: ApiInfo,
    filter: ProgramFilter | None = None,
    order_by: ProgramSort = ProgramSort.CODE,
    descending: bool = False,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: datetime | None = None,
    as_of_position: SafeInt | None = None,
) -> Connection[ProgramType]:
    when = moment(as_of, as_of_position)
    f = filter or ProgramFilter()
    wanted = nested_lists(info, ("nodes",), ("edges", "node"))
    async with one_connection(info.context.services.pool) as reads:
        page = await read(
            programs.list_programs(
                reads,
                status=values(f.status),
                health=values(f.health),
                priority=f.priority,
                owner=f.owner,
                sort=order_by.value,
                descending=descending,
                **paging(first, after, last, before),
                as_of=when,
                count=counts(info),
            )
        )
        ids = [p.program_id for p in page.items]
        nested = await read_nested(reads, ids, page.as_of_position, wanted)
    return connection(page, lambda p: ProgramType.of(p, nested))


@strawberry.type
class ProgramQueries:
    program: ProgramType | None = strawberry.field(
        resolver=_program,
        extensions=reader(),
        description="One program, with its risks, milestones and allocations." + AS_OF,
    )
    program_by_code: ProgramType | None = strawberry.field(
        resolver=_program_by_code,
        extensions=reader(),
        description="One program by its code, as program(id) does." + AS_OF,
    )
    programs: Connection[ProgramType] = strawberry.field(
        resolver=_programs, extensions=reader(), description="The portfolio." + AS_OF
    )
