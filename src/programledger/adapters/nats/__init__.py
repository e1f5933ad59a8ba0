"""NATS JetStream: the relay from the event store, the stream it feeds, and a subscriber.

``envelope`` is the wire contract, ``stream`` the stream definition, ``relay`` the
publisher, ``consumer`` builds every pull consumer on the stream (``subscriber``'s, the
projection runners' and the API's replay), ``subscriber`` is the consumer helper and
``catalogue`` the generated documentation (JSON Schemas, AsyncAPI). ``docs/events.md``
explains them to downstream teams.

Import from the modules themselves: the package re-exports nothing, so importing the
envelope does not load the relay, and no module here depends on the order the others load
in.
"""
