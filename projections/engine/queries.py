"""What every read-model query shares: "as of", filters, keyset pages and total counts.

Each read-model module defines its query functions (``list_programs``, ``heat_map``...)
on top of these. The rules they all follow:

- **Current or as of.** ``as_of=None`` reads current rows (``valid_to_pos IS NULL``,
  served by partial indexes). ``as_of=<position>`` reads the versions current at that
  global position, ``valid_from_pos <= P < valid_to_pos``, through a GiST index on the
  range (drawn as a point), so a whole list as of any moment is an index lookup, not a replay.
  ``as_of=<datetime>`` means what the system knew then: the last position recorded at or
  before it (recorded time never goes back in position order).
- **Pages.** Keyset pagination over a whitelisted sort key plus the table's key as
  tie-breaker, forward (``first``, ``after``) or backward (``last``, ``before``), and a
  total count when asked for, read in one snapshot so they agree. A page without a count
  is a single statement, with no transaction. Cursors are opaque and bound to their
  sort; a cursor from another sort is refused. A cursor carries the sort value as
  PostgreSQL writes it in text, so values Python cannot hold (``infinity``, the place of
  a missing date in a date order) resume exactly where they stood.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from programledger.projections.engine.core import Connection
from programledger.projections.engine.tables import SortKey, Table, current_at

__all__ = [
    "MAX_PAGE_SIZE",
    "AsOf",
    "Filters",
    "ListSpec",
    "Page",
    "Reader",
    "VersionedRow",
    "check_first",
    "decode_cursor",
    "encode_cursor",
    "fetch_by_key",
    "fetch_grouped",
    "fetch_one",
    "fetch_page",
    "resolve_position",
    "stamps_sql",
    "version_clause",
    "with_stamps",
]

T = TypeVar("T")

MAX_PAGE_SIZE = 500

AsOf = int | datetime | None
"""A global position, a recorded time (what was known then), or ``None`` for now."""


class Reader(Protocol):
    """Where queries get a connection: a pool, or anything lending one the same way (the
    API lends one connection to the statements of one resolver)."""

    def acquire(self) -> AbstractAsyncContextManager[Connection]: ...


class VersionedRow(msgspec.Struct, frozen=True, kw_only=True):
    """The transaction-time range in which a row version was current, and who made the
    entity and this version of it (see :func:`stamps_sql`)."""

    valid_from_pos: int
    valid_to_pos: int | None
    """``None``: still current (as of the query)."""
    valid_from_time: datetime
    """When this version was recorded: the entity's last change (as of the query)."""
    valid_to_time: datetime | None
    created_at: datetime | None = None
    """When the entity's first version was recorded. This and the stamps below are
    ``None`` when read without them (see :func:`with_stamps`)."""
    created_by: str | None = None
    """The actor of the event that made the first version."""
    updated_by: str | None = None
    """The actor of the event that made this version."""
    change: str | None = None
    """The type of the event that made this version."""
    change_reason: str | None = None
    """That event's ``reason``, else the reason its command gave (metadata)."""


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One page of a list (a Relay connection's content)."""

    items: list[T]
    total_count: int | None
    """``None``: not counted, because the caller did not ask."""
    has_next_page: bool
    end_cursor: str | None
    as_of_position: int | None
    """The position the list was read at; ``None`` for current rows."""
    has_previous_page: bool = False
    start_cursor: str | None = None
    positions: list[tuple[Any, ...]] = msgspec.field(default_factory=list)
    """Each item's place in the sort (its sort value and key), for :meth:`cursor`."""
    sort: str = ""
    descending: bool = False

    @classmethod
    def of(
        cls,
        items: list[T],
        positions: list[tuple[Any, ...]],
        *,
        total_count: int | None,
        has_next_page: bool,
        as_of_position: int | None,
        sort: str,
        descending: bool = False,
        has_previous_page: bool = False,
    ) -> Page[T]:
        """A page whose items sit at ``positions`` in the sort, its end cursors encoded."""
        return cls(
            items=items,
            total_count=total_count,
            has_next_page=has_next_page,
            has_previous_page=has_previous_page,
            start_cursor=encode_cursor(sort, descending, positions[0]) if positions else None,
            end_cursor=encode_cursor(sort, descending, positions[-1]) if positions else None,
            as_of_position=as_of_position,
            positions=positions,
            sort=sort,
            descending=descending,
        )

    def cursor(self, index: int) -> str:
        """The cursor that resumes after item ``index``: encoded only when asked for, as
        most clients page with ``end_cursor`` alone."""
        return encode_cursor(self.sort, self.descending, self.positions[index])


@dataclass(frozen=True, slots=True)
class ListSpec(Generic[T]):
    """How to list one table: the table (and so its sorts) and its row type."""

    table: Table
    convert: Callable[[dict[str, Any]], T]


class Filters:
    """WHERE clauses and their parameters, numbered as they are added."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def copy(self) -> Filters:
        copied = Filters()
        copied.clauses, copied.args = list(self.clauses), list(self.args)
        return copied

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def equals(self, column: str, value: Any) -> None:
        if value is not None:
            self.clauses.append(f"{column} = {self.param(value)}")

    def any_of(self, column: str, values: Sequence[Any] | None, sql_type: str) -> None:
        if values is not None:
            self.clauses.append(f"{column} = ANY({self.param(list(values))}::{sql_type}[])")

    def where(self, clause: str, *values: Any) -> None:
        """``clause`` with ``{}`` for each of ``values``."""
        self.clauses.append(clause.format(*(self.param(v) for v in values)))

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "true"


async def resolve_position(conn: Connection, as_of: AsOf) -> int | None:
    """The global position ``as_of`` stands for; ``None`` for the current state."""
    if as_of is None:
        return None
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise ValueError("as_of times must be timezone-aware")
        position = await conn.fetchval(
            "SELECT position FROM events WHERE recorded_at <= $1 "
            "ORDER BY recorded_at DESC, position DESC LIMIT 1",
            as_of,
        )
        return int(position or 0)
    if isinstance(as_of, bool) or not isinstance(as_of, int) or as_of < 0:
        raise ValueError(f"as_of must be a position >= 0 or a datetime, got {as_of!r}")
    return as_of


def version_clause(
    filters: Filters, position: int | None, table: Table, *, whole_list: bool = True
) -> None:
    """Restrict ``filters`` to the row versions current now, or at ``position``.

    Now: ``valid_to_pos IS NULL``, which every partial index of a table is built on. As
    of ``P``: ``valid_from_pos <= P < valid_to_pos``, offered to the range index for a
    ``whole_list`` (a count, a page in an order without its own index), and otherwise
    left to a btree that holds the range: a sort's ``_asof`` index, ``history`` for one
    key, ``program_history`` for one program's rows (see :func:`current_at`). An
    append-only table holds facts that never change: as of ``P``, those up to ``P``.
    """
    if not table.versioned:
        if position is not None:
            filters.where(f"{table.position_column} <= {{}}", position)
        return
    if position is None:
        filters.clauses.append("valid_to_pos IS NULL")
    else:
        filters.clauses.append(current_at(filters.param(position), whole_list=whole_list))


_STAMPS: ContextVar[bool] = ContextVar("programledger_read_stamps", default=True)


@contextlib.contextmanager
def with_stamps(wanted: bool) -> Iterator[None]:
    """Whether versioned rows read inside (by this task and the tasks it starts) carry
    their stamps (:func:`stamps_sql`); they do unless told otherwise. The API reads them
    only for an operation that selects one: they are five index lookups per row, which a
    dashboard of hundreds of rows would pay for nothing."""
    token = _STAMPS.set(wanted)
    try:
        yield
    finally:
        _STAMPS.reset(token)


def stamps_sql(table: Table) -> str:
    """The computed columns versioned rows are read with: when and by whom their entity
    was created (its first version), and by whom, with which event and why this version
    was made. Read from the store's own events by position (its primary key) and from the
    key's first version (the ``history`` index), so rebuilt tables read the same, and as
    of any moment (a first version is never later than the version read). Empty for an
    append-only table, or inside ``with_stamps(False)``."""
    if not table.versioned or not _STAMPS.get():
        return ""
    name = table.name
    match = " AND ".join(f"h.{c} = {name}.{c}" for c in table.key_names)
    first = f"FROM {name} h WHERE {match} ORDER BY h.valid_from_pos LIMIT 1"
    this = f"FROM events e WHERE e.position = {name}.valid_from_pos"
    return (
        f", (SELECT h.valid_from_time {first}) AS created_at"
        f", (SELECT e.metadata->>'actor' FROM events e WHERE e.position = "
        f"(SELECT h.valid_from_pos {first})) AS created_by"
        f", (SELECT e.metadata->>'actor' {this}) AS updated_by"
        f", (SELECT e.event_type {this}) AS change"
        f", (SELECT coalesce(e.data->>'reason', e.metadata->>'reason') {this}) AS change_reason"
    )


def encode_cursor(sort: str, descending: bool, values: Sequence[Any]) -> str:
    raw = msgspec.json.encode([sort, descending, *(_plain(v) for v in values)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | str) else str(value)


def decode_cursor(cursor: str, sort: str, descending: bool, size: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ValueError("the cursor is not one this API issued") from None
    if not isinstance(values, list) or len(values) != size + 2:
        raise ValueError("the cursor is not one this API issued")
    if values[0] != sort or values[1] is not descending:
        raise ValueError("the cursor belongs to another sort order; start from the first page")
    return [str(v) for v in values[2:]]


def check_first(first: int, name: str = "first") -> None:
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE_SIZE:
        raise ValueError(f"{name} must be between 1 and {MAX_PAGE_SIZE}, got {first!r}")


async def fetch_page(
    pool: Reader,
    spec: ListSpec[T],
    filters: Filters,
    *,
    sort: str,
    descending: bool,
    first: int,
    after: str | None,
    as_of: AsOf,
    extra_select: str = "",
    extra_args: Sequence[Any] = (),
    count: bool = True,
    last: int | None = None,
    before: str | None = None,
) -> Page[T]:
    """One page of ``spec.table`` matching ``filters``, and the total count if ``count``.

    Forward, the ``first`` rows after the cursor ``after``; backward (``last`` or
    ``before`` given), the ``last`` rows (``first`` if ``last`` is not given) before the
    cursor ``before``, in the list's order all the same. A page cannot go both ways.

    ``extra_select`` adds computed columns (``, expr AS name``), with ``{}`` for each of
    ``extra_args``. Without a count, and with ``as_of`` a position or ``None``, the page is
    one statement; otherwise the statements share one REPEATABLE READ snapshot, so the
    count, the page and the position a time stands for agree.
    """
    backward = last is not None or before is not None
    if backward and after is not None:
        raise ValueError("page forward (first, after) or backward (last, before), not both")
    size = last if last is not None else first
    check_first(size, "last" if last is not None else "first")
    table = spec.table
    key = table.sorts.get(sort)
    if key is None:
        raise ValueError(f"cannot sort by {sort!r}; choose one of {sorted(table.sorts)}")
    cursor = before if backward else after
    cursor_values = (
        None if cursor is None else decode_cursor(cursor, sort, descending, len(table.key) + 1)
    )
    several = count or isinstance(as_of, datetime)
    async with pool.acquire() as conn:
        snapshot = (
            conn.transaction(isolation="repeatable_read", readonly=True)
            if several
            else contextlib.nullcontext()
        )
        async with snapshot:
            position = await resolve_position(conn, as_of)
            total = None
            if count:
                counted = filters.copy()
                version_clause(counted, position, table)
                total = await _count(conn, table, counted)
            version_clause(filters, position, table, whole_list=not key.indexed)
            sql = _page_sql(
                table,
                filters,
                key,
                descending != backward,
                size,
                cursor_values,
                extra_select,
                extra_args,
                position,
            )
            rows = await conn.fetch(*sql)
    convert = spec.convert
    items: list[T] = []
    positions: list[tuple[Any, ...]] = []
    keys = table.key_names
    # Backward, the rows come nearest the cursor first: the page is them in reverse.
    for row in reversed(rows[:size]) if backward else rows[:size]:
        data = dict(row)
        positions.append((data.pop("sort_value__"), *(data[k] for k in keys)))
        items.append(convert(data))
    more = len(rows) > size
    return Page.of(
        items,
        positions,
        total_count=total,
        # Rows lie beyond a cursor the client holds: the one it came from, at least.
        has_next_page=more if not backward else before is not None,
        has_previous_page=more if backward else after is not None,
        as_of_position=position,
        sort=sort,
        descending=descending,
    )


async def fetch_grouped(
    pool: Reader,
    spec: ListSpec[T],
    column: str,
    keys: Sequence[Any],
    *,
    sort: str,
    descending: bool,
    as_of: int | None,
    extra_select: str = "",
    extra_args: Sequence[Any] = (),
) -> Mapping[Any, list[T]]:
    """The rows whose ``column`` is one of ``keys``, grouped by it, each group in the
    sort: the children of a page of parents in one statement, however many parents.
    At most :data:`MAX_PAGE_SIZE` rows in all, since a nested list is a summary and a
    parent with more children pages through its own list."""
    sql_type = next(c.type for c in (*spec.table.key, *spec.table.columns) if c.name == column)
    filters = Filters()
    filters.any_of(column, keys, sql_type)
    page = await fetch_page(
        pool,
        spec,
        filters,
        sort=sort,
        descending=descending,
        first=MAX_PAGE_SIZE,
        after=None,
        as_of=as_of,
        extra_select=extra_select,
        extra_args=extra_args,
        count=False,
    )
    grouped: defaultdict[Any, list[T]] = defaultdict(list)
    for item in page.items:
        grouped[getattr(item, column)].append(item)
    return grouped


async def fetch_by_key(
    pool: Reader,
    spec: ListSpec[T],
    keys: Sequence[Any],
    *,
    as_of: int | None,
    extra_select: str = "",
    extra_args: Sequence[Any] = (),
) -> Mapping[Any, T]:
    """The rows of ``keys`` (of a table keyed by one column) now or as of a position, by
    key, in one statement: the entities a page or a list of ids names."""
    column = spec.table.key_names[0]
    grouped = await fetch_grouped(
        pool,
        spec,
        column,
        sorted(set(keys), key=str),
        sort=next(iter(spec.table.sorts)),
        descending=False,
        as_of=as_of,
        extra_select=extra_select,
        extra_args=extra_args,
    )
    return {key: rows[0] for key, rows in grouped.items()}


async def _count(conn: Connection, table: Table, filters: Filters) -> int:
    total = await conn.fetchval(
        f"SELECT count(*) FROM {table.name} WHERE {filters.sql()}", *filters.args
    )
    return int(total)


def _page_sql(
    table: Table,
    filters: Filters,
    key: SortKey,
    descending: bool,
    first: int,
    cursor_values: list[str] | None,
    extra_select: str,
    extra_args: Sequence[Any],
    position: int | None,
) -> list[Any]:
    """The page's statement and its arguments (``filters`` already restricted to the
    versions to read), the rows in the order ``descending`` says from the cursor on; the
    sort value in text, as a cursor carries it."""
    keys = table.key_names
    direction = "DESC" if descending else "ASC"
    page_filters = filters.copy()
    if cursor_values is not None:
        left = ", ".join((key.expression, *keys))
        types = (key.sql_type, *(c.type for c in table.key))
        right = ", ".join(
            f"{page_filters.param(v)}::text::{t}" for v, t in zip(cursor_values, types, strict=True)
        )
        page_filters.clauses.append(f"({left}) {'<' if descending else '>'} ({right})")
    order = ", ".join(f"{c} {direction}" for c in (key.expression, *keys))
    extra = extra_select.format(*(page_filters.param(v) for v in extra_args)) + stamps_sql(table)
    columns = ", ".join(table.column_names)
    if position is None or not table.versioned:
        sql = (
            f"SELECT {columns}{extra}, ({key.expression})::text AS sort_value__ "
            f"FROM {table.name} WHERE {page_filters.sql()} ORDER BY {order} LIMIT {first + 1}"
        )
    else:
        # Keys first, from the sort's index alone (it holds each version's range), then
        # the rows of the page only.
        joined = ", ".join((*keys, "valid_from_pos"))
        outer = ", ".join(f"{c} {direction}" for c in ("sort_key__", *keys))
        sql = (
            f"WITH page AS (SELECT {joined}, {key.expression} AS sort_key__ "
            f"FROM {table.name} WHERE {page_filters.sql()} ORDER BY {order} "
            f"LIMIT {first + 1}) "
            f"SELECT {columns}{extra}, sort_key__::text AS sort_value__ FROM page "
            f"JOIN {table.name} USING ({joined}) ORDER BY {outer}"
        )
    return [sql, *page_filters.args]


async def fetch_one(
    pool: Reader,
    table: Table,
    convert: Callable[[dict[str, Any]], T],
    key: Sequence[Any],
    as_of: AsOf,
    *,
    extra_select: str = "",
    extra_args: Sequence[Any] = (),
) -> T | None:
    """The version of one row current now or as of ``as_of``; ``None`` if it had none.

    ``extra_select`` as for :func:`fetch_page`.
    """
    filters = Filters()
    extra = extra_select.format(*(filters.param(v) for v in extra_args)) + stamps_sql(table)
    for column, value in zip(table.key_names, key, strict=True):
        filters.equals(column, value)
    async with pool.acquire() as conn:
        version_clause(filters, await resolve_position(conn, as_of), table, whole_list=False)
        row = await conn.fetchrow(
            f"SELECT {', '.join(table.column_names)}{extra} FROM {table.name} "
            f"WHERE {filters.sql()}",
            *filters.args,
        )
    return None if row is None else convert(dict(row))
