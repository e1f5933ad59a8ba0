"""docs/events.md's recipe for another language, proven by a consumer in Node written from
it (``node_consumer/consumer.mjs``, the ``nats`` npm package): every event once, in order,
across a SIGKILL of the consumer with messages fetched and not acknowledged, while more
events are published.

Runs when ``node`` is on PATH; ``.ci/run`` installs the package (``npm ci``) there.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path
from uuid import uuid4

import pytest

from programledger.adapters.nats.relay import Relay
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.commands import CommandContext
from programledger.application.handlers import Application
from programledger.domain.program import ActivateProgram
from programledger.domain.resource import RegisterResource
from programledger.domain.risk import IdentifyRisk, RiskCategory
from programledger.domain.values import Department, PartyKind
from tests.e2e.conftest import Api
from tests.unit.examples import propose_program

CONSUMER = Path(__file__).parent / "node_consumer"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(
        NODE is not None and not (CONSUMER / "node_modules" / "nats").is_dir(),
        reason=f"the nats npm package is not installed: run `npm ci` in {CONSUMER}",
    ),
]
WITHIN = 120.0


async def _history(store: PostgresEventStore, programs: int) -> int:
    """Events of every stream type (program, programcode, risk, resource); the head."""
    app = Application(store)
    context = CommandContext(actor="tom")
    last = 0
    for n in range(programs):
        program = uuid4()
        await app.handle(
            propose_program(program_id=program, code=f"NODE{uuid4().hex[:6].upper()}"), context
        )
        await app.handle(ActivateProgram(program_id=program), context)
        await app.handle(
            IdentifyRisk(
                risk_id=uuid4(),
                program_id=program,
                title="Supplier late",
                category=RiskCategory.SCHEDULE,
                probability=3,
                impact=2,
                owner="Lee",
            ),
            context,
        )
        result = await app.handle(
            RegisterResource(
                resource_key=f"r{uuid4().hex[:10]}",
                name=f"Person {n}",
                kind=PartyKind.PERSON,
                department=Department.ENGINEERING,
                role="dev",
                capacity=100,
            ),
            context,
        )
        last = result.last_position
    return last


async def _consume(env: dict[str, str], *, crash_after: int = 0) -> int:
    process = await asyncio.create_subprocess_exec(
        str(NODE),
        str(CONSUMER / "consumer.mjs"),
        env={**env, "CRASH_AFTER": str(crash_after)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _out, err = await asyncio.wait_for(process.communicate(), WITHIN)
    finally:
        if process.returncode is None:
            process.kill()
    code = process.returncode
    assert code is not None
    if code != -signal.SIGKILL:
        assert code == 0, err.decode()
    return code


async def test_a_node_consumer_written_from_the_docs_gets_every_event_once_in_order(
    api: Api, relay: Relay, nats_url: str, subject_prefix: str, tmp_path: Path
) -> None:
    store = api.store
    head = await _history(store, 5)
    output = tmp_path / "processed.jsonl"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "NATS_URL": nats_url,
        "PREFIX": subject_prefix,
        "DURABLE": "node-reader",
        "OUTPUT": str(output),
        "STORE_ID": str(await store.store_id()),
    }

    # It dies after 7 events, with the rest of its batch fetched and not acknowledged,
    # while more is published; the next start goes on from its own position.
    assert await _consume({**env, "UNTIL": str(head)}, crash_after=7) == -signal.SIGKILL
    head = await _history(store, 3)
    assert await _consume({**env, "UNTIL": str(head)}, crash_after=4) == -signal.SIGKILL
    head = await _history(store, 2)
    await _consume({**env, "UNTIL": str(head)})

    processed = [json.loads(line) for line in output.read_text().splitlines()]
    stored = await store.read_all(0, 10_000)
    assert [p["position"] for p in processed] == [e.position for e in stored]
    assert [p["event_id"] for p in processed] == [str(e.event_id) for e in stored]
    assert {p["stream_type"] for p in processed} == {"program", "programcode", "risk", "resource"}
