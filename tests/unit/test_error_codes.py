"""Every refusal the domain can send has its value in the API's ErrorCode enum: a code
missing there would fail to serialise, and a client's switch over codes would miss it."""

from __future__ import annotations

from programledger.api.graphql.types import ErrorCode
from programledger.domain.errors import DomainError


def _refusals(cls: type[DomainError]) -> set[type[DomainError]]:
    found = set(cls.__subclasses__())
    for sub in cls.__subclasses__():
        found |= _refusals(sub)
    return found


def test_every_domain_refusal_code_is_an_error_code() -> None:
    codes = {cls.code for cls in _refusals(DomainError)}
    assert codes, "no refusals found"
    assert codes <= {code.value for code in ErrorCode}, codes - {c.value for c in ErrorCode}
    assert all(code.name == code.value for code in ErrorCode)  # answered as its name
