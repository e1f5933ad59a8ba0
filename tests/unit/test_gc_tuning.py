"""Garbage collection tuned once a process has started, and every collection measured for
``/metrics``."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from programledger.gc_tuning import GcMetrics, GcTuning, tune_gc


@pytest.fixture
def restored() -> Iterator[None]:
    """The test process's collector as it was: thresholds back, nothing left frozen."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuning_freezes_what_the_process_holds_and_sets_the_thresholds(restored: None) -> None:
    held = [["a container the process holds from its start"]]
    tune_gc(GcTuning(freeze=True, thresholds=(5_000, 15, 25)))
    assert gc.get_threshold() == (5_000, 15, 25)
    assert gc.get_freeze_count() > 0
    # What was frozen is in no generation a collection walks; what comes after is.
    later = [["allocated once started"]]
    walked = gc.get_objects()
    assert not any(o is held for o in walked)
    assert any(o is later for o in walked)


def test_without_freezing_or_thresholds_nothing_changes(restored: None) -> None:
    before = gc.get_threshold()
    tune_gc(GcTuning(freeze=False, thresholds=None))
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_thresholds_are_three_positive_numbers() -> None:
    with pytest.raises(ValueError, match="three positive numbers"):
        GcTuning(thresholds=(700, 0, 10))


def test_every_collection_is_in_the_metrics() -> None:
    registry = CollectorRegistry()
    registry.register(GcMetrics())

    def count(generation: int) -> float:
        value = registry.get_sample_value(
            "programledger_gc_pause_seconds_count", {"generation": str(generation)}
        )
        assert value is not None
        return value

    before = count(2)
    gc.collect()
    assert count(2) == before + 1
    text = generate_latest(registry).decode()
    assert 'programledger_gc_pause_seconds_bucket{generation="2",le="+Inf"}' in text
    assert 'programledger_gc_collected_objects_total{generation="0"}' in text
    assert "programledger_gc_tracked_objects{" in text
    assert "programledger_gc_frozen_objects " in text
