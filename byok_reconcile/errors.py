"""The one exception hierarchy of byok-reconcile.

Every error a user can meet is a :class:`ByokError`. Each class carries the
exit code of DESIGN.md, so the CLI maps any error to its code in one place.
Errors from libraries and subprocesses are translated at the boundary into
the most specific class here, with ``raise ... from exc``. Messages never hold
a secret: whatever could hold one is redacted before it gets here.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_CHANGES = 4


class ByokError(Exception):
    """Base of all expected errors. ``hint`` says what to do, if known."""

    exit_code = EXIT_INVALID

    def __init__(
        self, message: str, *, hint: str | None = None, file: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        tail = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.message}{tail}"


class UsageError(ByokError):
    """The command line is wrong."""

    exit_code = EXIT_USAGE


class ConfigError(ByokError):
    """The configuration is invalid (exit 1)."""

    exit_code = EXIT_INVALID


class UnavailableError(ByokError):
    """Something needed is unavailable (exit 3)."""

    exit_code = EXIT_UNAVAILABLE


class SopsError(UnavailableError):
    """sops could not decrypt a file (binary, key, MAC, timeout...)."""


class SopsNotFoundError(SopsError):
    """The sops binary is not on PATH."""


class DecryptionKeyError(SopsError):
    """No key available here can decrypt the file."""


class SopsMacMismatchError(SopsError):
    """The file was edited outside sops: its MAC does not match."""


class NotEncryptedError(ConfigError):
    """A file that must be sops-encrypted is not."""


class SopsTimeoutError(SopsError):
    """sops did not finish in time."""


class SecretNotFoundError(ConfigError):
    """A secret reference points at nothing (missing key, unset variable)."""


class SecretUnavailableError(UnavailableError):
    """A secret this environment should provide is missing (an unset or
    empty environment variable): the configuration itself is fine."""


class StoreError(UnavailableError):
    """The target store cannot be reached or used."""


class StoreConflictError(ConfigError):
    """The store changed since a saved plan was made, or ownership clashes."""


class StoreKeyError(UnavailableError):
    """No store key given, or the one given cannot open the stored secrets."""


class ProviderUnreachableError(UnavailableError):
    """A provider could not be reached."""
