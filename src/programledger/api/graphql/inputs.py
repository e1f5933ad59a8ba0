"""GraphQL input types generated from the domain's command Structs, and the way back.

The commands are the contract (``programledger.domain``); writing 76 input types by hand
would copy it and drift. The rules, applied to each Struct field in declaration order:

=================================  ============================================================
domain type                        GraphQL input
=================================  ============================================================
``UUID``                           ``ID`` (parsed as a UUID; a bad one is a ValidationError)
``str`` / ``int`` / ``bool``       ``String`` / ``Int`` / ``Boolean``
``Money.amount_minor``             ``SafeInt`` (amounts reach 2^53-1, beyond 32-bit ``Int``)
``date`` / ``datetime``            ``Date`` / ``DateTime``
an enum                            an enum of the same name and values (``Department``)
a nested Struct                    ``<Name>Input`` (``MoneyInput``, ``ItemRefInput``)
a tagged union of Structs          a ``@oneOf`` input with one field per member, named after
                                   its tag (``DependencyTargetInput {programItem, external}``)
``tuple[X, ...]``                  ``[X!]``
``X | None = None``                nullable, default ``null``
``X | UnsetType [| None] = UNSET`` nullable without default: leave it out to keep the
                                   current value, send ``null`` to clear it (partial updates)
=================================  ============================================================

A field the command names in ``filled_by_application`` (a ClassVar) has no input: the
application sets it from the caller's token or the store (who publishes a status report).

Field names become camelCase (``planned_budget`` → ``plannedBudget``). An unknown type
fails when the schema is built, never at a request.

Going back, :meth:`CommandInputs.command` turns an input into plain data and lets msgspec
build the command, so the Struct's own types decide, exactly as for any other client.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import re
import types
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any, Optional, Union, get_args, get_origin
from uuid import UUID

import msgspec
import strawberry
from msgspec import NODEFAULT, UnsetType
from strawberry.types.unset import UNSET

from programledger.api.graphql.types import SafeInt
from programledger.application.commands import Command
from programledger.domain.errors import FieldIssue, ValidationError
from programledger.domain.values import Money

__all__ = ["CONTEXT_FIELDS", "CommandInputs", "camel", "doc_of", "domain_enum"]

_SCALAR_OVERRIDES: Mapping[tuple[type, str], object] = {(Money, "amount_minor"): SafeInt}
_SCALARS: Mapping[object, object] = {
    UUID: strawberry.ID,
    str: str,
    int: int,
    bool: bool,
    date: date,
    datetime: datetime,
}
_UNION_NAMES: Mapping[frozenset[str], str] = {
    frozenset({"ProgramItemTarget", "ExternalTarget"}): "DependencyTarget",
}
"""GraphQL names of the tagged unions commands use; a new union must be named here."""

_MISSING: Any = dataclasses.MISSING

CONTEXT_FIELDS: Mapping[str, tuple[object, object, str]] = {
    "expected_version": (
        Optional[int],  # noqa: UP045 - strawberry resolves runtime annotations
        None,
        "The stream version you decided on; if the stream moved on: ConflictError.",
    ),
    "reason": (Optional[str], None, "Why; recorded in every event's metadata."),  # noqa: UP045
    "idempotency_key": (
        Optional[str],  # noqa: UP045
        None,
        "Makes a retry safe: a repeat returns the first result (replayed) and writes nothing.",
    ),
    "wait_for_projections": (
        bool,
        False,
        "Return once the read models include this write (see projectionsCaughtUp).",
    ),
}
"""Fields every command input has besides the command's own: how to apply it, not what."""

_MSGSPEC_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def doc_of(obj: object) -> str | None:
    """The first paragraph of a docstring on one line: a schema description."""
    doc = inspect.cleandoc(getattr(obj, "__doc__", None) or "").split("\n\n")[0]
    return " ".join(doc.split()) or None


@functools.cache
def domain_enum(domain: type[enum.Enum]) -> type[enum.Enum]:
    """The GraphQL enum of a domain enum, one for the whole schema: the command inputs
    take it and the read types answer with it (their rows hold its values as text). A
    copy, so that strawberry's registration does not touch the domain's class."""
    copy = enum.Enum(domain.__name__, [(m.name, m.value) for m in domain])  # type: ignore[misc]
    found: type[enum.Enum] = strawberry.enum(copy, name=domain.__name__, description=doc_of(domain))
    return found


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class CommandInputs:
    """Builds the input types once per schema and converts their values back to commands."""

    def __init__(self) -> None:
        self._structs: dict[type[msgspec.Struct], type] = {}
        self._struct_of: dict[type, type[msgspec.Struct]] = {}
        self._one_of: dict[frozenset[object], type] = {}
        self._members: dict[type, dict[str, type[msgspec.Struct]]] = {}

    def command_input(self, command: type[Command]) -> type:
        """``<Command>Input``: the command's fields, then :data:`CONTEXT_FIELDS` (a command
        with a ``reason`` of its own keeps it, and it also goes to the metadata)."""
        own = {info.name for info in msgspec.structs.fields(command)}
        extra = {name: spec for name, spec in CONTEXT_FIELDS.items() if name not in own}
        clash = own & (set(CONTEXT_FIELDS) - {"reason"})
        if clash:
            raise TypeError(f"{command.__name__} has fields reserved for the API: {clash}")
        return self._input(command, extra)

    def command(self, command: type[Command], data: object) -> Command:
        """The command that :meth:`data` describes; data msgspec refuses (an id that is not
        a UUID, ``null`` for a field that cannot be cleared) is a ``ValidationError``.

        Text with NUL characters is refused here, for every field at once: no command may
        hold one (PostgreSQL cannot store it), and a key or id holding one would otherwise
        reach the database in a stream id before the domain could check it.
        """
        nul = [FieldIssue(path, "must not contain NUL characters") for path in _nul_paths(data)]
        if nul:
            raise ValidationError(nul)
        try:
            return msgspec.convert(data, command)
        except msgspec.ValidationError as exc:
            found = _MSGSPEC_PATH.match(str(exc))
            assert found is not None  # the pattern matches any text
            dotted = (found["path"] or "").lstrip(".")
            dotted = re.sub(r"\[(\d+)\]", r".\1", dotted)
            raise ValidationError([FieldIssue(dotted, _friendly(found["message"]))]) from None

    def path(self, command: type[Command], dotted: str, value: object) -> list[str]:
        """The GraphQL path of a domain field path (``depends_on.party`` →
        ``["input", "dependsOn", "external", "party"]``), following ``value`` (the command
        or its data) through ``@oneOf`` members."""
        path = ["input"]
        struct: type[msgspec.Struct] | None = command
        for segment in [s for s in dotted.split(".") if s]:
            path.append(camel(segment))
            fields = {} if struct is None else {f.name: f for f in msgspec.structs.fields(struct)}
            if segment not in fields:
                struct = None
                continue
            value = value.get(segment) if isinstance(value, dict) else getattr(value, segment, None)
            core = _core(fields[segment].type)
            if len(core) > 1:
                member = _member_of(value, core)
                if member is None:
                    struct = None
                    continue
                path.append(camel(_member_field(member)))
                struct = member
            elif isinstance(core[0], type) and issubclass(core[0], msgspec.Struct):
                struct = core[0]
            else:
                struct = None
        return path

    # Building

    def _input(
        self,
        struct: type[msgspec.Struct],
        extra: Mapping[str, tuple[object, object, str]] | None = None,
    ) -> type:
        found = self._structs.get(struct)
        if found is not None:
            return found
        name = f"{struct.__name__}Input"
        annotations: dict[str, object] = {}
        namespace: dict[str, object] = {"__annotations__": annotations}
        for info in _client_fields(struct):
            annotation, default = self._field(struct, info)
            annotations[info.name] = annotation
            if default is not _MISSING:
                namespace[info.name] = _default(default)
        for field_name, (annotation, default, description) in (extra or {}).items():
            annotations[field_name] = annotation
            namespace[field_name] = strawberry.field(default=default, description=description)
        cls = strawberry.input(type(name, (), namespace), name=name, description=doc_of(struct))
        self._structs[struct] = cls
        self._struct_of[cls] = struct
        return cls

    def _field(self, owner: type, info: msgspec.structs.FieldInfo) -> tuple[object, object]:
        args = get_args(info.type) if _is_union(info.type) else (info.type,)
        partial = UnsetType in args
        nullable = type(None) in args
        core = _core(info.type)
        annotation = _SCALAR_OVERRIDES.get((owner, info.name)) or self._graphql(core)
        if partial:
            return Optional[annotation], UNSET  # noqa: UP045
        if info.default is not NODEFAULT:
            default: object = info.default
        elif info.default_factory is not NODEFAULT:
            default = info.default_factory()
        else:
            if nullable:
                raise TypeError(f"{owner.__name__}.{info.name}: nullable without a default")
            return annotation, _MISSING
        if nullable:
            return Optional[annotation], default  # noqa: UP045
        return annotation, default

    def _graphql(self, core: tuple[object, ...]) -> object:
        if len(core) > 1:
            return self._tagged_union(core)
        tp = core[0]
        if tp in _SCALARS:
            return _SCALARS[tp]
        if get_origin(tp) in (tuple, list):
            item, *rest = get_args(tp)
            if rest not in ([], [Ellipsis]):
                raise TypeError(f"fixed-length tuples have no GraphQL input: {tp}")
            return list[self._graphql(_core(item))]  # type: ignore[misc]
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return domain_enum(tp)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            return self._input(tp)
        raise TypeError(f"no GraphQL input type for {tp!r}")

    def _tagged_union(self, core: tuple[object, ...]) -> type:
        members = frozenset(core)
        found = self._one_of.get(members)
        if found is not None:
            return found
        structs: list[type[msgspec.Struct]] = []
        for member in core:
            if not (
                isinstance(member, type)
                and issubclass(member, msgspec.Struct)
                and member.__struct_config__.tag is not None
            ):
                raise TypeError(f"only tagged unions of Structs have GraphQL inputs: {core}")
            structs.append(member)
        union_name = _UNION_NAMES.get(frozenset(s.__name__ for s in structs))
        if union_name is None:
            raise TypeError(f"name the union of {[s.__name__ for s in structs]} in _UNION_NAMES")
        name = f"{union_name}Input"
        annotations: dict[str, object] = {}
        namespace: dict[str, object] = {"__annotations__": annotations}
        by_field: dict[str, type[msgspec.Struct]] = {}
        for struct in structs:
            field_name = _member_field(struct)
            annotations[field_name] = Optional[self._input(struct)]  # noqa: UP045
            namespace[field_name] = UNSET
            by_field[field_name] = struct
        cls = strawberry.input(
            type(name, (), namespace),
            name=name,
            one_of=True,
            description=f"Exactly one of: {', '.join(camel(f) for f in by_field)}.",
        )
        self._one_of[members] = cls
        self._members[cls] = by_field
        return cls

    # Converting back

    def data(self, value: object) -> object:
        """An input value as plain data: what a JSON client would send the command as."""
        if value is None or isinstance(value, str | int | date):
            return value
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, list):
            return [self.data(item) for item in value]
        members = self._members.get(type(value))
        if members is not None:
            for field_name, struct in members.items():
                member = getattr(value, field_name)
                if member is not None and member is not UNSET:
                    config = struct.__struct_config__
                    data = self.data(member)
                    assert isinstance(data, dict)
                    return {config.tag_field: config.tag, **data}
            raise ValueError("a @oneOf input needs exactly one member")  # GraphQL checks it
        struct = self._struct_of[type(value)]
        # The names alone: msgspec.structs.fields resolves every annotation again on each
        # call, a few percent of the API's CPU per mutation.
        return {
            name: self.data(getattr(value, name))
            for name in _client_names(struct)
            if getattr(value, name) is not UNSET
        }


def _client_fields(struct: type[msgspec.Struct]) -> Iterator[msgspec.structs.FieldInfo]:
    """The fields a client sends: all but those the application fills in itself (the
    publisher of a report, the outcomes of a commit), named by the command's
    ``filled_by_application``."""
    filled = getattr(struct, "filled_by_application", ())
    return (info for info in msgspec.structs.fields(struct) if info.name not in filled)


@functools.cache
def _client_names(struct: type[msgspec.Struct]) -> tuple[str, ...]:
    """The names of :func:`_client_fields`, worked out once per command."""
    filled = getattr(struct, "filled_by_application", ())
    return tuple(name for name in struct.__struct_fields__ if name not in filled)


def _nul_paths(data: object, path: str = "") -> Iterator[str]:
    if isinstance(data, str):
        if "\x00" in data:
            yield path
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _nul_paths(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _nul_paths(value, f"{path}.{index}" if path else str(index))


def _is_union(tp: object) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _core(tp: object) -> tuple[object, ...]:
    """The type without ``None`` and ``UnsetType``; several types for a tagged union."""
    if not _is_union(tp):
        return (tp,)
    return tuple(arg for arg in get_args(tp) if arg not in (type(None), UnsetType))


def _member_field(struct: type[msgspec.Struct]) -> str:
    """The ``@oneOf`` field of a union member, from its tag: ``PROGRAM_ITEM`` →
    ``program_item`` (``programItem`` in the schema)."""
    return str(struct.__struct_config__.tag).lower()


def _member_of(value: object, members: Iterable[object]) -> type[msgspec.Struct] | None:
    for member in members:
        if not (isinstance(member, type) and issubclass(member, msgspec.Struct)):
            continue
        config = member.__struct_config__
        if isinstance(value, member) or (
            isinstance(value, dict)
            and config.tag_field is not None
            and value.get(config.tag_field) == config.tag
        ):
            return member
    return None


def _default(default: object) -> object:
    if isinstance(default, tuple):
        items = list(default)
        return strawberry.field(default_factory=lambda: list(items))
    return strawberry.field(default=default)


def _friendly(message: str) -> str:
    if message.endswith("got `null`"):
        return "must not be null (leave the field out to keep the current value)"
    if message.startswith("Invalid UUID"):
        return "must be a UUID such as 3f2c1d5e-8a4b-4c6d-9e0f-1a2b3c4d5e6f"
    return message
