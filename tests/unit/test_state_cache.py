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


class _Table:
    """The state table, as much of a connection as the cache uses."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes] = {}

    async def fetch(self, _sql: str, keys: list[str]) -> list[tuple[str, bytes]]:
        return [(k, self.rows[k]) for k in keys if k in self.rows]

    async def execute(self, _sql: str, keys: list[str], values: list[bytes]) -> None:
        self.rows.update(zip(keys, values, strict=True))


async def test_the_cache_stays_within_its_byte_budget() -> None:
    """States grow with their programs, so a count alone does not bound memory: the
    encoded bytes held are bounded too, and the least recently needed go first."""
    table = _Table()
    big = "x" * 1000  # about 1 KB encoded
    store = StateStore("states", {"program": str}, limit=100, max_bytes=2500)
    states = {f"program-{i}": big for i in range(5)}
    store.update(states, dirty=True)
    await store.write_dirty(table)  # type: ignore[arg-type]
    assert store.bytes == 5 * len(table.rows["program-0"])
    assert store.trim()
    assert len(store) == 2
    assert store.bytes <= 2500
    assert store.counts.evictions == 3
    assert sorted(store.missing([f"program-{i}" for i in range(5)])) == [
        "program-0",
        "program-1",
        "program-2",
    ]
    await store.load(table, ["program-0"])  # type: ignore[arg-type]
    assert store.get("program-0") == big
    assert store.bytes == 3 * len(table.rows["program-0"])
    assert store.trim()
    assert store.bytes <= 2500
    assert len(store) == 2
    store.clear()
    assert (len(store), store.bytes) == (0, 0)


async def test_a_state_rewritten_larger_counts_its_new_size() -> None:
    table = _Table()
    store = StateStore("states", {"program": str}, limit=100, max_bytes=10_000)
    store.update({"program-a": "x"}, dirty=True)
    await store.write_dirty(table)  # type: ignore[arg-type]
    small = store.bytes
    store.update({"program-a": "x" * 3000}, dirty=True)
    await store.write_dirty(table)  # type: ignore[arg-type]
    assert store.bytes == len(table.rows["program-a"]) > small + 2900
    assert not store.trim()


def test_a_byte_budget_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StateStore("states", {"program": int}, max_bytes=0)


def test_states_encoded_for_a_batch_count_before_the_trim() -> None:
    """The runner encodes a batch's states, trims, then keeps them (``update``): the
    sizes must be known by the trim, or the byte budget never binds."""
    store = StateStore("states", {"program": str}, limit=100, max_bytes=2500)
    states = {f"program-{i}": "x" * 1000 for i in range(5)}
    _, values = store.encode(states)
    assert store.bytes == sum(map(len, values))
    store.update(states)
    assert store.trim()
    assert store.bytes <= 2500
    assert len(store) == 2
