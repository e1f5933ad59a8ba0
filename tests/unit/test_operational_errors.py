"""Every error class the code defines has one root, so nothing has to list them by hand."""

from __future__ import annotations

import importlib
import pkgutil

import programledger
import programledger.projections
from programledger.application.errors import OperationalError
from programledger.application.eventstore import EventStoreError
from programledger.domain.errors import DomainError

ROOTS = (OperationalError, EventStoreError, DomainError)
NOT_OPERATIONAL = {
    "SettingsError",
    "Forbidden",
    "UnknownKey",
    "ProgramNotFound",
    "PositionAhead",
    "TooManyWaiting",
    "DemoError",
    "UnknownEventType",
    "InconsistentHistory",
    "ProjectionBug",
    "WebhookError",
    "InvalidWebhook",
    "WebhookNotFound",
}
"""Errors that are not the infrastructure's: a configuration refused before anything
starts (exit code 2), answers to a request (not allowed, a token signed by a key the
identity provider does not publish, no such program, a position the store has not
reached, too many requests already waiting for the read models, a webhook endpoint that
cannot be registered or found), a demo story that no
longer fits the rules, and programming errors in events, histories and handlers."""


def _error_classes() -> list[type[BaseException]]:
    # The read models ship as programledger.projections from a folder of their own.
    for package in (programledger, programledger.projections):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith(".__main__"):  # that one runs the command line
                importlib.import_module(module.name)
    found: list[type[BaseException]] = []
    pending: list[type[BaseException]] = [BaseException]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("programledger.") and not cls.__name__.startswith("_"):
            found.append(cls)
    return found


def test_every_public_error_has_a_root() -> None:
    classes = _error_classes()
    assert OperationalError in classes
    rootless = {cls.__qualname__ for cls in classes if not issubclass(cls, ROOTS)}
    assert rootless <= NOT_OPERATIONAL, f"give these a root: {sorted(rootless - NOT_OPERATIONAL)}"


def test_the_infrastructure_errors_are_operational() -> None:
    from programledger.adapters.embedded import EmbeddedServerError
    from programledger.adapters.nats.stream import StreamConfigConflict
    from programledger.adapters.postgres.migrations import MigrationError
    from programledger.api.server import ApiStartFailed
    from programledger.bootstrap import SchemaNotReady
    from programledger.projections.engine.rebuild import RebuildFailed, RebuildInProgress

    for cls in (
        EmbeddedServerError,
        StreamConfigConflict,
        MigrationError,
        ApiStartFailed,
        SchemaNotReady,
        RebuildFailed,
        RebuildInProgress,
    ):
        assert issubclass(cls, OperationalError), cls
