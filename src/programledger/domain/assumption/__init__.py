"""The Assumption aggregate (stream ``assumption-<uuid>``): one entry of a program's
assumption log.

``commands``, ``events`` and ``state`` hold its types, ``decide`` and ``evolve`` its rules;
this package re-exports every public name (each module's ``__all__``), so callers write
``from programledger.domain.assumption import RecordAssumption`` or
``assumption.decide(state, command)``.
"""

from __future__ import annotations

from programledger.domain.assumption import commands as _commands
from programledger.domain.assumption import decide as _decide
from programledger.domain.assumption import events as _events
from programledger.domain.assumption import evolve as _evolve
from programledger.domain.assumption import state as _state
from programledger.domain.assumption.commands import *  # noqa: F403
from programledger.domain.assumption.decide import *  # noqa: F403
from programledger.domain.assumption.events import *  # noqa: F403
from programledger.domain.assumption.evolve import *  # noqa: F403
from programledger.domain.assumption.state import *  # noqa: F403

__all__ = [
    *_commands.__all__,
    *_decide.__all__,
    *_events.__all__,
    *_evolve.__all__,
    *_state.__all__,
]
