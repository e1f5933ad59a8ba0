"""What every read field shares: its connection, its arguments (as-of, ids, paging), the
selection it looks ahead at, and its role checks.

Each read model's GraphQL module (``programs``, ``risks``, ``raid``, ``milestones``,
``decisions``, ``allocations``, ``audit``) declares its types, filters, sorts and
resolvers on top of these, and calls its read model's query functions for every row it
shows: no SQL is written in the API, so the code it runs is the code the projection tests
cover. Its single lookups and plain list fields are built by :func:`lookup` and
:func:`listing` from the read model's query and a typed function of the field's own
arguments; the arguments every such field shares (as-of, paging, sort) are added here, in
one order.

One connection per resolver: taking a connection from the pool and giving it back is not
free. A program and its nested lists are four statements, run one after the other by one
resolver: they share one connection rather than take four. The connection is
held only while that resolver runs, never while it waits for another connection, so
requests cannot starve the pool by each holding one and waiting for a second.
"""

from __future__ import annotations

import contextlib
import inspect
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from enum import Enum
from inspect import Parameter
from typing import Any, get_type_hints
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
from programledger.api.graphql.types import SafeInt
from programledger.projections.engine.core import Connection as DatabaseConnection
from programledger.projections.engine.queries import AsOf, Page, Reader, resolve_position

__all__ = [
    "AS_OF",
    "DEFAULT_PAGE",
    "Convert",
    "Prepare",
    "an_id",
    "auditor",
    "bad_input",
    "counts",
    "enum_argument",
    "enum_filter",
    "list_page",
    "listing",
    "lookup",
    "moment",
    "one_connection",
    "paging",
    "plain",
    "position_of",
    "read",
    "read_field",
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


def read_field(resolver: Callable[..., Any], description: str) -> Any:
    """A query field any reader may read (the READ capability)."""
    return strawberry.field(resolver=resolver, extensions=reader(), description=description)


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


Convert = Callable[[Any, int | None], Any]
"""A read model's row, and the position it was read at, as its GraphQL object."""

Prepare = Callable[
    [ApiInfo, Reader, Sequence[Any], int | None, Sequence[Sequence[str]]], Awaitable[Convert]
]
"""What a field does with the rows it read before converting them: read what their
selected nested lists need (at ``paths`` inside the field), on the same connection and at
the same position, and return the conversion. See :func:`plain`."""


def plain(convert: Convert) -> Prepare:
    """The :data:`Prepare` of rows that need nothing more read: ``convert`` them."""

    async def prepare(
        info: ApiInfo,
        reads: Reader,
        rows: Sequence[Any],
        at: int | None,
        paths: Sequence[Sequence[str]],
    ) -> Convert:
        return convert

    return prepare


def _parameter(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> Parameter:
    return Parameter(name, Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_INFO = Parameter("info", Parameter.POSITIONAL_OR_KEYWORD, annotation=strawberry.Info)
_AS_OF = (
    _parameter("as_of", datetime | None, None),
    _parameter("as_of_position", SafeInt | None, None),
)
_PAGING = (
    _parameter("first", int | None, None),
    _parameter("after", str | None, None),
    _parameter("last", int | None, None),
    _parameter("before", str | None, None),
)
_ONE = ((),)
_LISTED = (("nodes",), ("edges", "node"))


def _resolver(
    parameters: Sequence[Parameter], run: Callable[[ApiInfo, dict[str, Any]], Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """A resolver with the signature strawberry reads its arguments from, each argument
    given to ``run`` by name, defaults filled in."""
    signature = inspect.Signature([_INFO, *parameters])

    async def resolve(info: ApiInfo, **given: Any) -> Any:
        bound = signature.bind(info, **given)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["info"]
        return await run(info, arguments)

    resolve.__signature__ = signature  # type: ignore[attr-defined]
    return resolve


def _arguments_of(function: Callable[..., Any]) -> list[Parameter]:
    """``function``'s parameters as keyword arguments, their annotations resolved (the
    feature modules postpone them), for a resolver built around it."""
    hints = get_type_hints(function, include_extras=True)
    return [
        p.replace(kind=Parameter.KEYWORD_ONLY, annotation=hints[p.name])
        for p in inspect.signature(function).parameters.values()
    ]


async def position_of(reads: Reader, when: AsOf) -> int | None:
    """The position ``when`` stands for, so a field and the links below it read one
    moment (a time is resolved once, not once per statement)."""
    if not isinstance(when, datetime):
        return when
    async with reads.acquire() as conn:
        position: int | None = await read(resolve_position(conn, when))
    return position


async def _read_one(
    info: ApiInfo,
    find: Callable[..., Awaitable[Any]],
    prepare: Prepare,
    key: Any,
    when: AsOf,
) -> Any:
    """The GraphQL object of the row ``find`` reads for ``key`` as of ``when``, prepared at
    the position read (the links below it read that moment too); ``None`` if none."""
    async with one_connection(info.context.services.pool) as reads:
        at = await position_of(reads, when)
        row = await read(find(reads, key, as_of=at))
        if row is None:
            return None
        convert = await prepare(info, reads, [row], at, _ONE)
    return convert(row, at)


def lookup(
    find: Callable[..., Awaitable[Any]],
    prepare: Prepare,
    key: Callable[..., Any],
) -> Callable[..., Awaitable[Any]]:
    """The resolver of a single lookup (``risk(id)``, ``resource(resourceKey)``...): the
    argument of ``key`` (its one parameter, named and typed as the field's argument),
    ``key``'s result passed to the read model's ``find`` as of the moment asked for, the
    row prepared and converted; ``None`` when there is no such row."""

    async def run(info: ApiInfo, arguments: dict[str, Any]) -> Any:
        when = moment(arguments.pop("as_of"), arguments.pop("as_of_position"))
        return await _read_one(info, find, prepare, key(**arguments), when)

    return _resolver([*_arguments_of(key), *_AS_OF], run)


def listing(
    query: Callable[..., Awaitable[Page[Any]]],
    prepare: Prepare,
    filters: Callable[..., Mapping[str, Any]],
    order_by: Enum,
    *,
    descending: bool,
) -> Callable[..., Awaitable[Connection[Any]]]:
    """The resolver of a plain list field: the arguments of ``filters`` (named and typed
    as the field's), then ``orderBy`` (default ``order_by``), ``descending``, the Relay
    paging arguments and the as-of pair. It reads the read model's ``query`` with the
    filter arguments ``filters`` makes of them, the client's sort and page (see
    :func:`paging`), the total only when selected, and the query's ``ValueError`` (bad
    cursor, bad range) as bad input; the rows are prepared at the page's position."""
    sort = _parameter("order_by", type(order_by), order_by)
    direction = _parameter("descending", bool, descending)

    async def run(info: ApiInfo, arguments: dict[str, Any]) -> Connection[Any]:
        when = moment(arguments.pop("as_of"), arguments.pop("as_of_position"))
        pages = paging(*(arguments.pop(name) for name in ("first", "after", "last", "before")))
        order: Enum = arguments.pop("order_by")
        backward: bool = arguments.pop("descending")
        wanted = filters(**arguments)
        async with one_connection(info.context.services.pool) as reads:
            page = await read(
                query(
                    reads,
                    **wanted,
                    sort=order.value,
                    descending=backward,
                    **pages,
                    as_of=when,
                    count=counts(info),
                )
            )
            at = page.as_of_position
            convert = await prepare(info, reads, page.items, at, _LISTED)
        return connection(page, lambda row: convert(row, at))

    return _resolver([*_arguments_of(filters), sort, direction, *_PAGING, *_AS_OF], run)


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
    """The page of a list field whose rows need their position to convert (a resolver
    :func:`listing` cannot build): the read model's ``query`` with the field's filters, the
    client's sort and ``pages`` (see :func:`paging`), the total only when selected, and the
    query's ``ValueError`` (bad cursor, bad range) as bad input."""
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
