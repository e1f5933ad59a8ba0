"""Batched reads for nested fields, so a list of programs with their risks, milestones and
allocations costs a fixed number of SQL statements, however many programs it shows.

One :class:`ReadLoaders` is made per top-level field and handed to every object it
returns, together with the position the whole answer is read at: nested lists then show
the same moment as their parent (as of a position, or current rows), and the DataLoaders
collect every program id asked for in one execution tick into one query per read model.

The batch queries go through the projections' own query layer (``fetch_page`` with each
read model's ``ListSpec``); only the filter ``program_id = ANY(...)`` is built here, since
the read models' list functions take one program at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from strawberry.dataloader import DataLoader

from programledger.projections import allocations, milestones, risks
from programledger.projections.allocations import AllocationRow
from programledger.projections.milestones import MilestoneRow
from programledger.projections.queries import MAX_PAGE_SIZE, Filters, ListSpec, fetch_page
from programledger.projections.risks import RiskRow

__all__ = ["NESTED_LIMIT", "ReadLoaders"]

T = TypeVar("T")

NESTED_LIMIT = MAX_PAGE_SIZE
"""Rows one batch reads for all the parents it serves: a nested list is a summary, and a
parent with more than this many children is paged with the top-level field instead."""

_OVERDUE = ", (is_open AND coalesce(next_review_on < {}, false)) AS overdue"
"""As in ``projections.risks``: ``RiskRow.overdue`` is computed at read time."""


class ReadLoaders:
    """The per-answer DataLoaders, at one position (``None``: current rows)."""

    def __init__(self, pool: asyncpg.Pool, position: int | None) -> None:
        self.pool = pool
        self.position = position
        self.risks = DataLoader[UUID, list[RiskRow]](load_fn=self._risks)
        self.milestones = DataLoader[UUID, list[MilestoneRow]](load_fn=self._milestones)
        self.allocations = DataLoader[UUID, list[AllocationRow]](load_fn=self._allocations)

    async def _by_program(
        self,
        spec: ListSpec[T],
        program_ids: Sequence[UUID],
        sort: str,
        descending: bool,
        extra_select: str = "",
        extra_args: Sequence[Any] = (),
    ) -> list[list[T]]:
        filters = Filters()
        filters.any_of("program_id", program_ids, "uuid")
        page = await fetch_page(
            self.pool, spec, filters, sort=sort, descending=descending, first=NESTED_LIMIT,
            after=None, as_of=self.position, extra_select=extra_select, extra_args=extra_args,
        )  # fmt: skip
        grouped: defaultdict[UUID, list[T]] = defaultdict(list)
        for item in page.items:
            grouped[getattr(item, "program_id")].append(item)  # noqa: B009 - T has it
        return [grouped[p] for p in program_ids]

    async def _risks(self, program_ids: list[UUID]) -> list[list[RiskRow]]:
        today = datetime.now(UTC).date()
        return await self._by_program(risks.LIST, program_ids, "score", True, _OVERDUE, (today,))

    async def _milestones(self, program_ids: list[UUID]) -> list[list[MilestoneRow]]:
        return await self._by_program(
            milestones.MILESTONE_LIST, program_ids, "forecast_date", False
        )

    async def _allocations(self, program_ids: list[UUID]) -> list[list[AllocationRow]]:
        return await self._by_program(allocations.ALLOCATION_LIST, program_ids, "start_date", False)
