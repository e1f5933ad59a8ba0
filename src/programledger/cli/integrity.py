"""``programledger proof ...`` and the ledger half of ``programledger verify``: signed tree
heads, inclusion and consistency proofs, and the Merkle tree checked against the events.

Proofs are printed as JSON (hashes in hex) so that an auditor's own tool can check them
with the public key alone; docs/integrity.md says how.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from programledger.cli.common import Failure, app, load_settings, run_command

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from programledger.application.ledger_audit import LedgerReport
    from programledger.bootstrap import Runtime
    from programledger.domain.integrity import SignedHead
    from programledger.settings import Settings

__all__ = [
    "check_ledger",
    "export_ledger_command",
    "import_command",
    "kept_heads",
    "proof_app",
    "read_public_key",
    "verify_offline",
]

proof_app = typer.Typer(
    help="Signed tree heads and Merkle proofs, as JSON, for auditors.", no_args_is_help=True
)
app.add_typer(proof_app, name="proof")


def read_public_key(path: Path) -> Ed25519PublicKey:
    """An auditor's copy of the public key (PEM, or 32 raw bytes in base64)."""
    from programledger.application.signing import InvalidKey, load_public_key

    try:
        return load_public_key(path.expanduser().read_bytes())
    except OSError as exc:
        raise Failure(f"cannot read the public key {path}: {exc}") from None
    except InvalidKey as exc:
        raise Failure(f"{path}: {exc}") from None


def kept_heads(path: Path) -> list[SignedHead]:
    """The signed heads an auditor kept: a head as ``proof head`` prints it, or an export
    (its manifest's head and signed heads)."""
    from programledger.domain.integrity import head_from_json

    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Failure(f"cannot read {path}: {exc}") from None
    try:
        try:
            first = json.loads(text.lstrip().split("\n", 1)[0])
        except ValueError:
            first = json.loads(text)  # a head printed over several lines
        if isinstance(first, dict) and "tree_size" in first:
            return [head_from_json(first)]
        if isinstance(first, dict) and "tree_head" in first:
            heads = [head_from_json(h) for h in first.get("signed_heads", [])]
            return heads or [head_from_json(first["tree_head"])]
    except ValueError as exc:
        raise Failure(f"{path} holds no signed head: {exc}") from None
    raise Failure(f"{path} holds no signed head: give a head or an export")


async def trusted_keys(runtime: Runtime, public_key: Path | None) -> list[Ed25519PublicKey]:
    """The keys heads must be signed with: the auditor's own copy when given; else the
    configured signing key's public half, and else the keys the store lists (which a
    superuser could have replaced: a note says so)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from programledger.adapters.keys import DEV_SIGNING_KEY_FILE, signing_key
    from programledger.adapters.postgres.ledger import LedgerStore
    from programledger.application.errors import OperationalError

    if public_key is not None:
        return [read_public_key(public_key)]
    settings = runtime.settings
    configured = settings.signing_key is not None or settings.signing_key_file is not None
    if configured or (settings.data_dir / DEV_SIGNING_KEY_FILE).exists():
        try:
            return [signing_key(settings).public_key()]
        except OperationalError:
            pass
    return [
        Ed25519PublicKey.from_public_bytes(raw)
        for raw in await LedgerStore(runtime.pool).public_keys()
    ]


async def check_ledger(
    runtime: Runtime, public_key: Path | None, against: Path | None
) -> LedgerReport:
    from programledger.adapters.postgres.ledger_verification import verify_ledger

    keys = await trusted_keys(runtime, public_key)
    kept = kept_heads(against) if against is not None else []
    async with runtime.pool.acquire() as conn:
        report = await verify_ledger(conn, keys, against=kept)
    if public_key is None:
        report.notes.append(
            "heads checked against the deployment's own key; pass --public-key with your "
            "copy to trust nothing the operator holds"
        )
    return report


def _open(settings: Settings) -> Any:
    from programledger.bootstrap import open_runtime

    return open_runtime(settings, need_nats=False)


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2))


@proof_app.command("head")
def head_command(
    size: Annotated[
        int | None, typer.Option("--size", help="The head of this tree size; default: the last.")
    ] = None,
) -> None:
    """Print a signed tree head (keep it: it is what a later rewrite is proved against)."""
    from programledger.adapters.postgres.ledger import LedgerStore
    from programledger.domain.integrity import head_to_json

    settings = load_settings()

    async def go() -> dict[str, object]:
        async with _open(settings) as runtime:
            ledger = LedgerStore(runtime.pool)
            signed = await ledger.head(size)
        if signed is None:
            raise Failure("no signed tree head" + ("" if size is None else f" of size {size}"))
        return head_to_json(signed)

    _echo_json(run_command("proof head", go))


@proof_app.command("inclusion")
def inclusion_command(
    position: Annotated[
        int | None, typer.Option("--position", help="The event's position.")
    ] = None,
    event_id: Annotated[str | None, typer.Option("--event-id", help="The event's id.")] = None,
    tree_size: Annotated[
        int | None, typer.Option("--tree-size", help="A signed head's size; default: the last.")
    ] = None,
) -> None:
    """Prove that an event is in the tree under a signed head (RFC 9162 inclusion proof)."""
    if (position is None) == (event_id is None):
        raise typer.BadParameter("give exactly one of --position and --event-id")
    try:
        wanted_id = UUID(event_id) if event_id is not None else None
    except ValueError:
        raise typer.BadParameter(f"{event_id!r} is not an event id (a UUID)") from None
    settings = load_settings()

    async def go() -> dict[str, object]:
        async with _open(settings) as runtime:
            return await inclusion_json(runtime, position, wanted_id, tree_size)

    _echo_json(run_command("proof inclusion", go))


async def inclusion_json(
    runtime: Runtime, position: int | None, event_id: UUID | None, tree_size: int | None
) -> dict[str, object]:
    from programledger.adapters.postgres.ledger import LedgerStore, ProofUnavailable
    from programledger.domain.integrity import head_to_json, leaf_hash

    ledger = LedgerStore(runtime.pool)
    signed = await ledger.head(tree_size)
    if signed is None:
        raise Failure(f"no signed tree head{'' if tree_size is None else f' of size {tree_size}'}")
    try:
        leaf = await ledger.leaf(position=position, event_id=event_id)
        path = await ledger.inclusion_proof(leaf.index, signed.head.size)
    except ProofUnavailable as exc:
        raise Failure(str(exc)) from None
    return {
        "position": leaf.position,
        "event_id": str(leaf.event_id),
        "event_hash": leaf.event_hash.hex(),
        "leaf_index": leaf.index,
        "leaf_hash": leaf_hash(leaf.event_hash).hex(),
        "tree_size": signed.head.size,
        "path": [h.hex() for h in path],
        "head": head_to_json(signed),
    }


@proof_app.command("consistency")
def consistency_command(
    from_size: Annotated[int, typer.Option("--from", help="The earlier head's size.")],
    to_size: Annotated[
        int | None, typer.Option("--to", help="The later head's size; default: the last.")
    ] = None,
) -> None:
    """Prove that the tree at --to extends the tree at --from (RFC 9162 consistency)."""
    from programledger.adapters.postgres.ledger import LedgerStore, ProofUnavailable
    from programledger.domain.integrity import head_to_json

    settings = load_settings()

    async def go() -> dict[str, object]:
        async with _open(settings) as runtime:
            ledger = LedgerStore(runtime.pool)
            new = await ledger.head(to_size)
            old = await ledger.head_at(from_size)
            if new is None or old is None:
                raise Failure("both sizes must be sizes of signed heads (see `proof head`)")
            try:
                path = await ledger.consistency_proof(old.head.size, new.head.size)
            except ProofUnavailable as exc:
                raise Failure(str(exc)) from None
        return {
            "from": head_to_json(old),
            "to": head_to_json(new),
            "path": [h.hex() for h in path],
        }

    _echo_json(run_command("proof consistency", go))


@proof_app.command("public-key")
def public_key_command() -> None:
    """Print the public key tree heads are signed with (PEM): keep a copy of your own."""
    from programledger.adapters.keys import signing_key
    from programledger.application.errors import OperationalError
    from programledger.application.signing import public_key_pem

    settings = load_settings()
    try:
        key = signing_key(settings)
    except OperationalError as exc:
        typer.echo(f"programledger proof public-key: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(public_key_pem(key.public_key()), nl=False)


def verify_offline(path: Path, public_key: Path | None, against: Path | None) -> LedgerReport:
    """A ledger export checked with the public key alone: no database, no settings."""
    from programledger.application.ledger_audit import verify_export, verify_program_export

    if public_key is None:
        raise typer.BadParameter("--offline needs --public-key: the key you trust")
    key = read_public_key(public_key)
    kept = kept_heads(against) if against is not None else []
    try:
        with path.expanduser().open("rb") as lines:
            first = lines.readline()
            lines.seek(0)
            if b'"record":"header"' in first:  # a program export (`programledger export`)
                return verify_program_export(lines, [key])
            return verify_export(lines, [key], against=kept)
    except OSError as exc:
        typer.echo(f"programledger verify: cannot read {path}: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("export-ledger")
def export_ledger_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
) -> None:
    """Export the whole ledger: a manifest (the signed tree head it was cut at, every
    signed head, the public keys) and every event with every stored column.

    `verify --offline` checks it with the public key alone; `import` restores it.
    """
    from programledger.adapters.postgres.ledger_export import export_ledger
    from programledger.cli.operations import _open_output

    settings = load_settings()

    async def go() -> int:
        lines = 0
        async with _open(settings) as runtime:
            with _open_output(output) as out:
                async for line in export_ledger(runtime.pool):
                    out.write(line)
                    lines += 1
        return lines - 1

    events = run_command("export-ledger", go)
    typer.echo(f"exported {events} events and their signed heads to {output}", err=True)


@app.command("import")
def import_command(
    source: Annotated[Path, typer.Argument(help="A file written by export-ledger.")],
) -> None:
    """Restore a ledger export into an empty store: the same positions, times, hashes and
    signed heads. Run as the schema's owner, then `programledger verify`."""
    from programledger.adapters.postgres.ledger_export import ImportRefused, import_ledger

    settings = load_settings()

    async def go() -> int:
        async with _open(settings) as runtime, runtime.pool.acquire() as conn:
            try:
                with source.expanduser().open("rb") as lines:
                    return await import_ledger(conn, lines)
            except ImportRefused as exc:
                raise Failure(str(exc)) from None
            except OSError as exc:
                raise Failure(f"cannot read {source}: {exc}") from None

    count = run_command("import", go)
    typer.echo(f"imported {count} events; run `programledger verify` to check the copy")
