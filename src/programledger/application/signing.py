"""Ed25519 signatures over tree heads: made by the sealer, checked by anyone with the
public key (``verify``, an offline verifier, an auditor's own tool).

The key never reaches the database: the sealer holds it in memory, the store keeps only
heads, signatures and the public key's id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from programledger.application.errors import OperationalError
from programledger.domain.integrity import SignedHead, TreeHead

__all__ = [
    "HeadSigner",
    "InvalidKey",
    "key_id",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
    "signature_holds",
]


class InvalidKey(OperationalError):
    """Key material that is not an Ed25519 key in a form we read."""


def load_private_key(text: str | bytes) -> Ed25519PrivateKey:
    """A PEM (PKCS#8) Ed25519 private key, or its 32-byte seed in base64 (what fits in an
    environment variable)."""
    raw = text.encode() if isinstance(text, str) else text
    if b"-----BEGIN" in raw:
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except ValueError as exc:
            raise InvalidKey(f"the PEM private key cannot be read: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidKey("the private key is not an Ed25519 key")
        return key
    try:
        seed = base64.b64decode(raw.strip(), validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != 32:
        raise InvalidKey(
            "expected a PEM Ed25519 private key or its 32-byte seed in base64 (44 characters)"
        )
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_public_key(text: str | bytes) -> Ed25519PublicKey:
    """A PEM (SubjectPublicKeyInfo) Ed25519 public key, or the raw 32 bytes in base64."""
    raw = text.encode() if isinstance(text, str) else text
    if b"-----BEGIN" in raw:
        try:
            key = serialization.load_pem_public_key(raw)
        except ValueError as exc:
            raise InvalidKey(f"the PEM public key cannot be read: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidKey("the public key is not an Ed25519 key")
        return key
    try:
        data = base64.b64decode(raw.strip(), validate=True)
    except binascii.Error:
        data = b""
    if len(data) != 32:
        raise InvalidKey("expected a PEM Ed25519 public key or its 32 raw bytes in base64")
    return Ed25519PublicKey.from_public_bytes(data)


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(_raw(public)).digest()


def public_key_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def signature_holds(public: Ed25519PublicKey, signed: SignedHead) -> bool:
    """Whether ``public`` signed exactly this head."""
    if signed.key_id != key_id(public):
        return False
    try:
        public.verify(signed.signature, signed.head.signed_bytes())
    except InvalidSignature:
        return False
    return True


class HeadSigner:
    """Signs heads with one private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_key = private.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, head: TreeHead) -> SignedHead:
        return SignedHead(
            head=head, key_id=self.key_id, signature=self._private.sign(head.signed_bytes())
        )
