"""Read-model tables: their columns, keys and indexes, and the DDL made from them.

Every versioned table has, besides its key and columns, the transaction-time range in
which each row version was current: ``valid_from_pos``/``valid_to_pos`` (global
positions; ``NULL`` = still current) and ``valid_from_time``/``valid_to_time`` (recorded
times). Three indexes come with it: the current version of each key (unique, partial),
the versions of a key in order (single entity as of), and a GiST index on the position
range drawn as a point (whole lists as of, see :data:`RANGE_POINT`). An append-only
table (the audit trail) has one row per event and is read "as of" through its position
column.

Each order a table offers lists in (:class:`SortKey`) gets two btree indexes: the current
rows in that order (partial), for pages of now; and every version in that order with
its position range included, so a page as of any position is read from that index alone,
stopping at the page's last row, and only the rows on it are fetched from the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "CURRENT",
    "OPEN_END",
    "RANGE_POINT",
    "VERSION_COLUMNS",
    "Column",
    "Index",
    "SortKey",
    "Table",
    "current_at",
]

CURRENT = "valid_to_pos IS NULL"
"""The WHERE clause of a partial index over current rows only."""

OPEN_END = "9.2e18"
"""The ``valid_to_pos`` of a current version, as a coordinate beyond every position."""

RANGE_POINT = f"point(valid_from_pos, coalesce(valid_to_pos::float8, {OPEN_END}))"
"""A version's position range as the point (from, to).

"Current at ``P``" (``from <= P < to``) is then the quadrant of points left of and above
``P``, which a GiST index on points answers like one on ranges, and PostgreSQL builds a
point index by sorting: a rebuild's range index took 1.6 s for 74,000 versions, the point
index 0.15 s. Positions stay exact in a float8 up to 2**53."""


def current_at(placeholder: str, *, whole_list: bool = True) -> str:
    """The condition "current at the position in ``placeholder``".

    Two forms of it, both always true together: the column comparisons, which the
    planner estimates from statistics and a btree holding the range (a sort's ``_asof``
    index, ``history``) checks; and, for ``whole_list``, the quadrant the range index
    answers. The planner has no statistics for points and guesses 0.1 % of the rows for
    the quadrant, so a page walking a sort's index must not be offered it: the guess
    would win over the walk for any list.
    """
    at = f"{placeholder}::bigint"
    columns = f"valid_from_pos <= {at} AND (valid_to_pos IS NULL OR valid_to_pos > {at})"
    if not whole_list:
        return columns
    quadrant = f"{RANGE_POINT} <@ box(point(-1, {at} + 0.5), point({at}, {OPEN_END}))"
    return f"{columns} AND {quadrant}"


VERSION_COLUMNS = ("valid_from_pos", "valid_to_pos", "valid_from_time", "valid_to_time")


class Column(NamedTuple):
    name: str
    type: str
    """The SQL type, e.g. ``uuid``, ``text[]``."""
    not_null: bool = False


class Index(NamedTuple):
    suffix: str
    """The index is named ``<table>_<suffix>``."""
    definition: str
    """What follows ``ON <table>``: ``(a, b)`` or ``USING gist (...)``."""
    where: str | None = None
    unique: bool = False


@dataclass(frozen=True, slots=True)
class SortKey:
    expression: str
    """A SQL expression that is never NULL (wrap nullable columns in ``coalesce``)."""
    sql_type: str
    indexed: bool = True
    """Orders rarely used stay unindexed (pages in them are sorted by the query): every
    index costs every write and every rebuild."""


@dataclass(frozen=True, slots=True, eq=False)
class Table:
    """A read-model table; ``name`` is the live name, a rebuild uses ``name__rebuild``."""

    name: str
    key: tuple[Column, ...]
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...] = ()
    versioned: bool = True
    position_column: str | None = None
    """For an append-only table: the column holding the event's position ("as of")."""
    sorts: Mapping[str, SortKey] = field(default_factory=dict)
    """The orders lists of this table can be read in, by name; the key breaks ties."""

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.key)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column in the order of the records :class:`Applier` writes."""
        names = (*self.key_names, *(c.name for c in self.columns))
        return (*names, *VERSION_COLUMNS) if self.versioned else names

    @property
    def column_types(self) -> tuple[str, ...]:
        """The SQL type of each of :attr:`column_names`."""
        types = tuple(c.type for c in (*self.key, *self.columns))
        if self.versioned:
            return (*types, "bigint", "bigint", "timestamptz", "timestamptz")
        return types

    def create_sql(self, name: str) -> str:
        lines = [
            f"{c.name} {c.type}{' NOT NULL' if c.not_null else ''}"
            for c in (*self.key, *self.columns)
        ]
        if self.versioned:
            lines += [
                "valid_from_pos bigint NOT NULL",
                "valid_to_pos bigint",
                "valid_from_time timestamptz NOT NULL",
                "valid_to_time timestamptz",
                "CHECK (valid_to_pos IS NULL OR valid_to_pos > valid_from_pos)",
            ]
        body = ",\n    ".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {name} (\n    {body}\n)"

    def essential_indexes(self) -> tuple[Index, ...]:
        """Needed while writing: the current version of a key is found (and kept unique)
        through it."""
        keys = ", ".join(self.key_names)
        if self.versioned:
            return (Index("current", f"({keys})", CURRENT, unique=True),)
        return (Index("key", f"({keys})", unique=True),)

    def secondary_indexes(self) -> tuple[Index, ...]:
        """Needed by queries only, so a rebuild creates them after its bulk load."""
        if not self.versioned:
            return self.indexes
        keys = ", ".join(self.key_names)
        versions = "INCLUDE (valid_from_pos, valid_to_pos)"
        ordered = []
        for name, sort in self.sorts.items():
            if not sort.indexed:
                continue
            ordered.append(Index(f"by_{name}", f"(({sort.expression}), {keys})", CURRENT))
            ordered.append(Index(f"by_{name}_asof", f"(({sort.expression}), {keys}) {versions}"))
        # With the range's ends included, a count as of a position reads the index only.
        asof = Index("asof", f"USING gist (({RANGE_POINT})) {versions}")
        return (
            Index("history", f"({keys}, valid_from_pos)"),
            asof,
            *ordered,
            *self.indexes,
        )

    def all_indexes(self) -> tuple[Index, ...]:
        return (*self.essential_indexes(), *self.secondary_indexes())

    @staticmethod
    def index_sql(name: str, index: Index) -> str:
        unique = "UNIQUE " if index.unique else ""
        where = f" WHERE {index.where}" if index.where else ""
        return (
            f"CREATE {unique}INDEX IF NOT EXISTS {name}_{index.suffix} "
            f"ON {name} {index.definition}{where}"
        )
