"""``evolve`` for a status report."""

from __future__ import annotations

from collections.abc import Iterable

from programledger.domain.errors import InconsistentHistory
from programledger.domain.events import replay
from programledger.domain.report.events import (
    StatusReportCorrectionStarted,
    StatusReportDrafted,
    StatusReportEdited,
    StatusReportEvent,
    StatusReportPublished,
)
from programledger.domain.report.state import PublishedRevision, ReportStatus, StatusReport

__all__ = ["evolve", "fold"]


def evolve(state: StatusReport | None, event: StatusReportEvent) -> StatusReport:
    if isinstance(event, StatusReportDrafted):
        if state is not None:
            raise InconsistentHistory(f"status report {event.period} was drafted twice")
        return StatusReport(
            program_id=event.program_id,
            period=event.period,
            revision=event.revision,
            status=ReportStatus.DRAFT,
            content=event.content,
        )
    if state is None:
        raise InconsistentHistory(f"{event.event_type} before the report was drafted")
    match event:
        case StatusReportEdited():
            return StatusReport(
                program_id=state.program_id,
                period=state.period,
                revision=state.revision,
                status=state.status,
                content=event.content,
                published=state.published,
                correction_reason=state.correction_reason,
            )
        case StatusReportPublished():
            published = PublishedRevision(
                revision=event.revision, content=event.content, published_by=event.published_by
            )
            return StatusReport(
                program_id=state.program_id,
                period=state.period,
                revision=event.revision,
                status=ReportStatus.PUBLISHED,
                content=event.content,
                published=(*state.published, published),
            )
        case StatusReportCorrectionStarted():
            return StatusReport(
                program_id=state.program_id,
                period=state.period,
                revision=event.revision,
                status=ReportStatus.DRAFT,
                content=event.content,
                published=state.published,
                correction_reason=event.reason,
            )
    raise InconsistentHistory(f"{event.event_type} is not a status report event")


def fold(events: Iterable[StatusReportEvent]) -> StatusReport | None:
    return replay(evolve, events)
