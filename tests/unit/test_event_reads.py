"""Nothing written is unreadable: every field of every event type the store accepts
reaches a GraphQL type, or is declared internal, with why, in one place
(``api/graphql/event_reads.py``). Driven by the registry the event catalogue is made
from, so a new event or a new field fails here until it has a read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar
from uuid import UUID

import msgspec
import pytest
from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema

from programledger.api.graphql.event_reads import EVENT_READS, INTERNAL, Reads
from programledger.api.graphql.inputs import camel
from programledger.api.graphql.schema import build_schema
from programledger.application.registry import application_registry
from programledger.domain.events import DomainEvent

WHERE = "src/programledger/api/graphql/event_reads.py"
REGISTRY = application_registry()
EVENT_TYPES = {cls.event_type: cls for cls in REGISTRY}


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema()._schema


def _fields_of(cls: type) -> list[str]:
    return [f.name for f in msgspec.structs.fields(cls)]


def _has(schema: GraphQLSchema, type_name: str, field: str) -> bool:
    found = schema.type_map.get(type_name)
    return isinstance(found, GraphQLObjectType | GraphQLInterfaceType) and field in found.fields


def _recorded(schema: GraphQLSchema, type_name: str) -> bool:
    found = schema.type_map.get(type_name)
    return isinstance(found, GraphQLObjectType) and any(
        i.name == "Recorded" for i in found.interfaces
    )


def _where_read(schema: GraphQLSchema, reads: Reads, name: str) -> str | None:
    """The ``Type.field`` that reads the event field ``name``, if one does."""
    if name in reads.fields:
        target = reads.fields[name]
        type_name, _, field = target.partition(".")
        return target if _has(schema, type_name, field) else None
    for type_name in reads.types:
        if _has(schema, type_name, camel(name)):
            return f"{type_name}.{camel(name)}"
    entity = reads.types[0]
    if name == "reason" and _recorded(schema, entity):
        return f"{entity}.lastChangeReason"
    return None


def unread(
    schema: GraphQLSchema,
    event_types: Mapping[str, type],
    event_reads: Mapping[str, Reads],
    internal: Mapping[tuple[str, str], str],
) -> list[str]:
    """What to fix so every field of ``event_types`` is read or declared internal."""
    found = []
    for event_type, cls in sorted(event_types.items()):
        reads = event_reads.get(event_type)
        if reads is None:
            continue  # reported by test_every_event_type_has_its_reads_declared
        for name in _fields_of(cls):
            where = _where_read(schema, reads, name)
            listed = (event_type, name) in internal
            if where is not None and listed:
                found.append(
                    f"{event_type}.{name} is read as {where} and also listed in INTERNAL: "
                    "take it out of INTERNAL"
                )
            elif where is None and not listed:
                types = " or ".join(reads.types)
                found.append(
                    f"{event_type}.{name} reaches no GraphQL type. Show it: a field "
                    f"{camel(name)!r} on {types} (its read model keeping it), or, if it is read "
                    f"under another name, EVENT_READS[{event_type!r}].fields"
                    f"[{name!r}] = '<Type>.<field>'; or, if no client may ever read it, "
                    f"INTERNAL[({event_type!r}, {name!r})] = '<why>'"
                )
    return found


def test_every_event_type_has_its_reads_declared() -> None:
    missing = sorted(set(EVENT_TYPES) - set(EVENT_READS))
    assert not missing, (
        f"event types with no read declared: {missing}. Add each to EVENT_READS in {WHERE}: "
        "Reads(('<the GraphQL type of the entity it changes>', ...)), and give that type a "
        "field for each event field (see test_every_event_field_reaches_a_graphql_type)."
    )
    stale = sorted(set(EVENT_READS) - set(EVENT_TYPES))
    assert not stale, f"EVENT_READS in {WHERE} names event types the registry lacks: {stale}"


def test_the_declared_types_and_fields_exist(schema: GraphQLSchema) -> None:
    problems = []
    for event_type, reads in EVENT_READS.items():
        fields = set(_fields_of(EVENT_TYPES[event_type])) if event_type in EVENT_TYPES else set()
        problems += [
            f"EVENT_READS[{event_type!r}] names GraphQL type {t!r}, which the schema lacks"
            for t in reads.types
            if t not in schema.type_map
        ]
        problems += [
            f"EVENT_READS[{event_type!r}].fields names {name!r}, not a field of the event"
            for name in reads.fields
            if name not in fields
        ]
    for (event_type, name), why in INTERNAL.items():
        cls = EVENT_TYPES.get(event_type)
        if cls is None or name not in _fields_of(cls):
            problems.append(f"INTERNAL names {event_type}.{name}, which no event type has")
        elif not why.strip():
            problems.append(f"INTERNAL[{(event_type, name)!r}] must say why it is internal")
    assert not problems, f"fix in {WHERE}:\n" + "\n".join(problems)


def test_every_event_field_reaches_a_graphql_type(schema: GraphQLSchema) -> None:
    problems = unread(schema, EVENT_TYPES, EVENT_READS, INTERNAL)
    assert not problems, f"in {WHERE}:\n" + "\n".join(problems)


class _WorkstreamArchived(DomainEvent, frozen=True, kw_only=True):
    """An event a later change might add, with a field nothing reads yet."""

    event_type: ClassVar[str] = "WorkstreamArchived"
    program_id: UUID
    workstream_id: UUID
    archived_because: str


def test_a_field_without_a_read_fails_and_says_what_to_do(schema: GraphQLSchema) -> None:
    events = {"WorkstreamArchived": _WorkstreamArchived}
    reads = {"WorkstreamArchived": Reads(("Workstream",))}
    [problem] = unread(schema, events, reads, {})
    assert problem.startswith("WorkstreamArchived.archived_because reaches no GraphQL type")
    assert "'archivedBecause' on Workstream" in problem
    assert "INTERNAL[('WorkstreamArchived', 'archived_because')]" in problem
    internal = {("WorkstreamArchived", "archived_because"): "kept for the auditors"}
    assert unread(schema, events, reads, internal) == []
    renamed = {
        "WorkstreamArchived": Reads(("Workstream",), {"archived_because": "Workstream.name"})
    }
    assert unread(schema, events, renamed, {}) == []
    wrong = {"WorkstreamArchived": Reads(("Workstream",), {"archived_because": "Workstream.nope"})}
    assert len(unread(schema, events, wrong, {})) == 1


NOT_ENTITIES = {
    "AuditEntry": "an event as the audit trail shows it: its actor and time are its own fields",
    "HistoryEntry": "an event of a stream's history, which names its actor and time",
    "EventEnvelope": "an event as the feed carries it, with its metadata",
    "Baseline": "a numbered snapshot inside a program's schedule, not a row of its own",
}
"""Types with a version or a global id that are not entities a client edits."""


def test_every_entity_says_who_made_it_and_when(schema: GraphQLSchema) -> None:
    """Every entity (a Node, or a type carrying the version a command expects) implements
    ``Recorded``: created and last changed, by whom, with which event and why."""
    missing = []
    for name, found in sorted(schema.type_map.items()):
        if not isinstance(found, GraphQLObjectType) or name.startswith("__"):
            continue
        interfaces = {i.name for i in found.interfaces}
        if "CommandAccepted" in interfaces or name in NOT_ENTITIES:
            continue
        entity = "Node" in interfaces or "version" in found.fields or "revision" in found.fields
        if entity and "Recorded" not in interfaces:
            missing.append(name)
    assert missing == [], f"entities that do not implement Recorded: {missing}"
