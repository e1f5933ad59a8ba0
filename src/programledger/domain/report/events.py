"""Events of a status report. Each carries the report's whole content as it is after the
event, so a subscriber (or a read model) needs no earlier event."""

from __future__ import annotations

from typing import ClassVar, get_args
from uuid import UUID

from programledger.domain.events import DomainEvent
from programledger.domain.report.state import ReportContent

__all__ = [
    "STATUS_REPORT_EVENT_TYPES",
    "StatusReportCorrectionStarted",
    "StatusReportDrafted",
    "StatusReportEdited",
    "StatusReportEvent",
    "StatusReportPublished",
]


class _ReportEvent(DomainEvent, frozen=True, kw_only=True):
    program_id: UUID
    period: str
    revision: int
    content: ReportContent


class StatusReportDrafted(_ReportEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "StatusReportDrafted"
    schema_version: ClassVar[int] = 1


class StatusReportEdited(_ReportEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "StatusReportEdited"
    schema_version: ClassVar[int] = 1


class StatusReportPublished(_ReportEvent, frozen=True, kw_only=True):
    """What downstream services subscribe to: the report as published."""

    event_type: ClassVar[str] = "StatusReportPublished"
    schema_version: ClassVar[int] = 1
    published_by: str
    corrects: int | None = None
    """The revision this one replaces, for a correction."""
    correction_reason: str | None = None


class StatusReportCorrectionStarted(_ReportEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "StatusReportCorrectionStarted"
    schema_version: ClassVar[int] = 1
    reason: str


StatusReportEvent = (
    StatusReportDrafted | StatusReportEdited | StatusReportPublished | StatusReportCorrectionStarted
)

STATUS_REPORT_EVENT_TYPES: tuple[type[DomainEvent], ...] = get_args(StatusReportEvent)
