"""The API's Prometheus instruments, kept in one registry that ``/metrics`` exposes.

Other components of the same process (the relay, projection workers, the event store)
register their own collectors in :attr:`ApiMetrics.registry` (pass a shared registry to
``create_app``, or use ``app.state.metrics.registry``), so one scrape sees the process.

Label values are bounded: routes are path templates, not raw paths, and operation names
(chosen by clients) are kept only while there are few of them, so a client cannot make the
registry grow without end. The process's long-lived caches and buffers are bounded too, and
``programledger_api_cache_entries`` / ``programledger_api_cache_limit`` show each one's
size beside its limit (:class:`CacheSizes`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterator, Mapping

import asyncpg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from programledger.adapters.nats.relay import relay_lag
from programledger.adapters.postgres.verification_runs import last_run
from programledger.api.auth import VERIFIED_TOKENS
from programledger.api.events import EventFeed
from programledger.projections.engine.status import projection_status

__all__ = ["ApiMetrics", "BatchSizes", "CacheSizes", "LagGauges", "combining_metrics"]

log = logging.getLogger(__name__)

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
        self.caches = CacheSizes()
        self.caches.watch(
            "operation_names", lambda: (len(self._operation_names), _MAX_OPERATION_NAMES)
        )
        self.caches.watch("verified_tokens", lambda: (len(VERIFIED_TOKENS), VERIFIED_TOKENS.size))
        self.registry.register(self.caches)

    def watch_feed(self, feed: EventFeed) -> None:
        """Show the event feed's subscriptions and the events buffered for them."""
        self.caches.watch(
            "event_feed_subscribers", lambda: (feed.subscribers, feed.max_subscribers)
        )
        self.caches.watch("event_feed_buffered_events", lambda: feed.buffered)

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


class CacheSizes(Collector):
    """Entries and limit of each long-lived cache or buffer of the process, read at scrape
    time: one filling up shows here before it shows as memory."""

    def __init__(self) -> None:
        self._sources: dict[str, Callable[[], tuple[int, int]]] = {}

    def watch(self, name: str, size_and_limit: Callable[[], tuple[int, int]]) -> None:
        self._sources[name] = size_and_limit

    def collect(self) -> Iterator[Metric]:
        entries = GaugeMetricFamily(
            "programledger_api_cache_entries",
            "Entries held by a bounded cache or buffer of the API process",
            labels=["cache"],
        )
        limits = GaugeMetricFamily(
            "programledger_api_cache_limit",
            "The most entries that cache or buffer holds (beyond it: evicted or refused)",
            labels=["cache"],
        )
        for name, read in sorted(self._sources.items()):
            size, limit = read()
            entries.add_metric([name], size)
            limits.add_metric([name], limit)
        yield entries
        yield limits


_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class BatchSizes(Collector):
    """A histogram of how many callers each combined round trip of the process's event
    store carried, read at scrape time from the counts its combiner keeps
    (``AppendCombiner.sizes``: commands per append transaction; ``StreamReads.sizes``:
    loads per stream read).

    Combining is what lets a busy process record more commands than it can commit
    transactions; this shows whether it happens, and how. Mostly 1s: no queue (an idle
    store, or commands too few to wait). A tail near the number of concurrent commands
    beside a peak at 1-2: the commands move as one wave and the process and PostgreSQL take
    turns instead of working side by side, which the mean alone would hide.
    """

    def __init__(
        self, name: str, documentation: str, sizes: Callable[[], Mapping[int, int]]
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._sizes = sizes

    def collect(self) -> Iterator[Metric]:
        counts = dict(self._sizes())
        buckets = [
            (str(float(bound)), sum(n for size, n in counts.items() if size <= bound))
            for bound in _BATCH_BUCKETS
        ]
        buckets.append(("+Inf", sum(counts.values())))
        batches = HistogramMetricFamily(self._name, self._documentation)
        batches.add_metric([], buckets, sum(size * n for size, n in counts.items()))
        yield batches


def combining_metrics(
    appends: Callable[[], Mapping[int, int]], reads: Callable[[], Mapping[int, int]]
) -> list[BatchSizes]:
    """The store's two combiners, as ``/metrics`` names them."""
    return [
        BatchSizes(
            "programledger_append_commands_per_transaction",
            "Commands each append transaction of this process carried (write-combining)",
            appends,
        ),
        BatchSizes(
            "programledger_stream_reads_per_query",
            "Whole-stream reads (a command's load) each query of this process answered",
            reads,
        ),
    ]


_VERIFICATION_GAUGES = {
    "finished_at": (
        "timestamp_seconds",
        "When the last whole-store `programledger verify` finished (0: never)",
    ),
    "ok": ("ok", "1 when the last whole-store verification found nothing wrong, else 0"),
    "problems": (
        "problems",
        "Broken streams and other problems the last whole-store verification found",
    ),
    "events": ("events", "Events the last whole-store verification checked"),
}
"""The last verification's figures (``verification_runs``): gauge name suffix, help."""


class LagGauges:
    """Relay and projection lag, and the last verification's outcome, as Prometheus gauges
    in the API's registry.

    Refreshed in the background (:meth:`run`) rather than at scrape time: a scrape must
    not wait on PostgreSQL, and collectors cannot await. Every API replica reports the
    same figures, read from PostgreSQL, whichever process runs the relay and workers.
    """

    def __init__(self, pool: asyncpg.Pool, registry: CollectorRegistry) -> None:
        self._pool = pool
        self.relay_events = Gauge(
            "programledger_relay_lag_events",
            "Events committed to the store and not yet acknowledged by JetStream",
            registry=registry,
        )
        self.relay_seconds = Gauge(
            "programledger_relay_lag_seconds",
            "Age of the oldest event not yet acknowledged by JetStream (0 when caught up)",
            registry=registry,
        )
        self.projection_events = Gauge(
            "programledger_projection_lag_events",
            "Events a projection has not reached yet (includes the relay's lag)",
            ["projection"],
            registry=registry,
        )
        self.projection_seconds = Gauge(
            "programledger_projection_lag_seconds",
            "Age of the oldest event a projection has not reached (0 when caught up)",
            ["projection"],
            registry=registry,
        )
        self.projection_failed = Gauge(
            "programledger_projection_failed",
            "1 while a projection is stopped at an event its handler failed on",
            ["projection"],
            registry=registry,
        )

        self.relay_undecodable = Gauge(
            "programledger_relay_undecodable_events",
            "Events relays published as stored because their code could not decode them",
            registry=registry,
        )
        self.verification = {
            field: Gauge(f"programledger_verification_last_{suffix}", text, registry=registry)
            for field, (suffix, text) in _VERIFICATION_GAUGES.items()
        }

    async def refresh(self) -> None:
        async with self._pool.acquire() as conn:
            run = await last_run(conn)
            undecodable = await conn.fetchval(
                "SELECT coalesce(sum(undecodable), 0) FROM relay_checkpoints"
            )
        self.relay_undecodable.set(undecodable)
        if run is not None:
            self.verification["finished_at"].set(run.finished_at.timestamp())
            for field in ("ok", "problems", "events"):
                self.verification[field].set(getattr(run, field))
        relay = await relay_lag(self._pool)
        self.relay_events.set(relay.positions)
        self.relay_seconds.set(relay.seconds)
        for status in await projection_status(self._pool):
            self.projection_events.labels(status.name).set(status.lag_positions)
            self.projection_seconds.labels(status.name).set(status.lag_seconds)
            self.projection_failed.labels(status.name).set(status.state == "failed")

    async def run(self, interval: float = 5.0) -> None:
        """Refresh every ``interval`` seconds until cancelled; a failed refresh leaves the
        last figures and is logged (the API's ``/ready`` reports PostgreSQL itself)."""
        while True:
            try:
                await self.refresh()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("cannot refresh the lag metrics: %s", exc)
            await asyncio.sleep(interval)
