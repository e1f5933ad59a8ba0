"""The projection engine: what a projection is, and how a batch of events becomes rows.

A projection is a name, the event types it handles, its tables and one handler. The
handler is pure: for each event it reads and writes *states* (small typed values kept per
key, mostly the aggregate folded with the domain's own ``evolve``) and records *row
changes* ``(table, key, old row, new row)``. Because every row is computed from a state
folded by the domain, a read model always agrees with folding its streams, and the old
row of a change never has to be read back from the table.

Every read-model table is versioned in transaction time: a row version carries the
global-position range ``[valid_from_pos, valid_to_pos)`` (and the recorded-time range)
in which it was current, ``valid_to_pos IS NULL`` for the current one. A change at
position ``p`` closes the current version at ``p`` and opens the next one at ``p``; so
"as of ``P``" is ``valid_from_pos <= P < valid_to_pos``, answered by a GiST index on the
range (see ``tables.RANGE_POINT``). Append-only tables (the audit trail) have one row
per event instead.

:class:`Applier` turns a batch into writes: changes are staged per event (an event whose
handler raises leaves nothing behind, so the events before it can still be committed),
then written with one ``UPDATE`` (closing versions that live in the table) and one
``COPY`` (new versions) per table. A rebuild holds open versions in memory across batches
(``keep_open``), so most rows are written once, already closed, by ``COPY`` alone.

One module over 500 lines: the projection contract (``Projection``, ``Context``, states) and
the ``Applier`` that writes it, kept together because the row-version rules the Applier
writes are what the contract promises a handler.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar
from uuid import UUID

import asyncpg
import msgspec

from programledger.adapters.codec import EventCodec
from programledger.adapters.nats.envelope import EventEnvelope, decode_event
from programledger.adapters.postgres.eventstore import RawEvent, ShareKey
from programledger.application.eventstore import EventMetadata
from programledger.domain import (
    assumption,
    issue,
    objective,
    portfolio,
    program,
    report,
    resource,
    risk,
    scenario,
    schedule,
)
from programledger.domain.assumption import ASSUMPTION_EVENT_TYPES
from programledger.domain.events import DomainEvent, EventRegistry
from programledger.domain.issue import ISSUE_EVENT_TYPES
from programledger.domain.objective import OBJECTIVE_EVENT_TYPES
from programledger.domain.portfolio import PORTFOLIO_EVENT_TYPES
from programledger.domain.program import PROGRAM_EVENT_TYPES
from programledger.domain.report import STATUS_REPORT_EVENT_TYPES
from programledger.domain.resource import RESOURCE_EVENT_TYPES
from programledger.domain.risk import RISK_EVENT_TYPES
from programledger.domain.scenario import SCENARIO_EVENT_TYPES
from programledger.domain.schedule import SCHEDULE_EVENT_TYPES
from programledger.projections.engine.tables import Column, Table

__all__ = [
    "DEFAULT_STATE_CACHE_BYTES",
    "DEFAULT_STATE_CACHE_LIMIT",
    "ENTRY_BYTES",
    "STREAM_TYPE_OF_EVENT",
    "Applier",
    "CacheCounts",
    "Closes",
    "Connection",
    "Context",
    "Inserts",
    "Poison",
    "ProjectedEvent",
    "Projection",
    "ProjectionBug",
    "StateStore",
    "TableWrites",
    "Tracked",
    "evolve",
    "fold",
    "from_envelope",
    "from_stored",
    "poison_of",
    "upsert_states_sql",
]

Row = tuple[Any, ...]
Key = tuple[Any, ...]
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection of its own or one from a pool: both run the same statements."""
S = TypeVar("S")
Item = TypeVar("Item")

STREAM_TYPE_OF_EVENT: dict[str, str] = {
    **{cls.event_type: "program" for cls in PROGRAM_EVENT_TYPES},
    **{cls.event_type: "risk" for cls in RISK_EVENT_TYPES},
    **{cls.event_type: "assumption" for cls in ASSUMPTION_EVENT_TYPES},
    **{cls.event_type: "issue" for cls in ISSUE_EVENT_TYPES},
    **{cls.event_type: "resource" for cls in RESOURCE_EVENT_TYPES},
    **{cls.event_type: "schedule" for cls in SCHEDULE_EVENT_TYPES},
    **{cls.event_type: "status_report" for cls in STATUS_REPORT_EVENT_TYPES},
    **{cls.event_type: "scenario" for cls in SCENARIO_EVENT_TYPES},
    **{cls.event_type: "portfolio" for cls in PORTFOLIO_EVENT_TYPES},
    **{cls.event_type: "objective" for cls in OBJECTIVE_EVENT_TYPES},
}
"""The stream type each domain event is recorded on, for subject filters."""

_EVOLVE: dict[str, Callable[[Any, Any], Any]] = {
    "program": program.evolve,
    "risk": risk.evolve,
    "assumption": assumption.evolve,
    "issue": issue.evolve,
    "resource": resource.evolve,
    "schedule": schedule.evolve,
    "status_report": report.evolve,
    "scenario": scenario.evolve,
    "portfolio": portfolio.evolve,
    "objective": objective.evolve,
}


class ProjectionBug(RuntimeError):
    """A handler's view and the tables disagree: a bug to fix, then rebuild."""


class ProjectedEvent(NamedTuple):
    """One event as a handler sees it: where it sits, who caused it, and its typed data."""

    position: int
    event_id: UUID
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    recorded_at: datetime
    actor: str
    correlation_id: UUID | None
    causation_id: UUID | None
    reason: str | None
    program_id: UUID | None
    event: DomainEvent


class Poison(msgspec.Struct, frozen=True, kw_only=True):
    """The event a projection stopped at, and why."""

    position: int
    event_id: UUID
    event_type: str
    stream_id: str
    error: str


class Tracked(msgspec.Struct, Generic[S], frozen=True):
    """An aggregate's state with the stream version it was folded to."""

    version: int
    state: S


def evolve(stream_type: str, state: Any, event: DomainEvent) -> Any:
    """The domain's ``evolve`` for a stream of ``stream_type``: what :func:`fold` applies."""
    return _EVOLVE[stream_type](state, event)


def fold(ctx: Context, event: ProjectedEvent) -> tuple[Any, Any]:
    """Apply ``event`` to its stream's state with the domain's ``evolve``; the state is
    kept under the stream id. Returns the aggregate before and after."""
    tracked: Tracked[Any] | None = ctx.state(event.stream_id)
    before = None if tracked is None else tracked.state
    after = _EVOLVE[event.stream_type](before, event.event)
    ctx.set_state(event.stream_id, Tracked(event.version, after))
    return before, after


def stream_key(event: ProjectedEvent) -> tuple[str, ...]:
    return (event.stream_id,)


@dataclass(frozen=True, slots=True)
class Projection:
    """A read model: the events it handles, its tables, its states and its handler.

    ``states`` maps a state key's prefix (the part before the first ``-``, e.g.
    ``program`` for ``program-<uuid>``) to the type stored under it. ``state_keys``
    names the states the handler will read for an event, so a batch loads them at once.
    Bump ``version`` when the handler's output changes: runners then rebuild.
    """

    name: str
    description: str
    handles: frozenset[str]
    tables: tuple[Table, ...]
    states: Mapping[str, type]
    handle: Callable[[Context, ProjectedEvent], None]
    state_keys: Callable[[ProjectedEvent], Iterable[str]] = stream_key
    version: int = 1
    share_key: ShareKey | None = None
    """What never mixes in a row or a state: events of different streams (``stream``) or
    programs (``program``). Declared, a rebuild can split the events by it across
    processes (see ``rebuild``); ``None`` keeps a rebuild in one process."""
    row_events: frozenset[str] | None = None
    """The event types whose events can change a row (``None``: every one it handles);
    the others only fold its states, as every program event does in a decision log whose
    rows are decisions and lessons. Read-your-writes waits only for the read models a
    write's events can change (``tests/integration/test_projections_properties.py``
    holds each projection to what it declares here)."""

    def __post_init__(self) -> None:
        if self.row_events is not None and not self.row_events <= self.handles:
            raise ValueError(f"projection {self.name}: row_events must be events it handles")

    @property
    def changed_by(self) -> frozenset[str]:
        """The event types whose events can change this read model's rows."""
        return self.handles if self.row_events is None else self.row_events

    @property
    def state_table(self) -> Table:
        return Table(
            f"rm_{self.name}_state",
            key=(Column("key", "text", True),),
            columns=(Column("state", "bytea", True),),
            versioned=False,
        )

    @property
    def all_tables(self) -> tuple[Table, ...]:
        return (*self.tables, self.state_table)

    @property
    def stream_types(self) -> frozenset[str]:
        return frozenset(STREAM_TYPE_OF_EVENT[t] for t in self.handles)

    def definition(self) -> str:
        """A fingerprint of everything a stored read model depends on."""
        digest = hashlib.sha256(f"{self.name}:{self.version}".encode())
        for table in self.all_tables:
            digest.update(table.create_sql(table.name).encode())
            for index in table.all_indexes():
                digest.update(Table.index_sql(table.name, index).encode())
        return digest.hexdigest()[:32]


_metadata_decoder = msgspec.json.Decoder(EventMetadata)


def from_stored(codec: EventCodec) -> Callable[[RawEvent], ProjectedEvent]:
    """A converter from stored rows to :class:`ProjectedEvent`, upcasting old versions."""
    decode = codec.decode

    def convert(raw: RawEvent) -> ProjectedEvent:
        metadata = _metadata_decoder.decode(raw.metadata)
        return ProjectedEvent(
            raw.position,
            raw.event_id,
            raw.stream_id,
            raw.stream_type,
            raw.version,
            raw.event_type,
            raw.recorded_at,
            metadata.actor,
            metadata.correlation_id,
            metadata.causation_id,
            metadata.reason,
            metadata.program_id,
            decode(raw.event_type, raw.schema_version, raw.data),
        )

    return convert


def from_envelope(registry: EventRegistry) -> Callable[[EventEnvelope], ProjectedEvent]:
    """A converter from the relay's envelopes to :class:`ProjectedEvent`."""

    def convert(envelope: EventEnvelope) -> ProjectedEvent:
        e = envelope
        return ProjectedEvent(
            e.position,
            e.event_id,
            e.stream_id,
            e.stream_type,
            e.version,
            e.event_type,
            e.recorded_at,
            e.actor,
            e.correlation_id,
            e.causation_id,
            e.reason,
            e.program_id,
            decode_event(e, registry),
        )

    return convert


DEFAULT_STATE_CACHE_LIMIT = 5_000
"""States a runner keeps in memory per projection. What is not cached is read back from
its table when an event needs it."""

DEFAULT_STATE_CACHE_BYTES = 2 * 1024 * 1024
"""Bytes of memory the states a runner keeps take, per projection (see :class:`StateStore`
for how they are counted). A count alone does not bound memory: a state grows with its
program (a soak's grew from 450 to 1,600 bytes in minutes). 2 MB was chosen from the hit
rates a soak's event log gives at 1-4 MB (docs/projections.md): within 4 points of what
the former budget (2 MB encoded, held decoded: some 4 MB) gave, in half its memory, and
22 MB for the eleven of a ``project`` process."""

ENTRY_BYTES = 170
"""Memory a cached state takes besides its encoded bytes and its key's characters: the
``bytes`` and ``str`` objects' headers and the cache's entry. Measured with tracemalloc
on a soak's states (tests/unit/test_state_cache.py holds the count to what tracemalloc
sees)."""


@dataclass(slots=True)
class CacheCounts:
    """What a state cache did, counted across the caches a runner replaces over time."""

    hits: int = 0
    """States a batch found in memory."""
    misses: int = 0
    """States read from the table."""
    evictions: int = 0


def upsert_states_sql(table: str, keys: str, states: str) -> str:
    """The statement that upserts into the state table ``table`` the states whose keys and
    encoded values are the ``text[]`` and ``bytea[]`` parameters ``keys`` and ``states``
    (e.g. ``$1``, ``$2``)."""
    return (
        f"INSERT INTO {table} (key, state) "
        f"SELECT * FROM unnest({keys}::text[], {states}::bytea[]) "
        "ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state"
    )


class StateStore:
    """The handler states of one projection: a table, and a cache in front of it.

    Only the active runner (or a rebuild, on its own table) writes the table, so the
    cache is trusted across batches; it is dropped when the runner loses its footing
    (a rollback, a swap by a rebuild). ``complete`` says the cache holds every state
    there is (a rebuild starting on empty tables): a miss is then "no state", not a read.

    A state is cached as it is encoded in its table (msgpack ``bytes``): the bytes a
    batch wrote or read. Decoded, a state is some thirty small objects, which every full
    garbage collection walks, and 1.8-2.1 times its encoded length with its entry where
    held encoded it is 1.1-1.5 times (measured with tracemalloc on a soak's states). A
    batch decodes each state it needs once (:meth:`get`). Only a rebuild's states not yet
    written (``dirty``) are held decoded, to be encoded once when they are written.

    The cache holds at most ``limit`` states, and at most ``max_bytes`` bytes of memory,
    once :meth:`trim` has run: the ones least recently needed by a batch go first, and
    come back from the table (where every committed state is) when an event needs them
    again; ``counts`` says how often. A state counts its encoded length, its key's and
    :data:`ENTRY_BYTES`; a dirty one counts only its key's and the entry's until written.
    """

    def __init__(
        self,
        table: str,
        types: Mapping[str, type],
        *,
        complete: bool = False,
        limit: int = DEFAULT_STATE_CACHE_LIMIT,
        max_bytes: int = DEFAULT_STATE_CACHE_BYTES,
        counts: CacheCounts | None = None,
    ) -> None:
        if limit < 1 or max_bytes < 1:
            raise ValueError("the state cache limits must be at least 1")
        self.table = table
        self.complete = complete
        self.limit = limit
        self.max_bytes = max_bytes
        self._decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {
            prefix: msgspec.msgpack.Decoder(t) for prefix, t in types.items()
        }
        self._encoder = msgspec.msgpack.Encoder()
        self._cache: OrderedDict[str, bytes | None] = OrderedDict()
        """Least recently needed first: each state as encoded in its table, ``None`` for
        no state or a dirty one."""
        self._dirty: dict[str, Any] = {}
        """Decoded states changed since they were last written (a rebuild's)."""
        self._decoded: dict[str, Any] = {}
        """States decoded since the last batch was kept, so a batch decodes each once."""
        self._encoded: dict[str, bytes] = {}
        """What :meth:`encode` made for the batch that :meth:`update` keeps next."""
        self.bytes = 0
        """Memory the cached states take, as counted (see the class)."""
        self.counts = counts if counts is not None else CacheCounts()

    def __len__(self) -> int:
        return len(self._cache)

    async def preload(self, conn: Connection, keys: Iterable[str]) -> None:
        missing = self.missing(keys)
        if missing:
            await self.load(conn, missing)

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys that must be read from the table before they are used (none when
        the cache is complete: a miss then means "no state"). Every key asked for counts
        as just used, so the states of a batch are the last to be evicted."""
        cache = self._cache
        wanted = set(keys)
        missing = []
        for key in wanted:
            if key in cache:
                cache.move_to_end(key)
            else:
                missing.append(key)
        if self.complete:
            for key in missing:
                self._keep(key, None)
            self.counts.hits += len(wanted)
            return []
        self.counts.hits += len(wanted) - len(missing)
        return missing

    async def load(self, conn: Connection | asyncpg.Pool, keys: list[str]) -> None:
        for key in keys:
            self._keep(key, None)
        self.counts.misses += len(keys)
        rows = await conn.fetch(
            f"SELECT key, state FROM {self.table} WHERE key = ANY($1::text[])", keys
        )
        for key, data in rows:
            self._keep(key, data)

    def _keep(self, key: str, data: bytes | None) -> None:
        """Cache ``data`` as ``key``'s state (where the key was, or as just needed)."""
        cache = self._cache
        if key not in cache:
            self.bytes += len(key) + ENTRY_BYTES
        else:
            old = cache[key]
            if old is not None:
                self.bytes -= len(old)
        if data is not None:
            self.bytes += len(data)
        cache[key] = data

    def get(self, key: str) -> Any:
        dirty = self._dirty
        if key in dirty:
            return dirty[key]
        decoded = self._decoded
        if key in decoded:
            return decoded[key]
        try:
            data = self._cache[key]
        except KeyError:
            raise ProjectionBug(
                f"state {key!r} was read but not named by the projection's state_keys"
            ) from None
        state = None if data is None else self._decoders[key.partition("-")[0]].decode(data)
        decoded[key] = state
        return state

    def update(self, states: Mapping[str, Any], *, dirty: bool = False) -> None:
        """Keep a batch's ``states``: as :meth:`encode` encoded them for the table (again,
        if a trim evicted them since), encoded now, or decoded until :meth:`write_dirty`
        when ``dirty``."""
        encoded = self._encoded
        for key, state in states.items():
            if dirty:
                self._dirty[key] = state
                self._keep(key, None)
            elif state is None:
                self._keep(key, None)
            else:
                data = encoded.get(key)
                self._keep(key, self._exact(state) if data is None else data)
        encoded.clear()
        self._decoded.clear()

    def encode(self, states: Mapping[str, Any]) -> tuple[list[str], list[bytes]]:
        """The keys and encoded values of ``states`` to write (a ``None`` state is not).
        They are cached as they are, at once, so a :meth:`trim` before :meth:`update`
        (the runner's) counts them; if the batch is rolled back, the cache is cleared."""
        keys = [k for k, v in states.items() if v is not None]
        values = [self._exact(states[k]) for k in keys]
        for key, value in zip(keys, values, strict=True):
            self._keep(key, value)
            self._encoded[key] = value
        return keys, values

    def _exact(self, state: Any) -> bytes:
        """``state`` encoded, in an object of its own length: msgspec leaves the one it
        encodes into as large as its buffer grew (half as large again as what it holds,
        measured with tracemalloc), which a cached state would keep."""
        return bytes(memoryview(self._encoder.encode(state)))

    async def write(self, conn: Connection, states: Mapping[str, Any]) -> None:
        """Upsert ``states`` (chunked: a rebuild writes them all at once)."""
        keys, values = self.encode(states)
        sql = upsert_states_sql(self.table, "$1", "$2")
        for start in range(0, len(keys), 10_000):
            await conn.execute(sql, keys[start : start + 10_000], values[start : start + 10_000])

    async def write_dirty(self, conn: Connection) -> None:
        await self.write(conn, self._dirty)
        dirty, self._dirty = self._dirty, {}
        self.update(dirty)

    def trim(self) -> bool:
        """Evict the least recently needed states beyond the limits; only when every
        cached state is also in the table (after a commit, nothing dirty), since an
        evicted state is read back from there. Returns whether it evicted any."""
        cache = self._cache
        if self._dirty or (len(cache) <= self.limit and self.bytes <= self.max_bytes):
            return False
        evicted = 0
        while len(cache) > self.limit or self.bytes > self.max_bytes:
            key, data = cache.popitem(last=False)
            self.bytes -= len(key) + ENTRY_BYTES + (0 if data is None else len(data))
            evicted += 1
        self.counts.evictions += evicted
        self._decoded.clear()
        self.complete = False  # a miss may now be an evicted state
        return True

    def clear(self) -> None:
        self._cache.clear()
        self._dirty.clear()
        self._decoded.clear()
        self._encoded.clear()
        self.bytes = 0
        self.complete = False


class _TableChanges:
    """The version writes of one table for one batch (or, holding, for a whole rebuild)."""

    __slots__ = ("added", "close_in_table", "closed", "open", "table")

    def __init__(self, table: Table) -> None:
        self.table = table
        self.open: dict[Key, list[Any]] = {}
        """key -> [row, from position, from time]: versions not yet written."""
        self.closed: list[Row] = []
        """Complete records of versions opened and closed before being written."""
        self.close_in_table: dict[Key, tuple[int, datetime]] = {}
        """Keys whose current version is in the table, and where it ends."""
        self.added: list[Row] = []

    def current(self, key: Key) -> Row | None:
        version = self.open.get(key)
        return None if version is None else version[0]

    def change(self, key: Key, old: Row | None, new: Row | None, pos: int, at: datetime) -> None:
        version = self.open.pop(key, None)
        if version is not None:
            if version[1] != pos:
                self.closed.append((*key, *version[0], version[1], pos, version[2], at))
        elif old is not None:
            if key in self.close_in_table:
                raise ProjectionBug(
                    f"{self.table.name} {key}: changed from a row that was already closed"
                )
            self.close_in_table[key] = (pos, at)
        if new is not None:
            self.open[key] = [new, pos, at]

    def size(self) -> int:
        return len(self.open) + len(self.closed) + len(self.added) + len(self.close_in_table)

    def take(self, name: str, *, keep_open: bool) -> TableWrites:
        """Hand over what is ready to be written, synchronously, so the writes can go on
        while the next batch is applied (open versions stay when ``keep_open``)."""
        records = self.closed
        if not keep_open and self.open:
            records.extend((*k, *v[0], v[1], None, v[2], None) for k, v in self.open.items())
            self.open = {}
        writes = TableWrites(self.table, name, self.close_in_table, records, self.added)
        self.close_in_table, self.closed, self.added = {}, [], []
        return writes


class Inserts(NamedTuple):
    """New rows of one table, column by column, for a statement of the caller's (the
    one that commits a runner's batch: see ``commit``)."""

    table: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    values: list[list[Any]]

    def sql(self, first: int) -> str:
        """The ``INSERT``, its column arrays numbered from ``$first``."""
        arrays = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(self.types))
        return (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) SELECT * FROM unnest({arrays})"
        )


class Closes(NamedTuple):
    """Current versions of one table that a batch ends, for a statement of the caller's:
    the key columns' values, then the position and the recorded time each ends at."""

    table: str
    key: tuple[Column, ...]
    values: list[list[Any]]

    @property
    def expected(self) -> int:
        return len(self.values[-1])

    def sql(self, first: int) -> str:
        """The ``UPDATE`` that ends them, its arrays numbered from ``$first``; it must find
        exactly :attr:`expected` current versions."""
        key = self.key
        arrays = [f"${first + i}::{c.type}[]" for i, c in enumerate(key)]
        arrays += [f"${first + len(key)}::bigint[]", f"${first + len(key) + 1}::timestamptz[]"]
        matches = " AND ".join(f"t.{c.name} = u.{c.name}" for c in key)
        return (
            f"UPDATE {self.table} AS t SET valid_to_pos = u.p, valid_to_time = u.at "
            f"FROM unnest({', '.join(arrays)}) AS u({', '.join(c.name for c in key)}, p, at) "
            f"WHERE {matches} AND t.valid_to_pos IS NULL"
        )


_INSERT_AT_MOST = 32
"""New rows of a table written without ``COPY`` (two round trips: the server must accept
the copy before the rows are sent), in a statement of the runner's or with one pipelined
``INSERT`` per row; past this many, ``COPY`` is faster. A live runner's batch is mostly
a few rows, and each round trip is time a reader waiting for the write (read-your-writes)
waits too."""


class TableWrites(NamedTuple):
    """What one batch writes to one table: versions to close, rows to add."""

    table: Table
    name: str
    closing: dict[Key, tuple[int, datetime]]
    records: list[Row]
    added: list[Row]

    def parts(self) -> tuple[Closes | None, Inserts | None] | None:
        """The writes as parts of one statement of the caller's (see ``commit``); ``None``
        when the new rows are too many (``COPY`` is faster) or do not fit in column
        arrays (a column is itself an array)."""
        rows = [*self.records, *self.added]
        if len(rows) > _INSERT_AT_MOST or (
            rows and any(t.endswith("]") for t in self.table.column_types)
        ):
            return None
        closes = self._closes() if self.closing else None
        return closes, self._inserts(rows) if rows else None

    async def write(self, conn: Connection, inline: list[Inserts] | None = None) -> None:
        """Write the changes; new rows go to ``inline`` instead when it is given and they
        are few, and fit in column arrays (no column is itself an array)."""
        if self.closing:
            await self._close(conn)
        table = self.table
        rows = [*self.records, *self.added]
        if (
            inline is not None
            and 0 < len(rows) <= _INSERT_AT_MOST
            and not any(t.endswith("]") for t in table.column_types)
        ):
            inline.append(self._inserts(rows))
            return
        columns = table.column_names
        for records in (self.records, self.added):
            if len(records) > _INSERT_AT_MOST:
                await conn.copy_records_to_table(self.name, records=records, columns=columns)
            elif records:
                values = ", ".join(f"${i + 1}" for i in range(len(columns)))
                await conn.executemany(
                    f"INSERT INTO {self.name} ({', '.join(columns)}) VALUES ({values})", records
                )

    def _inserts(self, rows: list[Row]) -> Inserts:
        by_column = [list(column) for column in zip(*rows, strict=True)]
        return Inserts(self.name, self.table.column_names, self.table.column_types, by_column)

    def _closes(self) -> Closes:
        n = len(self.table.key)
        items = list(self.closing.items())
        values = [[k[i] for k, _ in items] for i in range(n)]
        values += [[p for _, (p, _) in items], [at for _, (_, at) in items]]
        return Closes(self.name, self.table.key, values)

    async def _close(self, conn: Connection) -> None:
        closes = self._closes()
        status = await conn.execute(closes.sql(1), *closes.values)
        if int(status.rpartition(" ")[2]) != closes.expected:
            raise ProjectionBug(
                f"{self.name}: closing {closes.expected} current versions found "
                f"{status.rpartition(' ')[2]}: the table and the handler states disagree"
            )


_REPLACED: Row = ("the current row",)
"""The ``old`` of a change recorded by :meth:`Context.replace`."""


class Context:
    """What a handler works with for one event; everything it records is staged until
    it returns, so a handler that raises leaves no trace."""

    __slots__ = ("_applier", "_changes", "_states", "event")

    def __init__(self, applier: Applier) -> None:
        self._applier = applier
        self._states: dict[str, Any] = {}
        self._changes: list[tuple[_TableChanges, Key, Row | None, Row | None]] = []
        self.event: ProjectedEvent

    def state(self, key: str) -> Any:
        if key in self._states:
            return self._states[key]
        return self._applier.state(key)

    def set_state(self, key: str, value: Any) -> None:
        self._states[key] = value

    def change(self, table: Table, key: Key, old: Row | None, new: Row | None) -> None:
        """The row of ``key`` went from ``old`` to ``new`` (``None``: no row)."""
        if old != new:
            self._changes.append((self._applier.changes[table.name], key, old, new))

    def change_item(
        self,
        table: Table,
        key: Key,
        old: Item | None,
        new: Item | None,
        row: Callable[[Item], Row],
    ) -> None:
        """:meth:`change` for a row made from one item of a state (a milestone, an
        allocation) before and after the event; no row where the item is absent."""
        self.change(
            table, key, None if old is None else row(old), None if new is None else row(new)
        )

    def replace(self, table: Table, key: Key, new: Row) -> None:
        """The row ``key`` has now becomes ``new``, which differs from it (a stream
        version column sees to that): :meth:`change` without building the old row only
        to have it checked, which costs a busy handler a third of its time."""
        self._changes.append((self._applier.changes[table.name], key, _REPLACED, new))

    def end(self, table: Table, key: Key) -> None:
        """The row ``key`` has now ends, and none follows (an item removed from a state
        whose row holds more than the state, so the old row cannot be rebuilt)."""
        self._changes.append((self._applier.changes[table.name], key, _REPLACED, None))

    def add(self, table: Table, record: Row) -> None:
        """A row of an append-only table (key and columns, in order)."""
        self._changes.append((self._applier.changes[table.name], (), None, record))


class Applier:
    """Applies batches of events for one projection and writes what they changed."""

    def __init__(
        self,
        projection: Projection,
        states: StateStore,
        *,
        suffix: str = "",
    ) -> None:
        self.projection = projection
        self.suffix = suffix
        self.store = states
        self.changes = {t.name: _TableChanges(t) for t in projection.tables}
        self.batch_states: dict[str, Any] = {}
        self.applied = 0

    def state(self, key: str) -> Any:
        if key in self.batch_states:
            return self.batch_states[key]
        return self.store.get(key)

    def decode(
        self, items: Sequence[Any], convert: Callable[[Any], ProjectedEvent]
    ) -> tuple[list[ProjectedEvent], Poison | None]:
        """Decode the handled events of ``items`` in order, up to the first that fails."""
        handled = self.projection.handles
        decoded: list[ProjectedEvent] = []
        for item in items:
            if item.event_type not in handled:
                continue
            try:
                decoded.append(convert(item))
            except Exception as exc:
                return decoded, poison_of(item, exc)
        return decoded, None

    async def prepare(self, conn: Connection, events: Sequence[ProjectedEvent]) -> None:
        keys = self.projection.state_keys
        await self.store.preload(conn, (k for e in events for k in keys(e)))

    def unloaded(self, events: Sequence[ProjectedEvent]) -> list[str]:
        """The states ``events`` need that must first be read from the table."""
        keys = self.projection.state_keys
        return self.store.missing(k for e in events for k in keys(e))

    def apply(self, events: Sequence[ProjectedEvent]) -> Poison | None:
        """Run the handler over ``events``; stops at the first that raises, keeping what
        the ones before it changed."""
        handle = self.projection.handle
        for event in events:
            ctx = Context(self)
            ctx.event = event
            try:
                handle(ctx, event)
                self._keep(ctx, event)
            except Exception as exc:
                return poison_of(event, exc)
            self.applied += 1
        return None

    def _keep(self, ctx: Context, event: ProjectedEvent) -> None:
        # Check every change against what is staged before keeping any, so a failing
        # event changes nothing.
        seen: dict[tuple[str, Key], Row | None] = {}
        for changes, key, old, _new in ctx._changes:
            if not key:
                continue
            mark = (changes.table.name, key)
            staged = seen[mark] if mark in seen else changes.current(key)
            if old is _REPLACED:
                if (mark in seen or key in changes.open) and staged is None:
                    raise ProjectionBug(f"{changes.table.name} {key}: replaced a row it has not")
            elif (mark in seen or key in changes.open) and staged != old:
                raise ProjectionBug(
                    f"{changes.table.name} {key}: the handler changed it from a row that is "
                    "not its current one"
                )
            seen[mark] = _new
        pos, at = event.position, event.recorded_at
        for changes, key, old, new in ctx._changes:
            if key:
                changes.change(key, old, new, pos, at)
            else:
                assert new is not None
                changes.added.append(new)
        self.batch_states.update(ctx._states)

    def pending(self) -> int:
        return sum(c.size() for c in self.changes.values())

    def flush(
        self,
        conn: Connection,
        *,
        keep_open: bool = False,
        write_states: bool = True,
        inline: list[Inserts] | None = None,
    ) -> Coroutine[Any, Any, None]:
        """Write the batch's changes (and, with ``write_states``, its states); with
        ``inline``, a table's few new rows are added to it instead, for the caller to
        write in a statement of its own after these.

        What is written is taken when this is called, not when the returned coroutine
        runs, so a caller may apply the next batch while the writes go on.
        """
        writes = self.take(keep_open=keep_open)
        states = dict(self.batch_states) if write_states else {}
        return self._write(conn, writes, states, inline)

    def take(self, *, keep_open: bool = False) -> list[TableWrites]:
        """The batch's changes to each table, in the projection's order (see
        :meth:`flush`), for a caller that writes them itself."""
        suffix = self.suffix
        return [c.take(name + suffix, keep_open=keep_open) for name, c in self.changes.items()]

    async def _write(
        self,
        conn: Connection,
        writes: list[TableWrites],
        states: dict[str, Any],
        inline: list[Inserts] | None,
    ) -> None:
        for write in writes:
            await write.write(conn, inline)
        if states:
            await self.store.write(conn, states)

    def commit(self, *, dirty: bool = False) -> None:
        """The batch is durable (or, for a rebuild, staged in memory): keep its states."""
        self.store.update(self.batch_states, dirty=dirty)
        self.batch_states = {}

    def discard(self) -> None:
        """The batch was rolled back: forget it, and the cache it may have misled."""
        self.changes = {t.name: _TableChanges(t) for t in self.projection.tables}
        self.batch_states = {}
        self.store.clear()


def poison_of(item: Any, exc: BaseException) -> Poison:
    """The :class:`Poison` record of ``item`` (an event of any source) failing with ``exc``."""
    return Poison(
        position=item.position,
        event_id=item.event_id,
        event_type=item.event_type,
        stream_id=item.stream_id,
        error=f"{type(exc).__name__}: {exc}"[:4000],
    )
