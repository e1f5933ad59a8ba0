"""The audit trail folds every event it handles into its stream's state, and a runner whose
state cache evicted a state reads it back by the type listed for its stream type: a stream
type without one stops the runner (``KeyError``) the first time its state is evicted."""

from programledger.projections import audit
from programledger.projections.engine.core import STREAM_TYPE_OF_EVENT


def test_every_stream_the_trail_folds_has_a_state_type() -> None:
    folded = {STREAM_TYPE_OF_EVENT[event_type] for event_type in audit.PROJECTION.handles}
    assert folded - set(audit.PROJECTION.states) == set()
