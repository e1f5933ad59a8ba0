"""The Objective aggregate (stream ``objective-<uuid>``): a company objective, its
measurable key results with every check-in, and the programs that serve it.

A program's own ``objective`` text and ``objective_key`` stay what its proposer wrote; an
objective is connected to a program by ``LinkObjectiveToProgram``, on the objective's
stream (one objective is served by many programs, a program may serve several). Same
shape as the other aggregates: ``commands``, ``events``, ``state``, ``decide``,
``evolve``, every public name re-exported here.
"""

from __future__ import annotations

from programledger.domain.objective import commands as _commands
from programledger.domain.objective import decide as _decide
from programledger.domain.objective import events as _events
from programledger.domain.objective import evolve as _evolve
from programledger.domain.objective import state as _state
from programledger.domain.objective.commands import *  # noqa: F403
from programledger.domain.objective.decide import *  # noqa: F403
from programledger.domain.objective.events import *  # noqa: F403
from programledger.domain.objective.evolve import *  # noqa: F403
from programledger.domain.objective.state import *  # noqa: F403

__all__ = [
    *_commands.__all__,
    *_decide.__all__,
    *_events.__all__,
    *_evolve.__all__,
    *_state.__all__,
]
