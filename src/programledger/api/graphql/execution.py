"""Field execution with a short path for plain scalar fields.

A dashboard answer is mostly leaves: a program with thirty nested rows is some two hundred
fields, nearly all of them attributes read off an object (``title``, ``score``...). For
each, graphql-core builds a resolve info, calls strawberry's resolver wrapper, checks
whether the result is awaitable and completes the value through the generic path: a
large share of the request, for reading an attribute. A field strawberry itself calls
"basic" (no resolver, no extension, no permission: ``getattr`` on the source) and whose
type is a scalar or an enum is read and serialised here directly instead.

Anything unusual takes graphql-core's own path, which then reports it as it always has:
a null in a non-null field, a value the scalar refuses, a missing attribute, or a schema
with resolver middleware (which must see every field).

A subscription runs each event on a shallow copy of the executor that built it, and every
event collects its fields afresh: memos keyed by the identity of field sets would then be
shared by all of the subscription's events and gain entries with each one, for as long as
it is open. Each event's executor therefore starts with memos of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path, RefMap
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

__all__ = ["LeafFastPathExecutionContext"]

_Leaf = tuple[str, GraphQLLeafType, bool]
"""The attribute to read, the scalar or enum that serialises it, whether null is allowed."""

_LEAVES: dict[int, tuple[GraphQLField, _Leaf | None]] = {}
"""Per field definition (by identity: graphql-core's fields are not hashable)."""


def _leaf(field: GraphQLField) -> _Leaf | None:
    """How to read ``field`` directly, or ``None`` when it needs the general path."""
    found = _LEAVES.get(id(field))
    if found is not None and found[0] is field:
        return found[1]
    plan: _Leaf | None = None
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        isinstance(definition, StrawberryField)
        and getattr(field.resolve, "_is_default", False)  # strawberry's "basic field" resolver
        and definition.default_resolver is getattr
        and definition.python_name
    ):
        type_ = field.type
        nullable = not isinstance(type_, GraphQLNonNull)
        named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if isinstance(named, GraphQLScalarType | GraphQLEnumType):
            plan = (definition.python_name, named, nullable)
    _LEAVES[id(field)] = (field, plan)
    return plan


_Plan = list[tuple[str, FieldDetailsList, _Leaf | None]]
"""Each field of a selection, with how to read it if it is a leaf read directly."""


class LeafFastPathExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        self._fast = manager is None or not manager.middlewares
        self._plans: dict[int, tuple[GroupedFieldSet, _Plan]] = {}

    def build_per_event_executor(self, payload: Any) -> LeafFastPathExecutionContext:
        """graphql-core's copy for one subscription event, with this module's and
        graphql-core's memos (all keyed by the identity of sets collected per event)
        emptied, so that they are dropped with the event."""
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, LeafFastPathExecutionContext)
        executor._plans = {}
        executor._relevant_sub_fields = {}
        executor._stream_usages = RefMap()
        executor._initial_execution_plans = RefMap()
        executor._deferred_execution_plans = RefMap()
        return executor

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """The leaves read here; every other field, as graphql-core executes it. The
        answer keeps the order of the selection."""
        if not self._fast:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        leaves: dict[str, Any] = {}
        rest: GroupedFieldSet = {}
        for response_name, field_details_list, leaf in self._plan(parent_type, grouped_field_set):
            if leaf is not None:
                name, scalar, nullable = leaf
                try:
                    value = getattr(source_value, name)
                    if value is None:
                        if nullable:
                            leaves[response_name] = None
                            continue
                    else:
                        coerced = scalar.coerce_output_value(value)
                        if coerced is not None and coerced is not Undefined:
                            leaves[response_name] = coerced
                            continue
                except Exception:  # graphql-core reports it, with the field's path
                    pass
            rest[response_name] = field_details_list
        if not rest:
            return leaves
        if not leaves:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        others = super().execute_fields(parent_type, source_value, path, rest, position_context)
        order = grouped_field_set.keys()
        if isinstance(others, dict):
            return _in_order(order, leaves, others)
        pending = others

        async def merged() -> dict[str, Any]:
            return _in_order(order, leaves, await pending)

        return merged()

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> _Plan:
        """How to read each field of ``grouped_field_set``; graphql-core gives the same
        set for every item of a list, so this is worked out once per list."""
        found = self._plans.get(id(grouped_field_set))
        if found is not None and found[0] is grouped_field_set:
            return found[1]
        plan: _Plan = []
        for response_name, field_details_list in grouped_field_set.items():
            field = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
            plan.append(
                (response_name, field_details_list, None if field is None else _leaf(field))
            )
        # The set is kept with its plan, so that its id cannot be reused meanwhile.
        self._plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan


def _in_order(
    order: Iterable[str], leaves: dict[str, Any], others: dict[str, Any]
) -> dict[str, Any]:
    # A field graphql-core dropped (one the type lacks) is in neither.
    return {
        name: leaves[name] if name in leaves else others[name]
        for name in order
        if name in leaves or name in others
    }
