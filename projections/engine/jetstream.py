"""The JetStream side of a runner: a consumer that starts exactly after its checkpoint.

The relay stores events in position order, so the stream sequence of the first event
after a checkpoint is a binary search away (``adapters.nats.pull.resume_sequence``). The
durable consumer is recreated at that
sequence every time a runner (re)starts: whatever an earlier instance left unacknowledged
then comes again in order, never after newer events, which is what lets a runner trust
"a position at or below my checkpoint is a redelivery".
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from programledger.adapters.nats.pull import BatchPuller

__all__ = ["open_consumer"]


async def open_consumer(
    nc: NatsClient,
    js: JetStreamContext,
    stream: str,
    durable: str,
    filters: Sequence[str],
    start: int,
    *,
    description: str,
    ack_wait: float,
    max_ack_pending: int,
) -> BatchPuller:
    """(Re)create the durable pull consumer ``durable`` at stream sequence ``start``.

    ``AckPolicy.ALL``: acknowledging a batch's last message acknowledges the batch.
    """
    config = ConsumerConfig(
        durable_name=durable,
        description=description,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        ack_policy=AckPolicy.ALL,
        ack_wait=ack_wait,
        max_ack_pending=max_ack_pending,
        max_deliver=-1,
    )
    if len(filters) == 1:
        config.filter_subject = filters[0]
    else:
        config.filter_subjects = list(filters)
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(stream, durable)
    await js.add_consumer(stream, config)
    puller = BatchPuller(nc, stream, durable)
    await puller.start()
    return puller
