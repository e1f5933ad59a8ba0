"""Which read models a query waits for (``Programledger-Min-Position``) is said by hand,
field by field: these checks make a new root field, a new node type or a misspelt read
model fail here rather than answer stale data for lack of a wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from graphql import GraphQLInterfaceType, parse

from programledger.api.graphql.freshness import (
    READ_MODELS_OF_FIELD,
    READ_MODELS_OF_TYPE,
    UNWAITED_FIELDS,
    as_of_positions,
    as_of_times,
    read_models_of,
)
from programledger.api.graphql.schema import build_schema
from programledger.projections.registry import PROJECTIONS


def test_every_root_field_says_what_it_waits_for() -> None:
    query = build_schema()._schema.query_type
    assert query is not None
    fields = set(query.fields)
    assert fields - READ_MODELS_OF_FIELD.keys() - UNWAITED_FIELDS == {"node", "nodes"}
    assert not UNWAITED_FIELDS & READ_MODELS_OF_FIELD.keys()
    assert fields >= UNWAITED_FIELDS


def test_every_node_type_has_its_read_model() -> None:
    schema = build_schema()._schema
    node = schema.get_type("Node")
    assert isinstance(node, GraphQLInterfaceType)
    types = {t.name for t in schema.get_possible_types(node)}
    assert types == READ_MODELS_OF_TYPE.keys()


def test_every_read_model_named_exists() -> None:
    named = {m for models in READ_MODELS_OF_FIELD.values() for m in models}
    assert named | set(READ_MODELS_OF_TYPE.values()) <= PROJECTIONS.keys()


def test_node_waits_for_the_types_its_fragments_name_or_else_for_all() -> None:
    def of(document: str) -> frozenset[str]:
        return read_models_of(parse(document))

    assert of("{ node(id: 1) { ... on Risk { title } ... on Scenario { name } } }") == {
        "risks",
        "scenarios",
    }
    assert of("{ nodes(ids: [1]) { ...P } } fragment P on Program { name }") == {"programs"}
    assert of("{ node(id: 1) { id } }") == set(READ_MODELS_OF_TYPE.values())
    # A fragment elsewhere names the type it reads, whichever field it sits under.
    assert of("{ risks { nodes { ... on Risk { title } } } }") == {"risks"}
    assert of("{ history(streamId: 1) { position } }") == frozenset()


def test_the_positions_a_query_reads_as_of_come_from_literals_and_variables() -> None:
    document = parse(
        "query($at: SafeInt, $known: SafeInt, $n: Int) {"
        " program(id: 1, asOfPosition: 7) { name }"
        " risks(asOfPosition: $at, first: $n) { totalCount }"
        ' utilisation(from: "2027-01-04", to: "2027-01-10", knownAtPosition: $known)'
        " { weeks { totalCount } } }"
    )
    assert sorted(as_of_positions(document, {"at": 12, "known": 3, "n": 50})) == [3, 7, 12]
    # Unset, null or not a position: the field's own validation answers for it.
    assert as_of_positions(document, {"at": None, "known": True}) == [7]
    assert as_of_positions(parse("{ programs(asOfPosition: -1) { totalCount } }"), {}) == []


def test_the_times_a_query_reads_as_of_come_from_literals_and_variables() -> None:
    document = parse(
        "query($at: DateTime, $known: DateTime) {"
        ' program(id: 1, asOf: "2027-03-01T09:30:00Z") { name }'
        " risks(asOf: $at) { totalCount }"
        ' utilisation(from: "2027-01-04", to: "2027-01-10", knownAt: $known)'
        " { weeks { totalCount } } }"
    )
    variables = {"at": "2027-03-02T10:00:00+01:00", "known": "2027-02-01T00:00:00Z"}
    assert sorted(as_of_times(document, variables)) == [
        datetime(2027, 2, 1, tzinfo=UTC),
        datetime(2027, 3, 1, 9, 30, tzinfo=UTC),
        datetime(2027, 3, 2, 10, tzinfo=timezone(timedelta(hours=1))),
    ]
    # Unset, without an offset or not a time: the field's own validation answers for it.
    unset = {"at": None, "known": "2027-02-01T00:00:00"}
    assert as_of_times(document, unset) == [datetime(2027, 3, 1, 9, 30, tzinfo=UTC)]
    assert as_of_times(parse('{ programs(asOf: "last week") { totalCount } }'), {}) == []
    # A time is not a position, nor a position a time.
    assert as_of_positions(document, variables) == []
    assert as_of_times(parse("{ programs(asOfPosition: 7) { totalCount } }"), {}) == []
