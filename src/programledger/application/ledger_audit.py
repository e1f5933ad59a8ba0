"""The whole ledger as a file: its format, and checking it with nothing but a public key.

A ledger export (``programledger export --ledger``) is JSON Lines: a manifest (the tree
head it was cut at, every signed head up to it, the public keys), then every event with
every stored column, ``data`` and ``metadata`` byte for byte as stored. That is enough to
recompute every event hash, every stream chain and the whole Merkle tree, so
:func:`verify_export` needs no database, and ``programledger import`` restores a store
with the same positions, times and hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from programledger.application.export import ExportedEvent, ExportHeader, decode_line
from programledger.application.signing import key_id, signature_holds
from programledger.domain.integrity import (
    HASH_SIZE,
    Frontier,
    SignedHead,
    event_hash_v1,
    event_hash_v2,
    head_from_json,
    leaf_hash,
    root_from_inclusion,
)

__all__ = [
    "LEDGER_FORMAT",
    "LedgerEvent",
    "LedgerManifest",
    "LedgerReport",
    "check_head_chain",
    "decode_ledger_line",
    "head_roots",
    "read_export",
    "recompute_hash",
    "verify_export",
    "verify_program_export",
]

LEDGER_FORMAT = "programledger.ledger-export/1"
_MAX_PROBLEMS = 50


@dataclass(slots=True)
class LedgerReport:
    """What a ledger check found: problems make it fail, notes do not."""

    events: int = 0
    tree_size: int = 0
    heads: int = 0
    unsealed: int = 0
    """Events after the last signed head (the sealer has not reached them yet)."""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)


class LedgerManifest(msgspec.Struct, frozen=True, kw_only=True, tag="manifest", tag_field="record"):
    format: str
    exported_at: datetime
    through_position: int
    """Every event up to this position is in the file."""
    events: int
    tree_head: dict[str, object] | None
    """The last signed head when the export started (``head_to_json``); null: none yet."""
    signed_heads: list[dict[str, object]]
    """Every signed head up to ``tree_head``, oldest first."""
    public_keys: list[str]
    """The raw Ed25519 public keys (hex) the store lists: a convenience, not a trust root."""


class LedgerEvent(msgspec.Struct, frozen=True, kw_only=True, tag="event", tag_field="record"):
    """One stored event, every column; ``data``/``metadata`` as PostgreSQL returns them."""

    position: int
    event_id: UUID
    stream_id: str
    stream_type: str
    version: Annotated[int, msgspec.Meta(ge=1)]
    event_type: str
    schema_version: Annotated[int, msgspec.Meta(ge=1)]
    program_id: UUID | None
    recorded_at: datetime
    recorded_at_us: int
    """Microseconds since 1970: what the hash covers, exactly."""
    hash_version: Literal[1, 2]
    """The formats an append has written (docs/integrity.md); a file naming another is
    refused, as the store's own verification refuses it."""
    prev_hash: str
    hash: str
    data: msgspec.Raw
    metadata: msgspec.Raw


_decoder: msgspec.json.Decoder[LedgerManifest | LedgerEvent] = msgspec.json.Decoder(
    LedgerManifest | LedgerEvent
)


def decode_ledger_line(line: bytes) -> LedgerManifest | LedgerEvent:
    return _decoder.decode(line)


def recompute_hash(event: LedgerEvent) -> bytes:
    """The event's hash in its own format, from the exported bytes alone."""
    prev = bytes.fromhex(event.prev_hash)
    if event.hash_version == 1:
        return event_hash_v1(
            prev_hash=prev,
            event_id=event.event_id,
            stream_id=event.stream_id,
            version=event.version,
            event_type=event.event_type,
            schema_version=event.schema_version,
            data=bytes(event.data),
            metadata=bytes(event.metadata),
            recorded_at=event.recorded_at,
        )
    return event_hash_v2(
        prev_hash=prev,
        position=event.position,
        event_id=event.event_id,
        stream_id=event.stream_id,
        stream_type=event.stream_type,
        version=event.version,
        program_id=event.program_id,
        event_type=event.event_type,
        schema_version=event.schema_version,
        data=bytes(event.data),
        metadata=bytes(event.metadata),
        recorded_at=event.recorded_at,
    )


def check_head_chain(
    heads: Sequence[SignedHead], keys: Sequence[Ed25519PublicKey], report: LedgerReport
) -> None:
    """Every head signed by a trusted key, naming the one before it, time never back."""
    trusted = {key_id(k): k for k in keys}
    previous = bytes(HASH_SIZE)
    last_time = 0
    for signed in heads:
        head = signed.head
        key = trusted.get(signed.key_id)
        if key is None or not signature_holds(key, signed):
            report.problem(
                f"signed head of size {head.size}: the signature does not hold for a "
                "trusted key (forged or altered head)"
            )
        if head.previous != previous:
            report.problem(
                f"signed head of size {head.size}: it does not name the head before it "
                "(a head was removed, inserted or altered)"
            )
        if head.timestamp_ms < last_time:
            report.problem(f"signed head of size {head.size}: its time goes backwards")
        previous, last_time = head.digest(), head.timestamp_ms


def head_roots(
    heads: Sequence[SignedHead],
    keys: Sequence[Ed25519PublicKey],
    against: Sequence[SignedHead],
    report: LedgerReport,
) -> dict[int, list[tuple[str, bytes]]]:
    """Check the heads' chain and the kept heads' signatures; the roots the tree must have
    at each size, named for the messages."""
    report.heads = len(heads)
    check_head_chain(heads, keys, report)
    roots: dict[int, list[tuple[str, bytes]]] = {}
    for h in heads:
        roots.setdefault(h.head.size, []).append(
            (f"signed head of size {h.head.size}", h.head.root)
        )
    by_size = {h.head.size: h for h in heads}
    for kept in against:
        if not any(signature_holds(k, kept) for k in keys):
            report.problem(f"the kept head of size {kept.head.size} is not signed by a trusted key")
            continue
        same = by_size.get(kept.head.size)
        if same is not None and same.head.root != kept.head.root:
            report.problem(
                f"the kept head of size {kept.head.size} and the store's head of that size "
                "have different roots: the ledger was rewritten since"
            )
        roots.setdefault(kept.head.size, []).append(
            (f"the kept head of size {kept.head.size}", kept.head.root)
        )
    return roots


def read_export(lines: Iterable[bytes]) -> tuple[LedgerManifest, Iterator[LedgerEvent]]:
    """The manifest, and the events as they are read; ``ValueError`` names a bad line."""
    it = iter(lines)
    try:
        manifest = decode_ledger_line(next(it))
    except (StopIteration, msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(
            f"the file does not start with a ledger export manifest: {exc!r}"
        ) from None
    if not isinstance(manifest, LedgerManifest) or manifest.format != LEDGER_FORMAT:
        raise ValueError(f"the file is not a {LEDGER_FORMAT} export")

    def events() -> Iterator[LedgerEvent]:
        for number, line in enumerate(it, start=2):
            if not line.strip():
                continue
            try:
                event = decode_ledger_line(line)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise ValueError(f"line {number} is not an exported event: {exc}") from None
            if not isinstance(event, LedgerEvent):
                raise ValueError(f"line {number}: a second manifest")
            yield event

    return manifest, events()


def verify_export(
    lines: Iterable[bytes],
    keys: Sequence[Ed25519PublicKey],
    *,
    against: Sequence[SignedHead] = (),
) -> LedgerReport:
    """Check a ledger export offline: every hash recomputed from the exported bytes, every
    stream chain, the tree rebuilt and compared with every signed head in the file and in
    ``against`` (heads kept from earlier: the file must extend them)."""
    report = LedgerReport()
    try:
        manifest, events = read_export(lines)
        heads = [head_from_json(h) for h in manifest.signed_heads]
        cut = head_from_json(manifest.tree_head) if manifest.tree_head is not None else None
    except ValueError as exc:
        report.problem(str(exc))
        return report
    if cut is not None and (not heads or heads[-1] != cut):
        report.problem("the manifest's tree head is not the last of its signed heads")
    roots = head_roots(heads, keys, against, report)
    covered = cut.head.size if cut is not None else 0
    frontier = Frontier()
    chains: dict[str, tuple[int, bytes, int]] = {}
    last_position = 0
    try:
        for event in events:
            report.events += 1
            _check_event(event, chains, last_position, report)
            last_position = event.position
            if frontier.size >= covered:
                report.unsealed += 1
                continue
            frontier.extend((bytes.fromhex(event.hash),))
            for what, root in roots.get(frontier.size, ()):
                if frontier.root() != root:
                    report.problem(
                        f"{what}: the events give another root (an event under it was "
                        "changed, removed, added or reordered)"
                    )
    except ValueError as exc:
        report.problem(str(exc))
        return report
    report.tree_size = frontier.size
    if report.events != manifest.events:
        report.problem(
            f"the manifest announces {manifest.events} events but the file holds {report.events}"
        )
    for size, entries in sorted(roots.items()):
        if size > frontier.size:
            for what, _ in entries:
                report.problem(
                    f"{what} covers {size} events but only {frontier.size} of them are in the "
                    "file (events were removed since, or the file is cut short)"
                )
    if cut is None:
        report.notes.append("the export holds no signed head: only the stream chains vouch for it")
    return report


def _check_event(
    event: LedgerEvent,
    chains: dict[str, tuple[int, bytes, int]],
    last_position: int,
    report: LedgerReport,
) -> None:
    where = f"{event.stream_id} version {event.version} (position {event.position})"
    if event.position <= last_position:
        report.problem(f"{where}: positions are not in increasing order")
    version, previous, hash_version = chains.get(event.stream_id, (0, b"", 1))
    if event.version != version + 1:
        report.problem(f"{where}: version {version + 1} is missing")
    if bytes.fromhex(event.prev_hash) != previous:
        report.problem(f"{where}: the link to the previous event does not match")
    if event.hash_version < hash_version:
        report.problem(f"{where}: the event's hash format went back to 1")
    if recompute_hash(event) != bytes.fromhex(event.hash):
        report.problem(f"{where}: the event's content does not match its hash")
    chains[event.stream_id] = (event.version, bytes.fromhex(event.hash), event.hash_version)


def verify_program_export(lines: Iterable[bytes], keys: Sequence[Ed25519PublicKey]) -> LedgerReport:
    """Check a program export (``programledger export``) offline: its tree head's signature,
    and every event's inclusion proof up to that head's root. Its data is decoded (upcast)
    for reading, so this proves which event hashes are in the signed ledger; a ledger
    export also proves each hash from the stored bytes."""
    report = LedgerReport()
    it = iter(lines)
    try:
        header = decode_line(next(it))
    except (StopIteration, msgspec.ValidationError, msgspec.DecodeError) as exc:
        report.problem(f"the file does not start with a program export header: {exc!r}")
        return report
    if not isinstance(header, ExportHeader) or header.tree_head is None:
        report.problem("the program export carries no signed tree head: nothing to prove")
        return report
    signed = head_from_json(header.tree_head)
    report.heads = 1
    report.tree_size = signed.head.size
    if not any(signature_holds(k, signed) for k in keys):
        report.problem(
            f"signed head of size {signed.head.size}: the signature does not hold for a "
            "trusted key (forged or altered head)"
        )
    for line in it:
        if not line.strip():
            continue
        event = decode_line(line)
        if not isinstance(event, ExportedEvent):
            report.problem("a second header")
            return report
        report.events += 1
        where = f"{event.stream_id} version {event.version} (position {event.position})"
        if event.leaf_index is None or event.inclusion_proof is None:
            report.problem(f"{where}: no inclusion proof")
            continue
        try:
            root = root_from_inclusion(
                leaf_hash(bytes.fromhex(event.hash)),
                event.leaf_index,
                signed.head.size,
                [bytes.fromhex(h) for h in event.inclusion_proof],
            )
        except ValueError as exc:
            report.problem(f"{where}: {exc}")
            continue
        if root != signed.head.root:
            report.problem(f"{where}: its inclusion proof does not lead to the signed root")
    if header.events != report.events:
        report.problem(
            f"the header announces {header.events} events but the file holds {report.events}"
        )
    return report
