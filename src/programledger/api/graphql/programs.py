"""The portfolio in GraphQL: ``program``, ``programByCode`` and ``programs``, over the
``programs`` read model, with each program's nested lists (risks, milestones,
allocations, decisions, lessons, dependencies both ways).

The nested lists are read in batches, so a page of programs with its nested lists costs a
fixed number of SQL statements, however many programs it shows. The field that returns
programs looks ahead in the operation for the nested lists it selects and reads each of
them for all its programs at once (each read model's ``*_of_programs``), at the position
the programs were read at: nested lists show the same moment as their parent, as of a
position or current. The nested fields then resolve from memory, synchronously (a
DataLoader would cost, for each nested field of each program, a future and an
asynchronous resolver, for the same statements). A program reached through a link (a
risk's ``program``...) is read by :data:`PROGRAM`, with the nested lists selected under
the link.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

import strawberry

from programledger.api.graphql.allocations import AllocationType
from programledger.api.graphql.connections import Connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.decisions import DecisionType, LessonType
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.links import Link, linked
from programledger.api.graphql.milestones import MILESTONE, DependencyType, MilestoneType
from programledger.api.graphql.node import Node, global_id
from programledger.api.graphql.reads import (
    AS_OF,
    Convert,
    an_id,
    enum_filter,
    listing,
    lookup,
    read_field,
    selected,
    values,
)
from programledger.api.graphql.risks import RiskType
from programledger.api.graphql.types import MoneyType, SafeInt
from programledger.domain.program import Health, ProgramStatus
from programledger.projections import allocations, decisions, milestones, programs, risks
from programledger.projections.engine.queries import Reader
from programledger.projections.programs import ProgramRow

__all__ = [
    "NESTED_LISTS",
    "PROGRAM",
    "ProgramFilter",
    "ProgramQueries",
    "ProgramSort",
    "ProgramType",
    "nested_lists",
    "with_nested",
]

R = TypeVar("R")

_NESTED_READS: Mapping[str, Callable[..., Awaitable[Mapping[UUID, list[Any]]]]] = {
    "risks": risks.risks_of_programs,
    "milestones": milestones.milestones_of_programs,
    "allocations": allocations.allocations_of_programs,
    "decisions": decisions.decisions_of_programs,
    "lessons": decisions.lessons_of_programs,
    "dependencies": milestones.dependencies_of_programs,
    "dependents": milestones.dependencies_on_programs,
}
"""Each nested list of a program: its GraphQL name, and the read model's query reading
it for many programs in one statement."""

NESTED_LISTS = tuple(_NESTED_READS)
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
    """The nested lists of the programs of one answer: by list name, then by program id.
    A list the operation does not select was not read, and is missing."""

    lists: Mapping[str, Mapping[UUID, list[Any]]] = field(default_factory=dict)


async def read_nested(
    reads: Reader, program_ids: Sequence[UUID], position: int | None, wanted: set[str]
) -> NestedRows:
    """The ``wanted`` nested lists of ``program_ids``, one statement per list."""
    found: dict[str, Mapping[UUID, list[Any]]] = {}
    for name in NESTED_LISTS:
        if name in wanted:
            found[name] = (
                await _NESTED_READS[name](reads, program_ids, as_of=position) if program_ids else {}
            )
    return NestedRows(found)


def nested_lists(info: ApiInfo, *paths: Sequence[str]) -> set[str]:
    """The nested lists selected on the programs this field returns (at ``paths`` inside
    it, or itself)."""
    paths = paths or ((),)
    found = set().union(*(selected(info, path) for path in paths))
    return found.intersection(NESTED_LISTS)


async def with_nested(
    info: ApiInfo,
    reads: Reader,
    rows: Sequence[ProgramRow],
    at: int | None,
    paths: Sequence[Sequence[str]],
) -> Convert:
    """Programs are prepared (:data:`~reads.Prepare`) by reading their selected nested
    lists, at the programs' position."""
    ids = [row.program_id for row in rows]
    nested = await read_nested(reads, ids, at, nested_lists(info, *paths))
    return lambda row, at: ProgramType.of(row, nested, at)


def _nested(root: ProgramType, name: str, convert: Callable[[Any, int | None], R]) -> list[R]:
    rows = root.nested.lists.get(name)
    if rows is None:
        # The field returning programs reads the nested lists its selection names; one
        # missing here means the selection was misread: fail rather than answer "none".
        raise RuntimeError(f"the nested list {name} was selected but not read")
    return [convert(row, root.at) for row in rows.get(root.key, [])]


def _nested_list(convert: Callable[[Any, int | None], Any], description: str) -> Any:
    """A nested list's field (its name, one of :data:`NESTED_LISTS`), its rows converted
    as of the program's moment."""

    def resolve(root: strawberry.Parent[ProgramType], info: ApiInfo) -> list[Any]:
        return _nested(root, info.python_name, convert)

    return strawberry.field(resolver=resolve, description=description)


def _next_milestone(root: strawberry.Parent[ProgramType], info: ApiInfo) -> Any:
    if root.next_milestone_id is None:
        return None
    return MILESTONE.load(info, root.at, UUID(root.next_milestone_id))


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
    next_milestone: MilestoneType | None = strawberry.field(
        resolver=_next_milestone, description=linked("The next milestone due")
    )
    version: int = strawberry.field(description="The expectedVersion for the next command.")
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )
    key: strawberry.Private[UUID]
    nested: strawberry.Private[NestedRows]
    at: strawberry.Private[int | None]

    risks: list[RiskType] = _nested_list(
        RiskType.of,
        "The program's risks, highest score first (at most 500).",
    )
    milestones: list[MilestoneType] = _nested_list(
        MilestoneType.of,
        "The program's milestones by forecast date (at most 500).",
    )
    allocations: list[AllocationType] = _nested_list(
        AllocationType.of,
        "People's time on the program by start date (at most 500).",
    )
    decisions: list[DecisionType] = _nested_list(
        DecisionType.of,
        "The program's decision log, latest first (at most 500).",
    )
    lessons: list[LessonType] = _nested_list(
        LessonType.of,
        "The program's lessons learned, latest first (at most 500).",
    )
    dependencies: list[DependencyType] = _nested_list(
        DependencyType.of,
        "What the program's items wait on, by needed-by date (at most 500).",
    )
    dependents: list[DependencyType] = _nested_list(
        DependencyType.of,
        "Dependencies (of any program) waiting on this program's items, by "
        "needed-by date (at most 500).",
    )

    @staticmethod
    def of(p: ProgramRow, nested: NestedRows, at: int | None) -> ProgramType:
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
            at=at,
        )


async def _programs_for_links(
    reads: Reader, keys: Sequence[tuple[frozenset[str], UUID]], at: int | None
) -> Mapping[tuple[frozenset[str], UUID], ProgramType]:
    """Programs reached through links, with the nested lists selected under each link:
    one statement for the programs, and one per nested list."""
    rows = await programs.programs_by_id(reads, [key for _, key in keys], as_of=at)
    found: dict[tuple[frozenset[str], UUID], ProgramType] = {}
    for wanted in {wanted for wanted, _ in keys}:
        ids = [key for w, key in keys if w == wanted and key in rows]
        nested = await read_nested(reads, ids, at, set(wanted))
        found.update({(wanted, key): ProgramType.of(rows[key], nested, at) for key in ids})
    return found


PROGRAM: Link[tuple[frozenset[str], UUID], ProgramType | None] = Link(
    "program", _programs_for_links, None
)
"""A program by (the nested lists selected under the link, its id)."""


def _program_filters(filter: ProgramFilter | None = None) -> dict[str, Any]:
    f = filter or ProgramFilter()
    return {
        "status": values(f.status),
        "health": values(f.health),
        "priority": f.priority,
        "owner": f.owner,
    }


def _program_id(id: strawberry.ID) -> UUID:
    return an_id(id, "id")


def _code(code: str) -> str:
    return code


_program = lookup(programs.get_program, with_nested, _program_id)


_program_by_code = lookup(programs.get_program_by_code, with_nested, _code)


_programs = listing(
    programs.list_programs,
    with_nested,
    _program_filters,
    ProgramSort.CODE,
    descending=False,
)


@strawberry.type
class ProgramQueries:
    program: ProgramType | None = read_field(
        _program, "One program, with its nested lists." + AS_OF
    )
    program_by_code: ProgramType | None = read_field(
        _program_by_code, "One program by its code, as program(id) does." + AS_OF
    )
    programs: Connection[ProgramType] = read_field(_programs, "The portfolio." + AS_OF)
