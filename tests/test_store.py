"""Plan and apply against real stores: SQLite and PostgreSQL (and file://)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from byok_reconcile import reconcile
from byok_reconcile.errors import (
    ConfigError,
    StoreConflictError,
    StoreError,
    StoreKeyError,
    UsageError,
)
from byok_reconcile.secret import Secret
from byok_reconcile.store import open_target
from byok_reconcile.store.crypto import StoreKey
from byok_reconcile.store.rotate import rotate_key
from tests import canary
from tests.fixtures.store import make_config, make_secrets

NAMES = ["alpha", "beta", "gamma", "delta"]


def _apply(url: str, key: StoreKey, names: list[str], secrets: dict[str, Any],
           source: str = "repo", **opts: Any) -> reconcile.Outcome:
    desired = reconcile.desired_state(make_config(names), source, secrets)
    store = open_target(url)
    try:
        return reconcile.apply(store, desired, key, reconcile.ApplyOptions(**opts))
    finally:
        store.close()


def _read(url: str) -> Any:
    store = open_target(url)
    try:
        return store.read()
    finally:
        store.close()


def _engine(url: str) -> Any:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url)


def _dump(url: str) -> str:
    """Every row of every byok table, as text (the leak canary's view)."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):]).read_bytes().decode("latin-1")
    engine = _engine(url)
    with engine.connect() as conn:
        parts = []
        for table in ("byok_meta", "byok_keys", "byok_features", "byok_applies"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            parts += [repr(tuple(r)) for r in rows]
    engine.dispose()
    return "\n".join(parts)


def _fingerprint_rows(url: str) -> list[tuple[Any, ...]]:
    """Rows with their physical version (PostgreSQL xmin) to spot any write."""
    engine = _engine(url)
    version = "xmin::text" if url.startswith("postgresql") else "rowid"
    with engine.connect() as conn:
        rows = []
        for table in ("byok_keys", "byok_features", "byok_applies", "byok_meta"):
            q = f"SELECT {version}, * FROM {table} ORDER BY 2"
            rows += [tuple(r) for r in conn.execute(text(q)).all()]
    engine.dispose()
    return rows


def test_apply_creates_everything(store_url: str, store_key: StoreKey) -> None:
    secrets = make_secrets(NAMES)
    outcome = _apply(store_url, store_key, NAMES, secrets)
    assert outcome.written
    assert outcome.plan.counts() == {"create": 8, "update": 0, "delete": 0}
    state = _read(store_url)
    assert sorted(state.keys) == sorted(NAMES)
    assert state.keys["alpha"].fingerprint == secrets["alpha"].fingerprint
    assert state.keys["alpha"].source == "repo"
    assert state.features["f-beta"].key == "beta"
    assert state.last_applies["repo"].created == 8
    assert not any(k.drifted for k in state.keys.values())


def test_second_apply_writes_nothing(store_url: str, store_key: StoreKey) -> None:
    secrets = make_secrets(NAMES)
    _apply(store_url, store_key, NAMES, secrets)
    before = _fingerprint_rows(store_url)
    db_bytes = None
    if store_url.startswith("sqlite:///"):
        db_bytes = Path(store_url[len("sqlite:///"):]).read_bytes()

    outcome = _apply(store_url, store_key, NAMES, secrets)

    assert not outcome.written and not outcome.plan.changes
    assert _fingerprint_rows(store_url) == before
    if db_bytes is not None:
        assert Path(store_url[len("sqlite:///"):]).read_bytes() == db_bytes


def test_update_compares_secrets_by_fingerprint(
    store_url: str, store_key: StoreKey
) -> None:
    secrets = make_secrets(NAMES)
    _apply(store_url, store_key, NAMES, secrets)
    rotated = {**secrets, "beta": Secret(canary.make_secret())}
    desired = reconcile.desired_state(make_config(NAMES), "repo", rotated)
    plan = reconcile.make_plan(desired, _read(store_url), prune=False)
    [change] = plan.changes
    assert (change.kind, change.name, change.action) == ("key", "beta", "update")
    assert change.secret == "changed"
    [field] = change.fields
    assert field.before == secrets["beta"].fingerprint
    assert field.after == rotated["beta"].fingerprint
    canary.assert_no_leak(repr(plan), "plan")

    # Without decryption keys the same plan cannot tell: it says "unknown".
    blind = reconcile.desired_state(make_config(NAMES, models=("gpt-4o",)), "repo")
    plan = reconcile.make_plan(blind, _read(store_url), prune=False)
    assert {c.secret for c in plan.changes} == {"unknown"}


def test_foreign_and_unmanaged_rows_are_never_touched(
    store_url: str, store_key: StoreKey
) -> None:
    _apply(store_url, store_key, ["alpha"], make_secrets(["alpha"]), source="other")
    engine = _engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE byok_keys SET source = NULL WHERE name = 'alpha'"))
    engine.dispose()
    before = _fingerprint_rows(store_url)

    with pytest.raises(StoreConflictError) as err:
        _apply(store_url, store_key, ["alpha", "beta"], make_secrets(["alpha", "beta"]))

    assert "alpha" in str(err.value) and "outside byok" in str(err.value)
    assert "alpha.yaml:1:1" in str(err.value)
    assert _fingerprint_rows(store_url) == before


def test_conflict_names_the_owning_source(store_url: str, store_key: StoreKey) -> None:
    _apply(store_url, store_key, ["alpha"], make_secrets(["alpha"]), source="team-a")
    with pytest.raises(StoreConflictError, match="source 'team-a'"):
        _apply(store_url, store_key, ["alpha"], make_secrets(["alpha"]), source="b")
    # A prune by another source leaves team-a's rows alone.
    _apply(store_url, store_key, ["zeta"], make_secrets(["zeta"]), source="b",
           prune=True)
    assert _read(store_url).keys["alpha"].source == "team-a"


def test_prune_needs_the_flag_and_force_past_half(
    store_url: str, store_key: StoreKey
) -> None:
    secrets = make_secrets(NAMES)
    _apply(store_url, store_key, NAMES, secrets)

    outcome = _apply(store_url, store_key, NAMES[:3], secrets)
    assert not outcome.written
    assert outcome.plan.would_prune == ("key/delta", "feature/f-delta")

    outcome = _apply(store_url, store_key, NAMES[:3], secrets, prune=True)
    assert outcome.plan.counts()["delete"] == 2
    assert "delta" not in _read(store_url).keys

    before = _fingerprint_rows(store_url)
    with pytest.raises(ConfigError, match="more than half"):
        _apply(store_url, store_key, NAMES[:1], secrets, prune=True)
    assert _fingerprint_rows(store_url) == before
    _apply(store_url, store_key, NAMES[:1], secrets, prune=True, force=True)
    assert sorted(_read(store_url).keys) == ["alpha"]


def test_failure_mid_apply_leaves_store_unchanged(
    store_url: str, store_key: StoreKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = make_secrets(NAMES)
    _apply(store_url, store_key, NAMES[:2], secrets)
    before = _fingerprint_rows(store_url)

    def boom(txn: Any) -> None:
        raise RuntimeError("injected failure after the writes")

    monkeypatch.setattr(reconcile, "_sleep_hook", boom)
    with pytest.raises(RuntimeError, match="injected"):
        _apply(store_url, store_key, NAMES, secrets, prune=True)

    assert _fingerprint_rows(store_url) == before


def test_rotate_key_reencrypts_everything(
    store_url: str, store_key: StoreKey
) -> None:
    from byok_reconcile.client import open_store

    secrets = make_secrets(NAMES)
    _apply(store_url, store_key, NAMES, secrets)
    new = StoreKey(os.urandom(32))
    wrong = StoreKey(os.urandom(32))
    store = open_target(store_url)
    before = _fingerprint_rows(store_url)
    with pytest.raises(StoreKeyError):
        rotate_key(store, wrong, new)
    assert _fingerprint_rows(store_url) == before

    assert rotate_key(store, store_key, new) == 4
    assert rotate_key(store, store_key, new) == 0
    store.close()

    reader = open_store(store_url, new)
    assert reader.secret("f-gamma") == secrets["gamma"]
    assert not any(k.drifted for k in _read(store_url).keys.values())
    with pytest.raises(StoreKeyError, match="store key"):
        open_store(store_url, store_key).secret("f-gamma")
    with pytest.raises(StoreKeyError, match="rotate-key"):
        _apply(store_url, store_key, NAMES, secrets)


def test_drift_is_seen_and_repaired(store_url: str, store_key: StoreKey) -> None:
    secrets = make_secrets(NAMES)
    _apply(store_url, store_key, NAMES, secrets)
    engine = _engine(store_url)
    with engine.begin() as conn:
        conn.execute(text(
            "UPDATE byok_keys SET settings = '{\"baseUrl\":\"https://evil.example\"}'"
            " WHERE name = 'beta'"
        ))
    engine.dispose()
    state = _read(store_url)
    assert state.keys["beta"].drifted and not state.keys["alpha"].drifted

    outcome = _apply(store_url, store_key, NAMES, secrets)
    [change] = outcome.plan.changes
    assert change.name == "beta"
    assert {f.field for f in change.fields} == {"settings", "content"}
    assert not _read(store_url).keys["beta"].drifted


def test_no_secret_in_store_bytes(any_store_url: str, store_key: StoreKey) -> None:
    secrets = make_secrets(NAMES)
    _apply(any_store_url, store_key, NAMES, secrets)
    if any_store_url.startswith("file://"):
        folder = Path(any_store_url[len("file://"):])
        dump = "".join(p.read_text() for p in folder.iterdir() if p.is_file())
        assert len(list(folder.glob("secrets-*.json"))) == 1
    else:
        dump = _dump(any_store_url)
    canary.assert_no_leak(dump, "the store")
    assert secrets["alpha"].fingerprint in dump


def test_file_store_round_trip(tmp_path: Path, store_key: StoreKey) -> None:
    url = f"file://{tmp_path / 'store'}"
    secrets = make_secrets(NAMES)
    _apply(url, store_key, NAMES, secrets)
    state_file = tmp_path / "store" / "state.json"
    before = state_file.read_bytes()
    assert not _apply(url, store_key, NAMES, secrets).written
    assert state_file.read_bytes() == before
    _apply(url, store_key, NAMES[:3], secrets, prune=True)
    assert sorted(_read(url).keys) == sorted(NAMES[:3])


def test_unreachable_store_is_exit_3_without_password() -> None:
    url = "postgresql://byok:hunter2pw@127.0.0.1:1/db"
    with pytest.raises(StoreError) as err:
        open_target(url)
    assert err.value.exit_code == 3
    assert "hunter2pw" not in str(err.value) and "***" in str(err.value)


def test_bad_sqlite_path_is_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot use the store"):
        open_target(f"sqlite:///{tmp_path}/missing/dir/byok.db")


def test_unknown_scheme_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="scheme 'mysql'") as info:
        open_target("mysql://x@127.0.0.1/db")
    assert info.value.exit_code == 2
    assert "sqlite:////abs/path.db" in str(info.value)


def test_read_only_open_creates_nothing(
    any_store_url: str, store_key: StoreKey
) -> None:
    from byok_reconcile.store import StoreMissingError

    with pytest.raises(StoreMissingError, match="no store at"):
        open_target(any_store_url, create=False)
    if any_store_url.startswith("postgresql"):
        engine = _engine(any_store_url)
        with engine.connect() as conn:
            tables = conn.execute(text(
                "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'byok_%'"
            )).scalar()
        engine.dispose()
        assert tables == 0
    else:
        path = any_store_url.split("://", 1)[1].lstrip("/")
        assert not Path("/" + path).exists()
    _apply(any_store_url, store_key, NAMES, make_secrets(NAMES))
    store = open_target(any_store_url, create=False)
    assert sorted(store.read().keys) == sorted(NAMES)
    store.close()
