"""The audit trail: one row per event, with who, when, why, and what it changed.

Each row carries the event's metadata (actor, reason, correlation and causation ids,
recorded time) and the field-level difference it made to its entity: the stream is
folded with the domain's ``evolve`` before and after the event, both states turned into
plain data, and compared. Paths name fields (``priority``), nested fields
(``planned_budget.amount_minor``) and items of a collection by their id
(``milestones[<id>].forecast_date``), so a change to one milestone reads as that, not as
"the list changed". An item added or removed is one change holding the whole item; an
entity created lists its initial (non-empty) fields.

The trail is append-only: a row is a fact and never gets a new version; "as of P" is
``position <= P``.

Tables: ``rm_audit`` (append-only, key ``position``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import compress
from operator import is_not
from typing import Any
from uuid import UUID

import msgspec

from programledger.adapters.postgres.structure import StructureProblem
from programledger.application.ports import StreamReader
from programledger.domain import EVENT_TYPES, program_id_of
from programledger.domain.assumption import Assumption
from programledger.domain.issue import Issue
from programledger.domain.objective import Objective
from programledger.domain.portfolio import Portfolio
from programledger.domain.program import Program
from programledger.domain.report import StatusReport
from programledger.domain.resource import Resource
from programledger.domain.risk import Risk
from programledger.domain.scenario import Scenario
from programledger.domain.schedule import ScheduleNetwork
from programledger.projections.engine.core import (
    Connection,
    Context,
    ProjectedEvent,
    Projection,
    Tracked,
    evolve,
    fold,
)
from programledger.projections.engine.queries import (
    AsOf,
    Filters,
    ListSpec,
    Page,
    Reader,
    fetch_page,
)
from programledger.projections.engine.tables import Column, Index, SortKey, Table

__all__ = [
    "AUDIT",
    "PROJECTION",
    "AuditEntry",
    "FieldChange",
    "audit_trail",
    "changes_between",
    "check_audit_trail",
    "diff",
]

AUDIT = Table(
    "rm_audit",
    key=(Column("position", "bigint", True),),
    columns=(
        Column("event_id", "uuid", True),
        Column("stream_id", "text", True),
        Column("stream_type", "text", True),
        Column("entity_id", "text", True),
        Column("program_id", "uuid"),
        Column("version", "bigint", True),
        Column("event_type", "text", True),
        Column("actor", "text", True),
        Column("reason", "text"),
        Column("correlation_id", "uuid"),
        Column("causation_id", "uuid"),
        Column("recorded_at", "timestamptz", True),
        Column("changes", "jsonb", True),
    ),
    indexes=(
        Index("stream", "(stream_id, position)"),
        Index("program", "(program_id, position)"),
        Index("actor", "(actor, position)"),
        Index("type", "(event_type, position)"),
        Index("correlation", "(correlation_id)"),
    ),
    versioned=False,
    position_column="position",
    sorts={"position": SortKey("position", "bigint")},
)


class FieldChange(msgspec.Struct, frozen=True):
    path: str
    before: Any
    after: Any


_encoder = msgspec.json.Encoder()
_changes_decoder = msgspec.json.Decoder(list[FieldChange])
_MISSING: Any = None


def _item_key(items: Sequence[Any]) -> str | None:
    """The id field that identifies the items of a collection, if they have one."""
    first = items[0] if items else None
    if not isinstance(first, dict) or not first:
        return None
    name: str = next(iter(first))
    if not name.endswith("_id"):
        return None
    if all(isinstance(i, dict) and name in i for i in items):
        return name
    return None


def diff(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    """The changes from ``before`` to ``after`` (plain data), by path."""
    if before == after:
        return []
    found: list[FieldChange] = []
    if isinstance(before, dict) and isinstance(after, dict):
        # Only unequal fields are descended into: most of an entity stays as it was.
        for name in (*after, *(k for k in before if k not in after)):
            old, new = before.get(name, _MISSING), after.get(name, _MISSING)
            if old != new:
                found.extend(diff(old, new, f"{path}.{name}" if path else name))
        return found
    if isinstance(before, list | tuple) and isinstance(after, list | tuple):
        key = _item_key(after or before)
        if key is not None and (not before or _item_key(before) == key):
            olds = {i[key]: i for i in before}
            news = {i[key]: i for i in after}
            for item_id in (*news, *(k for k in olds if k not in news)):
                old, new = olds.get(item_id, _MISSING), news.get(item_id, _MISSING)
                if old != new:
                    found.extend(diff(old, new, f"{path}[{item_id}]"))
            return found
    return [FieldChange(path, before, after)]


def changes_between(before: msgspec.Struct, after: msgspec.Struct) -> list[FieldChange]:
    """:func:`diff` of two states of an entity, computed on the structs themselves: only
    what changed is turned into plain data, so an event that reschedules one milestone
    costs that milestone, not the program."""
    found: list[FieldChange] = []
    _struct_changes(before, after, "", found)
    return found


def _struct_changes(
    before: msgspec.Struct, after: msgspec.Struct, prefix: str, found: list[FieldChange]
) -> None:
    # ``evolve`` replaces the fields an event changes and shares the rest, so most pairs
    # are the same object: the identity test runs in C over all fields at once, and only
    # the replaced ones are compared.
    olds, news = msgspec.structs.astuple(before), msgspec.structs.astuple(after)
    replaced = compress(range(len(news)), map(is_not, olds, news))
    names = after.__struct_fields__
    for i in replaced:
        old, new = olds[i], news[i]
        if old != new:
            _value_changes(old, new, prefix + names[i], found)


def _value_changes(old: Any, new: Any, path: str, found: list[FieldChange]) -> None:
    """What :func:`diff` finds between the plain forms of ``old`` and ``new``."""
    if type(old) is type(new) and isinstance(old, msgspec.Struct):
        _struct_changes(old, new, path + ".", found)
        return
    if isinstance(old, tuple) and isinstance(new, tuple):
        key = _struct_item_key(new or old)
        if key is not None and (not old or _struct_item_key(old) == key):
            if not _aligned_item_changes(old, new, key, path, found):
                _keyed_item_changes(old, new, key, path, found)
            return
    found.extend(diff(msgspec.to_builtins(old), msgspec.to_builtins(new), path))


def _aligned_item_changes(
    old: tuple[Any, ...], new: tuple[Any, ...], key: str, path: str, found: list[FieldChange]
) -> bool:
    """The common case, items changed in place or appended: ``False`` (nothing added to
    ``found``) when the items are not in the same order."""
    if len(new) < len(old):
        return False
    changed = list(compress(range(len(old)), map(is_not, old, new)))
    if any(getattr(old[i], key) != getattr(new[i], key) for i in changed):
        return False
    for i in changed:
        if old[i] != new[i]:
            _value_changes(old[i], new[i], f"{path}[{getattr(new[i], key)}]", found)
    for item in new[len(old) :]:
        found.append(FieldChange(f"{path}[{getattr(item, key)}]", None, msgspec.to_builtins(item)))
    return True


def _keyed_item_changes(
    old: tuple[Any, ...], new: tuple[Any, ...], key: str, path: str, found: list[FieldChange]
) -> None:
    olds = {getattr(i, key): i for i in old}
    news = {getattr(i, key): i for i in new}
    for item_id in (*news, *(k for k in olds if k not in news)):
        was, now = olds.get(item_id), news.get(item_id)
        if was is None or now is None:
            found.append(
                FieldChange(
                    f"{path}[{item_id}]", msgspec.to_builtins(was), msgspec.to_builtins(now)
                )
            )
        elif was is not now and was != now:
            _value_changes(was, now, f"{path}[{item_id}]", found)


def _struct_item_key(items: tuple[Any, ...]) -> str | None:
    """:func:`_item_key` for items still structs: the first field, if it is an id (a
    tagged struct's plain form starts with its tag instead)."""
    first = items[0] if items else None
    if not isinstance(first, msgspec.Struct) or not first.__struct_fields__:
        return None
    if first.__struct_config__.tag is not None:
        return None
    kind = type(first)
    name = first.__struct_fields__[0]
    if not name.endswith("_id") or not all(type(i) is kind for i in items):
        return None
    return name


def _created(after: dict[str, Any]) -> list[FieldChange]:
    return [FieldChange(k, None, v) for k, v in after.items() if v not in (None, (), [], {})]


def _changes(before: Any, after: Any) -> list[FieldChange]:
    """A row's ``changes``: the entity's initial fields, or what the event changed."""
    if before is None:
        return _created(msgspec.to_builtins(after))
    return changes_between(before, after)


def _handle(ctx: Context, event: ProjectedEvent) -> None:
    before, after = fold(ctx, event)
    changes = _changes(before, after)
    program = event.program_id or program_id_of(event.event)
    ctx.add(
        AUDIT,
        (
            event.position,
            event.event_id,
            event.stream_id,
            event.stream_type,
            event.stream_id.partition("-")[2],
            program,
            event.version,
            event.event_type,
            event.actor,
            event.reason,
            event.correlation_id,
            event.causation_id,
            event.recorded_at,
            _encoder.encode(changes),
        ),
    )


PROJECTION = Projection(
    name="audit",
    description="one row per event: who, when, why, and the field-level change",
    handles=frozenset(t.event_type for t in EVENT_TYPES),
    tables=(AUDIT,),
    states={
        "program": Tracked[Program],
        "risk": Tracked[Risk],
        "assumption": Tracked[Assumption],
        "issue": Tracked[Issue],
        "resource": Tracked[Resource],
        "schedule": Tracked[ScheduleNetwork],
        "portfolio": Tracked[Portfolio],
        "objective": Tracked[Objective],
        "status_report": Tracked[StatusReport],
        "scenario": Tracked[Scenario],
    },
    handle=_handle,
    share_key="stream",
)


# Queries


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    event_id: UUID
    stream_id: str
    stream_type: str
    entity_id: str
    """The program or risk id, or the resource key."""
    program_id: UUID | None
    version: int
    event_type: str
    actor: str
    reason: str | None
    correlation_id: UUID | None
    causation_id: UUID | None
    recorded_at: datetime
    changes: list[FieldChange]


def _entry(data: dict[str, Any]) -> AuditEntry:
    data["changes"] = _changes_decoder.decode(data["changes"])
    return AuditEntry(**data)


LIST = ListSpec(table=AUDIT, convert=_entry)

_STREAM_TYPES = tuple(PROJECTION.states)
"""The stream types the trail holds: a stream id is ``<type>-<entity id>``."""

_FIRST_RECORDED_AT_OR_AFTER = (
    "coalesce((SELECT position FROM events WHERE recorded_at >= {} "
    "ORDER BY recorded_at, position LIMIT 1), 9223372036854775807)"
)


async def audit_trail(
    pool: Reader,
    *,
    stream_id: str | None = None,
    entity_id: str | None = None,
    program_id: UUID | None = None,
    actor: str | None = None,
    event_types: Sequence[str] | None = None,
    correlation_id: UUID | None = None,
    recorded_from: datetime | None = None,
    recorded_to: datetime | None = None,
    newest_first: bool = True,
    first: int = 50,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    as_of: AsOf = None,
    count: bool = True,
) -> Page[AuditEntry]:
    """Who changed what, when and why: filter by entity (stream id, or the id alone),
    program, actor, event types, correlation id, and a recorded-time window
    (``recorded_from`` inclusive, ``recorded_to`` exclusive)."""
    filters = Filters()
    filters.equals("stream_id", stream_id)
    if entity_id is not None:
        # An entity's events are its stream's: the stream index serves both filters.
        filters.any_of("stream_id", [f"{kind}-{entity_id}" for kind in _STREAM_TYPES], "text")
    filters.equals("program_id", program_id)
    filters.equals("actor", actor)
    filters.any_of("event_type", event_types, "text")
    filters.equals("correlation_id", correlation_id)
    # Recorded time never goes back in position order, so a time window is a range of
    # positions, found with the event store's own index on recorded time.
    if recorded_from is not None:
        filters.where(f"position >= {_FIRST_RECORDED_AT_OR_AFTER}", recorded_from)
    if recorded_to is not None:
        filters.where(f"position < {_FIRST_RECORDED_AT_OR_AFTER}", recorded_to)
    return await fetch_page(
        pool,
        LIST,
        filters,
        sort="position",
        descending=newest_first,
        first=first,
        after=after,
        last=last,
        before=before,
        as_of=as_of,
        count=count,
    )


# Verification

_DIFFERENCES = """
WITH expected AS (
    SELECT position, event_id, stream_id, stream_type,
           substr(stream_id, strpos(stream_id, '-') + 1) AS entity_id, version, event_type,
           metadata->>'actor' AS actor, metadata->>'reason' AS reason,
           (metadata->>'correlation_id')::uuid AS correlation_id,
           (metadata->>'causation_id')::uuid AS causation_id, recorded_at
    FROM events WHERE position <= $1 AND event_type = ANY($2::text[])
), actual AS (
    SELECT position, event_id, stream_id, stream_type, entity_id, version, event_type, actor,
           reason, correlation_id, causation_id, recorded_at
    FROM rm_audit
)
SELECT coalesce(e.position, a.position) AS position, e.position IS NULL AS extra,
       a.position IS NULL AS missing
FROM expected e FULL JOIN actual a ON a.position = e.position
WHERE e IS DISTINCT FROM a
ORDER BY 1 LIMIT 100
"""


async def check_audit_trail(conn: Connection, store: StreamReader) -> list[StructureProblem]:
    """Where ``rm_audit`` differs from the events up to its checkpoint: a row missing, a
    row no event explains (or beyond the checkpoint), a row whose facts (event id, stream,
    entity, version, type, actor, reason, correlation and causation ids, recorded time)
    are not the event's, or whose ``changes`` are not what folding its stream with the
    domain's ``evolve`` gives (read stream by stream through ``store``)."""
    checkpoint = await conn.fetchval("SELECT position FROM projection_status WHERE name = 'audit'")
    if checkpoint is None or await conn.fetchval("SELECT to_regclass('rm_audit')") is None:
        return []
    rows = await conn.fetch(_DIFFERENCES, checkpoint, sorted(PROJECTION.handles))
    problems = [StructureProblem("read-models", _difference(r, checkpoint)) for r in rows]
    if not problems:
        problems = await _changes_differ(conn, store, checkpoint)
    return problems


async def _changes_differ(
    conn: Connection, store: StreamReader, checkpoint: int
) -> list[StructureProblem]:
    found: list[StructureProblem] = []
    streams = await conn.fetch("SELECT DISTINCT stream_id FROM rm_audit ORDER BY stream_id")
    for stream in (r["stream_id"] for r in streams):
        stored = {
            r["position"]: msgspec.json.decode(r["changes"])
            for r in await conn.fetch(
                "SELECT position, changes FROM rm_audit WHERE stream_id = $1", stream
            )
        }
        state = None
        for record in await store.read_stream(stream):
            if record.position > checkpoint:
                break
            after = evolve(record.stream_type, state, record.data)
            expected = msgspec.json.decode(_encoder.encode(_changes(state, after)))
            state = after
            if stored.get(record.position) != expected:
                found.append(
                    StructureProblem(
                        "read-models",
                        f"rm_audit's changes at position {record.position} ({stream} version "
                        f"{record.version}) are not what the event changed",
                    )
                )
                if len(found) >= 100:
                    return found
    return found


def _difference(row: Any, checkpoint: int) -> str:
    position = row["position"]
    if row["missing"]:
        return f"rm_audit has no row for the event at position {position}"
    if row["extra"]:
        beyond = f", beyond its checkpoint {checkpoint}" if position > checkpoint else ""
        return f"rm_audit has a row at position {position} that no event explains{beyond}"
    return f"rm_audit's row at position {position} differs from its event"
