"""Schema extensions: the shape of every GraphQL error, operation metrics, request limits.

Every error a client receives has ``extensions.code`` and ``extensions.requestId``. Errors
about the request itself (syntax, validation, variables) and errors raised on purpose
(``FORBIDDEN``, ``BAD_USER_INPUT``...) keep their message. A database that cannot answer,
or a read model whose projection has not created its tables yet (a fresh deployment, before
the runners start), is ``UNAVAILABLE``: retrying will do. Anything else is a bug: the
client gets "internal error" with code ``INTERNAL`` and the request id, and the exception
is logged with the same id (:func:`log_unexpected`), so nothing internal ever leaks.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
from graphql import (
    ExecutionResult as GraphQLExecutionResult,
)
from graphql import (
    GraphQLError,
    GraphQLSyntaxError,
    IntValueNode,
    NoSchemaIntrospectionCustomRule,
    VariableNode,
)
from graphql.language import ArgumentNode, DocumentNode, OperationDefinitionNode, Visitor, visit
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from programledger.api.errors import INTERNAL_MESSAGE, UNAVAILABLE_MESSAGE, is_unavailable
from programledger.api.graphql.context import ApiContext
from programledger.api.graphql.freshness import ReadYourWrites
from programledger.api.graphql.recorded import ReadStamps
from programledger.api.limits import ApiLimits
from programledger.projections.registry import PROJECTIONS

__all__ = [
    "DocumentCache",
    "ErrorShaping",
    "OperationMetrics",
    "RequestLimits",
    "error_code",
    "extensions",
    "log_unexpected",
]

log = logging.getLogger("programledger.api")

_REQUEST_ERROR_CAUSES = (GraphQLError, ValueError, TypeError)
"""What graphql-core attaches to errors about the request (a scalar refusing a variable);
an error without a path caused by anything else comes from our own code."""

_READ_MODEL_OF_TABLE = {
    table.name: projection.name
    for projection in PROJECTIONS.values()
    for table in projection.all_tables
}

_MISSING_RELATION = re.compile(r'relation "(?:[^"]*\.)?([^".]+)" does not exist')


def read_model_not_built(exc: BaseException | None) -> str | None:
    """The read model whose table ``exc`` found missing, if that is what it says: its
    projection creates its tables when it first starts, and until then reads of it fail.
    A missing table of anything else is a bug, not an outage."""
    if not isinstance(exc, asyncpg.UndefinedTableError):
        return None
    missing = _MISSING_RELATION.search(str(exc))
    return None if missing is None else _READ_MODEL_OF_TABLE.get(missing.group(1))


def error_code(error: GraphQLError) -> str | None:
    """The error's code, or ``None`` when it is unexpected (a bug to hide and log)."""
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return code
    cause = error.original_error
    if is_unavailable(cause) or read_model_not_built(cause) is not None:
        return "UNAVAILABLE"
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
    elif code == "UNAVAILABLE" and is_unavailable(error.original_error):
        log.warning("database unavailable at %s: %r", error.path, error.original_error)
        message, cause = UNAVAILABLE_MESSAGE, None
        extensions = {"code": code, "retryable": True}
    elif code == "UNAVAILABLE" and (unbuilt := read_model_not_built(error.original_error)):
        log.warning("read model %s not built yet, read at %s", unbuilt, error.path)
        message = (
            f"the {unbuilt} read model is not built yet: its projection has not started; "
            "retry shortly"
        )
        cause, extensions = None, {"code": code, "retryable": True}
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


@dataclass(frozen=True, slots=True)
class _PageSize:
    """A ``first`` or ``last`` argument of a document: a literal, or a variable's name."""

    node: ArgumentNode
    literal: int | None
    variable: str | None


@dataclass(frozen=True, slots=True)
class _Document:
    """A parsed document that passed validation, with its page-size arguments."""

    document: DocumentNode
    page_sizes: tuple[_PageSize, ...]
    operations: int


def _page_sizes(document: DocumentNode) -> tuple[_PageSize, ...]:
    found: list[_PageSize] = []

    class Collect(Visitor):
        def enter_argument(self, node: ArgumentNode, *_args: object) -> None:
            if node.name.value not in ("first", "last"):
                return
            value = node.value
            literal = int(value.value) if isinstance(value, IntValueNode) else None
            variable = value.name.value if isinstance(value, VariableNode) else None
            found.append(_PageSize(node, literal, variable))

    visit(document, Collect())
    return tuple(found)


class DocumentCache:
    """Documents already parsed and validated against the schema, by query text.

    Parsing and validating a dashboard's document cost more than running it, and clients
    send the same few texts over and over. Validation depends on the document and the
    schema only (the depth and alias limits included), so a text that passed once passes
    always; only page sizes given as variables are checked per request. Bounded LRU of
    valid documents only; long texts (a document padded with comments) are not kept.
    """

    MAX_TEXT = 64 * 1024

    def __init__(self, limits: ApiLimits, size: int = 256) -> None:
        self.limits = limits
        self.size = size
        depth = QueryDepthLimiter(max_depth=limits.max_depth, should_ignore=_introspection)
        aliases = MaxAliasesLimiter(max_alias_count=limits.max_aliases)
        hidden = () if limits.introspection else (NoSchemaIntrospectionCustomRule,)
        self.rules = (*depth.validation_rules, *aliases.validation_rules, *hidden)
        self._documents: OrderedDict[str, _Document] = OrderedDict()

    def get(self, query: str) -> _Document | None:
        found = self._documents.get(query)
        if found is not None:
            self._documents.move_to_end(query)
        return found

    def put(self, query: str, document: _Document) -> None:
        if len(query) > self.MAX_TEXT:
            return
        self._documents[query] = document
        if len(self._documents) > self.size:
            self._documents.popitem(last=False)


class RequestLimits(SchemaExtension):
    """The document limits (tokens, depth, aliases, page size), checked through a
    :class:`DocumentCache`: a known text skips parsing and validation, and only its
    page-size variables are looked at."""

    def __init__(self, cache: DocumentCache) -> None:
        self._cache = cache
        self._found: _Document | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        self._found = None if query is None else self._cache.get(query)
        if self._found is not None:
            context.graphql_document = self._found.document
        else:
            context.parse_options["max_tokens"] = self._cache.limits.max_tokens
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        found = self._found
        errors: list[GraphQLError] = []
        if found is None:
            document = context.graphql_document
            assert document is not None  # strawberry validates parsed documents only
            rules = (*context.validation_rules, *self._cache.rules)
            errors = validate_document(context.schema._schema, document, rules)
            operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
            found = _Document(document, _page_sizes(document), operations)
            if not errors and context.query is not None:
                self._cache.put(context.query, found)
        errors += _page_size_errors(found, context.variables or {}, self._cache.limits)
        # Strawberry runs the first operation when no name is given; the specification
        # makes an ambiguous request an error instead.
        if found.operations > 1 and context._provided_operation_name is None:
            errors.append(
                GraphQLError(
                    "the document holds several operations: name the one to run in operationName"
                )
            )
        # Set, so strawberry does not validate again; empty lets the operation run.
        context.pre_execution_errors = errors
        yield


def _page_size_errors(
    document: _Document, variables: dict[str, Any], limits: ApiLimits
) -> list[GraphQLError]:
    limit = limits.max_page_size
    errors = []
    for spot in document.page_sizes:
        value = spot.literal if spot.variable is None else variables.get(spot.variable)
        if isinstance(value, int) and not 1 <= value <= limit:
            name = spot.node.name.value
            hint = (
                "; page through the rest with the field's after argument" if value > limit else ""
            )
            errors.append(
                GraphQLError(f"{name} must be between 1 and {limit} (got {value}){hint}", spot.node)
            )
    return errors


def _introspection(ignore: IgnoreContext) -> bool:
    return ignore.field_name.startswith("__")


def extensions(limits: ApiLimits) -> list[Any]:
    """Every schema extension, in order (the first one sees the others' results last)."""
    cache = DocumentCache(limits)
    return [
        ErrorShaping,
        OperationMetrics,
        partial(RequestLimits, cache),
        ReadYourWrites,
        ReadStamps,
    ]
