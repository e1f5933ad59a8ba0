"""The application layer's pure parts: command fingerprints, context checks, the registry
and the retry policy. Handling itself is tested on PostgreSQL (tests/integration)."""

from __future__ import annotations

from uuid import UUID

import msgspec
import pytest

from programledger.application.commands import CommandContext, command_fingerprint
from programledger.application.handlers import RetryPolicy
from programledger.application.registry import application_registry
from programledger.application.reservations import ProgramCodeReserved
from programledger.domain import EVENT_TYPES, domain_registry
from programledger.domain.errors import ValidationError
from programledger.domain.program import ActivateProgram, ResumeProgram
from tests.unit.examples import PROGRAM, propose_program


def test_a_fingerprint_is_stable_and_binds_type_data_and_actor() -> None:
    activate = ActivateProgram(program_id=PROGRAM, reason="go")
    assert command_fingerprint(activate, "tom") == command_fingerprint(
        ActivateProgram(program_id=PROGRAM, reason="go"), "tom"
    )
    others = [
        command_fingerprint(ResumeProgram(program_id=PROGRAM, reason="go"), "tom"),
        command_fingerprint(ActivateProgram(program_id=PROGRAM, reason="now"), "tom"),
        command_fingerprint(activate, "ann"),
        command_fingerprint(propose_program(), "tom"),
    ]
    assert command_fingerprint(activate, "tom") not in others
    assert len(set(others)) == len(others)


class Nudge(msgspec.Struct, frozen=True, kw_only=True):
    program_id: UUID
    reason: str | None = None


class NudgeWithAnOptionalField(msgspec.Struct, frozen=True, kw_only=True):
    """``Nudge`` in a later release, which added a field with a default."""

    program_id: UUID
    reason: str | None = None
    urgent: bool = False


def test_a_fingerprint_survives_a_release_that_adds_an_optional_field() -> None:
    before = Nudge(program_id=PROGRAM, reason="go")
    after = NudgeWithAnOptionalField(program_id=PROGRAM, reason="go")
    NudgeWithAnOptionalField.__name__ = "Nudge"  # the same command type, a release later
    try:
        same = command_fingerprint(before, "tom") == command_fingerprint(after, "tom")  # type: ignore[arg-type]
        urgent = NudgeWithAnOptionalField(program_id=PROGRAM, reason="go", urgent=True)
        differs = command_fingerprint(before, "tom") != command_fingerprint(urgent, "tom")  # type: ignore[arg-type]
    finally:
        NudgeWithAnOptionalField.__name__ = "NudgeWithAnOptionalField"
    assert same
    assert differs


def test_a_context_draws_a_correlation_id_per_command() -> None:
    assert CommandContext(actor="tom").correlation_id != CommandContext(actor="tom").correlation_id


@pytest.mark.parametrize(
    ("fields", "paths"),
    [
        ({"reason": " "}, ["reason"]),
        ({"reason": "x" * 2001}, ["reason"]),
        ({"reason": "a\x00b"}, ["reason"]),
        ({"idempotency_key": ""}, ["idempotency_key"]),
        ({"idempotency_key": "k" * 201}, ["idempotency_key"]),
        ({"expected_version": -1}, ["expected_version"]),
        ({"expected_version": True}, ["expected_version"]),
        ({"reason": "", "idempotency_key": "\x00"}, ["reason", "idempotency_key"]),
    ],
)
def test_a_context_the_store_would_refuse_names_its_fields(
    fields: dict[str, object], paths: list[str]
) -> None:
    with pytest.raises(ValidationError) as refused:
        CommandContext(actor="tom", **fields).check()  # type: ignore[arg-type]
    assert [issue.path for issue in refused.value.issues] == paths


def test_a_sound_context_passes() -> None:
    CommandContext(actor="tom", reason="r", idempotency_key="k", expected_version=0).check()


@pytest.mark.parametrize("actor", ["", "  ", "a" * 201])
def test_a_bad_actor_is_a_programming_error(actor: str) -> None:
    with pytest.raises(ValueError, match="actor"):
        CommandContext(actor=actor).check()


def test_the_application_registry_adds_its_events_to_the_domains() -> None:
    registry = application_registry()
    assert registry.type_for("ProgramCodeReserved") is ProgramCodeReserved
    assert all(registry.type_for(cls.event_type) is cls for cls in EVENT_TYPES)
    assert "ProgramCodeReserved" not in domain_registry()


def test_retry_delays_grow_and_stay_capped() -> None:
    policy = RetryPolicy(base_delay=0.01, max_delay=0.05)
    for attempt in (*range(1, 11), 10_000):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= min(0.05, 0.01 * 2 ** min(attempt, 16)) for d in delays)
