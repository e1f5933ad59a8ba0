"""Input and status checks shared by every ``decide``.

Input checks collect every problem before refusing, so a form can mark all wrong fields at
once. Commands are re-checked here even when the API decoded them with types, because
``decide`` is also called from code, tests and scripts that build commands directly.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterator, Mapping
from datetime import date, datetime
from typing import Protocol, TypeGuard, TypeVar
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from programledger.domain.errors import FieldIssue, InvalidTransition, NotFound, ValidationError
from programledger.domain.values import MAX_SAFE_INTEGER, Money

NAME_MAX = 200
"""Names, titles, people, one-line summaries."""
TEXT_MAX = 10_000
"""Descriptions, plans, rationales: anything that may span paragraphs."""
KEY_MAX = 100
"""Short identifiers such as an objective key or a cost centre."""

_CURRENCY = re.compile(r"[A-Z]{3}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAK_OR_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters (category Cc, which holds \\n, \\r, VT, FF, NEL) and the Unicode
line and paragraph separators (Zl, Zp): anything that breaks a line in some reader."""


def text_problem(value: str, *, single_line: bool) -> str | None:
    """Why ``value`` cannot be stored or shown as it is, or ``None``.

    The one definition of acceptable text, used by every ``decide`` (through
    :class:`Checks`), by the application for metadata such as ``reason`` and for every
    string of a command. A lone surrogate (half of an emoji cut by a client) cannot be
    encoded as UTF-8, so it would fail only at the store, after other appends of the same
    command; NUL is refused by PostgreSQL; a line break in a name breaks tables, logs and
    CSV exports, and JavaScript's U+2028/U+2029 are line breaks too.
    """
    if _SURROGATE.search(value) is not None:
        return "must be valid Unicode: it holds a lone surrogate (half of a character)"
    if "\x00" in value:
        return "must not contain NUL characters"
    if single_line and _LINE_BREAK_OR_CONTROL.search(value) is not None:
        return "must be a single line without line breaks or other control characters"
    return None


_json = msgspec.json.Encoder()


def unstorable_text(value: object) -> list[FieldIssue]:
    """Every string in ``value`` (a command, its nested structs, lists and maps) that no
    store could hold: a lone surrogate or NUL. Fields a ``decide`` does not look at
    (ids, keys, codes checked by pattern only) are covered too.

    Every command is checked, and almost all are clean: msgspec's encoder, which refuses a
    lone surrogate and writes NUL as ``\\u0000``, clears one in half a microsecond where
    the walk below takes three and a half (a benchmark's resource command; about 7% of a
    command's CPU in a busy process). Only a value it does not clear is walked, to name
    the fields."""
    try:
        if b"\\u0000" not in _json.encode(value):
            return []
    except (TypeError, ValueError):
        pass  # a surrogate (UnicodeEncodeError is a ValueError), or a type JSON lacks
    return list(_unstorable_fields(value, ""))


def _unstorable_fields(value: object, path: str) -> Iterator[FieldIssue]:
    if isinstance(value, str):
        problem = text_problem(value, single_line=False)
        if problem is not None:
            yield FieldIssue(path, problem)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from _unstorable_fields(getattr(value, name), _join(path, name))
    elif isinstance(value, list | tuple | frozenset | set):
        for index, item in enumerate(value):
            yield from _unstorable_fields(item, _join(path, str(index)))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unstorable_fields(key, _join(path, str(key)))
            yield from _unstorable_fields(item, _join(path, str(key)))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


def given(value: T | UnsetType) -> TypeGuard[T]:
    """Whether a partial-update field was sent (``UNSET`` means "leave unchanged")."""
    return not isinstance(value, UnsetType)


def changed(new: T | UnsetType, old: T) -> T | UnsetType:
    """The partial-update value to record: ``UNSET`` when not sent or equal to ``old``, so
    update events carry exactly what changed."""
    if isinstance(new, UnsetType) or new == old:
        return UNSET
    return new


class Checks:
    def __init__(self) -> None:
        self.issues: list[FieldIssue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(FieldIssue(path, message))

    def done(self) -> None:
        if self.issues:
            raise ValidationError(self.issues)

    def line(self, path: str, value: object, *, max_len: int = NAME_MAX) -> None:
        """A required single-line text: no line breaks or other control characters."""
        if self._text(path, value, max_len):
            self._content(path, str(value), single_line=True)

    def text(self, path: str, value: object, *, max_len: int = TEXT_MAX) -> None:
        """A required free text: line breaks allowed, NUL characters not."""
        if self._text(path, value, max_len):
            self._content(path, str(value), single_line=False)

    def _content(self, path: str, value: str, *, single_line: bool) -> None:
        problem = text_problem(value, single_line=single_line)
        if problem is not None:
            self.fail(path, problem)

    def optional_line(self, path: str, value: object, *, max_len: int = NAME_MAX) -> None:
        if value is not None:
            self.line(path, value, max_len=max_len)

    def optional_text(self, path: str, value: object, *, max_len: int = TEXT_MAX) -> None:
        if value is not None:
            self.text(path, value, max_len=max_len)

    def _text(self, path: str, value: object, max_len: int) -> bool:
        if not isinstance(value, str):
            self.fail(path, "must be text")
            return False
        if not value.strip():
            self.fail(path, "must not be empty (omit the field instead of sending blank text)")
            return False
        if len(value) > max_len:
            self.fail(path, f"must be at most {max_len} characters (got {len(value)})")
            return False
        return True

    def pattern(self, path: str, value: object, regex: re.Pattern[str], example: str) -> None:
        if not isinstance(value, str) or regex.fullmatch(value) is None:
            self.fail(path, f"must look like {example} (got {value!r})")

    def integer(self, path: str, value: object, low: int, high: int) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "must be a whole number")
            return False
        if not low <= value <= high:
            self.fail(path, f"must be between {low} and {high} (got {value})")
            return False
        return True

    def day(self, path: str, value: object) -> bool:
        if isinstance(value, datetime) or not isinstance(value, date):
            self.fail(path, "must be a calendar date (YYYY-MM-DD) without a time")
            return False
        return True

    def optional_day(self, path: str, value: object) -> bool:
        return value is None or self.day(path, value)

    def not_before(self, path: str, later: object, earlier: object, earlier_name: str) -> None:
        """``later`` must not fall before ``earlier``; silent when either is not a date
        (that problem is reported on its own field)."""
        if (
            isinstance(later, date)
            and isinstance(earlier, date)
            and later < earlier
            and not isinstance(later, datetime)
            and not isinstance(earlier, datetime)
        ):
            self.fail(path, f"must be on or after {earlier_name} ({earlier.isoformat()})")

    def money(
        self, path: str, value: object, *, currency: str | None = None, positive: bool = False
    ) -> None:
        """An amount in minor units; ``currency``, when given, is the one it must match."""
        if not isinstance(value, Money):
            self.fail(path, "must be an amount with a currency")
            return
        low = 1 if positive else 0
        self.integer(f"{path}.amount_minor", value.amount_minor, low, MAX_SAFE_INTEGER)
        if not isinstance(value.currency, str) or _CURRENCY.fullmatch(value.currency) is None:
            self.fail(
                f"{path}.currency",
                f"must be an ISO 4217 code of three capital letters such as EUR "
                f"(got {value.currency!r})",
            )
        elif currency is not None and value.currency != currency:
            self.fail(
                f"{path}.currency",
                f"must be {currency}, the currency of the program's budget (got {value.currency})",
            )

    def member(
        self, path: str, value: object, allowed: type[E], among: Collection[E] | None = None
    ) -> None:
        """``value`` must be a member of the enum ``allowed`` and, when ``among`` is given,
        one of those members (e.g. the strategies that start a mitigation)."""
        if not isinstance(value, allowed):
            self.fail(path, f"must be one of {', '.join(str(m.value) for m in allowed)}")
        elif among is not None and value not in among:
            names = ", ".join(str(m.value) for m in among)
            self.fail(path, f"must be one of {names} here (got {value.value})")


def require_status(
    entity: str,
    entity_id: UUID | str,
    status: E,
    lifecycle: Mapping[type, Collection[E]],
    command: object,
) -> None:
    """Refuses ``command`` unless its entry in a lifecycle table allows ``status``; the hint
    lists the allowed statuses in the order the status enum declares them."""
    allowed = lifecycle[type(command)]
    if status not in allowed:
        listed = " or ".join(str(s.value) for s in type(status) if s in allowed)
        raise InvalidTransition(
            entity,
            entity_id,
            str(status.value),
            type(command).__name__,
            hint=f"allowed only when {listed}",
        )


class _Tracked(Protocol):
    @property
    def status(self) -> enum.Enum: ...


Tracked = TypeVar("Tracked", bound=_Tracked)


def require_item(
    entity: str,
    item_id: UUID,
    item: Tracked | None,
    lifecycle: Mapping[type, Collection[enum.Enum]],
    command: object,
    within: str,
) -> Tracked:
    """The item a command acts on: refused as not found, or by its lifecycle table, the same
    way for every kind of item (milestones, dependencies)."""
    if item is None:
        raise NotFound(entity, item_id, within=within)
    require_status(entity, item_id, item.status, lifecycle, command)
    return item
