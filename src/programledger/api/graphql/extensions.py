"""Schema extensions: the shape of every GraphQL error, operation metrics, request limits.

Every error a client receives has ``extensions.code`` and ``extensions.requestId``. Errors
about the request itself (syntax, validation, variables) and errors raised on purpose
(``FORBIDDEN``, ``BAD_USER_INPUT``...) keep their message. Anything else is a bug: the
client gets "internal error" with code ``INTERNAL`` and the request id, and the exception
is logged with the same id (:func:`log_unexpected`), so nothing internal ever leaks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

from graphql import (
    ExecutionResult as GraphQLExecutionResult,
)
from graphql import (
    GraphQLError,
    GraphQLSyntaxError,
    IntValueNode,
    ValidationRule,
    VariableNode,
)
from graphql.language import ArgumentNode
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from programledger.api.errors import INTERNAL_MESSAGE
from programledger.api.graphql.context import ApiContext
from programledger.api.limits import ApiLimits

__all__ = [
    "ErrorShaping",
    "OperationMetrics",
    "PageSizeLimit",
    "error_code",
    "extensions",
    "log_unexpected",
]

log = logging.getLogger("programledger.api")

_REQUEST_ERROR_CAUSES = (GraphQLError, ValueError, TypeError)
"""What graphql-core attaches to errors about the request (a scalar refusing a variable);
an error without a path caused by anything else comes from our own code."""


def error_code(error: GraphQLError) -> str | None:
    """The error's code, or ``None`` when it is unexpected (a bug to hide and log)."""
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return code
    cause = error.original_error
    if error.path is None and (cause is None or isinstance(cause, _REQUEST_ERROR_CAUSES)):
        if isinstance(error, GraphQLSyntaxError):
            return "GRAPHQL_PARSE_FAILED"
        return "GRAPHQL_VALIDATION_FAILED"
    return None


def log_unexpected(
    errors: Sequence[GraphQLError], execution_context: ExecutionContext | None
) -> None:
    """Log the errors :func:`error_code` calls unexpected, with their request id: refusals
    and bad requests are the client's business, not the operator's."""
    request_id = "-" if execution_context is None else _request_id(execution_context)
    for error in errors:
        if error_code(error) is None:
            cause = error.original_error or error
            log.error(
                "request_id=%s: unexpected error at %s",
                request_id,
                ".".join(map(str, error.path or [])) or "(operation)",
                exc_info=(type(cause), cause, cause.__traceback__),
            )


def _request_id(execution_context: ExecutionContext) -> str:
    context = execution_context.context
    return context.request_id if isinstance(context, ApiContext) else "-"


class ErrorShaping(SchemaExtension):
    """Codes and request ids on every error; unexpected errors masked. Listed first, so it
    sees the errors every other extension added."""

    def __init__(self) -> None:
        self._streamed = False

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        if not self._streamed:
            result = self.execution_context.result
            if isinstance(result, GraphQLExecutionResult | ExecutionResult):
                self._shape(result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # Subscriptions (and operations over WebSockets) deliver results one by one.
        self._streamed = True
        if isinstance(result, GraphQLExecutionResult | ExecutionResult):
            self._shape(result)
        yield

    def _shape(self, result: GraphQLExecutionResult | ExecutionResult) -> None:
        if not result.errors:
            return
        context = self.execution_context.context
        request_id = _request_id(self.execution_context)
        shaped = []
        for error in result.errors:
            code = error_code(error) or "INTERNAL"
            if isinstance(context, ApiContext):
                context.services.metrics.graphql_errors.labels(code).inc()
            shaped.append(_shaped(error, code, request_id))
        result.errors = shaped


def _shaped(error: GraphQLError, code: str, request_id: str) -> GraphQLError:
    if error_code(error) is None:
        message, cause = INTERNAL_MESSAGE, None
        extensions: dict[str, Any] = {"code": code}
    else:
        message, cause = error.message, error.original_error
        extensions = {**(error.extensions or {}), "code": code}
    extensions["requestId"] = request_id
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=cause,
        extensions=extensions,
    )


class OperationMetrics(SchemaExtension):
    """Latency of queries and mutations by operation name (a subscription's lifetime is
    not a latency)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context.context
        if not isinstance(context, ApiContext):
            return
        try:
            kind = self.execution_context.operation_type
        except RuntimeError:  # the document did not parse
            kind_label = "invalid"
        else:
            if kind is OperationType.SUBSCRIPTION:
                return
            kind_label = kind.value
        metrics = context.services.metrics
        name = metrics.operation_label(self.execution_context.operation_name)
        metrics.graphql_duration.labels(kind_label, name).observe(time.perf_counter() - started)


class PageSizeLimit(SchemaExtension):
    """Refuses a ``first`` or ``last`` argument above the limit, whether written in the
    document or passed as a variable, before anything runs."""

    def __init__(self, limit: int) -> None:
        self._limit = limit

    def on_operation(self) -> Iterator[None]:
        variables = self.execution_context.variables or {}
        limit = self._limit

        class PageSizeRule(ValidationRule):
            def enter_argument(self, node: ArgumentNode, *_args: object) -> None:
                if node.name.value not in ("first", "last"):
                    return
                value: object = None
                if isinstance(node.value, IntValueNode):
                    value = int(node.value.value)
                elif isinstance(node.value, VariableNode):
                    value = variables.get(node.value.name.value)
                if isinstance(value, int) and value > limit:
                    self.report_error(
                        GraphQLError(
                            f"{node.name.value} must be at most {limit}; page through the rest "
                            "with after/before",
                            node,
                        )
                    )

        context = self.execution_context
        context.validation_rules = (*context.validation_rules, PageSizeRule)
        yield


def _introspection(ignore: IgnoreContext) -> bool:
    return ignore.field_name.startswith("__")


def extensions(limits: ApiLimits) -> list[Any]:
    """Every schema extension, in order (the first one sees the others' results last)."""
    return [
        ErrorShaping,
        OperationMetrics,
        partial(QueryDepthLimiter, max_depth=limits.max_depth, should_ignore=_introspection),
        partial(MaxAliasesLimiter, max_alias_count=limits.max_aliases),
        partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
        partial(PageSizeLimit, limits.max_page_size),
    ]
