"""The Resource aggregate (stream ``resource-<key>``): a person or a team, its capacity and
all of its allocations to programs.

``commands``, ``events`` and ``state`` hold its types, ``decide`` and ``evolve`` its rules;
this package re-exports every public name (each module's ``__all__``), so callers write
``from programledger.domain.resource import RegisterResource`` or
``resource.decide(state, command)``. The capacity arithmetic it shares with the read side
is :mod:`programledger.domain.capacity`.
"""

from __future__ import annotations

from programledger.domain.resource import commands as _commands
from programledger.domain.resource import decide as _decide
from programledger.domain.resource import events as _events
from programledger.domain.resource import evolve as _evolve
from programledger.domain.resource import state as _state
from programledger.domain.resource.commands import *  # noqa: F403
from programledger.domain.resource.decide import *  # noqa: F403
from programledger.domain.resource.events import *  # noqa: F403
from programledger.domain.resource.evolve import *  # noqa: F403
from programledger.domain.resource.state import *  # noqa: F403

__all__ = [
    *_commands.__all__,
    *_decide.__all__,
    *_events.__all__,
    *_evolve.__all__,
    *_state.__all__,
]
