"""Value types shared by more than one aggregate.

They travel inside events, so each must encode to JSON and decode back to an equal value:
no floats anywhere (money is an integer count of minor units, percentages are integers).
Enum values are the UPPER_CASE names a GraphQL schema will expose unchanged.
"""

from __future__ import annotations

import enum
from datetime import date
from uuid import UUID

import msgspec

__all__ = [
    "MAX_SAFE_INTEGER",
    "Department",
    "Money",
    "OverAllocationPeriod",
    "PartyKind",
]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a JavaScript client reads back exactly; amounts are capped to it."""


class Department(enum.StrEnum):
    ENGINEERING = "ENGINEERING"
    PRODUCT = "PRODUCT"
    DESIGN = "DESIGN"
    MARKETING = "MARKETING"
    SALES = "SALES"
    FINANCE = "FINANCE"
    LEGAL = "LEGAL"
    OPERATIONS = "OPERATIONS"
    SUPPORT = "SUPPORT"
    OTHER = "OTHER"


class PartyKind(enum.StrEnum):
    """Whether a stakeholder or a resource is one person or a whole team."""

    PERSON = "PERSON"
    TEAM = "TEAM"


class Money(msgspec.Struct, frozen=True, kw_only=True):
    """An amount in the currency's minor unit (cents for EUR), so sums are exact.

    ``currency`` is an ISO 4217 code such as ``EUR``; amounts in different currencies are
    never added together.
    """

    amount_minor: int
    currency: str


class OverAllocationPeriod(msgspec.Struct, frozen=True, kw_only=True):
    """One stretch of days, both ends included, in which a resource's confirmed load is
    above its capacity, with everything a person needs to resolve it."""

    start: date
    end: date
    total_percentage: int
    capacity: int
    program_ids: tuple[UUID, ...]
    allocation_ids: tuple[UUID, ...]
