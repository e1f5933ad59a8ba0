"""NATS JetStream: the relay from the event store, the stream it feeds, and a subscriber.

``envelope`` is the wire contract, ``stream`` the stream definition, ``relay`` the
publisher, ``consumer`` builds every pull consumer on the stream (``subscriber``'s, the
projection runners' and the API's replay), ``subscriber`` is the consumer helper and
``catalogue`` the generated documentation (JSON Schemas, AsyncAPI). ``docs/events.md``
explains them to downstream teams.
"""

from programledger.adapters.nats.envelope import (
    NO_PROGRAM,
    EventEnvelope,
    decode_envelope,
    decode_event,
    subject_for,
    subject_pattern,
)
from programledger.adapters.nats.relay import (
    Relay,
    RelayLag,
    RelaySettings,
    RelayState,
    RelayStats,
    relay_lag,
    serve,
)
from programledger.adapters.nats.stream import (
    StreamConfigConflict,
    StreamSettings,
    StreamSetup,
    ensure_stream,
    stream_name,
)
from programledger.adapters.nats.subscriber import (
    ConsumerConflict,
    Delivery,
    EventsExpired,
    EventSubscription,
    subject_filters,
    subscribe,
)

__all__ = [
    "NO_PROGRAM",
    "ConsumerConflict",
    "Delivery",
    "EventEnvelope",
    "EventSubscription",
    "EventsExpired",
    "Relay",
    "RelayLag",
    "RelaySettings",
    "RelayState",
    "RelayStats",
    "StreamConfigConflict",
    "StreamSettings",
    "StreamSetup",
    "decode_envelope",
    "decode_event",
    "ensure_stream",
    "relay_lag",
    "serve",
    "stream_name",
    "subject_filters",
    "subject_for",
    "subject_pattern",
    "subscribe",
]
