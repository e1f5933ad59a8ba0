"""The bytes behind the ledger's integrity: event hashes, the Merkle tree, tree heads.

Pure functions, no I/O, so that the sealer, the proofs served by the API and an offline
verifier all compute the same thing from the same bytes. ``docs/integrity.md`` states every
encoding here byte for byte for implementations in other languages.

The tree follows RFC 9162 section 2.1 (the hashing of RFC 6962): a leaf is
``SHA-256(0x00 || event hash)``, an inner node ``SHA-256(0x01 || left || right)``, and a
tree of ``n`` leaves splits at the largest power of two below ``n``. Because of that split,
every subtree a proof needs is either *complete and aligned* (``2**level`` leaves starting
at a multiple of ``2**level``), which the store keeps as a node, or made of a few of them.
So a proof is planned here (which nodes, :func:`inclusion_plan`, :func:`consistency_plan`),
the nodes are read in one query, and the proof is assembled here (:func:`assemble`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "NodeId",
    "ProofPlan",
    "SignedHead",
    "TreeHead",
    "assemble",
    "consistency_plan",
    "event_hash_v1",
    "event_hash_v2",
    "head_from_json",
    "head_to_json",
    "inclusion_plan",
    "leaf_hash",
    "micros",
    "node_hash",
    "root_from_consistency",
    "root_from_inclusion",
    "subtree_nodes",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of a tree with no leaves (RFC 9162: the hash of the empty string)."""
_EVENT_V2 = b"programledger-event-v2\x00"
_HEAD_V1 = b"programledger-tree-head-v1\x00"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

NodeId = tuple[int, int]
"""A complete, aligned subtree: ``(level, index)`` covers leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 is a leaf."""


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (PostgreSQL keeps microseconds)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _field(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def event_hash_v2(
    *,
    prev_hash: bytes,
    position: int,
    event_id: UUID,
    stream_id: str,
    stream_type: str,
    version: int,
    program_id: UUID | None,
    event_type: str,
    schema_version: int,
    data: bytes,
    metadata: bytes,
    recorded_at: datetime,
) -> bytes:
    """Every column stored about an event, length-prefixed; ``data`` and ``metadata`` are
    the UTF-8 of their jsonb text form, byte for byte as PostgreSQL returns it."""
    return hashlib.sha256(
        b"".join(
            (
                _EVENT_V2,
                position.to_bytes(8, "big", signed=True),
                event_id.bytes,
                _field(stream_id.encode()),
                _field(stream_type.encode()),
                version.to_bytes(8, "big", signed=True),
                b"\x00" if program_id is None else b"\x01" + program_id.bytes,
                _field(event_type.encode()),
                schema_version.to_bytes(4, "big", signed=True),
                _field(data),
                _field(metadata),
                micros(recorded_at).to_bytes(8, "big", signed=True),
                _field(prev_hash),
            )
        )
    ).digest()


def event_hash_v1(
    *,
    prev_hash: bytes,
    event_id: UUID,
    stream_id: str,
    version: int,
    event_type: str,
    schema_version: int,
    data: bytes,
    metadata: bytes,
    recorded_at: datetime,
) -> bytes:
    """The first format (migration 0001): the text of a jsonb array, which leaves
    position, stream type and program id uncovered. Events written before migration 0006
    keep it; the Merkle tree still fixes their order."""
    text = b"[%s, %s, %d, %s, %d, %s, %s, %d]" % (
        _json_string(str(event_id)),
        _json_string(stream_id),
        version,
        _json_string(event_type),
        schema_version,
        data,
        metadata,
        micros(recorded_at),
    )
    return hashlib.sha256(prev_hash + text).digest()


def _json_string(value: str) -> bytes:
    return msgspec.json.encode(value)


def leaf_hash(event_hash: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + event_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_nodes(start: int, end: int) -> list[NodeId]:
    """The stored nodes that make up ``MTH(D[start:end])`` for a range the RFC's recursion
    produces (``start`` aligned to the range's size rounded up to a power of two)."""
    size = end - start
    if size <= 0:
        raise ValueError(f"empty subtree [{start}, {end})")
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return [(level, start >> level)]
    k = _split(size)
    return subtree_nodes(start, start + k) + subtree_nodes(start + k, end)


def _subtree_hash(start: int, end: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return nodes[(level, start >> level)]
    k = _split(size)
    return node_hash(_subtree_hash(start, start + k, nodes), _subtree_hash(start + k, end, nodes))


class ProofPlan(msgspec.Struct, frozen=True):
    """The subtrees whose hashes form a proof, in the proof's order, and the stored nodes
    they are made of."""

    ranges: tuple[tuple[int, int], ...]

    @property
    def nodes(self) -> set[NodeId]:
        return {node for start, end in self.ranges for node in subtree_nodes(start, end)}


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """RFC 9162 2.1.3.1 ``PATH(m, D[n])`` as subtree ranges, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    return ProofPlan(tuple(reversed(ranges)))


def consistency_plan(old_size: int, new_size: int) -> ProofPlan:
    """RFC 9162 2.1.4.1 ``PROOF(m, D[n])`` as subtree ranges, in the proof's order."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    ranges: list[tuple[int, int]] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                ranges.append((start, end))
            break
        k = _split(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            complete = False
    return ProofPlan(tuple(reversed(ranges)))


def assemble(plan: ProofPlan, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """The proof's hashes from the stored nodes the plan named."""
    return [_subtree_hash(start, end, nodes) for start, end in plan.ranges]


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2); compare it with a signed
    head's root. Raises ``ValueError`` for a proof of the wrong shape."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    r = leaf
    for left, p in _walk_up(index, size - 1, proof):
        r = node_hash(p, r) if left else node_hash(r, p)
    return r


def _walk_up(fn: int, sn: int, path: Sequence[bytes]) -> Iterator[tuple[bool, bytes]]:
    """RFC 9162's climb from a leaf (index ``fn`` of last index ``sn``): each proof hash,
    and whether it is the left sibling. Raises ``ValueError`` for a path of the wrong
    length."""
    for p in path:
        if sn == 0:
            raise ValueError("the proof is too long")
        if fn & 1 or fn == sn:
            yield True, p
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            yield False, p
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the proof is too short")


def root_from_consistency(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> bytes:
    """Check a consistency proof against the old root (RFC 9162 2.1.4.2) and return the new
    root it leads to; compare that with the new head's root. Raises ``ValueError`` when the
    proof does not hold for ``old_root``."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size == new_size:
        if proof:
            raise ValueError("a proof between equal sizes must be empty")
        return old_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    if not path:
        raise ValueError("the consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for left, c in _walk_up(fn, sn, path[1:]):
        if left:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
        else:
            sr = node_hash(sr, c)
    if fr != old_root:
        raise ValueError("the consistency proof does not lead to the old root")
    return sr


class Frontier:
    """The right edge of a growing tree: the roots of its complete subtrees, largest first.

    Appending a leaf completes at most ``log2(n)`` nodes, which it returns for storing, so
    the store always holds every complete node and any proof is a handful of reads.
    """

    __slots__ = ("_stack", "size")

    def __init__(self, size: int = 0, roots: Sequence[bytes] = ()) -> None:
        if len(roots) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} complete roots")
        self.size = size
        self._stack = list(roots)

    @staticmethod
    def root_ids(size: int) -> list[NodeId]:
        """The nodes :class:`Frontier` needs to resume at ``size``, largest first."""
        ids: list[NodeId] = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                ids.append((level, start >> level))
                start += 1 << level
        return ids

    def append(self, event_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; the nodes it completed as ``(level, index, hash)``, the leaf first."""
        index = self.size
        h = leaf_hash(event_hash)
        done = [(0, index, h)]
        level = 0
        while index >> level & 1:
            h = node_hash(self._stack.pop(), h)
            level += 1
            done.append((level, index >> level, h))
        self._stack.append(h)
        self.size += 1
        return done

    def extend(self, event_hashes: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """:meth:`append` for many leaves (the nodes level by level, each level in index
        order)."""
        start = self.size
        return [
            (level, (start >> level) + i, h)
            for level, hashes in enumerate(self.grow(event_hashes))
            for i, h in enumerate(hashes)
        ]

    def grow(self, event_hashes: Iterable[bytes]) -> list[list[bytes]]:
        """Add many leaves; per level, the hashes of the nodes they completed in index
        order: growing from ``a`` to ``b`` leaves completes exactly the nodes
        ``[a >> level, b >> level)`` of each level. The sealer's and ``verify``'s hot
        loop, so the hashing is inlined and no object is made per node."""
        sha256 = hashlib.sha256
        stack = self._stack
        levels: list[list[bytes]] = [[]]
        leaves = levels[0].append
        index = self.size
        for event_hash in event_hashes:
            h = sha256(b"\x00" + event_hash).digest()
            leaves(h)
            level = 0
            while index >> level & 1:
                h = sha256(b"\x01" + stack.pop() + h).digest()
                level += 1
                if level == len(levels):
                    levels.append([])
                levels[level].append(h)
            stack.append(h)
            index += 1
        self.size = index
        return levels

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        r = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            r = node_hash(left, r)
        return r


class TreeHead(msgspec.Struct, frozen=True, kw_only=True):
    """What the sealer signs: the tree's size and root, when, and the head before it."""

    size: int
    root: bytes
    timestamp_ms: int
    """Milliseconds since the Unix epoch when the head was made."""
    previous: bytes
    """:meth:`digest` of the head before this one; 32 zero bytes for the first."""

    def signed_bytes(self) -> bytes:
        """The exact bytes the Ed25519 signature covers."""
        return b"".join(
            (
                _HEAD_V1,
                self.size.to_bytes(8, "big"),
                self.root,
                self.timestamp_ms.to_bytes(8, "big"),
                self.previous,
            )
        )

    def digest(self) -> bytes:
        """What the next head names as its ``previous``."""
        return hashlib.sha256(self.signed_bytes()).digest()


class SignedHead(msgspec.Struct, frozen=True, kw_only=True):
    """A tree head with the Ed25519 signature over :meth:`TreeHead.signed_bytes`."""

    head: TreeHead
    key_id: bytes
    """SHA-256 of the raw 32-byte public key that signed it."""
    signature: bytes


def head_to_json(signed: SignedHead) -> dict[str, object]:
    """The published form of a signed head (NATS, exports, the CLI): hashes in hex."""
    head = signed.head
    return {
        "tree_size": head.size,
        "root_hash": head.root.hex(),
        "timestamp_ms": head.timestamp_ms,
        "previous": head.previous.hex(),
        "key_id": signed.key_id.hex(),
        "signature": signed.signature.hex(),
    }


def head_from_json(value: object) -> SignedHead:
    """The inverse of :func:`head_to_json`; ``ValueError`` says what is wrong."""
    if not isinstance(value, dict):
        raise ValueError("a signed head is a JSON object")
    try:
        return SignedHead(
            head=TreeHead(
                size=int(value["tree_size"]),
                root=bytes.fromhex(value["root_hash"]),
                timestamp_ms=int(value["timestamp_ms"]),
                previous=bytes.fromhex(value["previous"]),
            ),
            key_id=bytes.fromhex(value["key_id"]),
            signature=bytes.fromhex(value["signature"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a signed head: {exc!r}") from None
