"""Relay connections: the page every list field returns, over a read model's
:class:`~programledger.projections.engine.queries.Page`."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import strawberry

from programledger.api.graphql.types import SafeInt
from programledger.projections.engine.queries import Page

__all__ = ["Connection", "Edge", "PageInfo", "connection"]

N = TypeVar("N")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None = strawberry.field(
        description="Pass as ``before`` for the previous page; bound to the sort it came from."
    )
    end_cursor: str | None = strawberry.field(
        description="Pass as ``after`` for the next page; bound to the sort it came from."
    )


def _edge_cursor(root: strawberry.Parent[Any]) -> str:
    cursor: str = root.page.cursor(root.index)
    return cursor


@strawberry.type
class Edge(Generic[N]):
    cursor: str = strawberry.field(
        resolver=_edge_cursor,
        description="Pass as ``after`` to resume after this item, as ``before`` to page "
        "back from it; bound to its sort.",
    )
    node: N
    page: strawberry.Private[Page[Any]]
    index: strawberry.Private[int]


def _total_count(root: strawberry.Parent[Any]) -> int:
    """The count read with the page: lists are counted only when the operation selects
    ``totalCount`` (see ``reads.counts``), so a missing count here is a bug to report."""
    counted: int | None = root.counted
    if counted is None:
        raise RuntimeError("the list was read without its count")
    return counted


@strawberry.type(description="A page of a list (Relay connection), and the list's size.")
class Connection(Generic[N]):
    edges: list[Edge[N]]
    nodes: list[N]
    page_info: PageInfo
    total_count: int = strawberry.field(
        resolver=_total_count, description="Every row matching the filter."
    )
    as_of_position: SafeInt | None = strawberry.field(
        description="The global position the list was read at; null for current rows."
    )
    counted: strawberry.Private[int | None]
    """The list's size, read only when the operation selects ``totalCount``."""


def connection(page: Page[Any], convert: Any) -> Connection[Any]:
    """A connection over ``page``, each item converted; an edge's cursor is encoded only
    when the operation selects it."""
    nodes = [convert(item) for item in page.items]
    return Connection(
        edges=[Edge(node=n, page=page, index=i) for i, n in enumerate(nodes)],
        nodes=nodes,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.start_cursor,
            end_cursor=page.end_cursor,
        ),
        counted=page.total_count,
        as_of_position=None if page.as_of_position is None else SafeInt(page.as_of_position),
    )
