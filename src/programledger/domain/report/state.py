"""A weekly status report (stream ``status_report-<program id>:<ISO week>``): one per program
and period, drafted, edited, published by the program's owner, and corrected only by a new
revision, so what was published stays as it was read.

Its own aggregate, not part of the program stream: a program's commands fold its whole
stream, and a year of reports with their edits would be most of it; reports are written by
one person on a weekly rhythm and never need the program's other rules in the same
decision. The stream id holds the program and the week, so "one report per program and
period" is kept by the store's optimistic concurrency, with no lookup across streams.
"""

from __future__ import annotations

import enum
import re
from datetime import date
from uuid import UUID

import msgspec

__all__ = [
    "DIMENSIONS",
    "Dimension",
    "DimensionRag",
    "PublishedRevision",
    "Rag",
    "ReportContent",
    "ReportStatus",
    "StatusReport",
    "period_days",
    "status_report_stream_id",
    "worst",
]

_PERIOD = re.compile(r"(\d{4})-W(\d{2})")


class Rag(enum.StrEnum):
    """Red, amber, green: off track, at risk, on track."""

    GREEN = "GREEN"
    AMBER = "AMBER"
    RED = "RED"


_ORDER = {Rag.GREEN: 0, Rag.AMBER: 1, Rag.RED: 2}


def worst(rags: list[Rag]) -> Rag:
    """The most severe of ``rags`` (GREEN for none)."""
    return max(rags, key=_ORDER.__getitem__, default=Rag.GREEN)


class Dimension(enum.StrEnum):
    """What a status report rates besides the whole."""

    SCOPE = "SCOPE"
    SCHEDULE = "SCHEDULE"
    BUDGET = "BUDGET"
    RESOURCES = "RESOURCES"
    RISKS = "RISKS"


DIMENSIONS: tuple[Dimension, ...] = tuple(Dimension)


class ReportStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    """Being written (the first revision, or a correction of a published one)."""
    PUBLISHED = "PUBLISHED"
    """Read by others: never changed again; a correction is a new revision."""


class DimensionRag(msgspec.Struct, frozen=True, kw_only=True):
    dimension: Dimension
    rag: Rag
    reason: str


class ReportContent(msgspec.Struct, frozen=True, kw_only=True):
    """What a report says: the overall RAG and one per dimension, each with its reason,
    and the four lists a reader scans."""

    overall: Rag
    overall_reason: str
    dimensions: tuple[DimensionRag, ...]
    """Exactly one per :class:`Dimension`, in any order."""
    highlights: tuple[str, ...] = ()
    lowlights: tuple[str, ...] = ()
    asks: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()

    def rag_of(self, dimension: Dimension) -> Rag:
        return next(d.rag for d in self.dimensions if d.dimension == dimension)


class PublishedRevision(msgspec.Struct, frozen=True, kw_only=True):
    revision: int
    content: ReportContent
    published_by: str


class StatusReport(msgspec.Struct, frozen=True, kw_only=True):
    program_id: UUID
    period: str
    """The ISO week, ``2027-W14``."""
    revision: int
    """The revision being drafted, or the last one published."""
    status: ReportStatus
    content: ReportContent
    published: tuple[PublishedRevision, ...] = ()
    correction_reason: str | None = None
    """Why the revision being drafted corrects the published one."""


def status_report_stream_id(program_id: UUID, period: str) -> str:
    return f"status_report-{program_id}:{period}"


def period_days(period: str) -> tuple[date, date] | None:
    """Monday and Sunday of an ISO week ``YYYY-Www``, or ``None`` when it is not one."""
    found = _PERIOD.fullmatch(period) if isinstance(period, str) else None
    if found is None:
        return None
    try:
        monday = date.fromisocalendar(int(found[1]), int(found[2]), 1)
    except ValueError:
        return None
    return monday, date.fromisocalendar(int(found[1]), int(found[2]), 7)
