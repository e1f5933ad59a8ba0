"""The PostgreSQL event store.

All the guarantees of an append (expected version, idempotency, global order, hash chain)
are kept by one SQL function, ``append_batch`` (migration 0020), so an append costs one
round trip and the rules hold for any client that calls it, not only this one. Appends that
wait in this process are combined into one transaction of it (``combining``).

One module over 500 lines: it is one class, the event store, whose methods share its SQL,
its codec and the safe-read rule.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg
import msgspec

from programledger.adapters.codec import EventCodec
from programledger.adapters.postgres.combining import (
    AppendCombiner,
    PendingAppend,
    StreamReads,
    batch_arguments,
    one_arguments,
)
from programledger.application.eventstore import (
    AppendResult,
    ConcurrencyConflict,
    EventMetadata,
    ExpectedVersion,
    IdempotencyKeyReused,
    InvalidAppend,
    RecordedEvent,
    StreamVerification,
    Version,
)
from programledger.domain._checks import unstorable_text
from programledger.domain.events import DomainEvent

__all__ = [
    "DEFAULT_APPENDS_IN_FLIGHT",
    "DEFAULT_READS_IN_FLIGHT",
    "MAX_EVENTS_PER_APPEND",
    "CommitNotifier",
    "PostgresEventStore",
    "RawEvent",
    "ShareKey",
    "new_event_id",
    "stream_type_of",
]

ShareKey = Literal["stream", "program"]
"""What keeps events together when a read is split in shares (see ``read_share``)."""

log = logging.getLogger(__name__)

MAX_EVENTS_PER_APPEND = 1000
_STREAM_ID = re.compile(r"^([a-z][a-z0-9_]{0,39})-([A-Za-z0-9][A-Za-z0-9._:@-]{0,199})$")
_MAX_TEXT = {"actor": 200, "reason": 2000}

_COLUMNS = (
    "position, event_id, stream_id, stream_type, version, event_type, schema_version, "
    "data, metadata, recorded_at, hash"
)
# Only events of transactions older than every running one: an event whose transaction
# commits late has a position below what a reader may already have seen, and would be
# skipped by a plain "position > last" page. Appends take their transaction id and positions
# in one order (see append_batch), so what passes this filter is a gap-free prefix.
_READ_ALL = f"""
    SELECT {_COLUMNS} FROM events
    WHERE position > $1 AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY position LIMIT $2
"""
# The last position of that gap-free prefix: the primary key read backwards.
_HEAD_POSITION = (
    "SELECT max(position) FROM events WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())"
)
# One of several disjoint shares of the events up to a safe position, for a rebuild split
# across processes; the share key keeps every event of a stream (or a program) together.
_READ_SHARE = f"""
    SELECT {_COLUMNS} FROM events
    WHERE position > $1 AND position <= $2 AND event_type = ANY($3::text[])
      AND abs(hashtext({{key}})::bigint) % $4 = $5
    ORDER BY position LIMIT $6
"""
_SHARE_KEYS = {"stream": "stream_id", "program": "coalesce(data->>'program_id', stream_id)"}
_READ_STREAM = f"""
    SELECT {_COLUMNS} FROM events
    WHERE stream_id = $1 AND version >= $2 AND version <= $3
      AND ($4::timestamptz IS NULL OR recorded_at <= $4)
    ORDER BY version
"""
_READ_PROGRAM = f"""
    SELECT {_COLUMNS} FROM events
    WHERE program_id = $1 AND position > $2 AND position <= $3
    ORDER BY position LIMIT $4
"""
# The global feed: events after a position up to a safe head (a position head_position
# returned), filtered like the NATS subjects. Keyset pages, so a reader holds no cursor or
# snapshot between pages. Only the filters given are in the statement: a generic plan of
# "$n IS NULL OR program_id = $n" could not use the program index.
_READ_FEED = f"""
    SELECT {_COLUMNS} FROM events
    WHERE position > $1 AND position <= $2 {{where}}
    ORDER BY position LIMIT $3
"""
_FEED_FILTERS = (
    "AND program_id = ${n}",
    "AND stream_type = ANY(${n}::text[])",
    "AND event_type = ANY(${n}::text[])",
)
_APPEND = "SELECT * FROM append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
_APPEND_ONE = "SELECT * FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
# The same, notifying in the append's own transaction (delivered at its commit): for the
# append that carries its process's notification (CommitNotifier.begin). A combined batch
# announces its last position written, if it wrote anything.
_APPEND_ONE_NOTIFYING = """
    SELECT a.*, CASE WHEN NOT a.replayed THEN pg_notify($12, a.last_position::text) END
    FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) a
"""
_APPEND_NOTIFYING = """
    WITH b AS MATERIALIZED (
        SELECT * FROM append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ), announced AS (
        SELECT pg_notify($13, max(last_position)::text) FROM b
        WHERE outcome = 'appended' HAVING count(*) > 0
    )
    SELECT b.*, (SELECT count(*) FROM announced) AS notified FROM b
"""

# append_events on a new connection (PostgresEventStore.warm), its conflict caught where
# PostgreSQL does not log it.
_WARM_APPEND_ONE = """
    DO $$
    BEGIN
        PERFORM append_events('warm-connection', 'warm', -1, ARRAY[gen_random_uuid()],
            ARRAY['warm'], ARRAY[1], ARRAY['{}'::jsonb], '{}'::jsonb, NULL, NULL, NULL);
    EXCEPTION WHEN SQLSTATE 'PL409' THEN
        NULL;
    END
    $$
"""

DEFAULT_APPENDS_IN_FLIGHT = 1
"""Combined transactions one store runs at a time; more appends wait and go in the next.

One at a time, measured with ``bench/append.py``'s commands (2 cores, fsync 80 us): 1 in
flight recorded 11.4k commands/s at 32 concurrent and 14.6k at 128, against 8.2k and 11.6k
with 4. Transactions beside each other compete for the same index pages and cores, and each
carries fewer commands; the one at a time carries all that queued behind it. Not on every
host: where the commit is cheap (a one-row commit 0.07 ms), eight writers appending
directly got 3.5k appends a second with one in flight against 5.0k with nothing combined,
and 5.2k with two (docs/architecture.md)."""

DEFAULT_READS_IN_FLIGHT = 2
"""Combined whole-stream reads one store runs at a time (the loads of commands)."""

# One index range per stream (a nested loop the planner cannot turn into anything else: a
# LATERAL subquery with ORDER BY is not flattened). "stream_id = ANY($1)" instead let the
# planner estimate each id at 0.5% of the events (the default selectivity of an equality
# on a column without statistics, and autovacuum may be off or behind on a growing table),
# so from about 50 ids it read the whole table: a combined read of 128 commands' streams
# cost a sequential scan that grew with the store (6,700 rows estimated, 64 found, 15 ms
# against 0.4 ms by the index on a 21,000-event table).
_READ_STREAMS = f"""
    SELECT e.* FROM unnest($1::text[]) AS s(stream_id)
    CROSS JOIN LATERAL (
        SELECT {_COLUMNS} FROM events WHERE events.stream_id = s.stream_id ORDER BY version
    ) e
    ORDER BY e.stream_id, e.version
"""

_metadata_encoder = msgspec.json.Encoder()
_metadata_decoder = msgspec.json.Decoder(EventMetadata)


class RawEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event as stored, data undecoded: what the relay and rebuilds move in bulk.

    Untracked by the garbage collector (``gc=False``; its fields cannot form a cycle):
    pages of thousands, kept alive across allocations, otherwise set off collections that
    walk the whole heap, which the feed's profile showed as its costliest line.
    """

    position: int
    event_id: UUID
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    schema_version: int
    data: bytes
    metadata: bytes
    recorded_at: datetime
    hash: bytes


def _raw(r: asyncpg.Record) -> RawEvent:
    """A row of ``_COLUMNS`` read by index: a quarter of the cost of ``**dict(row)``, which
    a feed streaming millions of events notices."""
    return RawEvent(
        position=r[0],
        event_id=r[1],
        stream_id=r[2],
        stream_type=r[3],
        version=r[4],
        event_type=r[5],
        schema_version=r[6],
        data=r[7],
        metadata=r[8],
        recorded_at=r[9],
        hash=r[10],
    )


def new_event_id() -> UUID:
    """A UUID version 7 (RFC 9562): the Unix time in milliseconds, then 74 random bits.

    Time first, so that the events' unique index on ``event_id`` takes each new id at its
    right edge, as the position index does, instead of at a random leaf: with version 4
    ids every insert touched a page of its own, and after each checkpoint wrote that page
    whole into the WAL. Ten-event appends at eight writers (``bench/append.py``, a store
    grown to about 300,000 events, alternating runs): 24.8k and 27.2k events a second with
    version 4, 27.6k and 28.3k with version 7. Consumers see a UUID as before."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return UUID(
        int=(ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | rand & (1 << 62) - 1
    )


def stream_type_of(stream_id: str) -> str:
    match = _STREAM_ID.match(stream_id) if isinstance(stream_id, str) else None
    if match is None:
        shown = stream_id if isinstance(stream_id, str) else type(stream_id).__name__
        raise InvalidAppend(
            f"stream id {shown!r} is malformed: expected '<type>-<id>', e.g. 'program-<uuid>' "
            "(type: lowercase letters, digits, _; id: up to 200 of A-Z a-z 0-9 . _ : @ -)",
            field="stream_id",
        )
    return match[1]


def _is_stream_id(stream_id: object) -> bool:
    return isinstance(stream_id, str) and _STREAM_ID.match(stream_id) is not None


def _expected_to_sql(expected: Version) -> int | None:
    if expected is ExpectedVersion.ANY:
        return None
    if expected is ExpectedVersion.NO_STREAM:
        return 0
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise InvalidAppend(
            f"expected version {expected!r} is not valid: give a version >= 0, "
            "ExpectedVersion.NO_STREAM or ExpectedVersion.ANY",
            field="expected_version",
        )
    return expected


def _encoded_metadata(metadata: EventMetadata) -> bytes:
    """``metadata`` as stored, or ``InvalidAppend`` naming what no store could hold."""
    if not isinstance(metadata, EventMetadata):
        raise InvalidAppend("metadata must be an EventMetadata", field="metadata")
    if not metadata.actor or not metadata.actor.strip():
        raise InvalidAppend(
            "metadata.actor is required: every event says who caused it", field="metadata.actor"
        )
    for name, limit in _MAX_TEXT.items():
        value = getattr(metadata, name)
        if value is not None and len(value) > limit:
            raise InvalidAppend(
                f"metadata.{name} is {len(value)} characters, over the limit of {limit}",
                field=f"metadata.{name}",
            )
    # The one definition of text no store can hold (a lone surrogate, NUL), the commands'.
    problems = unstorable_text(metadata)
    if problems:
        path, problem = problems[0]
        raise InvalidAppend(f"metadata.{path} {problem}", field=f"metadata.{path}")
    return _metadata_encoder.encode(metadata)


def _fingerprint(
    stream_id: str, expected: int | None, actor: str, encoded: Sequence[tuple[str, int, bytes]]
) -> bytes:
    digest = hashlib.sha256()
    digest.update(f"{stream_id}\x00{expected}\x00{actor}".encode())
    for event_type, version, data in encoded:
        digest.update(f"\x00{event_type}\x00{version}\x00".encode())
        digest.update(data)
    return digest.digest()


def _append_result(stream_id: str, row: asyncpg.Record, *, replayed: bool) -> AppendResult:
    """An append's outcome from the row ``append_batch`` returns for it, or the row an
    idempotency key stored for an earlier append (then ``replayed``)."""
    return AppendResult(
        stream_id=stream_id,
        first_version=row["first_version"],
        last_version=row["last_version"],
        first_position=row["first_position"],
        last_position=row["last_position"],
        event_ids=list(row["event_ids"]),
        recorded_at=row["recorded_at"],
        replayed=replayed,
    )


def _said(exc: asyncpg.PostgresError) -> str:
    """What PostgreSQL said, on one line: its message, detail and hint. ``str(exc)`` puts
    the detail and hint on lines of their own, which an API error carries badly."""
    said = [
        exc.args[0] if exc.args else "",
        getattr(exc, "detail", None),
        getattr(exc, "hint", None),
    ]
    return "; ".join(part for part in said if part)


class CommitNotifier:
    """Announces appends with ``NOTIFY <channel>, '<position>'``: one notifying transaction
    of this process at a time, an append that carries it or, when none follows, one of
    its own.

    PostgreSQL serialises the commits of notifying transactions on one cluster-wide lock
    held through the WAL flush, so appends that all notified would lose group commit. Here
    an append transaction notifies in itself only when no other notifying transaction of
    this process is in flight (:meth:`begin`); it announces its own last position, which
    is above every position committed before it started. An append that could not carry
    is announced by the next one that does. When an append ends and none starts before
    the notifier's own task runs, a transaction of the notifier's announces what is left
    (after the commit, so a listener never wakes before the events it announces are
    readable); after it, the notifier sends again only if no append is in flight, so the
    appends that started meanwhile hand the announcements back to the appends. Under a
    steady load the notifications ride on the appends themselves; before, a notifying
    transaction of its own followed every fourth to sixth append of eight side by side,
    a commit, a round trip and a pool connection each. A notification lost to a crash is
    covered by the listeners' polling.
    """

    def __init__(self, pool: asyncpg.Pool, channel: str) -> None:
        self._pool = pool
        self._channel = channel
        self._wanted = 0
        self._sent = 0
        self._carrying = False
        self._appending = 0
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0
        """Notifying transactions of the notifier's own sent so far (appends that carried a
        notification are not counted)."""

    def begin(self) -> bool:
        """An append transaction starts: whether it notifies in itself, which it does when
        no other notifying transaction of this process is in flight. Report its end with
        :meth:`end`."""
        self._appending += 1
        if self._carrying:
            return False
        self._carrying = True
        return True

    def end(self, *, carried: bool, position: int) -> None:
        """The append transaction ended, having written up to ``position`` (0: nothing, it
        failed or only replayed), announced in itself if it ``carried``."""
        self._appending -= 1
        if carried:
            self._carrying = False
            self._sent = max(self._sent, position)
        else:
            self._wanted = max(self._wanted, position)
        idle = self._task is None or self._task.done()
        if idle and self._sent < self._wanted and not self._carrying:
            self._task = asyncio.get_running_loop().create_task(self._send())

    @property
    def sent(self) -> int:
        """The highest position announced so far by this process."""
        return self._sent

    async def _send(self) -> None:
        # An append that started since this task was scheduled carries the announcement;
        # one still running when this one is sent will end, and announce or call again.
        while self._sent < self._wanted and not self._carrying:
            position = self._wanted
            self._carrying = True
            try:
                async with self._pool.acquire() as conn:
                    await conn.execute("SELECT pg_notify($1, $2)", self._channel, str(position))
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                log.warning("NOTIFY of position %d failed (listeners will poll): %s", position, exc)
                return
            finally:
                self._carrying = False
            self.transactions += 1
            self._sent = max(self._sent, position)
            if self._appending:
                return

    async def flush(self) -> None:
        """Wait until the last requested notification went out (for orderly shutdowns)."""
        if self._task is not None:
            await asyncio.shield(self._task)


class PostgresEventStore:
    """The event store over a pool whose connections have the store's schema on their path.

    Build the pool with :func:`programledger.adapters.postgres.connection.create_pool`, which
    also installs the raw jsonb codec these queries rely on. ``appends_in_flight`` bounds
    the append transactions running at once; appends beyond it wait and are combined into
    the next one (``None``: every append is its own transaction, nothing is combined).
    ``reads_in_flight`` does the same for whole-stream reads, a command's load.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        codec: EventCodec,
        *,
        schema: str,
        appends_in_flight: int | None = DEFAULT_APPENDS_IN_FLIGHT,
        reads_in_flight: int | None = DEFAULT_READS_IN_FLIGHT,
    ) -> None:
        self.pool = pool
        self.codec = codec
        self.schema = schema
        self.notifier = CommitNotifier(pool, self.notify_channel)
        self.stream_reads = StreamReads(self._read_streams, max_in_flight=reads_in_flight)
        self.combiner = AppendCombiner(
            self._append_batch,
            max_in_flight=appends_in_flight,
            answering=self.stream_reads.resuming,
        )
        self._store_id: UUID | None = None

    async def store_id(self) -> UUID:
        """The id ``migrate`` gave this store (it never changes, so it is read once): what
        its stream and messages are marked with, and what its consumers' names derive from."""
        if self._store_id is None:
            async with self.pool.acquire() as conn:
                self._store_id = await conn.fetchval("SELECT store_id FROM store_identity")
        assert self._store_id is not None
        return self._store_id

    @property
    def notify_channel(self) -> str:
        """The LISTEN channel that announces appends, with the last position written."""
        return f"{self.schema}_events"

    @staticmethod
    async def warm(conn: asyncpg.Connection) -> None:
        """Run a command's statements once on a new connection, writing nothing: give it to
        ``create_pool(warm=...)`` so that no command pays for a cold connection.

        A new backend compiles ``append_events`` and ``append_batch`` and plans the
        statements in them on first use, and asyncpg prepares each statement once per
        connection: a new connection's first load and appends cost about 15 ms of the
        server's CPU, 3 ms after this (``bench/feed.py``'s first requests waited for them).
        Each append here names an expected version no stream has (-1): conflicts are
        detected before a position is taken, so nothing is written or reserved.
        ``append_batch`` returns its conflict (and notifies nothing). ``append_events``
        raises it, so it runs inside PL/pgSQL that catches the conflict: a PL409 that
        reached the client was logged by PostgreSQL as an ERROR on every new connection,
        noise in the log operators watch for real errors. Each function is compiled once per
        backend, whatever statement calls it; only the single append's own statement is
        left for asyncpg to prepare on its first use (one round trip).
        """
        pending = PendingAppend(
            stream_id="warm-connection",
            stream_type="warm",
            expected=-1,
            event_ids=[new_event_id()],
            event_types=["warm"],
            schema_versions=[1],
            data=[b"{}"],
            metadata=b"{}",
            program_id=None,
            idempotency_key=None,
            fingerprint=None,
            outcome=asyncio.get_running_loop().create_future(),
        )
        await conn.fetch(_READ_STREAMS, [pending.stream_id])
        await conn.execute(_WARM_APPEND_ONE)
        await conn.fetch(_APPEND_NOTIFYING, *batch_arguments([pending]), "warm")

    async def append(
        self,
        stream_id: str,
        expected_version: Version,
        events: Sequence[DomainEvent],
        metadata: EventMetadata,
        *,
        idempotency_key: str | None = None,
        fingerprint: bytes | None = None,
        connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy | None = None,
    ) -> AppendResult:
        """Append ``events`` atomically, or raise and write nothing.

        ``fingerprint`` identifies the command behind an idempotency key; by default it is
        derived from the events, which suits callers whose events do not depend on state.
        ``connection`` lets a caller append inside its own transaction, provided the append
        is the first write of it; the notification then goes out when that transaction
        commits.
        """
        stream_type = stream_type_of(stream_id)
        expected = _expected_to_sql(expected_version)
        if not events:
            raise InvalidAppend("an append needs at least one event", field="events")
        if len(events) > MAX_EVENTS_PER_APPEND:
            raise InvalidAppend(
                f"an append holds at most {MAX_EVENTS_PER_APPEND} events, got {len(events)}",
                field="events",
            )
        encoded_metadata = _encoded_metadata(metadata)
        if idempotency_key is not None and not (
            0 < len(idempotency_key) <= 200 and "\x00" not in idempotency_key
        ):
            raise InvalidAppend(
                "idempotency key must be 1-200 characters without NUL", field="idempotency_key"
            )
        encoded = list(self.codec.encode_all(list(events)))
        if fingerprint is None and idempotency_key is not None:
            fingerprint = _fingerprint(stream_id, expected, metadata.actor, encoded)
        pending = PendingAppend(
            stream_id=stream_id,
            stream_type=stream_type,
            expected=expected,
            event_ids=[new_event_id() for _ in encoded],
            event_types=[e.event_type for e in encoded],
            schema_versions=[e.schema_version for e in encoded],
            data=[e.data for e in encoded],
            metadata=encoded_metadata,
            program_id=metadata.program_id,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
        row: asyncpg.Record | None
        try:
            if connection is None:
                row = await self.combiner.append(pending)
            else:
                row = await connection.fetchrow(_APPEND_ONE, *one_arguments(pending))
                if row is not None and not row["replayed"]:
                    await connection.execute(
                        "SELECT pg_notify($1, $2)",
                        self.notify_channel,
                        str(row["last_position"]),
                    )
        except asyncpg.PostgresError as exc:
            raise self._translate(exc, stream_id, expected_version, idempotency_key) from exc
        assert row is not None
        # append_batch says what became of the command; append_events raised unless it
        # appended or replayed.
        outcome = row.get("outcome") or ("replayed" if row["replayed"] else "appended")
        if outcome == "conflict":
            raise ConcurrencyConflict(stream_id, expected_version, row["stream_version"])
        if outcome == "key_reused":
            raise IdempotencyKeyReused(idempotency_key or "")
        return _append_result(stream_id, row, replayed=outcome == "replayed")

    async def _append_batch(self, batch: Sequence[PendingAppend]) -> list[asyncpg.Record]:
        """One transaction for ``batch``: a row per command, in its order, announced by a
        notification of the last position written, in this transaction when it carries
        the process's notification (``CommitNotifier.begin``), else after its commit. One
        command goes through ``append_events``, which costs a third less than a batch of
        one."""
        carrying = self.notifier.begin()
        last = 0
        try:
            async with self.pool.acquire() as conn:
                if len(batch) == 1:
                    one = one_arguments(batch[0])
                    if carrying:
                        row = await conn.fetchrow(_APPEND_ONE_NOTIFYING, *one, self.notify_channel)
                    else:
                        row = await conn.fetchrow(_APPEND_ONE, *one)
                    assert row is not None
                    rows = [row]
                    last = 0 if row["replayed"] else row["last_position"]
                else:
                    if carrying:
                        arguments = (*batch_arguments(batch), self.notify_channel)
                        rows = await conn.fetch(_APPEND_NOTIFYING, *arguments)
                    else:
                        rows = await conn.fetch(_APPEND, *batch_arguments(batch))
                    last = max(
                        (row["last_position"] for row in rows if row["outcome"] == "appended"),
                        default=0,
                    )
        finally:
            self.notifier.end(carried=carrying, position=last)
        if len(batch) == 1:
            return rows
        # append_batch answers every command once (written, conflict, replayed, key reused).
        by_command = {row["command"]: row for row in rows}
        return [by_command[i] for i in range(1, len(batch) + 1)]

    @staticmethod
    def _translate(
        exc: asyncpg.PostgresError, stream_id: str, expected: Version, key: str | None
    ) -> Exception:
        code = getattr(exc, "sqlstate", None)
        if code == "PL409":
            return ConcurrencyConflict(stream_id, expected, int(getattr(exc, "detail", 0) or 0))
        if code == "PL422":
            return IdempotencyKeyReused(key or "")
        if code == "PL415":
            return InvalidAppend(_said(exc), field="event_type")
        if code == "54000":
            return InvalidAppend(f"the append is too large for PostgreSQL: {_said(exc)}")
        if code in {"22P05", "22021", "22P02"}:
            return InvalidAppend(f"PostgreSQL refused the event data: {_said(exc)}")
        return exc

    def check_events(self, events: Sequence[DomainEvent]) -> None:
        """Encode ``events`` as :meth:`append` would, raising its ``InvalidAppend``."""
        for _ in self.codec.encode_all(list(events)):
            pass

    async def find_idempotent(
        self, key: str, fingerprint: bytes | None = None
    ) -> AppendResult | None:
        """The result of the append made earlier with ``key``, if there was one.

        With ``fingerprint``, a key that was used for a different command raises
        :class:`IdempotencyKeyReused`, so callers can answer a repeat before deciding again.
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM idempotency_keys WHERE key = $1", key)
        if row is None:
            return None
        if fingerprint is not None and row["fingerprint"] != fingerprint:
            raise IdempotencyKeyReused(key)
        return _append_result(row["stream_id"], row, replayed=True)

    def _record(self, row: asyncpg.Record) -> RecordedEvent:
        event_type: str = row["event_type"]
        stored_version: int = row["schema_version"]
        return RecordedEvent(
            position=row["position"],
            event_id=row["event_id"],
            stream_id=row["stream_id"],
            stream_type=row["stream_type"],
            version=row["version"],
            event_type=event_type,
            schema_version=self.codec.registry.type_for(event_type).schema_version,
            stored_schema_version=stored_version,
            data=self.codec.decode(event_type, stored_version, row["data"]),
            metadata=_metadata_decoder.decode(row["metadata"]),
            recorded_at=row["recorded_at"],
            hash=row["hash"],
        )

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        recorded_before: datetime | None = None,
    ) -> list[RecordedEvent]:
        """Events of one stream in version order; ``recorded_before`` is inclusive.

        A malformed stream id names no stream, so it reads as empty rather than reaching
        PostgreSQL (which refuses, for instance, a NUL character in text).
        """
        if not _is_stream_id(stream_id):
            return []
        if from_version == 1 and to_version is None and recorded_before is None:
            return [self._record(r) for r in await self.stream_reads.read(stream_id)]
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                _READ_STREAM,
                stream_id,
                from_version,
                to_version if to_version is not None else 2**62,
                recorded_before,
            )
        return [self._record(r) for r in rows]

    async def _read_streams(self, stream_ids: list[str]) -> dict[str, list[asyncpg.Record]]:
        """Whole streams in one query, each in version order."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_READ_STREAMS, stream_ids)
        found: dict[str, list[asyncpg.Record]] = {}
        for row in rows:
            found.setdefault(row[2], []).append(row)
        return found

    async def read_all(self, from_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Committed events after ``from_position`` in global order, never skipping one.

        Page by passing the last position seen. Must run on a connection with no
        transaction id of its own, which is what a pool connection outside a transaction is.
        """
        return [self._record(r) for r in await self._fetch_all(from_position, limit)]

    async def read_program(
        self, program_id: UUID, from_position: int, through: int, limit: int = 1000
    ) -> list[RecordedEvent]:
        """Events about ``program_id`` (their metadata names it) after ``from_position``,
        up to ``through``, in global order, through the ``events_program`` index.

        ``through`` must be a position :meth:`head_position` returned: every event at or
        below it is committed (positions follow transaction order), so the pages are a
        consistent cut however many appends happen meanwhile.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_READ_PROGRAM, program_id, from_position, through, limit)
        return [self._record(r) for r in rows]

    async def program_streams(self, program_id: UUID, through: int) -> list[str]:
        """The streams holding events about ``program_id`` (their metadata names it) up to
        ``through``, through the ``events_program`` index."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT stream_id FROM events "
                "WHERE program_id = $1 AND position <= $2 ORDER BY stream_id",
                program_id,
                through,
            )
        return [r["stream_id"] for r in rows]

    async def read_all_raw(self, from_position: int = 0, limit: int = 1000) -> list[RawEvent]:
        """Like :meth:`read_all`, with the data left as stored JSON bytes."""
        return [RawEvent(**dict(r)) for r in await self._fetch_all(from_position, limit)]

    async def read_feed(
        self,
        from_position: int,
        through: int,
        *,
        program_id: UUID | None = None,
        stream_types: Collection[str] | None = None,
        event_types: Collection[str] | None = None,
        limit: int = 1000,
    ) -> list[RawEvent]:
        """Events after ``from_position`` up to ``through`` in global order, of one program
        and of some stream and event types (``None``: any), data as stored.

        ``through`` must be a position :meth:`head_position` returned, so no transaction
        still open can later fill a position a reader has passed.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        wanted = (
            program_id,
            None if stream_types is None else list(stream_types),
            None if event_types is None else list(event_types),
        )
        where, args = [], []
        for condition, value in zip(_FEED_FILTERS, wanted, strict=True):
            if value is not None:
                args.append(value)
                where.append(condition.format(n=3 + len(args)))
        sql = _READ_FEED.format(where=" ".join(where))
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql, from_position, through, limit, *args)
        return [_raw(r) for r in rows]

    async def read_share(
        self,
        from_position: int,
        through: int,
        *,
        event_types: Collection[str],
        key: ShareKey,
        shares: int,
        share: int,
        limit: int = 1000,
    ) -> list[RawEvent]:
        """Events of ``event_types`` after ``from_position`` up to ``through`` whose
        ``key`` (``stream``: the stream id; ``program``: the program id in the data, else
        the stream id) hashes to ``share`` of ``shares``, in global order.

        ``through`` must be a position :meth:`head_position` returned (everything at or
        below it is committed), so the shares are disjoint and together every event.
        """
        if limit < 1 or not 0 <= share < shares:
            raise ValueError("limit must be at least 1 and share one of the shares")
        sql = _READ_SHARE.format(key=_SHARE_KEYS[key])
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                sql, from_position, through, list(event_types), shares, share, limit
            )
        return [RawEvent(**dict(r)) for r in rows]

    async def _fetch_all(self, from_position: int, limit: int) -> list[asyncpg.Record]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        async with self.pool.acquire() as conn:
            return list(await conn.fetch(_READ_ALL, from_position, limit))

    async def stream_version(self, stream_id: str) -> int:
        if not _is_stream_id(stream_id):
            return 0
        async with self.pool.acquire() as conn:
            version = await conn.fetchval(
                "SELECT version FROM streams WHERE stream_id = $1", stream_id
            )
        return int(version or 0)

    async def head_position(self) -> int:
        """The highest position a reader can see now (committed, and safe to read)."""
        async with self.pool.acquire() as conn:
            head = await conn.fetchval(_HEAD_POSITION)
        return int(head or 0)

    async def stream_ids(self, *, after: str = "", limit: int = 1000) -> list[str]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT stream_id FROM streams WHERE stream_id > $1 ORDER BY stream_id LIMIT $2",
                after,
                limit,
            )
        return [r["stream_id"] for r in rows]

    async def verify(self, stream_id: str) -> StreamVerification:
        """Walk the stream's hash chain and report the first link that does not hold."""
        if not _is_stream_id(stream_id):
            return _walk_chain(stream_id, None, [])
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            head = await conn.fetchrow(
                "SELECT version, last_hash FROM streams WHERE stream_id = $1", stream_id
            )
            rows = await conn.fetch(
                """
                SELECT version, prev_hash, hash, hash_version,
                       CASE hash_version
                         WHEN 1 THEN event_hash(prev_hash, event_id, stream_id, version,
                                                event_type, schema_version, data, metadata,
                                                recorded_at)
                         ELSE event_hash_v2(prev_hash, position, event_id, stream_id,
                                            stream_type, version, program_id, event_type,
                                            schema_version, data, metadata, recorded_at)
                       END AS computed
                FROM events WHERE stream_id = $1 ORDER BY version
                """,
                stream_id,
            )
        return _walk_chain(stream_id, head, rows)


def _walk_chain(
    stream_id: str, head: asyncpg.Record | None, rows: Sequence[asyncpg.Record]
) -> StreamVerification:
    def broken(version: int, problem: str, checked: int) -> StreamVerification:
        return StreamVerification(
            stream_id=stream_id,
            ok=False,
            events_checked=checked,
            broken_at_version=version,
            problem=problem,
        )

    previous = b""
    checked = 0
    hash_version = 1
    for expected_version, row in enumerate(rows, start=1):
        version = row["version"]
        if version != expected_version:
            return broken(expected_version, f"version {expected_version} is missing", checked)
        if row["hash_version"] not in (1, 2):
            return broken(
                version, f"the event's hash format {row['hash_version']} is unknown", checked
            )
        if row["hash_version"] < hash_version:
            # Format 1 covers less; no append writes it after format 2 (docs/integrity.md).
            return broken(version, "the event's hash format went back to 1", checked)
        hash_version = row["hash_version"]
        if row["prev_hash"] != previous:
            return broken(version, "the link to the previous event does not match", checked)
        if row["computed"] != row["hash"]:
            return broken(version, "the event's content does not match its hash", checked)
        previous = row["hash"]
        checked += 1
    if head is None:
        if rows:
            return broken(1, "events exist but the stream's head record is missing", checked)
        return broken(1, "no such stream", 0)
    if head["version"] != checked:
        return broken(checked + 1, f"version {checked + 1} is missing", checked)
    if head["last_hash"] != previous:
        return broken(checked, "the stream's head does not match its last event", checked)
    return StreamVerification(stream_id=stream_id, ok=True, events_checked=checked)
