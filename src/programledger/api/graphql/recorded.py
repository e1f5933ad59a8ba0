"""The ``Recorded`` interface: when and by whom an entity was created and last changed.

Every entity read from a versioned read model implements it: its rows carry the stamps
(:func:`programledger.projections.engine.queries.stamps_sql`), read from the store's own
events, so "who changed this, when, and why" needs neither the audit trail nor a second
query, and as of a moment it answers for the version shown then.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from programledger.projections.engine.queries import VersionedRow

__all__ = ["Recorded", "recorded"]


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
