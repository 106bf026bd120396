"""The example corpus: every case under tests/corpus/{good,bad}/<case>/.

A case is a ``config/`` folder that ``byok validate`` checks, and an
``expect.yaml``:

    exit: 1                       # expected exit code (0 for good cases)
    encrypt: [keys/a.yaml]        # files under config/ to sops-encrypt first,
                                  # their __SECRET__ replaced by a canary; an
                                  # entry {file, regex} sets encrypted_regex
    plaintext: [keys/b.yaml]      # files whose __BAIT__ becomes a bait key
    crlf: [a.yaml]                # rewritten with CRLF line ends
    bom: [a.yaml]                 # given a UTF-8 byte order mark
    count: 1                      # optional: exactly this many problems
    problems:                     # each must be reported (file under config/)
      - {file: a.yaml, line: 3, col: 5, code: schema, message: "substring"}

Plaintext never reaches the repository: secrets are made per test run and
pass through ``sops encrypt`` on stdin.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from byok_reconcile.cli import cli
from tests import canary

CORPUS = Path(__file__).parent / "corpus"


def _cases(kind: str) -> list[Path]:
    return sorted(p for p in (CORPUS / kind).iterdir() if (p / "config").is_dir())


def _expect(case: Path) -> dict[str, Any]:
    path = case / "expect.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text()) if path.exists() else {}
    return data or {}


def _prepare(case: Path, dest: Path, expect: dict[str, Any], request: Any) -> Path:
    config = dest / "config"
    shutil.copytree(case / "config", config)
    for name in expect.get("plaintext") or []:
        _edit(config / name, lambda t: t.replace("__BAIT__", canary.make_bait()))
    for name in expect.get("crlf") or []:
        _edit(config / name, lambda t: t.replace("\n", "\r\n"))
    for name in expect.get("bom") or []:
        path = config / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    encrypt = expect.get("encrypt") or []
    if encrypt:
        from tests.fixtures.sops import sops_encrypt

        ident = request.getfixturevalue("age_identity")
        for entry in encrypt:
            entry = entry if isinstance(entry, dict) else {"file": entry}
            target = config / entry["file"]
            plain = target.read_text().replace("__SECRET__", canary.make_secret())
            regex = entry.get("regex", "^apiKey$")
            sops_encrypt(
                plain, target, recipients=ident.recipient, encrypted_regex=regex
            )
    return config


def _edit(path: Path, change: Any) -> None:
    path.write_bytes(change(path.read_bytes().decode()).encode())


def _run(config: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, Any]]:
    monkeypatch.chdir(config.parent)
    result = CliRunner().invoke(cli, ["validate", "--format", "json", "config"])
    canary.assert_no_leak(result.output, "validate output")
    text = CliRunner().invoke(cli, ["validate", "config"])
    canary.assert_no_leak(text.output, "validate text output")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output
    )
    return result.exit_code, json.loads(result.output)


@pytest.mark.parametrize("case", _cases("good"), ids=lambda p: p.name)
def test_good(case: Path, tmp_path: Path, monkeypatch: Any, request: Any) -> None:
    expect = _expect(case)
    config = _prepare(case, tmp_path, expect, request)
    code, body = _run(config, monkeypatch)
    errors = [p for p in body["problems"] if p["severity"] == "error"]
    assert code == expect.get("exit", 0), errors
    assert not errors
    for want in expect.get("problems") or []:
        _assert_reported(want, body["problems"])


@pytest.mark.parametrize("case", _cases("bad"), ids=lambda p: p.name)
def test_bad(case: Path, tmp_path: Path, monkeypatch: Any, request: Any) -> None:
    expect = _expect(case)
    assert expect.get("problems"), f"{case.name}: expect.yaml lists no problem"
    config = _prepare(case, tmp_path, expect, request)
    code, body = _run(config, monkeypatch)
    assert code == expect.get("exit", 1), body["problems"]
    for want in expect["problems"]:
        _assert_reported(want, body["problems"])
    if "count" in expect:
        assert len(body["problems"]) == expect["count"], body["problems"]


def _assert_reported(want: dict[str, Any], problems: list[dict[str, Any]]) -> None:
    file = "config/" + want["file"]
    for got in problems:
        if (
            got["file"] == file
            and got["line"] == want.get("line", got["line"])
            and got["col"] == want.get("col", got["col"])
            and got["code"] == want.get("code", got["code"])
            and want.get("message", "") in got["message"]
            and want.get("hint", "") in (got.get("hint") or "")
            and got["severity"] == want.get("severity", "error")
        ):
            return
    shown = "\n".join(
        f"{p['file']}:{p['line']}:{p['col']} [{p['code']}] {p['message']}"
        for p in problems
    )
    pytest.fail(f"expected {want}\ngot:\n{shown}")


def test_corpus_is_large_enough() -> None:
    assert len(_cases("bad")) >= 40
    assert len(_cases("good")) >= 5
