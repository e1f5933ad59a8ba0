"""Structured logs: one JSON object per line for machines, readable lines for people.

Configured once, by the command line, before anything logs. Every module keeps using the
standard library's ``logging.getLogger(__name__)`` (and libraries such as asyncpg, nats and
uvicorn do too); their records go through the same structlog processors as structlog's own
loggers, so there is one format and one set of fields whoever logs.

Every line is passed through :func:`~programledger.redaction.redact` last, so a password
in a URL or a token in a traceback never reaches the log store, whoever logged it.

Request and correlation ids live in context variables: an entry point binds them once
(:func:`log_context`, e.g. per HTTP request or per command) and every line logged inside,
in any module and any task started from there, carries them. Nothing has to pass a logger
or an id down the call stack.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO
from uuid import UUID

import structlog
from structlog.typing import EventDict, Processor

from programledger.redaction import redact
from programledger.settings import LogFormat

__all__ = [
    "CORRELATION_ID",
    "REQUEST_ID",
    "configure_logging",
    "log_context",
    "new_request_id",
]

REQUEST_ID = "request_id"
"""Identifies one request to this process (an HTTP request, one CLI command)."""
CORRELATION_ID = "correlation_id"
"""Follows one user intent across processes: it is written into the events it causes."""


def _shared_processors() -> list[Processor]:
    """What every line gets, from structlog or from the standard library alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _redact_secrets(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    """Mask secrets in every text of a line, message and formatted traceback included:
    a connection error quotes its URL, a traceback its arguments."""
    return {
        key: redact(value) if isinstance(value, str) else value for key, value in event_dict.items()
    }


def configure_logging(
    level: str = "INFO", fmt: LogFormat | None = None, stream: TextIO | None = None
) -> LogFormat:
    """Send every log line of the process to ``stream`` (stderr) in one format.

    ``fmt=None`` picks ``console`` when ``stream`` is a terminal and ``json`` otherwise, so
    containers and CI get parseable lines and a developer's terminal gets readable ones.
    Calling it again replaces the previous configuration (tests, repeated CLI calls).
    Returns the format chosen.
    """
    stream = sys.stderr if stream is None else stream
    if fmt is None:
        fmt = "console" if stream.isatty() else "json"
    renderer: list[Processor]
    if fmt == "json":
        renderer = [
            structlog.processors.format_exc_info,
            _redact_secrets,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ]
    else:
        renderer = [
            structlog.processors.format_exc_info,
            _redact_secrets,
            structlog.dev.ConsoleRenderer(colors=stream.isatty()),
        ]
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    return fmt


def new_request_id() -> str:
    """A random UUID in its usual text form, for a request or a command that brought none.

    The API uses it for requests without an acceptable ``X-Request-Id`` (docs/api.md), so
    it is also a valid correlation id for the events the request records.
    """
    return str(uuid.uuid4())


@contextmanager
def log_context(
    *,
    request_id: str | None = None,
    correlation_id: UUID | str | None = None,
    **fields: object,
) -> Iterator[None]:
    """Add ids (and any other ``fields``) to every line logged inside the block.

    Context variables are copied into tasks created inside the block, so the ids follow
    the work; on exit the previous values come back, so nested blocks compose.
    """
    bound: dict[str, object] = dict(fields)
    if request_id is not None:
        bound[REQUEST_ID] = request_id
    if correlation_id is not None:
        bound[CORRELATION_ID] = str(correlation_id)
    with structlog.contextvars.bound_contextvars(**bound):
        yield
