"""byok plan / apply / status / store rotate-key through the command line."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from byok_reconcile.cli import cli
from byok_reconcile.store.schema import SCHEMA_VERSION
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




# -- regressions from the new-user report ------------------------------------

INLINE_KEY = """\
apiVersion: byok/v1
kind: Key
metadata: {{name: openai-prod}}
spec:
  provider: openai
  apiKey: {secret}
  models: [gpt-4o]
"""
INLINE_MAPPING = MAPPING.replace(
    "    copilot: {key: openai-dev, model: gpt-4o-mini}\n", ""
)


@pytest.fixture
def sops_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, age_identity: Any
) -> Path:
    cfg = tmp_path / "sops-cfg"
    cfg.mkdir()
    _encrypt_key(cfg, age_identity, canary.make_secret())
    (cfg / "mapping.yaml").write_text(INLINE_MAPPING)
    monkeypatch.setenv("BYOK_STORE_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.chdir(tmp_path)
    return cfg


def _encrypt_key(cfg: Path, ident: Any, secret: str) -> None:
    from tests.fixtures.sops import sops_encrypt

    plain = INLINE_KEY.format(secret=secret)
    sops_encrypt(plain, cfg / "keys.yaml", recipients=ident.recipient)


def _plan(repo: Path, url: str, *extra: str) -> Result:
    return byok("plan", str(repo), "--target", url, "--source", "app",
                "--detailed-exitcode", *extra)


def test_plan_without_keys_judges_secrets_by_ciphertext(
    sops_repo: Path, sqlite_url: str, age_identity: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _apply(sops_repo, sqlite_url).exit_code == 0
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")  # a fork's pull request: no keys

    same = _plan(sops_repo, sqlite_url, "--format", "json")
    assert same.exit_code == 0, same.output
    body = json.loads(same.output)
    assert body["data"]["secrets"]["unchangedByCiphertext"] == ["openai-prod"]
    assert "ciphertext is the one last applied" in body["problems"][0]["hint"]

    _encrypt_key(sops_repo, age_identity, canary.make_secret())
    changed = _plan(sops_repo, sqlite_url, "--format", "json")
    assert changed.exit_code == 4, changed.output
    [change] = json.loads(changed.output)["changes"]
    assert (change["action"], change["secret"]) == ("update", "changed")
    assert change["fields"][0]["after"].startswith("unknown (ciphertext changed")
    for fmt in ("text", "markdown", "github"):
        out = _plan(sops_repo, sqlite_url, "--format", fmt)
        assert out.exit_code == 4 and "unknown (ciphertext changed" in out.output

    # With keys, apply writes the new secret once, then nothing is pending.
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_identity.key_file))
    assert "1 updated" in _apply(sops_repo, sqlite_url).output
    assert _plan(sops_repo, sqlite_url).exit_code == 0
    assert "No changes for source" in _apply(sops_repo, sqlite_url).output
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    assert _plan(sops_repo, sqlite_url).exit_code == 0


def test_plan_without_an_env_secret_counts_it_as_pending(
    repo: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply(repo, sqlite_url)
    monkeypatch.delenv("OPENAI_PROD_KEY")
    out = _plan(repo, sqlite_url)
    assert out.exit_code == 4, out.output
    assert "~ update key openai-prod" in out.output
    assert "unknown (cannot decrypt here)" in out.output
    assert "secret: unknown" in out.output


def test_plan_and_status_never_create_a_store(repo: Path, tmp_path: Path) -> None:
    db = tmp_path / "nothere.db"
    status = byok("status", "--target", f"sqlite:///{db}")
    assert status.exit_code == 3 and "no store at" in status.output
    plan = _plan(repo, f"sqlite:///{db}")
    assert plan.exit_code == 4, plan.output
    assert "does not exist yet; apply will create it" in plan.output
    assert "4 to create" in plan.output
    folder = tmp_path / "nodir"
    assert byok("status", "--target", f"file://{folder}").exit_code == 3
    assert _plan(repo, f"file://{folder}").exit_code == 4
    assert not db.exists() and not folder.exists()


def test_plan_reads_an_old_schema_without_migrating(
    repo: Path, sqlite_url: str
) -> None:
    _apply(repo, sqlite_url)
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE byok_keys DROP COLUMN secret_digest"))
        conn.execute(text("UPDATE byok_meta SET value = '1' "
                          "WHERE name = 'schema_version'"))
    assert _plan(repo, sqlite_url).exit_code == 0
    status = byok("status", "--target", sqlite_url, "--format", "json")
    assert json.loads(status.output)["data"]["schemaVersion"] == 1
    assert "No changes for source" in _apply(repo, sqlite_url).output
    with engine.connect() as conn:
        version = conn.execute(text("SELECT value FROM byok_meta "
                                    "WHERE name = 'schema_version'")).scalar()
    engine.dispose()
    assert version == str(SCHEMA_VERSION)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u@127.0.0.1/db", "scheme 'mysql'"),
        ("byok.db", "has no scheme"),
        ("sqlite://relative.db", "sqlite:///relative.db"),
        ("file://relative/dir", "three slashes"),
        ("postgresql://u@127.0.0.1:notaport/db", "not a valid URL"),
    ],
)
def test_a_target_byok_cannot_use_is_a_usage_error(
    repo: Path, url: str, says: str
) -> None:
    for argv in (["status", "--target", url], ["plan", str(repo), "--target", url]):
        out = byok(*argv)
        assert out.exit_code == 2, out.output
        assert says in out.output and "sqlite:////abs/path.db" in out.output
        assert "Error" not in out.output.replace("error:", "")


def test_saved_plan_goes_to_its_own_target(
    repo: Path, tmp_path: Path, sqlite_url: str
) -> None:
    plan_file = tmp_path / "plan.json"
    byok("plan", str(repo), "--target", sqlite_url, "--source", "app",
         "-o", str(plan_file))
    other = f"sqlite:///{tmp_path / 'other.db'}"
    wrong = byok("apply", str(plan_file), "--target", other, "--no-check")
    assert wrong.exit_code == 2
    assert "the plan was made for the target" in wrong.output
    assert "changed since" not in wrong.output
    assert not (tmp_path / "other.db").exists()
    applied = byok("apply", str(plan_file), "--no-check")
    assert applied.exit_code == 0, applied.output
    assert "4 created" in applied.output


def test_saved_plan_refuses_a_store_made_anew(
    repo: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    _apply(repo, f"sqlite:///{db}")
    plan_file = tmp_path / "plan.json"
    byok("plan", str(repo), "--target", f"sqlite:///{db}", "--source", "app",
         "-o", str(plan_file))
    db.unlink()
    gone = byok("apply", str(plan_file), "--no-check")
    assert gone.exit_code == 3 and "made against an existing store" in gone.output
    assert not db.exists()
    _apply(repo, f"sqlite:///{db}")  # a new store, with a new id
    other = byok("apply", str(plan_file), "--no-check")
    assert other.exit_code == 1 and "made for another store" in other.output


def test_plan_warns_when_a_prune_deletes_more_than_half(
    repo: Path, sqlite_url: str
) -> None:
    _apply(repo, sqlite_url)
    (repo / "mapping.yaml").write_text(MAPPING.split("  features:")[0]
                                       + "  features: {}\n")
    (repo / "keys.yaml").write_text(KEYS.split("---")[0])
    out = byok("plan", str(repo), "--target", sqlite_url, "--source", "app",
               "--prune")
    assert "deletes 3 of the 4 objects" in out.output
    assert "without --force" in out.output


def test_status_counts_and_lists_keys_in_every_format(
    repo: Path, sqlite_url: str
) -> None:
    from byok_reconcile import reconcile
    from byok_reconcile.pipeline import load_and_check
    from byok_reconcile.store import open_target
    from byok_reconcile.store.crypto import load_key

    config = load_and_check([repo], None)
    verdicts = {"openai-prod": "valid", "openai-dev": "quota_exhausted"}
    assert config.config is not None
    desired = reconcile.desired_state(config.config, "app", config.secrets, verdicts)
    store = open_target(sqlite_url)
    reconcile.apply(store, desired, load_key(None), reconcile.ApplyOptions())
    store.close()
    body = json.loads(byok("status", "--target", sqlite_url, "--format",
                           "json").output)
    assert body["counts"]["keys"] == 2 and body["counts"]["keysWorking"] == 1
    assert body["summary"].startswith("2 keys (2 checked when applied)")
    md = byok("status", "--target", sqlite_url, "--format", "markdown").output
    assert "#### Keys" in md and "| openai-dev | openai | app | quota_exhausted" in md
    text_out = byok("status", "--target", sqlite_url).output
    assert text_out.count("key openai-dev (") == 1


def test_apply_quiet_prints_nothing_on_success(repo: Path, sqlite_url: str) -> None:
    out = _apply(repo, sqlite_url, "-q")
    assert out.exit_code == 0 and out.output == ""


@pytest.mark.parametrize("damage", ["garbage", "no-secrets"])
def test_a_damaged_file_store_is_exit_3(
    repo: Path, tmp_path: Path, damage: str
) -> None:
    folder = tmp_path / "fs"
    _apply(repo, f"file://{folder}")
    if damage == "garbage":
        (folder / "state.json").write_text("{not json")
    else:
        for f in folder.glob("secrets-*.json"):
            f.unlink()
    for out in (byok("status", "--target", f"file://{folder}"),
                _apply(repo, f"file://{folder}")):
        assert out.exit_code == 3, out.output
        assert "is damaged" in out.output and "Traceback" not in out.output
