"""Fake secrets that tests use, and the checks that they never leak.

Every secret a test hands to byok comes from :func:`make_secret`, so the
session knows them all and can look for them in output, logs and files. A
canary found anywhere but in sops ciphertext fails the test.
"""

from __future__ import annotations

import secrets
from pathlib import Path

CANARY_MARK = "BYOKTESTCANARY"
BAIT_MARK = "BYOKTESTBAIT"
_ISSUED: set[str] = set()
_BAIT: set[str] = set()


def make_secret(prefix: str = "sk-proj-") -> str:
    """A recognisable fake API key, unique to this test session."""
    value = f"{prefix}{CANARY_MARK}{secrets.token_hex(16)}T3BlbkFJdemo"
    _ISSUED.add(value)
    return value


def make_azure_secret() -> str:
    """A fake Azure key: 32 hex digits, registered as a canary."""
    value = secrets.token_hex(16)
    _ISSUED.add(value)
    return value


def make_bait(prefix: str = "sk-proj-") -> str:
    """A fake key that a test may write in plaintext to an input file (to
    prove byok rejects it) but that must never appear in any output."""
    value = f"{prefix}{BAIT_MARK}{secrets.token_hex(16)}T3BlbkFJdemo"
    _BAIT.add(value)
    return value


def issued() -> frozenset[str]:
    return frozenset(_ISSUED)


def find_leaks(text: str | bytes, *, bait: bool = True) -> list[str]:
    """The issued secrets (redacted) that appear in ``text``.

    With ``bait``, the plaintext baits count too (for outputs; input files
    may hold bait on purpose).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    hits = [s for s in _ISSUED if s in text]
    marks = (CANARY_MARK, BAIT_MARK) if bait else (CANARY_MARK,)
    hits += [m for m in marks if m in text]
    if bait:
        hits += [s for s in _BAIT if s in text]
    return sorted({h[:8] + "..." for h in hits})


def assert_no_leak(text: str | bytes, where: str = "output") -> None:
    leaks = find_leaks(text)
    assert not leaks, f"secret canary leaked into {where}: {leaks}"


def scan_tree(root: Path) -> list[str]:
    """Files under ``root`` that hold a canary in plaintext."""
    found: list[str] = []
    if not root.exists():
        return found
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if find_leaks(data, bait=False):
            found.append(str(path))
    return found
