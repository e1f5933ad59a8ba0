"""The projection engine: what every read model is built on, and what runs one.

- ``core``: what a projection is, and the engine that turns events into row versions;
- ``tables``: versioned read-model tables and their indexes; ``storage``: their DDL;
- ``queries``: what the query functions share ("as of", pages, counts);
- ``runner``: consumes JetStream into one read model, exactly once, one active per name
  (its consumer from ``adapters.nats.consumer``, its lock from
  ``adapters.postgres.leadership``);
- ``rebuild`` (with ``rebuild_share``, its worker process): rebuilds a read model from the
  event store and swaps it in;
- ``status``: lag, failures, and waiting for a position (read your writes).

Imports nothing, so that a read model (which needs ``core``, ``tables`` and ``queries``)
does not load the runner, the rebuild or ``rich``.
"""
