"""Secrets at rest: AES-256-GCM under the operator's store key.

The store key is 32 random bytes, given as base64 (44 characters) or hex (64
characters) in ``BYOK_STORE_KEY`` or in a file named by ``--store-key-file``.
Each ciphertext is stored with its 12-byte nonce and the id of the store key
that made it (the first 8 hex digits of the key's SHA-256). The associated
data binds a ciphertext to its row, so a ciphertext copied onto another key's
row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from byok_reconcile.errors import StoreKeyError
from byok_reconcile.secret import Secret

ENV_VAR = "BYOK_STORE_KEY"
MAKE_KEY = (
    "python -c 'import os,base64;"
    "print(base64.b64encode(os.urandom(32)).decode())'"
)
NONCE_BYTES = 12


@dataclass(frozen=True)
class Sealed:
    """One encrypted secret as it sits in the store."""

    ciphertext: bytes
    nonce: bytes
    key_id: str


class StoreKey:
    """A 32-byte AES-256-GCM key. Never printed; only its id is shown."""

    __slots__ = ("_raw", "key_id")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise StoreKeyError(
                f"the store key must be 32 bytes, got {len(raw)}",
                hint=f"make one with: {MAKE_KEY}",
            )
        self._raw = raw
        self.key_id = hashlib.sha256(raw).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"StoreKey(id={self.key_id})"

    def seal(self, secret: Secret, aad: bytes) -> Sealed:
        """Encrypt ``secret`` bound to ``aad`` under a fresh random nonce."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(NONCE_BYTES)
        data = AESGCM(self._raw).encrypt(nonce, secret.reveal().encode(), aad)
        return Sealed(data, nonce, self.key_id)

    def open(self, sealed: Sealed, aad: bytes, *, what: str) -> Secret:
        """Decrypt ``sealed``; a wrong key or a moved ciphertext is an error."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if sealed.key_id != self.key_id:
            raise StoreKeyError(
                f"{what} is encrypted under store key {sealed.key_id}, "
                f"but the key given is {self.key_id}",
                hint="give the store key this store was written with",
            )
        try:
            plain = AESGCM(self._raw).decrypt(sealed.nonce, sealed.ciphertext, aad)
        except InvalidTag as exc:
            raise StoreKeyError(
                f"{what} does not decrypt: the ciphertext was altered or moved",
                hint="re-run apply to rewrite it from the configuration",
            ) from exc
        return Secret(plain.decode())


def row_aad(store_id: str, name: str) -> bytes:
    """Associated data that binds a ciphertext to one key row of one store."""
    return f"byok/v1\0{store_id}\0key\0{name}".encode()


def parse_key(text: str, *, origin: str) -> StoreKey:
    """Decode a store key written as base64 or as 64 hex digits."""
    text = text.strip()
    raw: bytes | None = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise StoreKeyError(
            f"the store key in {origin} is not 32 bytes of base64 or hex",
            hint=f"make one with: {MAKE_KEY}",
        )
    return StoreKey(raw)


def load_key(
    key_file: str | Path | None, env: Mapping[str, str] | None = None
) -> StoreKey:
    """The store key from ``key_file``, else from ``BYOK_STORE_KEY``."""
    if key_file is not None:
        try:
            text = Path(key_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreKeyError(
                f"cannot read the store key file {key_file}: "
                f"{getattr(exc, 'strerror', None) or 'not ASCII text'}",
                hint=f"make one with: {MAKE_KEY} > {key_file}",
            ) from exc
        return parse_key(text, origin=str(key_file))
    value = (env if env is not None else os.environ).get(ENV_VAR)
    if not value:
        raise StoreKeyError(
            f"no store key: set {ENV_VAR} or pass --store-key-file",
            hint=f"make one with: {MAKE_KEY}, and keep it in your secret store",
        )
    return parse_key(value, origin=ENV_VAR)
