"""byok plan / apply / status / store rotate-key through the command line."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from byok_reconcile.cli import cli
from tests import canary

KEYS = """\
apiVersion: byok/v1
kind: Key
metadata: {name: openai-prod}
spec:
  provider: openai
  apiKey: {fromEnv: OPENAI_PROD_KEY}
  models: [gpt-4o, gpt-4o-mini]
---
apiVersion: byok/v1
kind: Key
metadata: {name: openai-dev}
spec:
  provider: openai
  apiKey: {fromEnv: BYOKT_DEV_KEY}
  models: [gpt-4o-mini]
"""
MAPPING = """\
apiVersion: byok/v1
kind: FeatureMapping
metadata: {name: default}
spec:
  features:
    test-generation: {key: openai-prod, model: gpt-4o}
    copilot: {key: openai-dev, model: gpt-4o-mini}
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "keys.yaml").write_text(KEYS)
    (cfg / "mapping.yaml").write_text(MAPPING)
    monkeypatch.setenv("OPENAI_PROD_KEY", canary.make_secret())
    monkeypatch.setenv("BYOKT_DEV_KEY", canary.make_secret())
    monkeypatch.setenv("BYOK_STORE_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.chdir(tmp_path)
    return cfg


def byok(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    canary.assert_no_leak(result.output, f"byok {args[0]} output")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception
    )
    return result


def _apply(repo: Path, url: str, *extra: str) -> Result:
    return byok("apply", str(repo), "--target", url, "--no-check",
                "--source", "app", *extra)


def test_plan_then_apply_then_no_changes(repo: Path, store_url: str) -> None:
    plan = byok("plan", str(repo), "--target", store_url, "--source", "app",
                "--detailed-exitcode")
    assert plan.exit_code == 4, plan.output
    assert "+ create key openai-prod" in plan.output
    assert "4 to create" in plan.output

    applied = _apply(repo, store_url)
    assert applied.exit_code == 0, applied.output
    assert "2 created" not in applied.output and "4 created" in applied.output

    again = byok("plan", str(repo), "--target", store_url, "--source", "app",
                 "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes" in again.output


def test_plan_json_shows_fingerprint_change_only(
    repo: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply(repo, sqlite_url)
    monkeypatch.setenv("OPENAI_PROD_KEY", canary.make_secret())
    out = byok("plan", str(repo), "--target", sqlite_url, "--source", "app",
               "--format", "json")
    body = json.loads(out.output)
    [change] = body["changes"]
    assert change["name"] == "openai-prod" and change["secret"] == "changed"
    assert [f["field"] for f in change["fields"]] == ["fingerprint"]
    assert change["fields"][0]["after"].startswith("sha256:")


def test_plan_without_secrets_says_unknown(
    repo: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply(repo, sqlite_url)
    monkeypatch.delenv("OPENAI_PROD_KEY")
    (repo / "keys.yaml").write_text(KEYS.replace("[gpt-4o, gpt-4o-mini]", "[gpt-4o]"))
    out = byok("plan", str(repo), "--target", sqlite_url, "--source", "app",
               "--format", "json")
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    [change] = body["changes"]
    assert change["secret"] == "unknown"
    assert any("unknown" in (p["hint"] or "") for p in body["problems"])


def test_without_prune_deletes_are_only_announced(repo: Path, sqlite_url: str) -> None:
    _apply(repo, sqlite_url)
    (repo / "mapping.yaml").write_text(MAPPING.replace(
        "    copilot: {key: openai-dev, model: gpt-4o-mini}\n", ""))
    out = byok("plan", str(repo), "--target", sqlite_url, "--source", "app")
    assert "would be pruned with --prune: feature/copilot" in out.output
    assert "- delete" not in out.output
    pruned = byok("plan", str(repo), "--target", sqlite_url, "--source", "app",
                  "--prune")
    assert "- delete feature copilot" in pruned.output


def test_saved_plan_applies_once_and_refuses_when_stale(
    repo: Path, store_url: str, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    made = byok("plan", str(repo), "--target", store_url, "--source", "app",
                "-o", str(plan_file))
    assert made.exit_code == 0, made.output
    canary.assert_no_leak(plan_file.read_text(), "saved plan")
    applied = byok("apply", str(plan_file), "--target", store_url, "--no-check")
    assert applied.exit_code == 0, applied.output
    assert "4 created" in applied.output

    # A plan made now is stale once someone edits a row it looked at.
    (repo / "keys.yaml").write_text(KEYS.replace("[gpt-4o-mini]", "[gpt-4o]"))
    (repo / "mapping.yaml").write_text(MAPPING.replace(
        "openai-dev, model: gpt-4o-mini", "openai-dev, model: gpt-4o"))
    byok("plan", str(repo), "--target", store_url, "--source", "app",
         "-o", str(plan_file))
    _touch_row(store_url, "copilot")
    stale = byok("apply", str(plan_file), "--target", store_url, "--no-check")
    assert stale.exit_code == 1
    assert "changed since the plan was saved: feature/copilot" in stale.output


def test_saved_plan_refuses_changed_config(
    repo: Path, sqlite_url: str, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    byok("plan", str(repo), "--target", sqlite_url, "--source", "app",
         "-o", str(plan_file))
    (repo / "keys.yaml").write_text(KEYS.replace("gpt-4o-mini]", "gpt-4.1]", 1))
    out = byok("apply", str(plan_file), "--target", sqlite_url, "--no-check")
    assert out.exit_code == 1
    assert "configuration changed since the plan was saved" in out.output


def _touch_row(url: str, feature: str) -> None:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE byok_features SET deployment = 'x' WHERE name = :n"),
            {"n": feature},
        )
    engine.dispose()


def test_apply_without_store_key_says_how_to_make_one(
    repo: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BYOK_STORE_KEY")
    out = _apply(repo, sqlite_url)
    assert out.exit_code == 3
    assert "BYOK_STORE_KEY" in out.output and "os.urandom(32)" in out.output


def test_store_key_file_hex_works(
    repo: Path, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BYOK_STORE_KEY")
    key_file = tmp_path / "store.key"
    key_file.write_text(os.urandom(32).hex() + "\n")
    out = _apply(repo, sqlite_url, "--store-key-file", str(key_file))
    assert out.exit_code == 0, out.output
    key_file.write_text("not a key")
    bad = _apply(repo, sqlite_url, "--store-key-file", str(key_file))
    assert bad.exit_code == 3 and "not 32 bytes" in bad.output


def test_ownership_clash_exits_1_naming_the_owner(repo: Path, sqlite_url: str) -> None:
    byok("apply", str(repo), "--target", sqlite_url, "--no-check", "--source", "x")
    out = _apply(repo, sqlite_url)
    assert out.exit_code == 1
    assert "managed by source 'x'" in out.output and "nothing was changed" in out.output


def test_status_lists_redacted_state_and_drift(repo: Path, store_url: str) -> None:
    _apply(repo, store_url)
    out = byok("status", "--target", store_url)
    assert out.exit_code == 0, out.output
    assert "key openai-prod (openai, app): sha256:" in out.output
    assert "last apply of app" in out.output
    _touch_row(store_url, "copilot")
    body = json.loads(byok("status", "--target", store_url, "--format", "json").output)
    assert body["data"]["drift"] == ["feature/copilot"]
    assert all("ciphertext" not in k for k in body["data"]["keys"])


def test_status_of_unreachable_store_is_exit_3() -> None:
    out = byok("status", "--target", "postgresql://u:pw-secret@127.0.0.1:1/x")
    assert out.exit_code == 3
    assert "pw-secret" not in out.output and "Traceback" not in out.output


def test_rotate_key_command(
    repo: Path, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply(repo, sqlite_url)
    new = tmp_path / "new.key"
    new.write_text(base64.b64encode(os.urandom(32)).decode())
    out = byok("store", "rotate-key", "--target", sqlite_url,
               "--new-key-file", str(new))
    assert out.exit_code == 0, out.output
    assert "2 secrets re-encrypted" in out.output
    # The old key no longer opens the store's secrets; the new one does.
    assert _apply(repo, sqlite_url).exit_code == 3
    monkeypatch.setenv("BYOK_STORE_KEY", new.read_text())
    assert _apply(repo, sqlite_url).exit_code == 0


