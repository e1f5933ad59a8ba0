"""The Objective aggregate's state (stream ``objective-<uuid>``), and how a key result's
progress is measured.

Key-result values are whole numbers in the key result's own ``unit`` (customers, ms,
percent, basis points...), so stored JSON holds no floating-point number; a value with
decimals is recorded in a smaller unit.
"""

from __future__ import annotations

import enum
from datetime import date
from uuid import UUID

import msgspec

__all__ = [
    "KeyResult",
    "Objective",
    "ObjectiveStatus",
    "key_result_progress",
    "objective_stream_id",
]


class ObjectiveStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    CLOSED = "CLOSED"
    """Scored and done: its key results keep their last values and take no check-ins."""


class KeyResult(msgspec.Struct, frozen=True, kw_only=True):
    key_result_id: UUID
    name: str
    unit: str
    baseline: int
    """Where the measure stood when the key result was set."""
    target: int
    """Where it should be by the end of the objective's period; below the baseline for a
    measure that should fall (latency, churn)."""
    current: int
    confidence: int
    """Whole percent, 0-100: how likely the owner thinks the target is reached."""
    checked_on: date | None = None
    """The day of the last check-in; ``None`` until the first."""


class Objective(msgspec.Struct, frozen=True, kw_only=True):
    objective_id: UUID
    title: str
    owner: str
    starts_on: date
    ends_on: date
    key: str | None = None
    """An OKR id such as ``OKR-2027-GROWTH``: the value programs serving this objective
    are meant to carry as their ``objective_key``."""
    description: str | None = None
    status: ObjectiveStatus = ObjectiveStatus.ACTIVE
    key_results: tuple[KeyResult, ...] = ()
    program_ids: tuple[UUID, ...] = ()
    """The programs linked to the objective, in the order they were linked."""


def objective_stream_id(objective_id: UUID) -> str:
    return f"objective-{objective_id}"


def key_result_progress(kr: KeyResult) -> int:
    """Whole percent of the way from baseline to target, 0-100 (rounded down): past the
    target counts as 100, a move away from it as 0. Works for falling targets too."""
    span = kr.target - kr.baseline
    moved = kr.current - kr.baseline
    if span < 0:
        span, moved = -span, -moved
    return max(0, min(100, moved * 100 // span))
