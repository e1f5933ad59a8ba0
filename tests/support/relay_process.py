"""What the relay tests share: the relay as a process of its own, and a look at the stream.

Run as ``python -m tests.support.relay_process --pg URL --schema S --nats URL --prefix P``
it is a relay process that a fault test can SIGKILL mid-stream, exactly like a crashed
container; the helpers below read back what reached JetStream, message by message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from programledger.adapters.codec import EventCodec
from programledger.adapters.nats.envelope import EventEnvelope, decode_envelope
from programledger.adapters.nats.relay import Relay, RelaySettings
from programledger.adapters.nats.sealer import head_stream_name
from programledger.adapters.nats.stream import stream_name
from programledger.adapters.postgres.connection import create_pool
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.bootstrap import relay_service
from programledger.bootstrap.supervisor import stop_on_signals, supervise
from tests.support.events import Noted, store_test_registry

__all__ = [
    "RelayProcess",
    "StoredMessage",
    "append_notes",
    "delete_stream",
    "eventually",
    "fast_settings",
    "stored_messages",
    "wait_for_messages",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = b"relay process ready"


def fast_settings(prefix: str, **overrides: Any) -> RelaySettings:
    """Short intervals so that takeovers and retries happen within a test's time."""
    base = RelaySettings(
        prefix=prefix,
        poll_interval=0.2,
        standby_poll_interval=0.1,
        lock_check_interval=0.3,
        retry_initial=0.05,
        retry_max=0.5,
        ack_timeout=2.0,
        nats_reconnect_wait=0.1,
        nats_connect_timeout=1.0,
        checkpoint_interval=0.05,
    )
    return replace(base, **overrides)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    sequence: int
    subject: str
    headers: dict[str, str]
    envelope: EventEnvelope


async def stored_messages(js: JetStreamContext, prefix: str) -> list[StoredMessage]:
    """Every message the stream holds, in stream order: duplicates would show here."""
    name = stream_name(prefix)
    info = await js.stream_info(name)
    found: list[StoredMessage] = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(name, sequence)
        except NotFoundError:
            continue
        assert msg.data is not None
        assert msg.subject is not None
        found.append(
            StoredMessage(sequence, msg.subject, dict(msg.headers or {}), decode_envelope(msg.data))
        )
    return found


async def wait_for_messages(js: JetStreamContext, prefix: str, count: int, within: float) -> None:
    """Until the stream holds ``count`` messages; the failure says how many it had."""
    name = stream_name(prefix)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    have = -1
    while loop.time() < deadline:
        try:
            have = (await js.stream_info(name)).state.messages
        except NotFoundError:
            have = 0
        if have >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"stream {name} holds {have} messages after {within}s, not {count}")


async def eventually(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]], within: float = 10.0
) -> None:
    """Until ``check()`` holds (it may be a coroutine function); ``TimeoutError`` if not."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.02)


async def delete_stream(js: JetStreamContext, prefix: str) -> None:
    """The prefix's events stream, and its signed tree heads' where a sealer ran."""
    for name in (stream_name(prefix), head_stream_name(prefix)):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)


async def append_notes(
    store: PostgresEventStore,
    *,
    writers: int,
    appends: int,
    per_append: int = 1,
    program_ids: Sequence[uuid.UUID | None] = (None,),
) -> int:
    """Concurrent writers, each on its own streams; returns how many events were written."""

    async def writer(w: int) -> None:
        for i in range(appends):
            program = program_ids[(w + i) % len(program_ids)]
            events = [Noted(text=f"w{w} a{i} e{j}", n=j) for j in range(per_append)]
            await store.append(
                f"note-w{w}s{i % 3}",
                ExpectedVersion.ANY,
                events,
                EventMetadata(actor="test", program_id=program, correlation_id=uuid.uuid4()),
            )

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return writers * appends * per_append


class RelayProcess:
    """The relay in a subprocess, so that a test can kill it with SIGKILL."""

    def __init__(self, pg_url: str, schema: str, nats_url: str, prefix: str) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "tests.support.relay_process",
            "--pg",
            pg_url,
            "--schema",
            schema,
            "--nats",
            nats_url,
            "--prefix",
            prefix,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT)
        self.proc = subprocess.Popen(self.argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE)

    async def ready(self, within: float = 20) -> None:
        """Until the process handles SIGTERM (it prints a line just before it does)."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), within)
        assert line.strip() == READY, f"the relay process said {line!r}"

    def kill(self) -> None:
        """SIGKILL: no cleanup, no final checkpoint, the lock connection just drops."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


async def _main(args: argparse.Namespace) -> None:
    pool = await create_pool(args.pg, args.schema, min_size=1, max_size=4)
    try:
        store = PostgresEventStore(pool, EventCodec(store_test_registry()), schema=args.schema)
        relay = Relay(
            store,
            database_url=args.pg,
            nats_servers=args.nats,
            settings=fast_settings(args.prefix, batch_size=args.batch, max_in_flight=args.batch),
        )
        stop = stop_on_signals()
        # The signal handlers are in place, so once this line is read a SIGTERM is a clean
        # stop.
        print(READY.decode(), flush=True)
        await supervise([relay_service(relay)], stop)
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a relay process for fault tests")
    parser.add_argument("--pg", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="relay-process %(message)s")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
