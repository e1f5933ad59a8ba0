"""The read side: one module per read model, its tables beside its handlers.

Ships as ``programledger.projections`` (``src/programledger/projections`` links here).

- ``core``: what a projection is, and the engine that turns events into row versions;
- ``programs``, ``milestones``, ``decisions``, ``risks``, ``allocations``, ``audit``: the
  read models, each with its tables, handler and query functions;
- ``runner``: consumes JetStream into one read model, exactly once, one active per name;
- ``rebuild``: rebuilds a read model from the event store and swaps it in;
- ``status``: lag, failures, and waiting for a position (read your writes);
- ``queries``: what the query functions share ("as of", pages, counts).

See ``docs/projections.md``.
"""

from programledger.projections.core import Projection
from programledger.projections.queries import AsOf, Page
from programledger.projections.rebuild import (
    RebuildFailed,
    RebuildInProgress,
    RebuildReport,
    rebuild,
)
from programledger.projections.registry import PROJECTIONS, get_projection
from programledger.projections.runner import (
    ProjectionRunner,
    RunnerSettings,
    RunnerState,
    RunnerStats,
    serve,
)
from programledger.projections.status import (
    ProjectionStatus,
    clear_failure,
    projection_status,
    wait_for_position,
)
from programledger.projections.storage import prepare_tables

__all__ = [
    "PROJECTIONS",
    "AsOf",
    "Page",
    "Projection",
    "ProjectionRunner",
    "ProjectionStatus",
    "RebuildFailed",
    "RebuildInProgress",
    "RebuildReport",
    "RunnerSettings",
    "RunnerState",
    "RunnerStats",
    "clear_failure",
    "get_projection",
    "prepare_tables",
    "projection_status",
    "rebuild",
    "serve",
    "wait_for_position",
]
