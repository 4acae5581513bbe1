"""The Ed25519 key that signs evidence manifests and review entries.

One key per installation, at ``settings.evidence_key_path`` (default
``<data_dir>/keys/evidence-ed25519.pem``): PKCS#8 PEM, unencrypted, mode 0600, made on
first use. Creation is atomic and exclusive (written to a private temporary file, then
hard-linked to its name, which fails if another process got there first: that process's
key is then used), so every process of an installation signs with the same key.

Signatures are raw 64-byte Ed25519 signatures over the exact bytes of the file they
sign, checkable without Vigie::

    openssl pkeyutl -verify -pubin -inkey public_key.pem -rawin \\
        -in manifest.json -sigfile manifest.sig

The key's fingerprint is the SHA-256 of its DER SubjectPublicKeyInfo, as printed by
``openssl pkey -pubin -in public_key.pem -outform DER | sha256sum``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .files import fsync_dir, sha256_hex

__all__ = ["EvidenceKey", "load_public_key", "load_or_create_key", "public_key_sha256", "verify"]


@dataclass(frozen=True)
class EvidenceKey:
    """The signing key and its public half."""

    private: Ed25519PrivateKey
    path: Path

    def sign(self, data: bytes) -> bytes:
        """Raw 64-byte Ed25519 signature of ``data``."""
        return self.private.sign(data)

    @property
    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_sha256(self) -> str:
        """Fingerprint: SHA-256 (hex) of the DER SubjectPublicKeyInfo."""
        return public_key_sha256(self.private.public_key())


def public_key_sha256(key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of a public key's DER SubjectPublicKeyInfo."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return sha256_hex(der)


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Parse a PEM public key; ``ValueError`` unless it is an Ed25519 one."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 public key ({type(key).__name__})")
    return key


def verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is ``key``'s Ed25519 signature of ``data``."""
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def load_or_create_key(path: Path) -> EvidenceKey:
    """The key at ``path``, made (atomically, mode 0600) when there is none.

    Raises ``ValueError`` when the file exists but is not an unencrypted Ed25519 PKCS#8
    private key (it is never overwritten).
    """
    path = Path(path)
    if not path.exists():
        _create(path)
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 key ({type(key).__name__})")
    return EvidenceKey(key, path)


def _create(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # exclusive: fails when another process made the key first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
