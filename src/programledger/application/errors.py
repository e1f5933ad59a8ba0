"""The root of operational errors: the infrastructure failed, not the request.

``DomainError`` says a command was refused, ``EventStoreError`` that an append was
malformed or lost a race; both are answers for the caller. An ``OperationalError`` is for
an operator instead: a server that did not start, a stream or consumer configured by
someone else, a schema not migrated, a worker that lost its lock. The command line
reports any of them in one line with exit code 1, without a traceback, so every adapter
error of that kind subclasses this one rather than being listed there by hand.
"""

from __future__ import annotations

__all__ = ["OperationalError"]


class OperationalError(Exception):
    """Something outside the request failed or is misconfigured; the message says what an
    operator can do about it."""
