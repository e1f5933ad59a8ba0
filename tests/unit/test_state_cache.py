"""The projection state cache keeps the states batches needed last, within its limit."""

from __future__ import annotations

import random
import tracemalloc
import uuid

import msgspec
import pytest

from programledger.projections.engine.core import ENTRY_BYTES, StateStore


def counted(key: str, data: bytes) -> int:
    """What a cached state counts against the byte budget."""
    return len(key) + ENTRY_BYTES + len(data)


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
    bytes held are bounded too, and the least recently needed go first."""
    table = _Table()
    big = "x" * 1000  # about 1 KB encoded
    store = StateStore("states", {"program": str}, limit=100, max_bytes=3000)
    states = {f"program-{i}": big for i in range(5)}
    store.update(states, dirty=True)
    await store.write_dirty(table)  # type: ignore[arg-type]
    one = counted("program-0", table.rows["program-0"])
    assert store.bytes == 5 * one
    assert store.trim()
    assert len(store) == 2
    assert store.bytes <= 3000
    assert store.counts.evictions == 3
    assert sorted(store.missing([f"program-{i}" for i in range(5)])) == [
        "program-0",
        "program-1",
        "program-2",
    ]
    await store.load(table, ["program-0"])  # type: ignore[arg-type]
    assert store.get("program-0") == big
    assert store.bytes == 3 * one
    assert store.trim()
    assert store.bytes <= 3000
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
    assert store.bytes == counted("program-a", table.rows["program-a"]) > small + 2900
    assert not store.trim()


def test_a_byte_budget_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StateStore("states", {"program": int}, max_bytes=0)


def test_states_encoded_for_a_batch_count_before_the_trim() -> None:
    """The runner encodes a batch's states, trims, then keeps them (``update``): the
    sizes must be known by the trim, or the byte budget never binds."""
    store = StateStore("states", {"program": str}, limit=100, max_bytes=3000)
    states = {f"program-{i}": "x" * 1000 for i in range(5)}
    keys, values = store.encode(states)
    assert store.bytes == sum(map(counted, keys, values))
    assert store.trim()
    store.update(states)
    assert store.bytes == sum(map(counted, keys, values))  # the batch's states are kept
    assert store.trim()
    assert store.bytes <= 3000
    assert len(store) == 2


class _Program(msgspec.Struct, frozen=True):
    name: str
    milestones: tuple[tuple[str, int], ...]


def test_states_are_held_encoded_and_decoded_once_a_batch() -> None:
    store = StateStore("states", {"program": _Program}, limit=100)
    state = _Program("Payments", (("Go live", 30), ("Pilot", 10)))
    store.encode({"program-a": state})
    store.update({"program-a": state})
    first = store.get("program-a")
    assert first == state
    assert first is not state  # what is held is the encoding, not the object
    assert store.get("program-a") is first  # decoded once for the batch
    store.update({})  # the next batch decodes again
    assert store.get("program-a") is not first


def test_the_byte_count_is_the_memory_the_states_take() -> None:
    """The budget is memory: what the cache counts is within 5 % of what tracemalloc
    sees it allocate for states of a soak's small sizes (300 to 1,000 bytes encoded, keyed
    by stream id as the projections key them), where the entries weigh most (counting
    the encoded bytes alone would be 20 % short)."""
    rng = random.Random(20)
    states = {
        f"program-{uuid.UUID(int=rng.getrandbits(128))}": "x" * rng.randrange(300, 1000)
        for _ in range(3000)
    }
    store = StateStore("states", {"program": str}, limit=10_000, max_bytes=10**9)
    tracemalloc.start()
    try:
        # Fresh keys, as the ones a batch reads from its events or the table are.
        store.update({"".join(key): state for key, state in states.items()})
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert abs(store.bytes - held) <= 0.05 * held
