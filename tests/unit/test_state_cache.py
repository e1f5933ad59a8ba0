"""The projection state cache keeps the states batches needed last, within its limit."""

from __future__ import annotations

import pytest

from programledger.projections.engine.core import StateStore


def test_the_least_recently_needed_states_are_evicted_first() -> None:
    store = StateStore("states", {"program": int}, limit=2)
    store.update({"program-a": 1, "program-b": 2, "program-c": 3})
    assert store.missing(["program-a"]) == []  # a is now the most recently needed
    assert store.trim()
    assert store.missing(["program-a", "program-c"]) == []
    assert store.missing(["program-b"]) == ["program-b"]
    assert (store.counts.hits, store.counts.misses, store.counts.evictions) == (3, 0, 1)
    assert len(store) == 2
    assert not store.trim()


def test_a_complete_cache_that_evicts_reads_again() -> None:
    """A miss in a complete cache means "no state"; once a state was evicted it may mean
    "evicted", so the cache stops claiming to be complete."""
    store = StateStore("states", {"program": int}, complete=True, limit=1)
    assert store.missing(["program-a", "program-b"]) == []
    store.update({"program-a": 1, "program-b": 2})
    assert store.trim()
    assert not store.complete
    assert len(store.missing(["program-a", "program-b"])) == 1


def test_dirty_states_are_never_evicted() -> None:
    """A rebuild's states are only in memory until written: nothing is evicted before."""
    store = StateStore("states", {"program": int}, limit=1)
    store.update({"program-a": 1, "program-b": 2}, dirty=True)
    assert not store.trim()
    assert len(store) == 2


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StateStore("states", {"program": int}, limit=0)
