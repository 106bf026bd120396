"""Real command output through every reporter: goldens and the JSON schema.

Each command runs through the CLI on a small configuration in tmp_path (cwd
there, so the paths in the output are the same on every machine). Check and
apply talk to the loopback emulator, plan/apply/status to a sqlite store.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result

from byok_reconcile import output
from byok_reconcile.cli import cli
from byok_reconcile.testing.config import EmulatedKey
from byok_reconcile.testing.emulator import Emulator
from tests.canary import assert_no_leak, make_bait, make_secret
from tests.test_output import check_golden

ROOT = Path(__file__).parent.parent
SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
RECIPIENT = "age1qftvshwhfr7n6y0yvce2hk7aegcf4xfydrl5vm8l0nmyytqhnyaqqpuh06"

KEYS = """\
apiVersion: byok/v1
kind: Key
metadata: {name: prod}
spec:
  provider: openai
  apiKey: {fromEnv: PROD_KEY}
  models: [gpt-4o]
---
apiVersion: byok/v1
kind: Key
metadata: {name: revoked}
spec:
  provider: openai
  apiKey: {fromEnv: REVOKED_KEY}
  models: [gpt-4o-mini]
"""
MAPPING = """\
apiVersion: byok/v1
kind: FeatureMapping
metadata: {name: default}
spec:
  features:
    chat: {key: prod, model: gpt-4o}
    summaries: {key: revoked, model: gpt-4o-mini}
"""
# A representative failing config: a plaintext key, a typo in a property,
# a reference to a key that does not exist, and a model the key lacks.
BAD_KEYS = """\
apiVersion: byok/v1
kind: Key
metadata: {{name: prod}}
spec:
  provider: openai
  apiKey: {bait}
  modles: [gpt-4o]
---
apiVersion: byok/v1
kind: Key
metadata: {{name: backup}}
spec:
  provider: openai
  apiKey: {{fromEnv: BACKUP_KEY}}
  models: [gpt-4o-mini]
"""
BAD_MAPPING = """\
apiVersion: byok/v1
kind: FeatureMapping
metadata: {name: default}
spec:
  features:
    chat: {key: prdo, model: gpt-4o}
    summaries: {key: backup, model: gpt-4o}
"""


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def repo(tmp_path: Path, emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``cfg/``: ``prod`` works, ``revoked`` is refused by the provider."""
    good = make_secret()
    emu.add_key(EmulatedKey(secret=good))
    monkeypatch.setenv("PROD_KEY", good)
    monkeypatch.setenv("REVOKED_KEY", make_secret())
    monkeypatch.setenv("BYOK_STORE_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "keys.yaml").write_text(KEYS)
    (tmp_path / "cfg" / "mapping.yaml").write_text(MAPPING)
    return tmp_path / "cfg"


@pytest.fixture
def bad_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "keys.yaml").write_text(BAD_KEYS.format(bait=make_bait()))
    (tmp_path / "bad" / "mapping.yaml").write_text(BAD_MAPPING)
    return tmp_path / "bad"


def byok(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert_no_leak(result.output, f"byok {args[0]} stdout")
    assert_no_leak(result.stderr, f"byok {args[0]} stderr")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception
    )
    return result


def commands(emu: Emulator) -> dict[str, list[str]]:
    """Each command's argv (``--format`` is added by the tests)."""
    store = "sqlite:///store.db"
    check = ["--resolve", f"api.openai.com={emu.url}"]
    return {
        "validate": ["validate", "cfg"],
        "check": ["check", "cfg", *check],
        "render": ["render", "cfg", "-o", "artifact.json", *check],
        "plan": ["plan", "cfg", "--target", store],
        "apply": ["apply", "cfg", "--target", store, "--no-check"],
        "status": ["status", "--target", store],
        "init": ["init", "scaffold", "--age-recipient", RECIPIENT],
    }


@pytest.mark.parametrize(
    "name", ["validate", "check", "render", "plan", "apply", "status", "init"]
)
def test_every_command_json_matches_the_schema(
    repo: Path, emu: Emulator, name: str
) -> None:
    argv = commands(emu)[name]
    if name == "status":
        byok(*commands(emu)["apply"])
    result = byok(*argv, "--format", "json")
    body = json.loads(result.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(body)
    assert body["command"] == name
    assert body["exitCode"] == result.exit_code


def test_check_reports_through_every_format(repo: Path, emu: Emulator) -> None:
    argv = commands(emu)["check"]
    results = {fmt: byok(*argv, "--format", fmt) for fmt in output.FORMATS}
    assert {r.exit_code for r in results.values()} == {1}
    github = results["github"].output.splitlines()
    revoked = [ln for ln in github if ln.startswith("::error ") and "revoked" in ln]
    assert len(revoked) == 1
    assert revoked[0].startswith("::error file=cfg/keys.yaml,line=")
    assert "| revoked | openai | invalid_key" in results["markdown"].output


@pytest.mark.parametrize("fmt", output.FORMATS)
def test_failing_config_golden(bad_repo: Path, fmt: str) -> None:
    result = byok("validate", "bad", "--format", fmt)
    assert result.exit_code == 1
    check_golden(f"validate-bad.{fmt}", result.output)
    if fmt == "json":
        jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(result.output))


def test_failing_config_fills_the_step_summary(
    bad_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    byok("validate", "bad")
    text = summary.read_text()
    assert_no_leak(text, "step summary")
    assert "### byok validate: failed" in text
    assert "bad/mapping.yaml:" in text


def test_verbose_logs_go_to_stderr_and_quiet_silences_them(
    repo: Path, emu: Emulator
) -> None:
    loud = byok(*commands(emu)["check"], "-vv", "--format", "json")
    assert "byok.provider: INFO: checking key prod" in loud.stderr
    json.loads(loud.stdout)  # logs never mix into the machine output
    quiet = byok(*commands(emu)["check"], "-q")
    assert "INFO" not in quiet.stderr
