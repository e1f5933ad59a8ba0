"""Secrets out of every text an operator or a log store sees.

Connection URLs carry passwords (``postgresql://app:s3cret@db/programledger``), errors
quote the setting that was wrong, and tracebacks quote arguments: one function masks
them all, used by settings errors, every log line and the command line's one-line
reports, so no path of its own can forget. It imports nothing of programledger, so any
layer may use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "redact"]

MASK = "***"

_URL_PASSWORD = re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^/?#\s]*(?=@)", re.I)
"""The password of ``scheme://user:password@host``: up to the last ``@`` of the authority,
as URL parsers read it, so a password holding ``@`` is masked whole."""
_KEY_VALUE = re.compile(
    r"(?P<keep>\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key)[\"']?\s*[=:]\s*"
    r"[\"']?)(?P<value>[^\s&\"',;)}\]]+)",
    re.I,
)
"""``password=…`` in a URL's query or a libpq DSN, ``PROGRAMLEDGER_JWT_SECRET=…`` in an
environment dump, ``'jwt_secret': '…'`` in a repr."""
_BEARER = re.compile(r"(?P<keep>\b[Bb]earer\s+)[\w.~+/=-]{8,}")
"""A credential after ``Bearer``; eight characters at least, so prose ("a bearer token is
required") stays readable."""
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with passwords in URLs, ``key=value`` secrets, bearer tokens and JWTs
    replaced by :data:`MASK`, and every one of ``secrets`` (values known to be secret,
    such as the configured signing key) too."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<keep>{MASK}", text)
    text = _KEY_VALUE.sub(rf"\g<keep>{MASK}", text)
    text = _BEARER.sub(rf"\g<keep>{MASK}", text)
    return _JWT.sub(MASK, text)
