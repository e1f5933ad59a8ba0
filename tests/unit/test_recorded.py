"""Rows carry who made them only for an operation that asks: the scan that decides."""

from __future__ import annotations

import pytest
from graphql import parse

from programledger.api.graphql.recorded import selects_stamps


@pytest.mark.parametrize(
    ("document", "selects"),
    [
        ("{ programs { nodes { code updatedAt } } }", False),
        ("{ programs { nodes { code createdBy } } }", True),
        ("{ node(id: 1) { ... on Risk { lastChangeReason } } }", True),
        ("query { risks { ...R } } fragment R on RiskConnection { nodes { lastChange } }", True),
        ("mutation { a { ... on CommandAccepted { position } } }", False),
    ],
)
def test_an_operation_selects_the_stamps_when_it_names_one(document: str, selects: bool) -> None:
    assert selects_stamps(parse(document)) is selects
