"""A Merkle-tree verifier written from RFC 9162 (section 2.1) alone, independent of
``programledger.domain.integrity``: what an outside auditor's tool would do.

``mth``, ``path`` and ``proof`` are the RFC's recursive definitions over a full list of
leaf inputs (here: event hashes); ``inclusion_root`` and ``consistency_roots`` check a
proof given only sizes, hashes and the proof itself, by walking the same recursion top
down (the RFC's iterative algorithms in 2.1.3.2 and 2.1.4.2 compute the same).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return _h(b"")
    if len(d) == 1:
        return _h(b"\x00" + d[0])
    k = _k(len(d))
    return _h(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return _subproof(m, d, True)


def _subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _k(n)
    if m <= k:
        return [*_subproof(m, d[:k], b), mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), mth(d[:k])]


def inclusion_root(leaf_input: bytes, m: int, n: int, audit: Sequence[bytes]) -> bytes:
    """The root that ``audit`` proves leaf ``m`` of ``n`` under; raises on a bad shape."""
    rest = list(audit)

    def walk(m: int, n: int) -> bytes:
        if n == 1:
            return _h(b"\x00" + leaf_input)
        if not rest:
            raise ValueError("proof too short")
        sibling = rest.pop()
        k = _k(n)
        if m < k:
            return _h(b"\x01" + walk(m, k) + sibling)
        return _h(b"\x01" + sibling + walk(m - k, n - k))

    root = walk(m, n)
    if rest:
        raise ValueError("proof too long")
    return root


def consistency_roots(
    m: int, n: int, old_root: bytes, audit: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """The (old, new) roots that ``audit`` leads to, top down; compare both."""
    rest = list(audit)

    def walk(m: int, n: int, b: bool) -> tuple[bytes, bytes]:
        if m == n:
            if b:
                return old_root, old_root
            if not rest:
                raise ValueError("proof too short")
            node = rest.pop(0)
            return node, node
        k = _k(n)
        if not rest:
            raise ValueError("proof too short")
        sibling = rest.pop()
        if m <= k:
            old, new = walk(m, k, b)
            return old, _h(b"\x01" + new + sibling)
        old, new = walk(m - k, n - k, False)
        return _h(b"\x01" + sibling + old), _h(b"\x01" + sibling + new)

    old, new = walk(m, n, True)
    if rest:
        raise ValueError("proof too long")
    return old, new


def inclusion_root_hex(event_hash: str, m: int, n: int, audit: Sequence[str]) -> str:
    """:func:`inclusion_root` over a proof as the API and the CLI print it (hex)."""
    return inclusion_root(bytes.fromhex(event_hash), m, n, [bytes.fromhex(h) for h in audit]).hex()
