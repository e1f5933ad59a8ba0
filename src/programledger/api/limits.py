"""How much one request may ask of the API. Each limit answers a clear error, never a 500."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ApiLimits"]


@dataclass(frozen=True, slots=True)
class ApiLimits:
    max_body_bytes: int = 1 << 20
    """Request bodies above this are refused with 413 before they are parsed."""
    max_depth: int = 12
    """Nesting of selections in one operation (introspection excepted)."""
    max_aliases: int = 30
    """Aliases in one document: each can repeat a whole field, mutations included."""
    max_tokens: int = 5000
    """Lexical tokens in one document: bounds its width and parse time."""
    max_page_size: int = 200
    """The largest ``first`` / ``last`` a list field accepts."""
    projection_wait: float = 5.0
    """Seconds a mutation with ``waitForProjections`` (or a request with
    ``Programledger-Min-Position``) waits for the read models at most."""
    database_seconds: float | None = None
    """Seconds an HTTP request's database work may take (waits for the read models not
    counted) before it fails with ``UNAVAILABLE`` (HTTP 503); ``None``: unbounded."""
    introspection: bool = True
    """Whether ``__schema`` and ``__type`` are answered; production mode turns it off
    unless enabled, so that the schema is not a map handed to anyone with a token."""
