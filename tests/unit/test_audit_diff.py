"""The audit trail's field-level changes, computed on the states' structs, are what
comparing their plain forms finds, for any history the domain accepts.

``changes_between`` walks structs to spare turning whole programs into plain data on
every event; :func:`diff` on the plain forms is the definition it must keep to.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from programledger.domain import DomainError, program, risk
from programledger.projections.audit import changes_between, diff
from tests.unit.test_properties import (
    _program_commands,
    _program_setup,
    _risk_commands,
    _risk_identified,
)


def _check(decide: Any, evolve: Any, commands: list[Any]) -> int:
    state: Any = None
    compared = 0
    for command in commands:
        try:
            events = decide(state, command)
        except DomainError:
            continue
        for event in events:
            before, state = state, evolve(state, event)
            if before is None:
                continue
            expected = diff(msgspec.to_builtins(before), msgspec.to_builtins(state))
            assert changes_between(before, state) == expected, type(event).__name__
            compared += 1
    return compared


@settings(max_examples=150, deadline=None)
@given(st.lists(_program_commands(), max_size=40))
def test_program_changes_match_the_plain_diff(commands: list[Any]) -> None:
    assert _check(program.decide, program.evolve, [*_program_setup(), *commands]) > 0


@settings(max_examples=150, deadline=None)
@given(st.lists(_risk_commands(), max_size=30))
def test_risk_changes_match_the_plain_diff(commands: list[Any]) -> None:
    _check(risk.decide, risk.evolve, [_risk_identified(), *commands])
