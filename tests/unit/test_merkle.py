"""The Merkle tree and its proofs, checked by a verifier written from RFC 9162 alone
(tests/support/rfc9162.py), and signed heads refused when forged."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from programledger.application.signing import HeadSigner, signature_holds
from programledger.domain.integrity import (
    EMPTY_ROOT,
    Frontier,
    NodeId,
    TreeHead,
    assemble,
    consistency_plan,
    inclusion_plan,
    root_from_consistency,
    root_from_inclusion,
)
from tests.support import rfc9162


def _events(n: int, salt: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(salt + i.to_bytes(8, "big")).digest() for i in range(n)]


def _stored(events: list[bytes]) -> tuple[Frontier, dict[NodeId, bytes]]:
    frontier = Frontier()
    nodes = {(level, index): h for level, index, h in frontier.extend(events)}
    return frontier, nodes


def test_roots_equal_the_rfc_definition_for_every_size() -> None:
    events = _events(70)
    assert Frontier().root() == EMPTY_ROOT == rfc9162.mth([])
    frontier = Frontier()
    for n in range(1, 71):
        frontier.append(events[n - 1])
        assert frontier.root() == rfc9162.mth(events[:n]), n


def test_inclusion_proofs_are_the_rfc_paths_and_verify_independently() -> None:
    events = _events(37)
    _, nodes = _stored(events)
    for n in range(1, 38):
        root = rfc9162.mth(events[:n])
        for m in range(n):
            proof = assemble(inclusion_plan(m, n), nodes)
            assert proof == rfc9162.path(m, events[:n]), (m, n)
            assert rfc9162.inclusion_root(events[m], m, n, proof) == root
            leaf = hashlib.sha256(b"\x00" + events[m]).digest()
            assert root_from_inclusion(leaf, m, n, proof) == root


def test_consistency_proofs_are_the_rfc_proofs_and_verify_independently() -> None:
    events = _events(37)
    _, nodes = _stored(events)
    for n in range(1, 38):
        new_root = rfc9162.mth(events[:n])
        for m in range(1, n + 1):
            old_root = rfc9162.mth(events[:m])
            proof = assemble(consistency_plan(m, n), nodes)
            assert proof == rfc9162.proof(m, events[:n]), (m, n)
            assert rfc9162.consistency_roots(m, n, old_root, proof) == (old_root, new_root)
            assert root_from_consistency(m, n, old_root, proof) == new_root


@given(n=st.integers(2, 300), data=st.data())
def test_a_proof_for_another_history_is_refused(n: int, data: st.DataObject) -> None:
    """An inconsistent pair of heads: the same size, one event changed."""
    m = data.draw(st.integers(1, n - 1))
    events = _events(n)
    forged = list(events)
    changed = data.draw(st.integers(0, m - 1))
    forged[changed] = hashlib.sha256(b"forged").digest()
    _, nodes = _stored(events)
    proof = assemble(consistency_plan(m, n), nodes)
    forged_old_root = rfc9162.mth(forged[:m])
    if m & (m - 1):
        with pytest.raises(ValueError, match="old root"):
            root_from_consistency(m, n, forged_old_root, proof)
    else:  # an old size that is a power of two is checked through the new root
        assert root_from_consistency(m, n, forged_old_root, proof) != rfc9162.mth(events)
    assert rfc9162.consistency_roots(m, n, forged_old_root, proof) != (
        forged_old_root,
        rfc9162.mth(events),
    )
    leaf = hashlib.sha256(b"\x00" + forged[changed]).digest()
    path = assemble(inclusion_plan(changed, n), nodes)
    assert root_from_inclusion(leaf, changed, n, path) != rfc9162.mth(events)


def test_proofs_of_the_wrong_shape_are_refused() -> None:
    events = _events(10)
    _, nodes = _stored(events)
    leaf = hashlib.sha256(b"\x00" + events[3]).digest()
    proof = assemble(inclusion_plan(3, 10), nodes)
    with pytest.raises(ValueError, match="too short"):
        root_from_inclusion(leaf, 3, 10, proof[:-1])
    with pytest.raises(ValueError, match="too long"):
        root_from_inclusion(leaf, 3, 10, [*proof, proof[0]])
    with pytest.raises(ValueError, match="not in a tree"):
        root_from_inclusion(leaf, 10, 10, proof)
    consistency = assemble(consistency_plan(3, 10), nodes)
    with pytest.raises(ValueError, match=r"too short|old root"):
        root_from_consistency(3, 10, rfc9162.mth(events[:3]), consistency[:-1])


def test_a_frontier_resumes_from_its_stored_roots() -> None:
    events = _events(45)
    first, nodes = _stored(events[:29])
    resumed = Frontier(29, [nodes[i] for i in Frontier.root_ids(29)])
    more = resumed.extend(events[29:])
    nodes.update({(level, index): h for level, index, h in more})
    assert resumed.root() == rfc9162.mth(events)
    _, all_nodes = _stored(events)
    assert nodes == all_nodes
    assert first.size == 29


def test_a_head_signed_with_another_key_is_refused() -> None:
    signer = HeadSigner(Ed25519PrivateKey.generate())
    forger = HeadSigner(Ed25519PrivateKey.generate())
    head = TreeHead(size=5, root=rfc9162.mth(_events(5)), timestamp_ms=1, previous=bytes(32))
    signed = signer.sign(head)
    assert signature_holds(signer.public_key, signed)
    forged = forger.sign(head)
    assert not signature_holds(signer.public_key, forged)
    # The forger's signature under the real key's id is refused as well.
    relabelled = type(forged)(head=head, key_id=signer.key_id, signature=forged.signature)
    assert not signature_holds(signer.public_key, relabelled)
    altered = type(signed)(
        head=TreeHead(size=6, root=head.root, timestamp_ms=1, previous=bytes(32)),
        key_id=signed.key_id,
        signature=signed.signature,
    )
    assert not signature_holds(signer.public_key, altered)
