"""The Portfolio aggregate (stream ``portfolio-<uuid>``): a named group of programs with
an owner, ACTIVE or ARCHIVED.

Which programs a portfolio holds is recorded on each program's own stream
(``MoveProgramToPortfolio``): "a program is in at most one portfolio" is a rule about one
program, so the program's stream holds it and its optimistic concurrency serialises two
moves of the same program. Same shape as the other aggregates: ``commands``, ``events``,
``state``, ``decide``, ``evolve``, every public name re-exported here.
"""

from __future__ import annotations

from programledger.domain.portfolio import commands as _commands
from programledger.domain.portfolio import decide as _decide
from programledger.domain.portfolio import events as _events
from programledger.domain.portfolio import evolve as _evolve
from programledger.domain.portfolio import state as _state
from programledger.domain.portfolio.commands import *  # noqa: F403
from programledger.domain.portfolio.decide import *  # noqa: F403
from programledger.domain.portfolio.events import *  # noqa: F403
from programledger.domain.portfolio.evolve import *  # noqa: F403
from programledger.domain.portfolio.state import *  # noqa: F403

__all__ = [
    *_commands.__all__,
    *_decide.__all__,
    *_events.__all__,
    *_evolve.__all__,
    *_state.__all__,
]
