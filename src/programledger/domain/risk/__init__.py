"""The Risk aggregate (stream ``risk-<uuid>``): one entry of a program's risk register.

``commands``, ``events`` and ``state`` hold its types, ``decide`` and ``evolve`` its rules;
this package re-exports every public name (each module's ``__all__``), so callers write
``from programledger.domain.risk import IdentifyRisk`` or ``risk.decide(state, command)``.
"""

from __future__ import annotations

from programledger.domain.risk import commands as _commands
from programledger.domain.risk import decide as _decide
from programledger.domain.risk import events as _events
from programledger.domain.risk import evolve as _evolve
from programledger.domain.risk import state as _state
from programledger.domain.risk.commands import *  # noqa: F403
from programledger.domain.risk.decide import *  # noqa: F403
from programledger.domain.risk.events import *  # noqa: F403
from programledger.domain.risk.evolve import *  # noqa: F403
from programledger.domain.risk.state import *  # noqa: F403

__all__ = [
    *_commands.__all__,
    *_decide.__all__,
    *_events.__all__,
    *_evolve.__all__,
    *_state.__all__,
]
