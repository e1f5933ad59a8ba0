"""What every read field shares: its connection, its arguments (as-of, ids, paging), the
selection it looks ahead at, and its role checks.

Each read model's GraphQL module (``programs``, ``risks``, ``milestones``, ``decisions``,
``allocations``, ``audit``) declares its types, filters, sorts and resolvers on top of
these, and calls its read model's query functions for every row it shows: no SQL is
written in the API, so the code it runs is the code the projection tests cover.

One connection per resolver: taking a connection from the pool and giving it back costs a
round trip of its own (the pool resets the session on release), as much as a small query.
A program and its nested lists are four statements, run one after the other by one
resolver: they share one connection rather than take and reset four. The connection is
held only while that resolver runs, never while it waits for another connection, so
requests cannot starve the pool by each holding one and waiting for a second.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import asyncpg
import strawberry
from graphql import FieldNode, FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode
from graphql.language import SelectionSetNode
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.extensions.field_extension import FieldExtension

from programledger.api.auth import Capability
from programledger.api.graphql.connections import Connection, connection
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.inputs import domain_enum
from programledger.api.graphql.permissions import allowed
from programledger.projections.engine.core import Connection as DatabaseConnection
from programledger.projections.engine.queries import AsOf, Page, resolve_position

__all__ = [
    "AS_OF",
    "DEFAULT_PAGE",
    "an_id",
    "auditor",
    "bad_input",
    "counts",
    "enum_argument",
    "enum_filter",
    "list_page",
    "moment",
    "one_connection",
    "paging",
    "position_of",
    "read",
    "reader",
    "selected",
    "uuid",
    "values",
]

DEFAULT_PAGE = 50

AS_OF = " asOf, asOfPosition: as it was then."
"""The end of the description of every field that reads the past."""


class _Lent:
    """A :class:`~programledger.projections.engine.queries.Reader` over one connection, for
    statements run one after the other."""

    def __init__(self, connection: DatabaseConnection) -> None:
        self._connection = connection

    def acquire(self) -> contextlib.nullcontext[DatabaseConnection]:
        return contextlib.nullcontext(self._connection)


@contextlib.asynccontextmanager
async def one_connection(pool: asyncpg.Pool) -> AsyncIterator[_Lent]:
    async with pool.acquire() as lent:
        yield _Lent(lent)


def reader() -> list[FieldExtension]:
    return [allowed(Capability.READ)]


def auditor() -> list[FieldExtension]:
    return [allowed(Capability.AUDIT)]


def bad_input(message: str) -> StrawberryGraphQLError:
    return StrawberryGraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def moment(at: datetime | None, position: int | None) -> AsOf:
    """The moment to read at. Whoever may read the data now may read it as it was (a
    "last week" view is a frontend feature); how it came to be (history, the audit
    trail) is the auditor's question, asked through fields of its own."""
    if at is None and position is None:
        return None
    if at is not None and position is not None:
        raise bad_input("give asOf or asOfPosition, not both")
    if at is not None:
        if at.tzinfo is None:
            raise bad_input("asOf needs a time zone offset")
        return at
    assert position is not None
    if position < 0:
        raise bad_input("asOfPosition must be 0 or more")
    return position


async def position_of(info: ApiInfo, when: AsOf) -> int | None:
    """The one position an entity and its nested lists are read at: a time is resolved
    once, so the nested lists show the moment their parent shows."""
    if not isinstance(when, datetime):
        return when
    async with (
        one_connection(info.context.services.pool) as reads,
        reads.acquire() as conn,
    ):
        return await resolve_position(conn, when)


def uuid(value: str | None, name: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise bad_input(f"{name} is not a UUID: {value!r}") from None


def paging(
    first: int | None, after: str | None, last: int | None, before: str | None
) -> dict[str, Any]:
    """A list field's Relay arguments as its read model's query takes them: forward
    (``first``, ``after``; ``first`` 50 when neither size is given) or backward (``last``,
    ``before``), never both ways in one page."""
    if first is not None and last is not None:
        raise bad_input("give first or last, not both")
    if after is not None and (last is not None or before is not None):
        raise bad_input("after pages forward (with first), before backward (with last)")
    if before is not None and first is not None:
        raise bad_input("after pages forward (with first), before backward (with last)")
    return {
        "first": DEFAULT_PAGE if first is None else first,
        "after": after,
        "last": last,
        "before": before,
    }


def _enum_type(domain: type[Enum], many: bool) -> Any:
    inner = domain_enum(domain)
    return (types.GenericAlias(list, (inner,)) if many else inner) | None


def enum_filter(domain: type[Enum]) -> Any:
    """A filter field on the values of ``domain``: an optional list of its GraphQL enum,
    so a typo is a validation error, not an empty answer. Read with :func:`values`."""
    return strawberry.field(default=None, graphql_type=_enum_type(domain, True))


def enum_argument(domain: type[Enum], *, many: bool = True) -> Any:
    """As :func:`enum_filter`, for an argument (``Annotated[..., enum_argument(...)]``):
    a list of the enum's values, or one (``many=False``)."""
    return strawberry.argument(graphql_type=_enum_type(domain, many))


def values(members: Sequence[Enum] | None) -> list[Any] | None:
    """The values of an enum filter, as the read models store them."""
    return None if members is None else [m.value for m in members]


def an_id(value: str, name: str) -> UUID:
    """As :func:`uuid`, for an argument that must be given."""
    found = uuid(value, name)
    assert found is not None
    return found


async def read(call: Any) -> Any:
    """Await a read-model query; its ValueErrors (bad cursor, bad range) are the client's."""
    try:
        return await call
    except ValueError as exc:
        raise bad_input(str(exc)) from None


async def list_page(
    info: ApiInfo,
    query: Callable[..., Awaitable[Page[Any]]],
    convert: Callable[[Any], Any],
    when: AsOf,
    order_by: Enum,
    descending: bool,
    pages: Mapping[str, Any],
    **filters: Any,
) -> Connection[Any]:
    """The page every plain list field answers with: the read model's ``query`` with the
    field's filters, the client's sort and ``pages`` (see :func:`paging`), the total only
    when selected, and the
    query's ``ValueError`` (bad cursor, bad range) as bad input. ``when`` is checked by
    the caller first, so a reader asking for the past is refused before its filters are
    read."""
    page = await read(
        query(
            info.context.services.pool,
            **filters,
            sort=order_by.value,
            descending=descending,
            **pages,
            as_of=when,
            count=counts(info),
        )
    )
    return connection(page, convert)


def _subfields(
    selections: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    """The fields of a selection set, inside fragments too. ``@skip``/``@include`` are not
    evaluated, so a field that may be asked for counts as asked."""
    if selections is None:
        return
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _subfields(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:  # validation refused unknown and cyclic fragments
                yield from _subfields(fragment.selection_set, fragments)


def selected(info: ApiInfo, path: Sequence[str]) -> set[str]:
    """The names of the fields selected at ``path`` inside this field (aliases do not
    matter). Read off the document itself: strawberry's ``selected_fields`` would convert
    the whole selection below this field first."""
    raw = info._raw_info
    fields: list[FieldNode] = list(raw.field_nodes)
    for step in path:
        fields = [
            found
            for field in fields
            for found in _subfields(field.selection_set, raw.fragments)
            if found.name.value == step
        ]
    return {
        found.name.value
        for field in fields
        for found in _subfields(field.selection_set, raw.fragments)
    }


def counts(info: ApiInfo, *path: str) -> bool:
    """Whether the operation selects ``totalCount`` of the connection this field returns
    (or of the one at ``path`` inside it): counting a list reads all of its rows, which a
    page alone does not."""
    return "totalCount" in selected(info, path)
