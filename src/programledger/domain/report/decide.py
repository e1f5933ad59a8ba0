"""``decide`` for a status report: content checks, the draft → published lifecycle, and
the owner rule for publishing.

Who publishes and who owns the program are facts the application adds to
:class:`PublishStatusReport` (the caller's token and the program stream, read just before
deciding), so the rule itself stays here, pure and tested with the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

from programledger.domain._checks import Checks, require_status
from programledger.domain.errors import AlreadyExists, NotFound, NotProgramOwner
from programledger.domain.report.commands import (
    CorrectStatusReport,
    DraftStatusReport,
    EditStatusReport,
    PublishStatusReport,
    StatusReportCommand,
)
from programledger.domain.report.events import (
    StatusReportCorrectionStarted,
    StatusReportDrafted,
    StatusReportEdited,
    StatusReportEvent,
    StatusReportPublished,
)
from programledger.domain.report.state import (
    DIMENSIONS,
    Rag,
    ReportContent,
    ReportStatus,
    StatusReport,
    period_days,
    status_report_stream_id,
)

__all__ = ["ITEMS_MAX", "ITEM_MAX", "REASON_MAX", "REPORT_LIFECYCLE", "check_content", "decide"]

ITEMS_MAX = 20
"""Entries per list (highlights, lowlights, asks, next steps): a report is read in minutes."""
ITEM_MAX = 2_000
REASON_MAX = 2_000

REPORT_LIFECYCLE: Mapping[type, frozenset[ReportStatus]] = {
    EditStatusReport: frozenset({ReportStatus.DRAFT}),
    PublishStatusReport: frozenset({ReportStatus.DRAFT}),
    CorrectStatusReport: frozenset({ReportStatus.PUBLISHED}),
}


def decide(state: StatusReport | None, command: StatusReportCommand) -> list[StatusReportEvent]:
    _check(command)
    key = status_report_stream_id(command.program_id, command.period)
    if isinstance(command, DraftStatusReport):
        if state is not None:
            raise AlreadyExists("status report", key)
        return [
            StatusReportDrafted(
                program_id=command.program_id,
                period=command.period,
                revision=1,
                content=command.content,
            )
        ]
    if state is None:
        raise NotFound("status report", key)
    require_status("status report", key, state.status, REPORT_LIFECYCLE, command)
    match command:
        case EditStatusReport():
            if command.content == state.content:
                return []
            return [
                StatusReportEdited(
                    program_id=state.program_id,
                    period=state.period,
                    revision=state.revision,
                    content=command.content,
                )
            ]
        case PublishStatusReport():
            if command.published_by != command.program_owner:
                raise NotProgramOwner(
                    state.program_id,
                    command.program_owner,
                    command.published_by,
                    "publish its status report",
                )
            return [
                StatusReportPublished(
                    program_id=state.program_id,
                    period=state.period,
                    revision=state.revision,
                    content=state.content,
                    published_by=command.published_by,
                    corrects=state.revision - 1 if state.published else None,
                    correction_reason=state.correction_reason,
                )
            ]
        case CorrectStatusReport():
            return [
                StatusReportCorrectionStarted(
                    program_id=state.program_id,
                    period=state.period,
                    revision=state.revision + 1,
                    content=command.content,
                    reason=command.reason,
                )
            ]
    raise TypeError(f"{type(command).__name__} is not a status report command")


def _check(command: StatusReportCommand) -> None:
    checks = Checks()
    if period_days(command.period) is None:
        checks.fail("period", f"must be an ISO week such as 2027-W14 (got {command.period!r})")
    if isinstance(command, PublishStatusReport):
        checks.line("published_by", command.published_by)
        checks.line("program_owner", command.program_owner)
    else:
        check_content(checks, "content", command.content)
    if isinstance(command, CorrectStatusReport):
        checks.text("reason", command.reason)
    checks.done()


def check_content(checks: Checks, path: str, content: ReportContent) -> None:
    """Every RAG is one of GREEN, AMBER, RED with a reason; each dimension is rated once;
    the lists hold at most :data:`ITEMS_MAX` non-blank entries."""
    checks.member(f"{path}.overall", content.overall, Rag)
    checks.text(f"{path}.overall_reason", content.overall_reason, max_len=REASON_MAX)
    seen = [d.dimension for d in content.dimensions]
    for i, rated in enumerate(content.dimensions):
        checks.member(f"{path}.dimensions[{i}].rag", rated.rag, Rag)
        checks.text(f"{path}.dimensions[{i}].reason", rated.reason, max_len=REASON_MAX)
        if seen.count(rated.dimension) > 1 and seen.index(rated.dimension) < i:
            checks.fail(f"{path}.dimensions[{i}].dimension", f"rates {rated.dimension} twice")
    missing = [d.value for d in DIMENSIONS if d not in seen]
    if missing:
        checks.fail(
            f"{path}.dimensions",
            f"must rate every dimension once; missing {', '.join(missing)}",
        )
    for name in ("highlights", "lowlights", "asks", "next_steps"):
        items: tuple[str, ...] = getattr(content, name)
        if len(items) > ITEMS_MAX:
            checks.fail(f"{path}.{name}", f"must hold at most {ITEMS_MAX} entries")
        for i, item in enumerate(items):
            checks.text(f"{path}.{name}[{i}]", item, max_len=ITEM_MAX)
