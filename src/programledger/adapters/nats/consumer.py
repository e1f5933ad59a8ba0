"""JetStream pull consumers on the relay's stream, built one way for every reader.

Three readers consume the stream, and differ only in the fields of :class:`PullConsumer`:
a projection runner (durable, acknowledges whole batches), a subscriber (durable,
explicit acks, filters that must not change under it) and the API's replay of missed
events (ephemeral, in memory, no acks). Creating, repositioning and opening the consumer
happen here, in :func:`open_pull`:

- **From where.** ``start=None`` reads the whole stream if the consumer is new, or goes on
  where JetStream left an existing durable. ``start=<stream sequence>`` starts exactly
  there: a durable is deleted (one already gone is fine) and created again at that
  sequence, so whatever an earlier instance left unacknowledged comes again in order,
  never after newer events. That is what lets a reader trust "a position at or below the
  one I committed is a redelivery".
- **Filters.** One filter subject, or several (nats-server 2.10+). A durable with
  ``fixed_filters`` that exists with other filters is a :class:`ConsumerConflict`, never a
  silent change of what it receives; a projection's consumer follows its definition
  instead, which a release may change.
- **Ephemeral** consumers (no ``durable``) are named by the server, kept in memory, and
  removed by it after ``inactive_threshold`` seconds without a pull; :func:`discard`
  removes one as soon as its reader is done.

Every consumer is read through a :class:`~programledger.adapters.nats.pull.BatchPuller`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from programledger.adapters.nats.pull import BatchPuller
from programledger.application.errors import OperationalError

__all__ = ["ConsumerConflict", "PullConsumer", "discard", "open_pull"]


class ConsumerConflict(OperationalError):
    """A durable consumer of that name exists with other filters."""


@dataclass(frozen=True, slots=True)
class PullConsumer:
    """What a reader needs from its consumer; :func:`open_pull` builds it."""

    stream: str
    filters: tuple[str, ...]
    ack_policy: AckPolicy
    durable: str | None = None
    """``None``: an ephemeral consumer."""
    description: str | None = None
    ack_wait: float | None = None
    max_ack_pending: int | None = None
    fixed_filters: bool = False
    """A durable of this name with other filters is refused (:class:`ConsumerConflict`)."""
    inactive_threshold: float = 60.0
    """How long an ephemeral consumer outlives its last pull."""

    def __post_init__(self) -> None:
        if not self.filters:
            raise ValueError("a consumer needs at least one filter subject")

    def config(self, start: int | None) -> ConsumerConfig:
        """The consumer's configuration, delivering from stream sequence ``start`` (or
        from the beginning)."""
        ephemeral = self.durable is None
        config = ConsumerConfig(
            durable_name=self.durable,
            description=self.description,
            deliver_policy=DeliverPolicy.ALL if start is None else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=self.ack_policy,
            ack_wait=self.ack_wait,
            max_ack_pending=self.max_ack_pending,
            # A durable reader never gives up on an event: it stops at it instead.
            max_deliver=None if ephemeral else -1,
            inactive_threshold=self.inactive_threshold if ephemeral else None,
            mem_storage=True if ephemeral else None,
        )
        if len(self.filters) == 1:
            config.filter_subject = self.filters[0]
        else:
            config.filter_subjects = list(self.filters)
        return config


async def open_pull(
    js: JetStreamContext, consumer: PullConsumer, start: int | None = None
) -> BatchPuller:
    """Create (or reposition, or resume) ``consumer`` and start pulling from it; see the
    module for what ``start`` does to a durable and an ephemeral consumer."""
    name = consumer.durable
    exists = False
    if name is not None and (consumer.fixed_filters or start is None):
        try:
            info = await js.consumer_info(consumer.stream, name)
        except NotFoundError:
            pass
        else:
            exists = True
            existing = sorted(info.config.filter_subjects or [info.config.filter_subject or ""])
            if consumer.fixed_filters and existing != sorted(consumer.filters):
                raise ConsumerConflict(
                    f"durable consumer {name!r} on {consumer.stream} filters {existing}, not "
                    f"{list(consumer.filters)}: delete it or use another name"
                )
    if name is not None and start is not None:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(consumer.stream, name)
        exists = False
    if not exists:
        name = (await js.add_consumer(consumer.stream, consumer.config(start))).name
    assert name is not None
    puller = BatchPuller(js._nc, consumer.stream, name)
    await puller.start()
    return puller


async def discard(js: JetStreamContext, puller: BatchPuller) -> None:
    """Stop pulling and delete the consumer (an ephemeral one whose reader is done); a
    consumer already gone, or a connection already closed, is fine."""
    with contextlib.suppress(Exception):
        await puller.unsubscribe()
    with contextlib.suppress(Exception):
        await js.delete_consumer(puller.stream, puller.consumer)
