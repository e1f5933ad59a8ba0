"""The Program aggregate (stream ``program-<uuid>``): a program, its plan, its
dependencies and its records.

``commands``, ``events`` and ``state`` hold its types, ``decide`` and ``evolve`` its rules
(``decide`` routes the program's items to ``decide_plan``, ``decide_dependencies`` and
``decide_records``); this package re-exports every public name (each module's
``__all__``), so callers write ``from programledger.domain.program import ProposeProgram``
or ``program.decide(state, command)``.
"""

from __future__ import annotations

from programledger.domain.program import commands as _commands
from programledger.domain.program import decide as _decide
from programledger.domain.program import events as _events
from programledger.domain.program import evolve as _evolve
from programledger.domain.program import state as _state
from programledger.domain.program.commands import *  # noqa: F403
from programledger.domain.program.decide import *  # noqa: F403
from programledger.domain.program.decide_dependencies import DEPENDENCY_LIFECYCLE
from programledger.domain.program.decide_plan import MILESTONE_LIFECYCLE
from programledger.domain.program.events import *  # noqa: F403
from programledger.domain.program.evolve import *  # noqa: F403
from programledger.domain.program.state import *  # noqa: F403

__all__ = [
    "DEPENDENCY_LIFECYCLE",
    "MILESTONE_LIFECYCLE",
    *_commands.__all__,
    *_decide.__all__,
    *_events.__all__,
    *_evolve.__all__,
    *_state.__all__,
]
