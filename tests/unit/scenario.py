"""``given(events).when(command).then(events)`` for the domain's pure ``decide`` functions.

Every accepted scenario also checks what storage relies on: the new events evolve the
state without error, and each one survives a JSON round trip unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, get_args

import msgspec

from programledger.domain import (
    assumption,
    issue,
    objective,
    portfolio,
    program,
    report,
    resource,
    risk,
    scenario,
    schedule,
)
from programledger.domain.assumption import AssumptionCommand
from programledger.domain.errors import DomainError
from programledger.domain.events import DomainEvent
from programledger.domain.issue import IssueCommand
from programledger.domain.objective import ObjectiveCommand
from programledger.domain.portfolio import PortfolioCommand
from programledger.domain.program import ProgramCommand
from programledger.domain.refusals import declared
from programledger.domain.report import StatusReportCommand
from programledger.domain.resource import ResourceCommand
from programledger.domain.risk import RiskCommand
from programledger.domain.scenario import ScenarioCommand
from programledger.domain.schedule import ScheduleCommand

E = TypeVar("E", bound=BaseException)

_AGGREGATES: list[tuple[tuple[type, ...], Callable[..., Any], Callable[..., Any]]] = [
    (get_args(ProgramCommand), program.decide, program.fold),
    (get_args(RiskCommand), risk.decide, risk.fold),
    (get_args(AssumptionCommand), assumption.decide, assumption.fold),
    (get_args(IssueCommand), issue.decide, issue.fold),
    (get_args(ResourceCommand), resource.decide, resource.fold),
    (get_args(ScheduleCommand), schedule.decide, schedule.fold),
    (get_args(PortfolioCommand), portfolio.decide, portfolio.fold),
    (get_args(ObjectiveCommand), objective.decide, objective.fold),
    (get_args(StatusReportCommand), report.decide, report.fold),
    (get_args(ScenarioCommand), scenario.decide, scenario.fold),
]


def roundtrip(event: DomainEvent) -> DomainEvent:
    """The event as the store gives it back: encoded to JSON and decoded by its type."""
    decoded: DomainEvent = msgspec.json.decode(msgspec.json.encode(event), type=type(event))
    return decoded


def _aggregate_of(command: object) -> tuple[Callable[..., Any], Callable[..., Any]]:
    for commands, decide, fold in _AGGREGATES:
        if isinstance(command, commands):
            return decide, fold
    raise TypeError(f"{type(command).__name__} is not a command of any aggregate")


def undeclared(command: object, error: DomainError) -> None:
    """Fails when ``decide`` refused ``command`` with an error ``REFUSALS`` does not list
    for it: the API's payload union for the command would not hold it."""
    if not declared(command, error):
        raise AssertionError(
            f"{type(command).__name__} was refused with {type(error).__name__}, which "
            f"domain/refusals.py does not list for it: {error}"
        )


class Outcome:
    def __init__(self, history: Sequence[DomainEvent], command: object) -> None:
        decide, fold = _aggregate_of(command)
        state = fold(history)
        self._fold = fold
        self.history = list(history)
        self.command = command
        self.events: list[DomainEvent] | None = None
        self.error: DomainError | None = None
        try:
            self.events = list(decide(state, command))
        except DomainError as error:
            undeclared(command, error)
            self.error = error

    def then(self, *expected: DomainEvent) -> Any:
        """Asserts the command yields exactly ``expected``; returns the state after them."""
        events = self.accepted()
        if events != list(expected):
            raise AssertionError(f"expected events {list(expected)}\n     but got {events}")
        for event in events:
            if roundtrip(event) != event:
                raise AssertionError(f"{event!r} does not survive a JSON round trip")
        return self._fold([*self.history, *events])

    def accepted(self) -> list[DomainEvent]:
        """Asserts the command is accepted, whatever it records; returns its events."""
        if self.error is not None:
            raise AssertionError(
                f"{type(self.command).__name__} was refused with "
                f"{type(self.error).__name__}: {self.error}"
            )
        assert self.events is not None
        return self.events

    def raises(self, error_type: type[E]) -> E:
        """Asserts the command is refused with ``error_type``; returns the error."""
        if self.error is None:
            raise AssertionError(
                f"{type(self.command).__name__} was accepted with {self.events}, "
                f"expected {error_type.__name__}"
            )
        if not isinstance(self.error, error_type):
            raise AssertionError(
                f"expected {error_type.__name__}, got {type(self.error).__name__}: {self.error}"
            )
        return self.error


class Given:
    def __init__(self, history: Sequence[DomainEvent]) -> None:
        self.history = history

    def when(self, command: object) -> Outcome:
        return Outcome(self.history, command)


def given(*events: DomainEvent) -> Given:
    return Given(events)
