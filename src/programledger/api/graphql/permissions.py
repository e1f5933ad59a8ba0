"""Role checks on every field, as strawberry permission classes.

A field is declared with ``extensions=[allowed(Capability.X)]``; the roles it admits show in
the schema as ``@allowedRoles(roles: [...])``, so the contract documents the policy.

A refusal raises :class:`Forbidden`. Where the field's result can say so (every mutation
payload contains ``ForbiddenError``), :class:`ForbiddenAsPayload` turns it into that typed
result; anywhere else it is a GraphQL error with ``extensions.code = "FORBIDDEN"``. So a
frontend always learns of a refusal in the way it already handles that field's errors.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types.field import StrawberryField

from programledger.api.auth import ROLES_WITH, Capability, Role
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.types import AllowedRoles, ForbiddenError

__all__ = ["Allowed", "Forbidden", "ForbiddenAsPayload", "allowed"]


class Forbidden(StrawberryGraphQLError):
    def __init__(self, required_roles: frozenset[Role]) -> None:
        roles = sorted(required_roles)
        super().__init__(
            f"your token's roles do not allow this; it needs one of: {', '.join(roles)}",
            extensions={"code": "FORBIDDEN"},
        )
        self.required_roles = roles


class Allowed(BasePermission):
    def __init__(self, capability: Capability) -> None:
        self.capability = capability
        self.roles = ROLES_WITH[capability]

    def has_permission(self, source: Any, info: ApiInfo, **kwargs: Any) -> bool:
        identity = info.context.identity
        return identity is not None and identity.can(self.capability)

    def on_unauthorized(self) -> None:
        raise Forbidden(self.roles)

    @property
    def schema_directive(self) -> object:
        return AllowedRoles(roles=sorted(self.roles))


def allowed(capability: Capability) -> PermissionExtension:
    return PermissionExtension([Allowed(capability)], use_directives=True)


class ForbiddenAsPayload(strawberry.ExceptionHandler[Forbidden, ForbiddenError]):
    def handle(
        self, exception: Forbidden, *, field: StrawberryField, info: ApiInfo
    ) -> ForbiddenError:
        info.context.services.metrics.mutation_done(info.field_name, "FORBIDDEN")
        return ForbiddenError(
            code="FORBIDDEN",
            message=exception.message,
            path=[],
            required_roles=exception.required_roles,
        )
