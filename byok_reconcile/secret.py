"""A decrypted secret that refuses to be printed.

:class:`Secret` holds a key in memory only. ``str()``, ``repr()`` and
formatting show the redacted form; :meth:`reveal` is the one way to the value,
and is called only where the value goes to a provider or is encrypted.
"""

from __future__ import annotations

import hashlib


def fingerprint(value: str) -> str:
    """``sha256:`` and the first 12 hex digits of the SHA-256 of ``value``."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def fingerprint(self) -> str:
        return fingerprint(self._value)

    @property
    def last4(self) -> str:
        return self._value[-4:] if len(self._value) >= 12 else ""

    def redacted(self) -> str:
        tail = f"...{self.last4}" if self.last4 else ""
        return f"{self.fingerprint}{tail}"

    def __repr__(self) -> str:
        return f"Secret({self.redacted()})"

    __str__ = redacted

    def __format__(self, spec: str) -> str:
        return self.redacted()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")
