"""Secrets kept as files: the tree-head signing key from settings, and the development
secrets a local deployment creates once in its data directory."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from programledger.application.errors import OperationalError
from programledger.application.signing import InvalidKey, load_private_key
from programledger.settings import PREFIX, Settings

__all__ = ["DEV_SIGNING_KEY_FILE", "SigningKeyUnavailable", "create_once", "signing_key"]

DEV_SIGNING_KEY_FILE = "dev-signing-key.pem"


class SigningKeyUnavailable(OperationalError):
    """No usable key to sign tree heads with."""


def create_once(path: Path, make: Callable[[], bytes]) -> None:
    """Create ``path`` (mode 0600) holding ``make()`` unless it exists.

    The file is written completely under a temporary name (``mkstemp`` creates it 0600)
    and then linked into place, so two processes starting together agree on one content
    and never read a half-written file.
    """
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(make())
        with contextlib.suppress(FileExistsError):  # another process won: use its file
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _new_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The key from ``PROGRAMLEDGER_SIGNING_KEY_FILE`` or ``PROGRAMLEDGER_SIGNING_KEY``; in
    development mode with neither, the data directory's own (created on first use)."""
    if settings.signing_key is not None:
        return _load(settings.signing_key, f"{PREFIX}SIGNING_KEY")
    path = settings.signing_key_file
    if path is None:
        if settings.mode != "development":
            raise SigningKeyUnavailable(
                f"{PREFIX}SIGNING_KEY_FILE or {PREFIX}SIGNING_KEY is required in production "
                "mode: the sealer signs tree heads with it (docs/integrity.md)"
            )
        path = settings.data_dir / DEV_SIGNING_KEY_FILE
        create_once(path, _new_key_pem)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SigningKeyUnavailable(f"cannot read the signing key {path}: {exc}") from None
    return _load(text, str(path))


def _load(text: str | bytes, where: str) -> Ed25519PrivateKey:
    try:
        return load_private_key(text)
    except InvalidKey as exc:
        raise SigningKeyUnavailable(f"{where}: {exc}") from None
