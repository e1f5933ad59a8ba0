"""A program's nested lists (risks, milestones, allocations), read in batches, so a page
of programs with its nested lists costs a fixed number of SQL statements, however many
programs it shows.

The field that returns programs (``program``, ``programs``) looks ahead in the operation
for the nested lists it selects and reads each of them for all its programs at once
(``program_id = ANY(...)``), at the position the programs were read at: nested lists show
the same moment as their parent, as of a position or current. The nested fields then
resolve from memory, synchronously. Batching by DataLoader would cost, for each nested
field of each program, a future, a batch task and an asynchronous resolver, for the same
statements.

The batch queries go through the projections' own query layer (``fetch_page`` with each
read model's ``ListSpec``); only the filter ``program_id = ANY(...)`` is built here, since
the read models' list functions take one program at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from programledger.projections import allocations, milestones, risks
from programledger.projections.allocations import AllocationRow
from programledger.projections.engine.queries import (
    MAX_PAGE_SIZE,
    Filters,
    ListSpec,
    Reader,
    fetch_page,
)
from programledger.projections.milestones import MilestoneRow
from programledger.projections.risks import RiskRow

__all__ = ["NESTED_LIMIT", "NESTED_LISTS", "NestedRows", "read_nested"]

T = TypeVar("T")

NESTED_LIMIT = MAX_PAGE_SIZE
"""Rows one batch reads for all the programs it serves: a nested list is a summary, and a
program with more than this many children is paged with the top-level field instead."""

NESTED_LISTS = ("risks", "milestones", "allocations")
"""The GraphQL names of a program's nested lists."""

_OVERDUE = ", (is_open AND coalesce(next_review_on < {}, false)) AS overdue"
"""As in ``projections.risks``: ``RiskRow.overdue`` is computed at read time."""


@dataclass(frozen=True, slots=True)
class NestedRows:
    """The nested lists of the programs of one answer, by program id; ``None`` for a list
    the operation does not select, which was therefore not read."""

    risks: Mapping[UUID, list[RiskRow]] | None = None
    milestones: Mapping[UUID, list[MilestoneRow]] | None = None
    allocations: Mapping[UUID, list[AllocationRow]] | None = None


async def read_nested(
    reads: Reader, program_ids: Sequence[UUID], position: int | None, wanted: Collection[str]
) -> NestedRows:
    """The ``wanted`` nested lists of ``program_ids``, one statement per list."""
    if not program_ids or not wanted:
        return NestedRows(
            risks={} if "risks" in wanted else None,
            milestones={} if "milestones" in wanted else None,
            allocations={} if "allocations" in wanted else None,
        )
    found: dict[str, Mapping[UUID, list[Any]]] = {}
    if "risks" in wanted:
        today = datetime.now(UTC).date()
        found["risks"] = await _by_program(
            reads, risks.LIST, program_ids, position, "score", True, _OVERDUE, (today,)
        )
    if "milestones" in wanted:
        found["milestones"] = await _by_program(
            reads, milestones.MILESTONE_LIST, program_ids, position, "forecast_date", False
        )
    if "allocations" in wanted:
        found["allocations"] = await _by_program(
            reads, allocations.ALLOCATION_LIST, program_ids, position, "start_date", False
        )
    return NestedRows(**found)


async def _by_program(
    reads: Reader,
    spec: ListSpec[T],
    program_ids: Sequence[UUID],
    position: int | None,
    sort: str,
    descending: bool,
    extra_select: str = "",
    extra_args: Sequence[Any] = (),
) -> Mapping[UUID, list[T]]:
    filters = Filters()
    filters.any_of("program_id", program_ids, "uuid")
    page = await fetch_page(
        reads,
        spec,
        filters,
        sort=sort,
        descending=descending,
        first=NESTED_LIMIT,
        after=None,
        as_of=position,
        extra_select=extra_select,
        extra_args=extra_args,
        count=False,
    )
    grouped: defaultdict[UUID, list[T]] = defaultdict(list)
    for item in page.items:
        grouped[getattr(item, "program_id")].append(item)  # noqa: B009 - T has it
    return grouped
