"""The Relay ``Node`` interface: every entity a client caches has a global ``id``.

A global id is ``base64url("<Type>:<key>")``, opaque to clients: the one id a cache needs,
whatever the entity's own key (a UUID, or a resource key). ``node``/``nodes`` (in
:mod:`nodes`) read any entity back by it.
"""

from __future__ import annotations

import base64
import binascii

import strawberry

__all__ = ["Node", "global_id", "parse_global_id"]


@strawberry.interface(description="An entity with a global id (Relay): refetch it with node(id).")
class Node:
    id: strawberry.ID = strawberry.field(description="Global and opaque: pass it to node(id).")


def global_id(type_name: str, key: object) -> strawberry.ID:
    raw = f"{type_name}:{key}".encode()
    return strawberry.ID(base64.urlsafe_b64encode(raw).decode().rstrip("="))


def parse_global_id(value: str) -> tuple[str, str]:
    """The type name and key of a global id; ``ValueError`` if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(f"not a global id: {value!r}") from None
    type_name, sep, key = raw.partition(":")
    if not sep or not type_name or not key:
        raise ValueError(f"not a global id: {value!r}")
    return type_name, key
