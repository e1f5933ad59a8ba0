"""The Resource aggregate (stream ``resource-<key>``): a person or a team, its capacity and
all of its allocations to programs.

``commands``, ``events`` and ``state`` hold its types, ``decide`` and ``evolve`` its rules;
this package re-exports every public name, so callers write
``from programledger.domain.resource import RegisterResource`` or
``resource.decide(state, command)``. The capacity arithmetic it shares with the read side
is :mod:`programledger.domain.capacity`.
"""

from __future__ import annotations

from programledger.domain.resource.commands import (
    AdjustAllocation,
    ChangeCapacity,
    ConfirmAllocation,
    ProposeAllocation,
    RegisterResource,
    ReleaseAllocation,
    ResourceCommand,
    UpdateResourceDetails,
)
from programledger.domain.resource.decide import (
    ALLOCATION_LIFECYCLE,
    MAX_PERSON_CAPACITY,
    MAX_TEAM_CAPACITY,
    RESOURCE_KEY_PATTERN,
    decide,
)
from programledger.domain.resource.events import (
    RESOURCE_EVENT_TYPES,
    AllocationAdjusted,
    AllocationConfirmed,
    AllocationProposed,
    AllocationReleased,
    ResourceCapacityChanged,
    ResourceDetailsUpdated,
    ResourceEvent,
    ResourceRegistered,
)
from programledger.domain.resource.evolve import evolve, fold
from programledger.domain.resource.state import Resource, resource_stream_id

__all__ = [
    "ALLOCATION_LIFECYCLE",
    "MAX_PERSON_CAPACITY",
    "MAX_TEAM_CAPACITY",
    "RESOURCE_EVENT_TYPES",
    "RESOURCE_KEY_PATTERN",
    "AdjustAllocation",
    "AllocationAdjusted",
    "AllocationConfirmed",
    "AllocationProposed",
    "AllocationReleased",
    "ChangeCapacity",
    "ConfirmAllocation",
    "ProposeAllocation",
    "RegisterResource",
    "ReleaseAllocation",
    "Resource",
    "ResourceCapacityChanged",
    "ResourceCommand",
    "ResourceDetailsUpdated",
    "ResourceEvent",
    "ResourceRegistered",
    "UpdateResourceDetails",
    "decide",
    "evolve",
    "fold",
    "resource_stream_id",
]
