"""Secrets are masked in settings errors, log lines and the command line's reports."""

from __future__ import annotations

import io
import json
import logging

import pytest
from typer.testing import CliRunner

from programledger.cli import app
from programledger.logging import configure_logging
from programledger.redaction import redact
from programledger.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:s3cr@t@db:5432/pl", "postgresql://app:***@db:5432/pl"),
        ("nats://n:pw@h:4222,nats://h2:4222", "nats://n:***@h:4222,nats://h2:4222"),
        ("host=db password=hunter2 user=app", "host=db password=*** user=app"),
        (
            "postgresql://db/pl?sslpassword=x&sslmode=require",
            "postgresql://db/pl?sslpassword=***&sslmode=require",
        ),
        ("PROGRAMLEDGER_JWT_SECRET=abcdefgh", "PROGRAMLEDGER_JWT_SECRET=***"),
        ("Settings(jwt_secret='abc')", "Settings(jwt_secret='***')"),
        ("Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln", "Authorization: Bearer ***"),
        ("token eyJhbGciOi.eyJzdWIi.c2ln seen", "token *** seen"),
    ],
)
def test_secrets_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://app@db:5432/pl",
        "a valid bearer token is required",
        "https://example.com/a:b",
        "program PAY-2027 proposed",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_a_known_secret_is_masked_wherever_it_appears() -> None:
    assert redact("signed with k3y-material!", ["k3y-material"]) == "signed with ***!"


def test_a_settings_error_never_prints_the_database_password() -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"PROGRAMLEDGER_DATABASE_URL": "mysql://app:hunter2@db/ledger"})

    assert "hunter2" not in str(error.value)
    assert "mysql://app:***@db/ledger" in str(error.value)


def test_the_command_line_reports_a_settings_error_without_the_password() -> None:
    result = CliRunner().invoke(
        app, ["migrate"], env={"PROGRAMLEDGER_DATABASE_URL": "mysql://app:hunter2@db/ledger"}
    )

    assert result.exit_code == 2
    assert "hunter2" not in result.output
    assert "***" in result.output


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_log_lines_and_their_tracebacks_are_redacted(fmt: str) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("INFO", fmt, stream)  # type: ignore[arg-type]
    log = logging.getLogger("programledger.test")
    try:
        try:
            raise ConnectionError("cannot reach postgresql://app:hunter2@db/ledger")
        except ConnectionError:
            log.exception("connecting to %s failed", "postgresql://app:hunter2@db/ledger")
        output = stream.getvalue()
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)

    assert "hunter2" not in output
    assert output.count("app:***@db") >= 2
    if fmt == "json":
        assert json.loads(output.splitlines()[0])["message"].startswith("connecting to")
