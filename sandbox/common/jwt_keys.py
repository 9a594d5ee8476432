"""The sandbox's Salesforce JWT bearer key pair, made on first start beside the TLS files.

A Salesforce connected app holds the certificate (public key) of the integration's private key;
the ``salesforce_npsp`` connection signs its JWT assertions with that private key. The sandbox
makes one RSA 2048 pair per machine: the private key is the file the shipped connection names
(``.local/sandbox/salesforce_jwt.key``), the public key is handed to the Salesforce emulator's
``jwt_public_key`` setting when the sandbox is built. These are sandbox credentials, never used
against a real org.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_FILE = "salesforce_jwt.key"
_KEY_SIZE = 2048


@dataclass(frozen=True)
class JwtKeyPair:
    """Where the private key is (give it to the connection) and the public key's PEM (the emulator's)."""

    private_key: Path
    public_key: Path

    def public_pem(self) -> str:
        """Return the public key as PEM text."""
        return self.public_key.read_text()


def ensure_jwt_key(private_key: Path) -> JwtKeyPair:
    """Return the key pair at ``private_key`` (public key beside it, ``.pub``), making it if missing.

    Safe when several processes start at once: they serialise on a lock file, and the public key
    is written last, so its presence means the pair is complete. A private key left without its
    public half (an interrupted first start) is kept and its public half derived from it.
    """
    directory = private_key.parent
    directory.mkdir(parents=True, exist_ok=True)
    pair = JwtKeyPair(private_key, private_key.with_suffix(".pub"))
    with (directory / f".{private_key.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if pair.private_key.exists() and pair.public_key.exists():
            return pair
        if pair.private_key.exists():
            key = serialization.load_pem_private_key(pair.private_key.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{pair.private_key}: not an RSA private key; remove it to make a new pair")
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
            _write_private(pair.private_key, key)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pair.public_key.write_bytes(public)
    return pair


def _write_private(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM readable by its owner only (never world-readable)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    temporary.replace(path)
