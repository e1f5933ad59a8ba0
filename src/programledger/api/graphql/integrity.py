"""The ledger's proofs for auditors: signed tree heads, inclusion and consistency proofs,
and the public keys heads are signed with. Hashes are lowercase hex; a client checks a
proof with RFC 9162's algorithms and the public key alone (docs/integrity.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import strawberry
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from strawberry.exceptions import StrawberryGraphQLError

from programledger.adapters.postgres.ledger import LedgerStore, ProofUnavailable
from programledger.api.auth import Capability
from programledger.api.graphql.context import ApiInfo
from programledger.api.graphql.permissions import allowed
from programledger.api.graphql.types import SafeInt
from programledger.application.signing import key_id
from programledger.domain.integrity import SignedHead, leaf_hash

__all__ = ["IntegrityQueries"]

_MAX_HEADS = 500


def _bad_input(message: str) -> StrawberryGraphQLError:
    return StrawberryGraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


@strawberry.type(name="SignedTreeHead", description="A Merkle tree head signed with Ed25519.")
class SignedTreeHeadType:
    tree_size: SafeInt
    root_hash: str
    timestamp: datetime = strawberry.field(description="When the sealer made the head.")
    timestamp_ms: SafeInt = strawberry.field(description="The signed time, ms since 1970.")
    previous: str = strawberry.field(description="SHA-256 of the previous head's signed bytes.")
    key_id: str = strawberry.field(description="SHA-256 of the signing key's 32 raw bytes.")
    signature: str

    @staticmethod
    def of(signed: SignedHead) -> SignedTreeHeadType:
        head = signed.head
        return SignedTreeHeadType(
            tree_size=SafeInt(head.size),
            root_hash=head.root.hex(),
            timestamp=datetime.fromtimestamp(head.timestamp_ms / 1000, UTC),
            timestamp_ms=SafeInt(head.timestamp_ms),
            previous=head.previous.hex(),
            key_id=signed.key_id.hex(),
            signature=signed.signature.hex(),
        )


@strawberry.type(name="TreeHeadEdge")
class TreeHeadEdge:
    cursor: str
    node: SignedTreeHeadType


@strawberry.type(name="TreeHeadPageInfo")
class TreeHeadPageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(name="TreeHeadConnection", description="Signed heads, oldest first.")
class TreeHeadConnection:
    edges: list[TreeHeadEdge]
    nodes: list[SignedTreeHeadType]
    page_info: TreeHeadPageInfo
    total_count: int


@strawberry.type(name="InclusionProof")
class InclusionProofType:
    event_id: UUID
    position: SafeInt
    leaf_index: SafeInt
    event_hash: str
    leaf_hash: str = strawberry.field(description="SHA-256(0x00 || event hash).")
    tree_size: SafeInt
    path: list[str] = strawberry.field(description="RFC 9162 inclusion path, leaf side first.")
    head: SignedTreeHeadType


@strawberry.type(name="ConsistencyProof")
class ConsistencyProofType:
    from_size: SafeInt
    to_size: SafeInt
    path: list[str] = strawberry.field(description="RFC 9162 consistency proof.")
    from_head: SignedTreeHeadType
    to_head: SignedTreeHeadType


@strawberry.type(name="LedgerPublicKey")
class LedgerPublicKeyType:
    key_id: str
    public_key: str = strawberry.field(description="The 32 raw Ed25519 bytes in hex.")


def _ledger(info: ApiInfo) -> LedgerStore:
    return LedgerStore(info.context.services.pool)


async def _head(ledger: LedgerStore, size: int | None) -> SignedHead:
    signed = await ledger.head(size)
    if signed is None:
        raise _bad_input(
            "no signed tree head yet" if size is None else f"no signed tree head of size {size}"
        )
    return signed


async def _ledger_head(info: ApiInfo) -> SignedTreeHeadType | None:
    signed = await _ledger(info).latest_head()
    return None if signed is None else SignedTreeHeadType.of(signed)


async def _tree_heads(
    info: ApiInfo, first: int = 50, after: str | None = None
) -> TreeHeadConnection:
    if not 1 <= first <= _MAX_HEADS:
        raise _bad_input(f"first must be between 1 and {_MAX_HEADS}")
    try:
        after_size = -1 if after is None else int(after)
    except ValueError:
        raise _bad_input(f"after {after!r} is not a cursor from treeHeads") from None
    ledger = _ledger(info)
    heads = await ledger.heads(after_size=after_size, limit=first + 1)
    page = heads[:first]
    nodes = [SignedTreeHeadType.of(h) for h in page]
    return TreeHeadConnection(
        edges=[TreeHeadEdge(cursor=str(n.tree_size), node=n) for n in nodes],
        nodes=nodes,
        page_info=TreeHeadPageInfo(
            has_next_page=len(heads) > first,
            end_cursor=str(page[-1].head.size) if page else None,
        ),
        total_count=await ledger.count_heads(),
    )


async def _inclusion_proof(
    info: ApiInfo,
    event_id: UUID | None = None,
    position: SafeInt | None = None,
    tree_size: SafeInt | None = None,
) -> InclusionProofType:
    if (event_id is None) == (position is None):
        raise _bad_input("give exactly one of eventId and position")
    ledger = _ledger(info)
    signed = await _head(ledger, tree_size)
    try:
        leaf = await ledger.leaf(position=position, event_id=event_id)
        path = await ledger.inclusion_proof(leaf.index, signed.head.size)
    except ProofUnavailable as exc:
        raise _bad_input(str(exc)) from None
    return InclusionProofType(
        event_id=leaf.event_id,
        position=SafeInt(leaf.position),
        leaf_index=SafeInt(leaf.index),
        event_hash=leaf.event_hash.hex(),
        leaf_hash=leaf_hash(leaf.event_hash).hex(),
        tree_size=SafeInt(signed.head.size),
        path=[h.hex() for h in path],
        head=SignedTreeHeadType.of(signed),
    )


async def _consistency_proof(
    info: ApiInfo, from_size: SafeInt, to_size: SafeInt | None = None
) -> ConsistencyProofType:
    ledger = _ledger(info)
    old = await _head(ledger, from_size)
    new = await _head(ledger, to_size)
    try:
        path = await ledger.consistency_proof(old.head.size, new.head.size)
    except ProofUnavailable as exc:
        raise _bad_input(str(exc)) from None
    return ConsistencyProofType(
        from_size=SafeInt(old.head.size),
        to_size=SafeInt(new.head.size),
        path=[h.hex() for h in path],
        from_head=SignedTreeHeadType.of(old),
        to_head=SignedTreeHeadType.of(new),
    )


async def _public_keys(info: ApiInfo) -> list[LedgerPublicKeyType]:
    return [
        LedgerPublicKeyType(
            key_id=key_id(Ed25519PublicKey.from_public_bytes(raw)).hex(), public_key=raw.hex()
        )
        for raw in await _ledger(info).public_keys()
    ]


def _auditor() -> list[strawberry.extensions.FieldExtension]:
    return [allowed(Capability.AUDIT)]


@strawberry.type
class IntegrityQueries:
    ledger_head: SignedTreeHeadType | None = strawberry.field(
        resolver=_ledger_head,
        extensions=_auditor(),
        description="The last signed tree head: keep it to prove a later rewrite.",
    )
    tree_heads: TreeHeadConnection = strawberry.field(
        resolver=_tree_heads,
        extensions=_auditor(),
        description="Every signed tree head, oldest first (first at most 500).",
    )
    inclusion_proof: InclusionProofType = strawberry.field(
        resolver=_inclusion_proof,
        extensions=_auditor(),
        description="Proof that an event (eventId or position) is under the signed head of "
        "treeSize (default: the last).",
    )
    consistency_proof: ConsistencyProofType = strawberry.field(
        resolver=_consistency_proof,
        extensions=_auditor(),
        description="Proof that the tree at toSize (default: the last head) extends the "
        "tree at fromSize; both must be sizes of signed heads.",
    )
    ledger_public_keys: list[LedgerPublicKeyType] = strawberry.field(
        resolver=_public_keys,
        extensions=_auditor(),
        description="The keys heads were signed with, as the store lists them; check "
        "against a copy of your own.",
    )
