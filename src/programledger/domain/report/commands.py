"""Commands to a status report. Each names the report by its program and ISO week."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

import msgspec

from programledger.domain.report.state import ReportContent

__all__ = [
    "CorrectStatusReport",
    "DraftStatusReport",
    "EditStatusReport",
    "PublishStatusReport",
    "StatusReportCommand",
]


class _ReportCommand(msgspec.Struct, frozen=True, kw_only=True):
    program_id: UUID
    period: str
    """The ISO week reported on, ``2027-W14``."""


class DraftStatusReport(_ReportCommand, frozen=True, kw_only=True):
    """Starts the program's report for the week (``statusReportDraft`` proposes the RAGs
    and reasons from the read models)."""

    content: ReportContent


class EditStatusReport(_ReportCommand, frozen=True, kw_only=True):
    """Replaces the draft's whole content (the form holds all of it)."""

    content: ReportContent


class PublishStatusReport(_ReportCommand, frozen=True, kw_only=True):
    """Publishes the draft; only the program's owner may."""

    filled_by_application: ClassVar[tuple[str, ...]] = ("published_by", "program_owner")
    published_by: str = ""
    """The caller (the token's subject), set by the application, never by a client."""
    program_owner: str = ""
    """The program's owner as its stream has it when deciding, set by the application."""


class CorrectStatusReport(_ReportCommand, frozen=True, kw_only=True):
    """Opens a new revision of a published report, to be published in its place; the
    published revision stays as it was."""

    content: ReportContent
    reason: str


StatusReportCommand = (
    DraftStatusReport | EditStatusReport | PublishStatusReport | CorrectStatusReport
)
