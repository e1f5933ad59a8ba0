"""A capacity what-if (stream ``scenario-<uuid>``): hypothetical allocations and capacity
changes, evaluated against the real resources and committed as real commands.

Same shape as the other aggregates: ``commands``, ``events``, ``state``, ``decide``,
``evolve``, every public name re-exported here.
"""

from __future__ import annotations

from programledger.domain.scenario import commands as _commands
from programledger.domain.scenario import decide as _decide
from programledger.domain.scenario import events as _events
from programledger.domain.scenario import evolve as _evolve
from programledger.domain.scenario import state as _state
from programledger.domain.scenario.commands import *  # noqa: F403
from programledger.domain.scenario.decide import *  # noqa: F403
from programledger.domain.scenario.events import *  # noqa: F403
from programledger.domain.scenario.evolve import *  # noqa: F403
from programledger.domain.scenario.state import *  # noqa: F403

__all__ = [
    *_commands.__all__,
    *_decide.__all__,
    *_events.__all__,
    *_evolve.__all__,
    *_state.__all__,
]
