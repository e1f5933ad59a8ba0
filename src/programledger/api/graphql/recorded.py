"""The ``Recorded`` interface: when and by whom an entity was created and last changed.

Every entity read from a versioned read model implements it: its rows carry the stamps
(:func:`programledger.projections.engine.queries.stamps_sql`), read from the store's own
events, so "who changed this, when, and why" needs neither the audit trail nor a second
query, and as of a moment it answers for the version shown then. They cost index lookups
per row, so :class:`ReadStamps` has them read only for an operation that selects one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    InlineFragmentNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from programledger.projections.engine.queries import VersionedRow, with_stamps

__all__ = ["STAMPS", "ReadStamps", "Recorded", "recorded", "selects_stamps"]

STAMPS = frozenset({"createdAt", "createdBy", "updatedBy", "lastChange", "lastChangeReason"})
"""The fields of :class:`Recorded` read with the row's stamps (``updatedAt`` is a column)."""


@strawberry.interface(
    description="An entity whose versions say who made them, when and why (as of asOf)."
)
class Recorded:
    created_at: datetime = strawberry.field(description="When the entity was created.")
    created_by: str = strawberry.field(description="Who created it (the event's actor).")
    updated_at: datetime = strawberry.field(
        description="When the version shown was recorded: the last change (as of asOf)."
    )
    updated_by: str = strawberry.field(description="Who made the last change.")
    last_change: str = strawberry.field(
        description="The event type of the last change (as the audit trail names it)."
    )
    last_change_reason: str | None = strawberry.field(
        description="The reason given with the last change: the event's, else the command's."
    )


def recorded(row: VersionedRow) -> dict[str, Any]:
    """The :class:`Recorded` fields of a type built from ``row``."""
    return {
        "created_at": row.created_at,
        "created_by": row.created_by,
        "updated_at": row.valid_from_time,
        "updated_by": row.updated_by,
        "last_change": row.change,
        "last_change_reason": row.change_reason,
    }


def selects_stamps(document: DocumentNode) -> bool:
    """Whether ``document`` names a field of :data:`STAMPS` anywhere (fragments included):
    a field of that name elsewhere only makes the rows carry what is not shown. A walk of
    the selections alone, without graphql-core's visitor (0.8 ms for a dashboard)."""
    return any(
        _names_stamps(definition.selection_set)
        for definition in document.definitions
        if isinstance(definition, ExecutableDefinitionNode)
    )


def _names_stamps(selections: SelectionSetNode | None) -> bool:
    if selections is None:
        return False
    for selection in selections.selections:
        if isinstance(selection, FieldNode) and selection.name.value in STAMPS:
            return True
        if isinstance(selection, FieldNode | InlineFragmentNode) and _names_stamps(
            selection.selection_set
        ):
            return True
    return False


class ReadStamps(SchemaExtension):
    """Rows are read with their stamps only for an operation that selects one."""

    def on_execute(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        with with_stamps(document is None or selects_stamps(document)):
            yield
