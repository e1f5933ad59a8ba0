"""Status reports: the draft → published lifecycle, content rules, the owner rule,
corrections as new revisions, and the RAGs a draft is proposed with."""

from __future__ import annotations

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st
from msgspec.structs import replace

from programledger.domain import report
from programledger.domain.errors import (
    AlreadyExists,
    InvalidTransition,
    NotFound,
    NotProgramOwner,
    ValidationError,
)
from programledger.domain.report import (
    CorrectStatusReport,
    Dimension,
    DimensionRag,
    DraftStatusReport,
    EditStatusReport,
    PublishStatusReport,
    Rag,
    ReportContent,
    ReportFacts,
    ReportStatus,
    StatusReportCorrectionStarted,
    StatusReportDrafted,
    StatusReportEdited,
    StatusReportPublished,
    period_days,
    propose,
)
from tests.unit.examples import PROGRAM
from tests.unit.scenario import given

WEEK = "2027-W14"
OWNER = "tia@example.com"


def content(overall: Rag = Rag.AMBER, **rags: Rag) -> ReportContent:
    return ReportContent(
        overall=overall,
        overall_reason="schedule slipping",
        dimensions=tuple(
            DimensionRag(dimension=d, rag=rags.get(d.value.lower(), Rag.GREEN), reason="ok")
            for d in Dimension
        ),
        highlights=("API beta shipped",),
        lowlights=("Vendor contract late",),
        asks=("Legal review by Friday",),
        next_steps=("Start load tests",),
    )


DRAFT = content()
drafted = StatusReportDrafted(program_id=PROGRAM, period=WEEK, revision=1, content=DRAFT)
publish = PublishStatusReport(
    program_id=PROGRAM, period=WEEK, published_by=OWNER, program_owner=OWNER
)
published = StatusReportPublished(
    program_id=PROGRAM, period=WEEK, revision=1, content=DRAFT, published_by=OWNER
)


def test_draft_a_report() -> None:
    state = (
        given()
        .when(DraftStatusReport(program_id=PROGRAM, period=WEEK, content=DRAFT))
        .then(drafted)
    )
    assert state.status is ReportStatus.DRAFT
    assert state.revision == 1


def test_one_report_per_program_and_week() -> None:
    given(drafted).when(DraftStatusReport(program_id=PROGRAM, period=WEEK, content=DRAFT)).raises(
        AlreadyExists
    )


def test_the_period_is_an_iso_week() -> None:
    for bad in ("2027-14", "2027-W54", "2026-W53x", "W14"):
        error = (
            given()
            .when(DraftStatusReport(program_id=PROGRAM, period=bad, content=DRAFT))
            .raises(ValidationError)
        )
        assert [i.path for i in error.issues] == ["period"]
    assert period_days("2026-W53") is not None  # 2026 has 53 ISO weeks


def test_every_dimension_is_rated_once_with_a_reason() -> None:
    missing_one = replace(DRAFT, dimensions=DRAFT.dimensions[:4])
    twice = replace(DRAFT, dimensions=(*DRAFT.dimensions, DRAFT.dimensions[0]))
    blank = replace(DRAFT, overall_reason=" ", highlights=("",))
    for bad, paths in (
        (missing_one, {"content.dimensions"}),
        (twice, {"content.dimensions[5].dimension"}),
        (blank, {"content.overall_reason", "content.highlights[0]"}),
    ):
        error = (
            given()
            .when(DraftStatusReport(program_id=PROGRAM, period=WEEK, content=bad))
            .raises(ValidationError)
        )
        assert {i.path for i in error.issues} == paths


def test_edit_a_draft_replaces_its_content_and_an_unchanged_edit_records_nothing() -> None:
    red = content(Rag.RED, schedule=Rag.RED)
    given(drafted).when(EditStatusReport(program_id=PROGRAM, period=WEEK, content=red)).then(
        StatusReportEdited(program_id=PROGRAM, period=WEEK, revision=1, content=red)
    )
    given(drafted).when(EditStatusReport(program_id=PROGRAM, period=WEEK, content=DRAFT)).then()


def test_commands_on_a_missing_report_are_not_found() -> None:
    given().when(publish).raises(NotFound)


def test_the_owner_publishes() -> None:
    state = given(drafted).when(publish).then(published)
    assert state.status is ReportStatus.PUBLISHED
    assert [p.revision for p in state.published] == [1]


def test_only_the_owner_publishes() -> None:
    error = (
        given(drafted)
        .when(replace(publish, published_by="eve@example.com"))
        .raises(NotProgramOwner)
    )
    assert (error.owner, error.actor) == (OWNER, "eve@example.com")


def test_a_published_report_is_immutable() -> None:
    edit = EditStatusReport(program_id=PROGRAM, period=WEEK, content=content(Rag.RED))
    error = given(drafted, published).when(edit).raises(InvalidTransition)
    assert error.hint == "allowed only when DRAFT"
    given(drafted, published).when(publish).raises(InvalidTransition)


def test_a_correction_is_a_new_revision_and_keeps_the_published_one() -> None:
    fixed = content(Rag.RED, budget=Rag.RED)
    correct = CorrectStatusReport(
        program_id=PROGRAM, period=WEEK, content=fixed, reason="spend was misreported"
    )
    started = StatusReportCorrectionStarted(
        program_id=PROGRAM, period=WEEK, revision=2, content=fixed, reason="spend was misreported"
    )
    state = given(drafted, published).when(correct).then(started)
    assert state.status is ReportStatus.DRAFT
    assert state.published[0].content == DRAFT
    republished = StatusReportPublished(
        program_id=PROGRAM,
        period=WEEK,
        revision=2,
        content=fixed,
        published_by=OWNER,
        corrects=1,
        correction_reason="spend was misreported",
    )
    state = given(drafted, published, started).when(publish).then(republished)
    assert [p.revision for p in state.published] == [1, 2]
    given(drafted).when(correct).raises(InvalidTransition)
    no_reason = replace(correct, reason="")
    given(drafted, published).when(no_reason).raises(ValidationError)


def test_a_quiet_program_is_proposed_green() -> None:
    proposed = propose(
        ReportFacts(planned_budget_minor=100, actual_spend_minor=40, elapsed_percent=50)
    )
    assert proposed.overall is Rag.GREEN
    assert {d.rag for d in proposed.dimensions} == {Rag.GREEN}
    given().when(DraftStatusReport(program_id=PROGRAM, period=WEEK, content=proposed)).accepted()


@pytest.mark.parametrize(
    ("facts", "dimension", "rag"),
    [
        (ReportFacts(max_slip_days=3), Dimension.SCHEDULE, Rag.AMBER),
        (ReportFacts(max_slip_days=15), Dimension.SCHEDULE, Rag.RED),
        (ReportFacts(milestones_missed=1), Dimension.SCHEDULE, Rag.RED),
        (
            ReportFacts(planned_budget_minor=100, actual_spend_minor=65, elapsed_percent=50),
            Dimension.BUDGET,
            Rag.AMBER,
        ),
        (
            ReportFacts(planned_budget_minor=100, actual_spend_minor=75, elapsed_percent=50),
            Dimension.BUDGET,
            Rag.RED,
        ),
        (
            ReportFacts(planned_budget_minor=100, actual_spend_minor=101, elapsed_percent=100),
            Dimension.BUDGET,
            Rag.RED,
        ),
        (ReportFacts(over_allocated_resources=("alice.martin",)), Dimension.RESOURCES, Rag.AMBER),
        (ReportFacts(over_allocated_resources=("a", "b")), Dimension.RESOURCES, Rag.RED),
        (ReportFacts(overdue_reviews=1), Dimension.RISKS, Rag.AMBER),
        (ReportFacts(open_issues=1), Dimension.RISKS, Rag.RED),
        (ReportFacts(dependencies_at_risk=1), Dimension.SCOPE, Rag.AMBER),
        (ReportFacts(dependencies_overdue=1), Dimension.SCOPE, Rag.RED),
    ],
)
def test_each_dimension_is_proposed_by_its_rule(
    facts: ReportFacts, dimension: Dimension, rag: Rag
) -> None:
    proposed = propose(facts)
    assert proposed.rag_of(dimension) is rag
    assert proposed.overall is rag
    assert dimension.value in proposed.overall_reason


_rags = st.sampled_from(list(Rag))
_commands = st.one_of(
    st.builds(
        lambda r: EditStatusReport(program_id=PROGRAM, period=WEEK, content=content(r)), _rags
    ),
    st.just(publish),
    st.just(replace(publish, published_by="eve@example.com")),
    st.builds(
        lambda r: CorrectStatusReport(
            program_id=PROGRAM, period=WEEK, content=content(r), reason="fix"
        ),
        _rags,
    ),
)


@for_all(st.lists(_commands, max_size=12))
def test_published_revisions_never_change(commands: list[object]) -> None:
    """Whatever is sent after the draft, every revision once published stays as it was,
    revisions only grow, and a published report's content is its last published one."""
    state = report.fold([drafted])
    for command in commands:
        assert state is not None
        before = state.published
        try:
            events = report.decide(state, command)  # type: ignore[arg-type]
        except (InvalidTransition, NotProgramOwner):
            continue
        for event in events:
            state = report.evolve(state, event)
        assert state.published[: len(before)] == before
        if state.status is ReportStatus.PUBLISHED:
            assert state.published[-1].content == state.content
            assert state.published[-1].revision == state.revision
