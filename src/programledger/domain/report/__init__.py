"""A weekly status report of a program (stream ``status_report-<program id>:<ISO week>``).

Same shape as the other aggregates: ``commands``, ``events``, ``state``, ``decide``,
``evolve`` (and ``proposal``: the RAGs a draft starts from), every public name
re-exported here.
"""

from __future__ import annotations

from programledger.domain.report import commands as _commands
from programledger.domain.report import decide as _decide
from programledger.domain.report import events as _events
from programledger.domain.report import evolve as _evolve
from programledger.domain.report import proposal as _proposal
from programledger.domain.report import state as _state
from programledger.domain.report.commands import *  # noqa: F403
from programledger.domain.report.decide import *  # noqa: F403
from programledger.domain.report.events import *  # noqa: F403
from programledger.domain.report.evolve import *  # noqa: F403
from programledger.domain.report.proposal import *  # noqa: F403
from programledger.domain.report.state import *  # noqa: F403

__all__ = [
    *_commands.__all__,
    *_decide.__all__,
    *_events.__all__,
    *_evolve.__all__,
    *_proposal.__all__,
    *_state.__all__,
]
