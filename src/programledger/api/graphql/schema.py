"""The GraphQL schema, built from code: ``schema.graphql`` at the root is its export.

:func:`export_sdl` is what ``programledger schema`` writes and what a test compares with the
checked-in file, so the contract a frontend reads is always the one the server enforces.
"""

from __future__ import annotations

import functools

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from programledger.api.graphql.execution import LeafFastPathExecutionContext
from programledger.api.graphql.extensions import extensions, log_unexpected
from programledger.api.graphql.inputs import CommandInputs
from programledger.api.graphql.mutations import mutation_type
from programledger.api.graphql.permissions import ForbiddenAsPayload
from programledger.api.graphql.query import Query
from programledger.api.graphql.subscriptions import Subscription
from programledger.api.graphql.types import SCALARS
from programledger.api.graphql.webhooks import WebhookMutations
from programledger.api.limits import ApiLimits

__all__ = ["build_schema", "export_sdl"]


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Strawberry would log every error with its traceback, refusals and typos in
        queries included; only the unexpected ones deserve an operator's attention."""
        log_unexpected(errors, execution_context)


@functools.cache
def build_schema(limits: ApiLimits = ApiLimits()) -> strawberry.Schema:  # noqa: B008 - frozen
    """The schema with ``limits``; built once per value, since the mutations' ~150 types
    are generated."""
    return _Schema(
        query=Query,
        mutation=mutation_type(CommandInputs(), (WebhookMutations,)),
        subscription=Subscription,
        extensions=extensions(limits),
        execution_context_class=LeafFastPathExecutionContext,
        config=StrawberryConfig(scalar_map=SCALARS),
        exception_handlers=[ForbiddenAsPayload()],
    )


def export_sdl() -> str:
    """The schema in SDL, as ``schema.graphql`` holds it."""
    return build_schema().as_str() + "\n"
