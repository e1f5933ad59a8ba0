"""Loads the demo portfolio (:mod:`programledger.application.demo_story`) through the
application: ``programledger demo``.

Every step goes through :meth:`Application.handle`, the same path as an API mutation, so
the demo data obeys every rule. Every command carries an idempotency key, so running the
demo again writes nothing new: each step is answered with its first result. The one
command the story expects to be refused is decided again on each run and refused again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from uuid import UUID

from programledger.application.commands import CommandContext
from programledger.application.demo_story import (
    DEMO_PROGRAMS,
    DEMO_SCENARIOS,
    KEY_PREFIX,
    Step,
    story,
)
from programledger.application.handlers import Application
from programledger.domain.errors import DomainError

__all__ = [
    "DEMO_PROGRAMS",
    "DEMO_SCENARIOS",
    "DemoError",
    "DemoSummary",
    "Step",
    "load_demo",
    "story",
]

log = logging.getLogger(__name__)


class DemoError(RuntimeError):
    """A step did not go as the story says: the demo data no longer fits the rules."""


@dataclass(slots=True)
class DemoSummary:
    recorded: int = 0
    """Steps that wrote events now."""
    replayed: int = 0
    """Steps already recorded by an earlier run: nothing written."""
    unchanged: int = 0
    """Steps that changed nothing, so recorded nothing."""
    refused: int = 0
    """Steps refused, as the story expects."""
    events: int = 0
    """Events written by this run."""
    programs: dict[str, UUID] = field(default_factory=lambda: dict(DEMO_PROGRAMS))

    @property
    def steps(self) -> int:
        return self.recorded + self.replayed + self.unchanged + self.refused


async def load_demo(app: Application) -> DemoSummary:
    """Send every step of :func:`story` through ``app``; safe to run any number of times."""
    summary = DemoSummary()
    for step in story():
        context = CommandContext(actor=step.actor, idempotency_key=KEY_PREFIX + step.key)
        try:
            result = await app.handle(step.command, context)
        except DomainError as exc:
            if step.refused_with is not None and isinstance(exc, step.refused_with):
                log.info("demo step %s refused, as the story expects: %s", step.key, exc)
                summary.refused += 1
                continue
            raise DemoError(f"demo step {step.key!r} was refused: {exc}") from exc
        if step.refused_with is not None:
            raise DemoError(
                f"demo step {step.key!r} should be refused with {step.refused_with.__name__}"
            )
        if result.replayed:
            summary.replayed += 1
        elif result.events:
            summary.recorded += 1
            summary.events += len(result.events)
        else:
            summary.unchanged += 1
    log.info(
        "demo portfolio loaded: %d steps, %d recorded now (%d events), %d already there, "
        "%d refused as expected",
        summary.steps,
        summary.recorded,
        summary.events,
        summary.replayed,
        summary.refused,
    )
    return summary
