"""Garbage-collection pauses: tuned once a process has started, and measured.

CPython frees most objects by reference counting; its cycle collector runs besides, and
while it runs the whole process stands still: every request in flight, the relay, the
runners. A collection of the oldest generation walks every container object the process
holds, and a server holds hundreds of thousands that never die (modules, the GraphQL
schema and its caches, the app): each such walk was a pause of tens of milliseconds,
longer as caches filled, that landed on whichever requests were in flight (the tail of
a dashboard read, a command's p99).

So each long-running process, once started (:func:`tune_gc`):

- collects, then *freezes* what it holds (``gc.freeze()``): those objects move to a
  permanent generation that later collections never walk, so a full collection costs
  what was allocated since start, not the whole process (``PROGRAMLEDGER_GC_FREEZE``);
- collects less often (``PROGRAMLEDGER_GC_THRESHOLDS``, default
  ``settings.GC_THRESHOLDS`` instead of CPython's 700, 10, 10): a request allocates
  thousands of containers, and at 700 the youngest generation was collected several times
  per request, each time walking the objects of every request in flight.

:class:`GcMetrics` reports every collection's pause (``gc.callbacks``) in ``/metrics`` as
``programledger_gc_pause_seconds`` by generation, with the objects collected, frozen and
tracked, so a tail that grows with the heap shows up there first.
"""

from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from programledger.settings import GC_THRESHOLDS

__all__ = ["GcMetrics", "GcTuning", "tune_gc"]


@dataclass(frozen=True, slots=True)
class GcTuning:
    freeze: bool = True
    """Freeze what the process holds once started (see the module)."""
    thresholds: tuple[int, int, int] | None = GC_THRESHOLDS
    """``gc.set_threshold``'s three numbers: allocations (less deallocations) of container
    objects before the youngest generation is collected, then collections of each
    generation before the next older one is; ``None`` keeps CPython's."""

    def __post_init__(self) -> None:
        if self.thresholds is not None and (len(self.thresholds) != 3 or min(self.thresholds) < 1):
            raise ValueError("the collector's thresholds are three positive numbers")


def tune_gc(tuning: GcTuning) -> None:
    """Apply ``tuning`` to this process: call it once the process has started (imports
    done, app built, connections open), so what is frozen is what lives for good."""
    _PAUSES.install()
    if tuning.thresholds is not None:
        gc.set_threshold(*tuning.thresholds)
    if tuning.freeze:
        gc.collect()
        gc.freeze()


_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Upper bounds (seconds) of the pause histogram's buckets; one more for the rest."""


class _Pauses:
    """The process's collections, counted by a ``gc.callbacks`` hook (installed once)."""

    def __init__(self) -> None:
        self.buckets = [[0] * (len(_BUCKETS) + 1) for _ in range(3)]
        self.seconds = [0.0, 0.0, 0.0]
        self.collected = [0, 0, 0]
        self._started = 0.0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._on_collection)
            self._installed = True

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info["generation"]
        self.buckets[generation][bisect.bisect_left(_BUCKETS, took)] += 1
        self.seconds[generation] += took
        self.collected[generation] += info["collected"]


_PAUSES = _Pauses()


class GcMetrics(Collector):
    """The process's collections for Prometheus (see the module); measuring starts when
    this is created or :func:`tune_gc` runs, whichever is first."""

    def __init__(self) -> None:
        _PAUSES.install()

    def collect(self) -> Iterator[Metric]:
        pauses = HistogramMetricFamily(
            "programledger_gc_pause_seconds",
            "Time the process stood still for each garbage collection, by generation",
            labels=["generation"],
        )
        collected = CounterMetricFamily(
            "programledger_gc_collected_objects",
            "Unreachable objects the garbage collector freed, by generation",
            labels=["generation"],
        )
        tracked = GaugeMetricFamily(
            "programledger_gc_tracked_objects",
            "Objects each generation counts towards its next collection (the youngest: "
            "allocations since its last one)",
            labels=["generation"],
        )
        counts = gc.get_count()
        for generation in range(3):
            label = [str(generation)]
            running = 0
            buckets = []
            for bound, n in zip(
                (*(str(b) for b in _BUCKETS), "+Inf"), _PAUSES.buckets[generation], strict=True
            ):
                running += n
                buckets.append((bound, running))
            pauses.add_metric(label, buckets, _PAUSES.seconds[generation])
            collected.add_metric(label, _PAUSES.collected[generation])
            tracked.add_metric(label, counts[generation])
        frozen = GaugeMetricFamily(
            "programledger_gc_frozen_objects",
            "Objects frozen after start: never walked by a collection",
        )
        frozen.add_metric([], gc.get_freeze_count())
        yield from (pauses, collected, tracked, frozen)
