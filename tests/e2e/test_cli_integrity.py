"""The auditor's commands end to end: verify with a public key, proofs as JSON, a ledger
export checked offline, restored by import into an empty schema, and a rewrite caught."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from programledger.adapters.postgres.catalogue import sync_catalogue
from programledger.adapters.postgres.eventstore import PostgresEventStore
from programledger.application.eventstore import EventMetadata, ExpectedVersion
from programledger.application.signing import HeadSigner, public_key_pem
from tests.e2e.test_cli import cli
from tests.support import rfc9162
from tests.support.events import Noted, store_test_registry
from tests.support.ledger import seal_all, settled, tamper

META = EventMetadata(actor="cli-test")


def _env(pg_url: str, schema: str, data_dir: Path) -> dict[str, str]:
    from tests.e2e.test_cli import _env as env_of

    return env_of(database_url=pg_url, schema=schema, data_dir=str(data_dir))


async def _catalogue_test_events(pg_url: str, schema: str) -> None:
    """The CLI's migrate catalogues the code's event types; the tests' own (``TestNoted``)
    are added as the test fixtures add them, or the store would refuse to import them."""
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": schema})
    try:
        await sync_catalogue(conn, store_test_registry())
    finally:
        await conn.close()


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    result = await asyncio.to_thread(cli, *args, env=env)
    return result.returncode, result.stdout, result.stderr


async def test_verify_proofs_export_offline_and_import(
    event_store: PostgresEventStore, pg_url: str, schema: str, tmp_path: Path
) -> None:
    private = Ed25519PrivateKey.generate()
    signer = HeadSigner(private)
    public = tmp_path / "ledger.pub"
    public.write_text(public_key_pem(signer.public_key))
    key_file = tmp_path / "ledger.key"
    key_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for i in range(7):
        await event_store.append(f"note-{i % 2}", ExpectedVersion.ANY, [Noted(text=str(i))], META)
    await settled(event_store)
    await seal_all(event_store, signer, pg_url)
    env = _env(pg_url, schema, tmp_path / "data")

    code, out, _ = await _run("verify", "--public-key", str(public), env=env)
    assert code == 0, out
    assert re.search(
        r"verified the Merkle tree of 7 events against \d+ signed heads?: every head holds", out
    )

    code, out, _ = await _run("proof", "head", env=env)
    assert code == 0
    (tmp_path / "head.json").write_text(out)
    head = json.loads(out)
    code, out, _ = await _run("proof", "inclusion", "--position", "3", env=env)
    proof = json.loads(out)
    assert (
        rfc9162.inclusion_root_hex(
            proof["event_hash"], proof["leaf_index"], proof["tree_size"], proof["path"]
        )
        == head["root_hash"]
    )
    code, out, _ = await _run(
        "proof", "public-key", env={**env, "PROGRAMLEDGER_SIGNING_KEY_FILE": str(key_file)}
    )
    assert out == public.read_text()

    export = tmp_path / "ledger.jsonl"
    code, _, err = await _run("export-ledger", "-o", str(export), env=env)
    assert code == 0, err
    code, out, _ = await _run(
        "verify", "--offline", str(export), "--public-key", str(public), env=env
    )
    assert code == 0, out
    assert "every head holds" in out

    copy_schema = f"t_{uuid.uuid4().hex[:16]}"
    copy = _env(pg_url, copy_schema, tmp_path / "data")
    try:
        assert (await _run("migrate", env=copy))[0] == 0
        await _catalogue_test_events(pg_url, copy_schema)
        code, out, err = await _run("import", str(export), env=copy)
        assert code == 0, err
        assert "imported 7 events" in out
        code, out, _ = await _run(
            "verify",
            "--public-key",
            str(public),
            "--against",
            str(tmp_path / "head.json"),
            env=copy,
        )
        assert code == 0, out
    finally:
        conn = await asyncpg.connect(pg_url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{copy_schema}" CASCADE')
        await conn.close()

    # The last event removed and its stream's head reset: the chains hold, the tree does not.
    await tamper(
        pg_url,
        schema,
        """
        DELETE FROM events WHERE position = (SELECT max(position) FROM events);
        UPDATE streams s SET version = e.version, last_position = e.position, last_hash = e.hash
          FROM events e WHERE e.stream_id = s.stream_id AND e.position = (
            SELECT max(position) FROM events x WHERE x.stream_id = s.stream_id);
        """,
    )
    code, out, _ = await _run("verify", "--public-key", str(public), env=env)
    assert code == 1
    assert "every hash chain holds" in out
    assert "BROKEN ledger: leaf 6 of the tree is the event at position 7, which is gone" in out
    later = tmp_path / "later.jsonl"
    assert (await _run("export-ledger", "-o", str(later), env=env))[0] == 0
    code, out, _ = await _run(
        "verify",
        "--offline",
        str(later),
        "--public-key",
        str(public),
        "--against",
        str(export),
        env=env,
    )
    assert code == 1
    assert "the kept head of size 7 covers 7 events but only 6" in out
