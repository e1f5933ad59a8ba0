"""The Issue aggregate (stream ``issue-<uuid>``): one entry of a program's issue log.

``commands``, ``events`` and ``state`` hold its types, ``decide`` and ``evolve`` its rules;
this package re-exports every public name (each module's ``__all__``), so callers write
``from programledger.domain.issue import RaiseIssue`` or ``issue.decide(state, command)``.
"""

from __future__ import annotations

from programledger.domain.issue import commands as _commands
from programledger.domain.issue import decide as _decide
from programledger.domain.issue import events as _events
from programledger.domain.issue import evolve as _evolve
from programledger.domain.issue import state as _state
from programledger.domain.issue.commands import *  # noqa: F403
from programledger.domain.issue.decide import *  # noqa: F403
from programledger.domain.issue.events import *  # noqa: F403
from programledger.domain.issue.evolve import *  # noqa: F403
from programledger.domain.issue.state import *  # noqa: F403

__all__ = [
    *_commands.__all__,
    *_decide.__all__,
    *_events.__all__,
    *_evolve.__all__,
    *_state.__all__,
]
