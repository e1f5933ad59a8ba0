"""The schedule network (stream ``schedule-network``): the links between milestones of
every program, kept in one aggregate so a cycle across programs is always seen.

Same shape as the other aggregates: ``commands``, ``events``, ``state``, ``decide``,
``evolve``, every public name re-exported here.
"""

from __future__ import annotations

from programledger.domain.schedule import commands as _commands
from programledger.domain.schedule import decide as _decide
from programledger.domain.schedule import events as _events
from programledger.domain.schedule import evolve as _evolve
from programledger.domain.schedule import state as _state
from programledger.domain.schedule.commands import *  # noqa: F403
from programledger.domain.schedule.decide import *  # noqa: F403
from programledger.domain.schedule.events import *  # noqa: F403
from programledger.domain.schedule.evolve import *  # noqa: F403
from programledger.domain.schedule.state import *  # noqa: F403

__all__ = [
    *_commands.__all__,
    *_decide.__all__,
    *_events.__all__,
    *_evolve.__all__,
    *_state.__all__,
]
