"""Portfolios: their lifecycle, and a program's moves between them (one at a time)."""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st

from programledger.domain import program
from programledger.domain.errors import (
    AlreadyExists,
    InvalidTransition,
    NotFound,
    TerminalState,
    ValidationError,
)
from programledger.domain.portfolio import (
    PORTFOLIO_LIFECYCLE,
    ArchivePortfolio,
    CreatePortfolio,
    PortfolioArchived,
    PortfolioCreated,
    PortfolioReopened,
    PortfolioStatus,
    ReopenPortfolio,
)
from programledger.domain.program import (
    MoveProgramToPortfolio,
    ProgramCompleted,
    ProgramMovedToPortfolio,
)
from tests.unit.examples import PROGRAM, active_program
from tests.unit.scenario import given

GROWTH = UUID("00000000-0000-4000-8000-0000000000e1")
PLATFORM = UUID("00000000-0000-4000-8000-0000000000e2")

created = PortfolioCreated(portfolio_id=GROWTH, name="Growth", owner="Pat VP")
archived = PortfolioArchived(portfolio_id=GROWTH, reason="Merged into Platform")


def test_a_portfolio_is_created_active() -> None:
    state = (
        given()
        .when(CreatePortfolio(portfolio_id=GROWTH, name="Growth", owner="Pat VP"))
        .then(created)
    )
    assert state.status is PortfolioStatus.ACTIVE


def test_a_portfolio_is_created_once() -> None:
    command = CreatePortfolio(portfolio_id=GROWTH, name="Other", owner="Pat VP")
    given(created).when(command).raises(AlreadyExists)


def test_a_portfolio_needs_a_name_and_an_owner() -> None:
    error = (
        given()
        .when(CreatePortfolio(portfolio_id=GROWTH, name=" ", owner=""))
        .raises(ValidationError)
    )
    assert {issue.path for issue in error.issues} == {"name", "owner"}


def test_archiving_needs_a_reason_and_an_existing_portfolio() -> None:
    given(created).when(ArchivePortfolio(portfolio_id=GROWTH, reason="")).raises(ValidationError)
    given().when(ArchivePortfolio(portfolio_id=GROWTH, reason="Done")).raises(NotFound)


def test_an_archived_portfolio_can_be_reopened_and_not_archived_twice() -> None:
    state = (
        given(created)
        .when(ArchivePortfolio(portfolio_id=GROWTH, reason="Merged into Platform"))
        .then(archived)
    )
    assert state.status is PortfolioStatus.ARCHIVED
    given(created, archived).when(ArchivePortfolio(portfolio_id=GROWTH, reason="again")).raises(
        InvalidTransition
    )
    reopened = PortfolioReopened(portfolio_id=GROWTH, reason="Split again")
    state = (
        given(created, archived)
        .when(ReopenPortfolio(portfolio_id=GROWTH, reason="Split again"))
        .then(reopened)
    )
    assert state.status is PortfolioStatus.ACTIVE
    given(created).when(ReopenPortfolio(portfolio_id=GROWTH, reason="x")).raises(InvalidTransition)


def test_a_program_moves_into_a_portfolio_and_the_move_names_where_from() -> None:
    state = (
        given(*active_program())
        .when(MoveProgramToPortfolio(program_id=PROGRAM, portfolio_id=GROWTH, reason="Q1 plan"))
        .then(
            ProgramMovedToPortfolio(
                program_id=PROGRAM, from_portfolio_id=None, to_portfolio_id=GROWTH, reason="Q1 plan"
            )
        )
    )
    assert state.portfolio_id == GROWTH


def test_a_program_is_in_one_portfolio_at_a_time() -> None:
    joined = ProgramMovedToPortfolio(
        program_id=PROGRAM, from_portfolio_id=None, to_portfolio_id=GROWTH
    )
    state = (
        given(*active_program(), joined)
        .when(MoveProgramToPortfolio(program_id=PROGRAM, portfolio_id=PLATFORM))
        .then(
            ProgramMovedToPortfolio(
                program_id=PROGRAM, from_portfolio_id=GROWTH, to_portfolio_id=PLATFORM
            )
        )
    )
    assert state.portfolio_id == PLATFORM


def test_a_program_leaves_every_portfolio_with_no_portfolio() -> None:
    joined = ProgramMovedToPortfolio(
        program_id=PROGRAM, from_portfolio_id=None, to_portfolio_id=GROWTH
    )
    state = (
        given(*active_program(), joined)
        .when(MoveProgramToPortfolio(program_id=PROGRAM, portfolio_id=None, reason="Out of scope"))
        .then(
            ProgramMovedToPortfolio(
                program_id=PROGRAM,
                from_portfolio_id=GROWTH,
                to_portfolio_id=None,
                reason="Out of scope",
            )
        )
    )
    assert state.portfolio_id is None


def test_moving_to_the_portfolio_a_program_is_in_records_nothing() -> None:
    joined = ProgramMovedToPortfolio(
        program_id=PROGRAM, from_portfolio_id=None, to_portfolio_id=GROWTH
    )
    given(*active_program(), joined).when(
        MoveProgramToPortfolio(program_id=PROGRAM, portfolio_id=GROWTH)
    ).then()
    given(*active_program()).when(
        MoveProgramToPortfolio(program_id=PROGRAM, portfolio_id=None)
    ).then()


def test_a_finished_program_is_not_moved() -> None:
    done = ProgramCompleted(program_id=PROGRAM, reason="Shipped")
    given(*active_program(), done).when(
        MoveProgramToPortfolio(program_id=PROGRAM, portfolio_id=GROWTH)
    ).raises(TerminalState)


def test_a_move_with_a_blank_reason_is_refused() -> None:
    given(*active_program()).when(
        MoveProgramToPortfolio(program_id=PROGRAM, portfolio_id=GROWTH, reason=" ")
    ).raises(ValidationError)


@for_all(st.lists(st.sampled_from([None, GROWTH, PLATFORM]), max_size=12))
def test_any_sequence_of_moves_leaves_the_program_in_the_last_portfolio_named(
    targets: list[UUID | None],
) -> None:
    """Property: whatever the moves, each event leaves from where the program was, and
    the program ends in exactly one place: the last portfolio named (or none)."""
    history = list(active_program())
    state = program.fold(history)
    for target in targets:
        events = program.decide(
            state, MoveProgramToPortfolio(program_id=PROGRAM, portfolio_id=target)
        )
        assert state is not None
        if target == state.portfolio_id:
            assert events == []
        else:
            (moved,) = events
            assert isinstance(moved, ProgramMovedToPortfolio)
            assert moved.from_portfolio_id == state.portfolio_id
        history.extend(events)
        state = program.fold(history)
    assert state is not None
    assert state.portfolio_id == (targets[-1] if targets else None)


@pytest.mark.parametrize("status", list(PortfolioStatus))
def test_the_lifecycle_table_names_every_status_somewhere(status: PortfolioStatus) -> None:
    assert any(status in allowed for allowed in PORTFOLIO_LIFECYCLE.values())
