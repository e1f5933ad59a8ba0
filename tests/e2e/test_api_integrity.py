"""The ledger's proofs over GraphQL: an auditor gets signed heads and proofs that a
verifier written from RFC 9162 accepts with the public key alone."""

from __future__ import annotations

import asyncio
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from programledger.api import Role
from programledger.domain.integrity import TreeHead
from tests.e2e.conftest import Api, new_id, program_input
from tests.support import rfc9162
from tests.support.ledger import new_signer, sealer, settled

HEAD = "treeSize rootHash timestampMs previous keyId signature"


async def _ask(api: Api, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = await api.post(query, variables, headers=api.auth(Role.AUDITOR))
    return response.json()


async def test_an_auditor_checks_proofs_with_the_public_key_alone(api: Api, pg_url: str) -> None:
    for _ in range(3):
        await api.accepted("proposeProgram", program_input(new_id()))
    signer = new_signer()
    worker = sealer(api.store, signer, pg_url)
    task = asyncio.create_task(worker.run())
    try:
        head = await settled(api.store)
        async with asyncio.timeout(30):
            await worker.wait_sealed(head)
    finally:
        worker.stop()
        await task

    body = await _ask(
        api,
        f"{{ ledgerHead {{ {HEAD} }} ledgerPublicKeys {{ keyId publicKey }} "
        f"treeHeads(first: 10) {{ totalCount nodes {{ treeSize }} }} }}",
    )
    assert "errors" not in body, body
    data = body["data"]
    head_json = data["ledgerHead"]
    size = head_json["treeSize"]
    assert size == head
    assert data["treeHeads"]["totalCount"] >= 1
    public = Ed25519PublicKey.from_public_bytes(
        bytes.fromhex(data["ledgerPublicKeys"][0]["publicKey"])
    )
    signed_bytes = TreeHead(
        size=size,
        root=bytes.fromhex(head_json["rootHash"]),
        timestamp_ms=head_json["timestampMs"],
        previous=bytes.fromhex(head_json["previous"]),
    ).signed_bytes()
    public.verify(bytes.fromhex(head_json["signature"]), signed_bytes)

    body = await _ask(
        api,
        "query($p: SafeInt!) { inclusionProof(position: $p) { leafIndex eventHash treeSize path "
        "head { rootHash } } }",
        {"p": 1},
    )
    proof = body["data"]["inclusionProof"]
    assert (
        rfc9162.inclusion_root_hex(
            proof["eventHash"], proof["leafIndex"], proof["treeSize"], proof["path"]
        )
        == head_json["rootHash"]
    )

    first = (await _ask(api, "{ treeHeads(first: 1) { nodes { treeSize rootHash } } }"))["data"]
    old = first["treeHeads"]["nodes"][0]
    body = await _ask(
        api,
        "query($f: SafeInt!) { consistencyProof(fromSize: $f) { toSize path } }",
        {"f": old["treeSize"]},
    )
    consistency = body["data"]["consistencyProof"]
    assert rfc9162.consistency_roots(
        old["treeSize"],
        consistency["toSize"],
        bytes.fromhex(old["rootHash"]),
        [bytes.fromhex(h) for h in consistency["path"]],
    ) == (bytes.fromhex(old["rootHash"]), bytes.fromhex(head_json["rootHash"]))

    bad = await _ask(
        api, '{ inclusionProof(position: 1, eventId: "' + new_id() + '") { leafIndex } }'
    )
    assert bad["errors"][0]["message"] == "give exactly one of eventId and position"
    viewer = await api.post("{ ledgerHead { treeSize } }", headers=api.auth(Role.VIEWER))
    assert viewer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
