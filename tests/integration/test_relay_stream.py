"""Applying the stream definition: idempotent, updates what is safe, refuses conflicts."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from programledger.adapters.nats.relay import Relay, RelayState
from programledger.adapters.nats.stream import (
    ForeignStream,
    StreamConfigConflict,
    StreamSettings,
    ensure_stream,
    stream_name,
    stream_store,
)
from programledger.adapters.postgres.eventstore import PostgresEventStore
from tests.support.relay_process import append_notes, delete_stream, fast_settings


@pytest_asyncio.fixture
async def js(nats_url: str, subject_prefix: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    context = nc.jetstream()
    yield context
    await delete_stream(context, subject_prefix)
    await nc.close()


async def test_ensure_stream_creates_then_leaves_alone_then_updates_limits(
    js: JetStreamContext, subject_prefix: str
) -> None:
    settings = StreamSettings(subject_prefix, max_age=3600, duplicate_window=60)
    assert (await ensure_stream(js, settings)).action == "created"
    assert (await ensure_stream(js, settings)).action == "unchanged"

    info = await js.stream_info(stream_name(subject_prefix))
    assert info.config.subjects == [f"{subject_prefix}.>"]
    assert info.config.storage == StorageType.FILE
    assert info.config.max_age == 3600
    assert info.config.duplicate_window == 60
    assert info.config.deny_delete

    longer = StreamSettings(subject_prefix, max_age=7200, duplicate_window=120)
    setup = await ensure_stream(js, longer)
    assert (setup.action, set(setup.changed)) == ("updated", {"max_age", "duplicate_window"})
    info = await js.stream_info(stream_name(subject_prefix))
    assert (info.config.max_age, info.config.duplicate_window) == (7200, 120)


async def test_a_limit_that_would_drop_events_is_put_back(
    js: JetStreamContext, subject_prefix: str
) -> None:
    settings = StreamSettings(subject_prefix)
    config = settings.config()
    config.max_msgs_per_subject = 1
    await js.add_stream(config)
    setup = await ensure_stream(js, settings)
    assert (setup.action, setup.changed) == ("updated", ("max_msgs_per_subject",))
    assert (await js.stream_info(settings.name)).config.max_msgs_per_subject == -1


async def test_the_relay_marks_an_unmarked_stream_and_refuses_another_stores(
    js: JetStreamContext, subject_prefix: str
) -> None:
    """A stream made by hand is claimed (once); then another store's relay is refused and
    the stream keeps its mark."""
    settings = StreamSettings(subject_prefix)
    ours, theirs = uuid.uuid4(), uuid.uuid4()
    assert (await ensure_stream(js, settings)).action == "created"
    assert stream_store(await js.stream_info(settings.name)) is None
    setup = await ensure_stream(js, settings, store_id=ours)
    assert setup.action == "updated"
    assert "metadata" in setup.changed
    assert stream_store(await js.stream_info(settings.name)) == str(ours)
    assert (await ensure_stream(js, settings, store_id=ours)).action == "unchanged"
    with pytest.raises(ForeignStream, match=str(ours)):
        await ensure_stream(js, settings, store_id=theirs)
    assert stream_store(await js.stream_info(settings.name)) == str(ours)


async def test_concurrent_ensures_agree(js: JetStreamContext, subject_prefix: str) -> None:
    settings = StreamSettings(subject_prefix)
    setups = await asyncio.gather(*(ensure_stream(js, settings) for _ in range(5)))
    assert sorted(s.action for s in setups).count("created") >= 1
    assert {s.action for s in setups} <= {"created", "unchanged"}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"subjects": ["{prefix}.>", "{prefix}_extra.>"]}, "subjects are"),
        ({"storage": StorageType.MEMORY}, "storage is memory"),
        ({"deny_delete": False}, "deny_delete"),
    ],
)
async def test_a_conflicting_stream_is_refused_and_left_untouched(
    js: JetStreamContext, subject_prefix: str, change: dict[str, object], problem: str
) -> None:
    settings = StreamSettings(subject_prefix)
    config = settings.config()
    for key, value in change.items():
        if key == "subjects":
            assert isinstance(value, list)
            value = [s.format(prefix=subject_prefix) for s in value]
        setattr(config, key, value)
    await js.add_stream(config)
    before = (await js.stream_info(settings.name)).config

    with pytest.raises(StreamConfigConflict, match=problem):
        await ensure_stream(js, settings)
    assert (await js.stream_info(settings.name)).config == before


async def test_another_stream_owning_the_subjects_is_a_conflict(
    js: JetStreamContext, subject_prefix: str
) -> None:
    other = f"OTHER_{stream_name(subject_prefix)}"
    await js.add_stream(StreamConfig(name=other, subjects=[f"{subject_prefix}.>"]))
    try:
        with pytest.raises(StreamConfigConflict, match="another stream already captures"):
            await ensure_stream(js, StreamSettings(subject_prefix))
    finally:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(other)


async def test_the_relay_stops_on_a_conflicting_stream(
    event_store: PostgresEventStore,
    pg_url: str,
    nats_url: str,
    js: JetStreamContext,
    subject_prefix: str,
) -> None:
    config = StreamSettings(subject_prefix).config()
    config.storage = StorageType.MEMORY
    await js.add_stream(config)
    await append_notes(event_store, writers=1, appends=2)
    relay = Relay(
        event_store,
        database_url=pg_url,
        nats_servers=nats_url,
        settings=fast_settings(subject_prefix),
    )
    with pytest.raises(StreamConfigConflict):
        await asyncio.wait_for(relay.run(), 10)
    assert relay.state is RelayState.STOPPED
    assert (await js.stream_info(config.name or "")).state.messages == 0


async def test_a_stream_fed_from_another_event_store_is_a_conflict(
    event_store: PostgresEventStore,
    pg_url: str,
    nats_url: str,
    js: JetStreamContext,
    subject_prefix: str,
) -> None:
    """Two deployments on one prefix would make the relay skip events it never sent."""
    await ensure_stream(js, StreamSettings(subject_prefix))
    await js.publish(
        f"{subject_prefix}._.note.TestNoted",
        b"{}",
        headers={"Nats-Msg-Id": "someone-else", "Programledger-Position": "1"},
    )
    await append_notes(event_store, writers=1, appends=1)
    relay = Relay(
        event_store,
        database_url=pg_url,
        nats_servers=nats_url,
        settings=fast_settings(subject_prefix),
    )
    with pytest.raises(StreamConfigConflict, match="same subject prefix"):
        await asyncio.wait_for(relay.run(), 10)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="prefix"):
        StreamSettings("bad prefix")
    with pytest.raises(ValueError, match="prefix"):
        StreamSettings("a.*")
    with pytest.raises(ValueError, match="duplicate_window"):
        StreamSettings("ok", max_age=60, duplicate_window=120)
    assert stream_name("acme.program-ledger") == "ACME_PROGRAM_LEDGER_EVENTS"
