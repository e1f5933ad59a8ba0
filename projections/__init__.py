"""The read side: one module per read model, its tables beside its handler and queries.

- ``programs``, ``milestones``, ``decisions``, ``risks``, ``allocations``, ``audit``: the
  read models, each with its tables, handler and query functions;
- ``registry``: every read model by name, what runners, rebuilds and the API share;
- ``engine``: what a projection is and what runs one (see ``engine/__init__``).

Imports nothing: importing one read model loads that model and the engine's core, never
the runner, the rebuild or their dependencies. See ``docs/projections.md``.
"""
