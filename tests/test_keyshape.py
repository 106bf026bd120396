"""The key-shape guard: keys are hidden, names and digests are not."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from byok_reconcile.keyshape import HIDDEN, looks_like_key, shown
from tests import canary


@pytest.mark.parametrize(
    "value",
    [
        canary.make_bait(),
        secrets.token_hex(16),  # an Azure key: 32 hex digits
        "a" + secrets.token_hex(20) + "z",
        "sk-" + secrets.token_urlsafe(24),
        "key " + secrets.token_hex(16) + " in a sentence",
    ],
)
def test_keys_are_hidden(value: str) -> None:
    assert looks_like_key(value)
    assert shown(value) == HIDDEN


@pytest.mark.parametrize(
    "value",
    [
        hashlib.sha1(b"commit").hexdigest(),  # a git commit in a label
        hashlib.sha256(b"file").hexdigest(),  # a checksum
        "gpt-4o-2024-08-06",
        "meta-llama/Llama-3.1-8B-Instruct",
        "text-embedding-3-small",
        "org-DEMOtestautomation",
        "risk-assessment-copilot",
    ],
)
def test_names_and_digests_are_shown(value: str) -> None:
    assert not looks_like_key(value)
    assert shown(value) == f"'{value}'"
