"""The pipeline overlaps decryption and probing.

A key's check starts as soon as its secret is known, while other files are
still with sops. The secret source here stands in for sops only in its
timing: it hands out the second secret only once the emulator has seen the
first key's request, which can happen only if probing has already begun.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from byok_reconcile import keysource, pipeline
from byok_reconcile.errors import ByokError
from byok_reconcile.results import VALID
from byok_reconcile.secret import Secret
from byok_reconcile.testing import Emulator
from byok_reconcile.validate import ValidationResult
from tests.fixtures.emulator import add_openai_key
from tests.fixtures.store import make_config


def test_checks_start_before_every_secret_is_decrypted(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(["first", "second"])
    first = add_openai_key(emulator)
    second = add_openai_key(emulator)
    overlapped: list[bool] = []

    def resolve_each(cfg: Any, **_: Any) -> Iterator[tuple[str, Secret | ByokError]]:
        yield "first", Secret(first)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(r.api_key == first for r in emulator.requests):
                overlapped.append(True)
                break
            time.sleep(0.01)
        yield "second", Secret(second)

    monkeypatch.setattr(keysource, "resolve_each", resolve_each)
    monkeypatch.setattr(
        "byok_reconcile.validate.validate_paths",
        lambda paths: ValidationResult(config, (), ()),
    )
    options = pipeline.CheckOptions(resolve={"api.openai.com": emulator.url})
    result = pipeline.load_and_check(["unused"], options)

    assert overlapped == [True], "the first key was not probed while decrypting"
    assert [r.key for r in result.results] == ["first", "second"]
    assert all(r.verdict == VALID for r in result.results)
    assert list(result.secrets) == ["first", "second"]
    assert result.exit_code == 0
