"""The API process's long-lived caches and buffers are bounded, and /metrics shows each
one's size beside its limit (``programledger_api_cache_entries`` / ``_limit``)."""

from __future__ import annotations

import pytest

from programledger.api.events import EventFeed, EventSelection, FeedUnavailable
from programledger.api.metrics import ApiMetrics
from tests.support.relay_process import eventually


def _cache(metrics: ApiMetrics, cache: str) -> tuple[float | None, float | None]:
    read = metrics.registry.get_sample_value
    return (
        read("programledger_api_cache_entries", {"cache": cache}),
        read("programledger_api_cache_limit", {"cache": cache}),
    )


async def test_the_feed_serves_at_most_its_limit_of_subscriptions(
    nats_url: str, subject_prefix: str
) -> None:
    feed = EventFeed([nats_url], subject_prefix, backlog=10, max_subscribers=2)
    metrics = ApiMetrics()
    metrics.watch_feed(feed)
    await feed.start()
    try:

        async def connected() -> bool:
            return (await feed.check())[0]

        await eventually(connected)
        first = await feed.open(EventSelection())
        second = await feed.open(EventSelection())
        assert _cache(metrics, "event_feed_subscribers") == (2, 2)
        assert _cache(metrics, "event_feed_buffered_events") == (0, 20)
        with pytest.raises(FeedUnavailable, match="already serves 2 subscriptions"):
            await feed.open(EventSelection())
        await first.close()
        third = await feed.open(EventSelection())  # a closed one makes room
        await second.close()
        await third.close()
        assert _cache(metrics, "event_feed_subscribers") == (0, 2)
    finally:
        await feed.close()


def test_operation_names_and_verified_tokens_show_their_size_and_limit() -> None:
    metrics = ApiMetrics()
    for n in range(250):
        metrics.operation_label(f"Op{n}")
    assert _cache(metrics, "operation_names") == (200, 200)
    entries, limit = _cache(metrics, "verified_tokens")
    assert limit == 1024
    assert entries is not None
    assert 0 <= entries <= limit
    exposition = metrics.exposition()[0].decode()
    assert 'programledger_api_cache_limit{cache="operation_names"} 200.0' in exposition
