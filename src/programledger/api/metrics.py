"""The API's Prometheus instruments, kept in one registry that ``/metrics`` exposes.

Other components of the same process (the relay, projection workers, the event store)
register their own collectors in :attr:`ApiMetrics.registry` (pass a shared registry to
``create_app``, or use ``app.state.metrics.registry``), so one scrape sees the process.

Label values are bounded: routes are path templates, not raw paths, and operation names
(chosen by clients) are kept only while there are few of them, so a client cannot make the
registry grow without end.
"""

from __future__ import annotations

import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["ApiMetrics"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_OPERATION_NAMES = 200
_OTHER = "_other"


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.http_requests = Counter(
            "programledger_http_requests_total",
            "HTTP requests and WebSocket connections by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "programledger_http_request_duration_seconds",
            "Time to serve an HTTP request (a WebSocket: its whole connection)",
            ["method", "route"],
            registry=self.registry,
        )
        self.graphql_duration = Histogram(
            "programledger_graphql_operation_duration_seconds",
            "Time to execute a GraphQL query or mutation, by operation name",
            ["operation_type", "operation_name"],
            registry=self.registry,
        )
        self.graphql_errors = Counter(
            "programledger_graphql_errors_total",
            "Errors returned to GraphQL clients by code: GraphQL errors and the typed "
            "errors in mutation payloads",
            ["code"],
            registry=self.registry,
        )
        self.mutations = Counter(
            "programledger_graphql_mutations_total",
            "Mutations by name and outcome (accepted, replayed or an error code)",
            ["mutation", "outcome"],
            registry=self.registry,
        )
        self.command_duration = Histogram(
            "programledger_command_duration_seconds",
            "Time to handle an accepted command: load the stream, decide, append (with its "
            "retries on conflict)",
            ["command"],
            registry=self.registry,
        )
        self.events_appended = Counter(
            "programledger_events_appended_total",
            "Events appended to the event store by accepted commands (the append rate)",
            ["command"],
            registry=self.registry,
        )
        self.subscriptions = Gauge(
            "programledger_graphql_subscriptions_active",
            "GraphQL subscriptions currently delivering events",
            registry=self.registry,
        )
        self._operation_names: set[str] = set()

    def command_handled(self, command: str, seconds: float, events: int) -> None:
        self.command_duration.labels(command).observe(seconds)
        self.events_appended.labels(command).inc(events)

    def mutation_done(self, mutation: str, outcome: str) -> None:
        """Count a mutation: ``outcome`` is ``accepted``, ``replayed`` or the code of the
        typed error it returned (which also counts as an error by code)."""
        self.mutations.labels(mutation, outcome).inc()
        if outcome not in ("accepted", "replayed"):
            self.graphql_errors.labels(outcome).inc()

    def operation_label(self, name: str | None) -> str:
        """The label for a client-chosen operation name: ``_anonymous``, the name, or
        ``_other`` once too many distinct names were seen or the name is unusual."""
        if not name:
            return "_anonymous"
        if name in self._operation_names:
            return name
        if not _NAME.match(name) or len(self._operation_names) >= _MAX_OPERATION_NAMES:
            return _OTHER
        self._operation_names.add(name)
        return name

    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
