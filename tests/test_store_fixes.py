"""Regressions for the store attacker's findings (one test per finding)."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from byok_reconcile import reconcile
from byok_reconcile.errors import (
    ConfigError,
    StoreError,
    StoreKeyError,
    UsageError,
)
from byok_reconcile.store import check_target, open_target, redact_url, scrub
from byok_reconcile.store.crypto import StoreKey
from tests import canary
from tests.fixtures.store import make_config, make_secrets
from tests.test_plan import KEYS, MAPPING, byok
from tests.test_plan import _apply as cli_apply

NAMES = ["alpha", "beta"]
PASSWORD = "Sup3rS3cret"


def _apply(url: str, key: StoreKey, names: list[str], secrets: dict[str, Any],
           source: str = "repo", verdicts: dict[str, str] | None = None,
           **opts: Any) -> reconcile.Outcome:
    desired = reconcile.desired_state(make_config(names), source, secrets, verdicts)
    store = open_target(url)
    try:
        return reconcile.apply(store, desired, key, reconcile.ApplyOptions(**opts))
    finally:
        store.close()


def _read(url: str) -> Any:
    store = open_target(url, create=False)
    try:
        return store.read()
    finally:
        store.close()


def _sql(url: str, statement: str) -> None:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(statement))
    engine.dispose()


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The two-key configuration of test_plan, its secrets in the environment."""
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "keys.yaml").write_text(KEYS)
    (folder / "mapping.yaml").write_text(MAPPING)
    monkeypatch.setenv("OPENAI_PROD_KEY", canary.make_secret())
    monkeypatch.setenv("BYOKT_DEV_KEY", canary.make_secret())
    monkeypatch.setenv("BYOK_STORE_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.chdir(tmp_path)
    return folder


# -- 1. credentials in URLs --------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://byok@127.0.0.1:1/p1?password={PASSWORD}",
        f"postgresql://byok:{PASSWORD}@127.0.0.1:1/p1",
        f"postgresql://byok@127.0.0.1:1/p1?sslpassword={PASSWORD}&x=1",
        f"postgresql://byok@127.0.0.1:1/p1?api_TOKEN={PASSWORD}",
        f"postgresql://byok@127.0.0.1:1/p1?passfile=%2Fsecret%2F{PASSWORD}",
        f"postgresql://byok:{PASSWORD}@127.0.0.1:99999/p1",
        f"file://u:{PASSWORD}@host/dir",
    ],
)
def test_no_credential_in_any_message(url: str, tmp_path: Path) -> None:
    assert PASSWORD not in redact_url(url)
    for argv in (["status", "--target", url],
                 ["status", "--target", url, "--format", "json"]):
        out = byok(*argv)
        assert out.exit_code in (2, 3), out.output
        assert PASSWORD not in out.output


def test_scrub_removes_encoded_and_plain_values() -> None:
    url = "postgresql://u:p%40ss@h/db?password=a%2Fb&sslkey=k1&mode=x"
    text_ = "p@ss p%40ss a/b a%2Fb k1 mode=x"
    assert scrub(text_, url) == "*** *** *** *** *** mode=x"


# -- 2. tampered and malformed saved plans -------------------------------------


@pytest.fixture
def saved(cfg: Path, sqlite_url: str) -> Path:
    """A store where source app manages two keys, and a plan for one of them."""
    assert cli_apply(cfg, sqlite_url).exit_code == 0
    keys = (cfg / "keys.yaml").read_text().split("---\n")[0]
    (cfg / "keys.yaml").write_text(keys)
    mapping = (cfg / "mapping.yaml").read_text().splitlines()
    (cfg / "mapping.yaml").write_text("\n".join(mapping[:-1]) + "\n")
    out = byok("plan", str(cfg), "--target", sqlite_url, "--source", "app",
               "-o", "p.json")
    assert out.exit_code == 0, out.output
    return Path("p.json")


def _edit(path: Path, change: Any) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    out = path.with_name("edited.json")
    out.write_text(json.dumps(doc))
    return out


def _deletes(doc: dict[str, Any]) -> None:
    doc["prune"] = True
    doc["changes"] += [
        {"kind": r.split("/")[0], "name": r.split("/")[1], "action": "delete",
         "fields": [], "secret": ""}
        for r in doc["wouldPrune"]
    ]
    doc["wouldPrune"] = []


def test_a_tampered_plan_is_refused(saved: Path, sqlite_url: str) -> None:
    out = byok("apply", str(_edit(saved, _deletes)), "--no-check", "--force")
    assert out.exit_code == 1, out.output
    assert "modified after it was saved" in out.output
    assert len(_read(sqlite_url).keys) == 2


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d.update(prune="no"), "'prune' must be true or false"),
        (lambda d: d.pop("paths"), "'paths' is missing"),
        (lambda d: d.update(observed=[]), "'observed' must be"),
        (lambda d: d.update(changes=[1]), "change 1 is not an object"),
        (lambda d: d.update(extra=1), "unknown field 'extra'"),
        (lambda d: d["changes"].append({"kind": "key"}), "must have exactly"),
    ],
)
def test_a_malformed_plan_is_a_usage_error(
    saved: Path, sqlite_url: str, change: Any, says: str
) -> None:
    out = byok("apply", str(_edit(saved, change)), "--no-check")
    assert out.exit_code == 2, out.output
    assert "not a byok plan file" in out.output and says in out.output


def test_an_untouched_plan_still_applies(saved: Path, sqlite_url: str) -> None:
    out = byok("apply", str(saved), "--no-check")
    assert out.exit_code == 0, out.output


# -- 3. one store key per store ----------------------------------------------


def test_another_store_key_is_refused_for_any_source(
    any_store_url: str, store_key: StoreKey
) -> None:
    _apply(any_store_url, store_key, ["alpha"], make_secrets(["alpha"]), "a")
    other = StoreKey(os.urandom(32))
    with pytest.raises(StoreKeyError, match="rotate-key"):
        _apply(any_store_url, other, ["beta"], make_secrets(["beta"]), "b")
    assert sorted(_read(any_store_url).keys) == ["alpha"]


# -- 4. a verdict belongs to its secret --------------------------------------


def test_verdict_is_cleared_when_the_secret_changes_unchecked(
    store_url: str, store_key: StoreKey
) -> None:
    _apply(store_url, store_key, NAMES, make_secrets(NAMES),
           verdicts={"alpha": "valid", "beta": "valid"})
    secrets = make_secrets(NAMES)
    _apply(store_url, store_key, NAMES, {**secrets})
    keys = _read(store_url).keys
    assert keys["alpha"].verdict is None and keys["beta"].verdict is None
    status = json.loads(byok("status", "--target", store_url, "--format",
                             "json").output)
    assert status["counts"]["keys"] == 2
    assert {k["verdict"] for k in status["keys"]} == {"unchecked"}


def test_verdict_kept_for_the_same_secret_and_restored_after_hand_edit(
    store_url: str, store_key: StoreKey
) -> None:
    secrets = make_secrets(NAMES)
    _apply(store_url, store_key, NAMES, secrets, verdicts={"alpha": "valid"})
    _apply(store_url, store_key, NAMES, secrets)
    assert _read(store_url).keys["alpha"].verdict == "valid"
    _sql(store_url, "UPDATE byok_keys SET verdict = 'valid' WHERE name = 'beta'")
    outcome = _apply(store_url, store_key, NAMES, secrets)
    assert outcome.written
    assert _read(store_url).keys["beta"].verdict is None


# -- 5. unreadable rows ----------------------------------------------------------


def test_an_unreadable_unmanaged_row_never_breaks_other_sources(
    store_url: str, store_key: StoreKey
) -> None:
    secrets = make_secrets(NAMES)
    _apply(store_url, store_key, NAMES, secrets)
    _sql(store_url, "INSERT INTO byok_keys (name, source, provider, settings, "
         "models, deployments, labels, created_at, updated_at, revision) VALUES "
         "('hand', NULL, 'openai', '{bad', '[]', '{}', '{}', 'x', 'x', 1)")
    state = _read(store_url)
    assert sorted(state.keys) == NAMES and state.skipped == ("key/hand",)
    assert not _apply(store_url, store_key, NAMES, secrets).written
    status = byok("status", "--target", store_url)
    assert status.exit_code == 0 and "key/hand" in status.output
    with pytest.raises(ConfigError, match="'hand'"):
        _apply(store_url, store_key, [*NAMES, "hand"], make_secrets([*NAMES, "hand"]))


def test_an_unreadable_managed_row_is_exit_3(
    store_url: str, store_key: StoreKey
) -> None:
    _apply(store_url, store_key, NAMES, make_secrets(NAMES))
    _sql(store_url, "UPDATE byok_keys SET models = 'nope' WHERE name = 'alpha'")
    with pytest.raises(StoreError, match="key 'alpha' \\(source 'repo'\\)"):
        _read(store_url)
    out = byok("status", "--target", store_url)
    assert out.exit_code == 3 and "damaged row" in out.output


# -- 6, 9, 13, 14. targets byok cannot use -------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://", "names no database file"),
        ("sqlite:///", "names no database file"),
        ("sqlite:///:memory:", "names no database file"),
        ("postgresql://u@127.0.0.1:99999/db", "bad port"),
        ("postgresql://u@127.0.0.1:abc/db", "bad port"),
        ("file://store", "names a host"),
        ("file:relative", "has no scheme"),
        ("file://u:pw@host/dir", "names a host"),
        ("file:///dir?x=1", "nothing after it"),
        ("postgresql+psycopg2://u@127.0.0.1/db", "psycopg 3"),
        ("mysql+pymysql://u@127.0.0.1/db", "scheme 'mysql'"),
    ],
)
def test_unusable_targets_are_usage_errors(url: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        check_target(url)


def test_file_localhost_is_accepted(tmp_path: Path, store_key: StoreKey) -> None:
    url = f"file://localhost{tmp_path / 'fs'}"
    _apply(url, store_key, NAMES, make_secrets(NAMES))
    assert (tmp_path / "fs" / "state.json").is_file()


def test_long_source_and_model_names_work_on_every_backend(
    any_store_url: str, store_key: StoreKey
) -> None:
    source = "s" * 200
    config = make_config(["alpha"], models=("m" * 250,))
    feat = config.features["f-alpha"]
    config.features["f-alpha"] = type(feat)(feat.name, "alpha", model="m" * 250,
                                            location=feat.location)
    desired = reconcile.desired_state(config, source, make_secrets(["alpha"]))
    store = open_target(any_store_url)
    try:
        reconcile.apply(store, desired, store_key, reconcile.ApplyOptions())
    finally:
        store.close()
    assert _read(any_store_url).features["f-alpha"].model == "m" * 250


# -- 8, 10. the file store -------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: (f / "state.json").write_text("{garbage"),
        lambda f: (f / "state.json").write_text("{}"),
        lambda f: (f / "state.json").write_text("[]"),
        lambda f: _edit_state(f, lambda d: d.pop("storeId")),
        lambda f: _edit_state(f, lambda d: d["keys"][0].update(extra=1)),
        lambda f: _edit_state(f, lambda d: d["keys"][0].update(models="x")),
        lambda f: _edit_state(f, lambda d: d.update(secretsFile=7)),
        lambda f: [s.write_text("garbage") for s in f.glob("secrets-*")],
        lambda f: [s.unlink() for s in f.glob("secrets-*")],
    ],
)
def test_a_damaged_file_store_is_exit_3(
    tmp_path: Path, store_key: StoreKey, damage: Any
) -> None:
    url = f"file://{tmp_path / 'fs'}"
    _apply(url, store_key, NAMES, make_secrets(NAMES))
    damage(tmp_path / "fs")
    with pytest.raises(StoreError):
        _read(url)
    with pytest.raises(StoreError):
        _apply(url, store_key, NAMES, make_secrets(NAMES))


def _edit_state(folder: Path, change: Any) -> None:
    doc = json.loads((folder / "state.json").read_text())
    change(doc)
    (folder / "state.json").write_text(json.dumps(doc))


def test_file_store_reads_survive_concurrent_commits(
    tmp_path: Path, store_key: StoreKey
) -> None:
    url = f"file://{tmp_path / 'fs'}"
    _apply(url, store_key, NAMES, make_secrets(NAMES))
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                _read(url)
            except BaseException as exc:  # collected for the assert below
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(30):
            _apply(url, store_key, NAMES, make_secrets(NAMES))
    finally:
        stop.set()
        thread.join()
    assert errors == []


# -- 11. prune never leaves a feature dangling -------------------------------


def test_prune_refuses_a_key_another_source_still_uses(
    store_url: str, store_key: StoreKey
) -> None:
    _apply(store_url, store_key, NAMES, make_secrets(NAMES))
    _sql(store_url, "INSERT INTO byok_features (name, source, key_name, model, "
         "settings, created_at, updated_at, revision) VALUES ('other', 'b', "
         "'beta', 'gpt-4o', '{}', 'x', 'x', 1)")
    with pytest.raises(ConfigError, match="feature 'other' \\(source 'b'\\)"):
        _apply(store_url, store_key, ["alpha"], make_secrets(["alpha"]),
               prune=True, force=True)
    assert sorted(_read(store_url).keys) == NAMES
    _sql(store_url, "DELETE FROM byok_keys WHERE name = 'beta'")
    out = byok("status", "--target", store_url)
    assert "feature/other (b) uses key 'beta', which is not in the store" in (
        out.output
    )


# -- 12. read-only commands on an empty database -----------------------------


def test_plan_and_status_on_an_empty_postgresql_database_create_nothing(
    pg_url: str, cfg: Path
) -> None:
    out = byok("plan", str(cfg), "--target", pg_url, "--source", "app")
    assert out.exit_code == 0 and "does not exist yet" in out.output
    assert byok("status", "--target", pg_url).exit_code == 3
    engine = create_engine("postgresql+psycopg://" + pg_url.split("://", 1)[1])
    with engine.connect() as conn:
        tables = conn.execute(text(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'public'")).scalar()
    engine.dispose()
    assert tables == 0


def test_an_overlong_source_is_a_usage_error(cfg: Path, sqlite_url: str) -> None:
    for cmd in ("plan", "apply"):
        out = byok(cmd, str(cfg), "--target", sqlite_url, "--source", "s" * 201,
                   "--no-check" if cmd == "apply" else "--prune")
        assert out.exit_code == 2 and "1 to 200 printable" in out.output


def test_an_old_postgresql_store_is_widened_to_text(
    pg_url: str, store_key: StoreKey
) -> None:
    _apply(pg_url, store_key, NAMES, make_secrets(NAMES))
    _sql(pg_url, "ALTER TABLE byok_features ALTER COLUMN model TYPE VARCHAR(200)")
    _sql(pg_url, "UPDATE byok_meta SET value = '2' WHERE name = 'schema_version'")
    assert _read(pg_url).schema_version == 2  # read-only: not migrated
    open_target(pg_url).close()  # apply's open migrates
    assert _read(pg_url).schema_version == 3
    _sql(pg_url, f"UPDATE byok_features SET model = '{'m' * 250}'")
