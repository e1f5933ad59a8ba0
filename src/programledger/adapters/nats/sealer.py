"""The sealer: extends the ledger-wide Merkle tree as the safe head advances, signs a tree
head over it, keeps the head in PostgreSQL and publishes it to NATS.

It has the relay's shape, and its guarantees are kept the same way:

- **One active sealer.** :class:`~programledger.adapters.postgres.leadership.Leadership`
  on ``programledger.sealer:<schema>:<name>``; leaves, nodes and the head are written in
  one transaction on the lock connection, so a sealer that lost the lock cannot write.
- **Every event, in position order, none skipped.** Events are read with the store's safe
  read (transactions older than every running one): a gap-free prefix, so a leaf is never
  added before an event that commits late below it.
- **A head at least every** ``seal_interval`` **while events arrive**, at most one per
  interval: leaves, nodes and head commit together, so the stored tree always ends at the
  last head. After any failure the sealer resumes from what PostgreSQL holds.
- **A copy outside the database.** Each head is published to its own JetStream stream
  (:func:`head_stream_settings`, kept without age limit) with ``Nats-Msg-Id`` = its size;
  ``tree_head_publications`` says how far publishing got. NATS being away delays only the
  publication, never sealing or appends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from cryptography.hazmat.primitives import serialization
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from programledger.adapters.nats import client as nats_client
from programledger.adapters.nats.envelope import validate_prefix
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.adapters.postgres.leadership import (
    DB_ERRORS,
    Backoff,
    Leadership,
    LeadershipLost,
    LeaderState,
)
from programledger.adapters.postgres.ledger import LedgerStore, head_of
from programledger.application.signing import HeadSigner
from programledger.domain.integrity import (
    HASH_SIZE,
    Frontier,
    SignedHead,
    TreeHead,
    head_to_json,
)

__all__ = [
    "Sealer",
    "SealerSettings",
    "SealerStats",
    "head_stream_name",
    "head_stream_settings",
    "head_subject",
]

log = logging.getLogger(__name__)


def head_subject(prefix: str) -> str:
    """``<prefix>_treeheads``: outside ``<prefix>.>``, so the events stream never holds it."""
    return f"{validate_prefix(prefix)}_treeheads"


def head_stream_name(prefix: str) -> str:
    token = validate_prefix(prefix).replace(".", "_").replace("-", "_").upper()
    return f"{token}_TREE_HEADS"


def head_stream_settings(prefix: str, replicas: int = 1) -> StreamConfig:
    """Kept without age limit, nothing deleted or purged: the copy outside the database."""
    return StreamConfig(
        name=head_stream_name(prefix),
        description=f"signed tree heads of the programledger under {prefix}",
        subjects=[head_subject(prefix)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_age=0,
        max_msgs=-1,
        max_bytes=-1,
        num_replicas=replicas,
        duplicate_window=120.0,
        deny_delete=True,
        deny_purge=True,
    )


@dataclass(frozen=True, slots=True)
class SealerSettings:
    prefix: str
    name: str = "default"
    replicas: int = 1
    seal_interval: float = 1.0
    """At most one head per this many seconds; one within it after events arrive."""
    batch_size: int = 10_000
    """Events read per query; a head covers at most ``max_leaves_per_head`` new leaves."""
    max_leaves_per_head: int = 100_000
    poll_interval: float = 1.0
    standby_poll_interval: float = 0.5
    lock_check_interval: float = 1.0
    retry_initial: float = 0.1
    retry_max: float = 5.0
    nats_connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)
        if self.batch_size < 1 or self.max_leaves_per_head < 1:
            raise ValueError("batch_size and max_leaves_per_head must be at least 1")
        if min(self.seal_interval, self.poll_interval, self.standby_poll_interval) <= 0:
            raise ValueError("intervals must be positive")


@dataclass(slots=True)
class SealerStats:
    heads: int = 0
    leaves: int = 0
    published: int = 0
    failures: int = 0
    last_error: str | None = None
    tree_size: int = 0


@dataclass(slots=True)
class _Tree:
    """The tree as this sealer has it: what the store holds, while it holds the lock."""

    frontier: Frontier
    last_position: int
    head: SignedHead | None


class Sealer:
    """Run with :meth:`run`; :meth:`stop` ends it cleanly."""

    def __init__(
        self,
        store: PostgresEventStore,
        signer: HeadSigner,
        *,
        database_url: str,
        nats_servers: str | Sequence[str] | None,
        settings: SealerSettings,
    ) -> None:
        self._store = store
        self._signer = signer
        self._settings = settings
        self._servers = (
            []
            if nats_servers is None
            else [nats_servers]
            if isinstance(nats_servers, str)
            else list(nats_servers)
        )
        self.stats = SealerStats()
        self._backoff = Backoff(settings.retry_initial, settings.retry_max)
        self._leader = Leadership(
            f"programledger.sealer:{store.schema}:{settings.name}",
            database_url=database_url,
            schema=store.schema,
            application_name=f"programledger-sealer:{settings.name}",
            on_failure=self._note_failure,
            backoff=self._backoff,
            standby_poll_interval=settings.standby_poll_interval,
            check_interval=settings.lock_check_interval,
        )
        self._wake = asyncio.Event()
        self._sealed = asyncio.Event()
        self._nc: NatsClient | None = None
        self._stream_ready = False

    @property
    def state(self) -> LeaderState:
        return self._leader.state

    @property
    def tree_size(self) -> int:
        return self.stats.tree_size

    def stop(self) -> None:
        self._leader.stop()
        self._wake.set()

    async def wait_sealed(self, size: int) -> None:
        """Wait until this instance signed a head of at least ``size`` leaves (bound it
        with ``asyncio.timeout``)."""
        while self.stats.tree_size < size:
            self._sealed.clear()
            await self._sealed.wait()

    async def run(self) -> None:
        try:
            await self._leader.run(self._lead)
        finally:
            await self._close_nats()

    async def _lead(self, conn: asyncpg.Connection) -> None:
        public = self._signer.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        async with self._leader.guard:
            await LedgerStore.register_key(conn, self._signer.key_id, public)
            tree = _Tree(*await LedgerStore.resume(conn))
        self.stats.tree_size = tree.frontier.size
        log.info("sealer %s: active, tree of %d leaves", self._settings.name, tree.frontier.size)
        # Publishing runs beside sealing: NATS being slow or away never delays a head.
        publishing: asyncio.Task[None] | None = None
        # Appends notify the store's channel, each one; the sealer listens only while idle
        # (while events arrive it seals every interval anyway), so a busy store does not
        # pay a notification delivered to it per append.
        listening = False
        try:
            while not self._leader.stopping:
                self._wake.clear()
                sealed_at = asyncio.get_running_loop().time()
                sealed = await self._seal(conn, tree)
                if publishing is not None and publishing.done():
                    publishing.result()  # a lock connection that failed there ends this turn
                    publishing = None
                if publishing is None and self._servers:
                    publishing = asyncio.create_task(self._publish(conn))
                if sealed:
                    if listening:
                        async with self._leader.guard:
                            await conn.remove_listener(self._store.notify_channel, self._on_notify)
                        listening = False
                    elapsed = asyncio.get_running_loop().time() - sealed_at
                    await self._leader.pause(max(self._settings.seal_interval - elapsed, 0.0))
                elif not listening:
                    # Look again at once: an append between that look and LISTEN sent
                    # this connection nothing.
                    async with self._leader.guard:
                        await conn.add_listener(self._store.notify_channel, self._on_notify)
                    listening = True
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval)
            # A clean stop publishes what is left, if NATS answers in time.
            if publishing is not None:
                await publishing
            publishing = None
            if self._servers:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._publish(conn), self._settings.nats_connect_timeout * 2
                    )
        finally:
            if publishing is not None:
                publishing.cancel()
                with contextlib.suppress(BaseException):
                    await publishing

    async def _seal(self, conn: asyncpg.Connection, tree: _Tree) -> bool:
        """Add what the safe head has beyond the tree and sign a head over it; whether there
        was anything."""
        positions: list[int] = []
        hashes: list[bytes] = []
        limit = self._settings.max_leaves_per_head
        async with self._leader.guard:
            while len(positions) < limit:
                rows = await LedgerStore.unsealed(
                    conn,
                    positions[-1] if positions else tree.last_position,
                    min(self._settings.batch_size, limit - len(positions)),
                )
                positions += [p for p, _ in rows]
                hashes += [h for _, h in rows]
                if len(rows) < self._settings.batch_size:
                    break
        if not positions:
            return False
        first_leaf = tree.frontier.size
        nodes = tree.frontier.extend(hashes)
        signed = self._signer.sign(
            TreeHead(
                size=tree.frontier.size,
                root=tree.frontier.root(),
                timestamp_ms=time.time_ns() // 1_000_000,
                previous=tree.head.head.digest() if tree.head else bytes(HASH_SIZE),
            )
        )
        try:
            async with self._leader.guard:
                await LedgerStore.seal(conn, first_leaf, positions, nodes, signed)
        except DB_ERRORS as exc:
            # The frontier in memory is ahead of what committed: start over from the store.
            raise LeadershipLost(f"cannot store the tree head: {exc!r}") from exc
        tree.head, tree.last_position = signed, positions[-1]
        self.stats.heads += 1
        self.stats.leaves += len(positions)
        self.stats.tree_size = tree.frontier.size
        self._sealed.set()
        self._backoff.reset()
        return True

    def _on_notify(self, _conn: object, _pid: int, _channel: str, _payload: object) -> None:
        self._wake.set()

    # --- publishing to NATS ------------------------------------------------------------

    async def _publish(self, conn: asyncpg.Connection) -> None:
        """Publish every head after the recorded publication point; failures wait for the
        next round."""
        name = self._settings.name
        async with self._leader.guard:
            done = await conn.fetchval(
                "INSERT INTO tree_head_publications (name, tree_size) VALUES ($1, 0) "
                "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING tree_size",
                name,
            )
            rows = await conn.fetch(
                "SELECT tree_size, root_hash, timestamp_ms, previous, key_id, signature "
                "FROM tree_heads WHERE tree_size > $1 ORDER BY tree_size LIMIT 1000",
                done,
            )
        if not rows:
            return
        published = int(done)
        try:
            js = await self._jetstream()
            for row in rows:
                signed = head_of(row)
                await js.publish(
                    head_subject(self._settings.prefix),
                    json.dumps(head_to_json(signed)).encode(),
                    headers={"Nats-Msg-Id": f"tree-head-{signed.head.size}"},
                )
                published = signed.head.size
                self.stats.published += 1
        except Exception as exc:
            self._note_failure("publishing tree heads failed; retrying", exc)
            await self._close_nats()
        if published > done:
            async with self._leader.guard:
                await conn.execute(
                    "UPDATE tree_head_publications SET tree_size = $2, updated_at = now() "
                    "WHERE name = $1 AND tree_size < $2",
                    name,
                    published,
                )

    async def _jetstream(self) -> JetStreamContext:
        if self._nc is None or self._nc.is_closed:
            self._nc = await asyncio.wait_for(
                nats_client.connect(
                    self._servers,
                    name=f"programledger-sealer:{self._settings.name}",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                ),
                self._settings.nats_connect_timeout,
            )
            self._stream_ready = False
        js = self._nc.jetstream(timeout=self._settings.nats_connect_timeout)
        if not self._stream_ready:
            config = head_stream_settings(self._settings.prefix, self._settings.replicas)
            try:
                await js.add_stream(config)
            except BadRequestError:
                await js.update_stream(config)
            self._stream_ready = True
        return js

    async def _close_nats(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)

    def _note_failure(self, what: str, exc: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{what}: {exc!r}"
        log.warning("sealer %s: %s: %r", self._settings.name, what, exc)
