"""The ``programledger`` command line: one program, one subcommand per role (``roles``) or
operation (``operations``); ``common`` holds what they share (settings, exit codes, one-line
failures)."""

from __future__ import annotations

# Commands are listed in --help in the order they register: the roles first.
from programledger.cli import roles

# isort: split
from programledger.cli import operations

# isort: split
from programledger.cli import integrity
from programledger.cli.common import app

__all__ = ["app", "integrity", "main", "operations", "roles"]


def main() -> None:
    app()
