"""The GraphQL in docs/ runs as written: every ``graphql`` block of every page is valid
against the schema the server builds (a frontend developer, an admin registering a
webhook, an auditor copies them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import DocumentNode, OperationDefinitionNode, parse, validate

from programledger.api.graphql.schema import build_schema

DOCS = sorted((Path(__file__).resolve().parents[2] / "docs").glob("*.md"))
_BLOCKS = [
    block
    for doc in DOCS
    for block in re.findall(r"```graphql\n(.*?)```", doc.read_text(), re.DOTALL)
]


def test_the_doc_has_queries() -> None:
    assert len(_BLOCKS) >= 4


@pytest.mark.parametrize("block", _BLOCKS, ids=lambda b: b.split("{")[0].strip()[:40])
def test_each_query_of_the_doc_is_valid(block: str) -> None:
    if not re.match(r"\s*(query|mutation|subscription)\b", block):
        pytest.skip("a fragment of a document, not a whole operation")
    schema = build_schema()._schema
    document = parse(block)
    # A block may list several operations to send one by one (some anonymous).
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    others = [d for d in document.definitions if not isinstance(d, OperationDefinitionNode)]
    for operation in operations:
        errors = validate(schema, DocumentNode(definitions=(operation, *others)))
        assert errors == [], errors
