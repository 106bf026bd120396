"""The file store: a folder holding ``state.json`` and an encrypted secrets file.

``state.json`` is artifact-like JSON (keys with fingerprints, features,
history) and names the secrets file it goes with, ``secrets-<digest>.json``,
whose values are AES-256-GCM ciphertexts. A write puts the new secrets file
beside the old one, then replaces ``state.json`` with an atomic rename: that
rename is the commit, so a crash at any point leaves either the old or the
new store. ``.lock`` serialises writers with ``flock``.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from byok_reconcile.errors import StoreError
from byok_reconcile.store import file_path, missing, redact_url, schema
from byok_reconcile.store.crypto import Sealed
from byok_reconcile.store.rows import (
    ApplyRecord,
    FeatureRow,
    KeyRow,
    RowError,
    StoreState,
    WriteSet,
    canonical,
    checked_feature,
    checked_key,
    skip_row,
)

STATE = "state.json"
LOCK = ".lock"
# A read that keeps losing the race with commits gives up after this many.
READ_TRIES = 5


class _Vanished(Exception):
    """The secrets file named by state.json was removed by a commit."""


class FileStore:
    """A store in a folder. Open it with :meth:`open`."""

    def __init__(self, root: Path, display: str) -> None:
        self.root = root
        self.display = display

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> FileStore:
        """Open the folder; without ``create`` a missing store is an error."""
        display = redact_url(url)
        root = Path(file_path(url))
        store = cls(root, display)
        if not create:
            if not (root / STATE).is_file():
                raise missing(display)
            return store
        try:
            root.mkdir(parents=True, exist_ok=True)
            if not (root / STATE).exists():
                with store.transaction():
                    pass
        except OSError as exc:
            raise _unavailable(display, exc) from None
        return store

    def close(self) -> None:
        pass

    def read(self) -> StoreState:
        """The store, read without the lock.

        A writer puts the new secrets file in place before it renames
        ``state.json`` and removes the old one only after, so a reader that
        finds its secrets file gone raced a commit: it reads again.
        """
        for _ in range(READ_TRIES - 1):
            try:
                return self._load(raced=True)[0]
            except _Vanished:
                continue
            except OSError as exc:
                raise _unavailable(self.display, exc) from None
        try:
            return self._load()[0]
        except OSError as exc:
            raise _unavailable(self.display, exc) from None

    @contextmanager
    def transaction(self) -> Iterator[FileTransaction]:
        try:
            lock = open(self.root / LOCK, "a+b")  # noqa: SIM115 - held below
        except OSError as exc:
            raise _unavailable(self.display, exc) from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state, doc = self._load()
            txn = FileTransaction(state, doc)
            yield txn
            if txn.changed:
                self._commit(txn.state(), doc, txn)

    def _load(self, *, raced: bool = False) -> tuple[StoreState, dict[str, Any]]:
        path = self.root / STATE
        if not path.exists():
            empty = StoreState(uuid.uuid4().hex, schema.SCHEMA_VERSION, {}, {})
            return empty, {"history": [], "new": True}
        doc = self._json(STATE)
        secrets_name = doc.get("secretsFile")
        secrets: Any = {}
        if secrets_name is not None:
            if not isinstance(secrets_name, str):
                raise self._damaged(STATE, "secretsFile is not a file name")
            secrets = self._json(secrets_name, raced=raced).get("secrets")
        try:
            return _state_from(doc, secrets), doc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            why = f"an entry is malformed ({type(exc).__name__}: {exc})"
            raise self._damaged(STATE, why) from None

    def _json(self, name: str, *, raced: bool = False) -> dict[str, Any]:
        """One JSON file of the store; a damaged or missing one is exit 3."""
        path = self.root / Path(name).name  # never follow a path out of root
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if raced:
                raise _Vanished from None
            raise self._damaged(name, "the file is missing") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._damaged(name, f"it is not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise self._damaged(name, "it is not a JSON object")
        return doc

    def _damaged(self, name: str, why: str) -> StoreError:
        return StoreError(
            f"the file store {self.display} is damaged: {name}: {why}",
            hint="restore the folder from a backup, or point --target at a new "
            "folder and apply again",
        )

    def _commit(
        self, state: StoreState, old_doc: dict[str, Any], txn: FileTransaction
    ) -> None:
        history = old_doc.get("history", []) + [asdict(h) for h in txn.history]
        for number, item in enumerate(history, start=1):
            item["id"] = number
        secrets = {n: _sealed_json(k.sealed) for n, k in state.keys.items() if k.sealed}
        body = canonical({"secrets": secrets}).encode()
        name = f"secrets-{hashlib.sha256(body).hexdigest()[:16]}.json"
        _atomic_write(self.root / name, body)
        doc = _state_doc(state, history, name)
        # Unmanaged entries byok could not read are kept as they were.
        for kind in ("key", "feature"):
            doc[f"{kind}s"] += _raw_skipped(old_doc, kind, state.skipped)
        old = self._current_secrets_name()
        _atomic_write(self.root / STATE, json.dumps(doc, indent=2).encode())
        if old and old != name:
            (self.root / old).unlink(missing_ok=True)

    def _current_secrets_name(self) -> str | None:
        path = self.root / STATE
        if not path.exists():
            return None
        name = self._json(STATE).get("secretsFile")
        return name if isinstance(name, str) else None


class FileTransaction:
    """Writes applied to an in-memory copy; saved when the block ends."""

    def __init__(self, state: StoreState, doc: dict[str, Any]) -> None:
        self._state = state
        self.history: list[ApplyRecord] = []
        self.changed = bool(doc.get("new"))

    def state(self) -> StoreState:
        return self._state

    def write(self, writes: WriteSet) -> None:
        if not writes:
            return
        keys = dict(self._state.keys)
        feats = dict(self._state.features)
        for k in [*writes.key_inserts, *writes.key_updates]:
            keys[k.name] = k
        for f in [*writes.feature_inserts, *writes.feature_updates]:
            feats[f.name] = f
        for name in writes.key_deletes:
            keys.pop(name, None)
        for name in writes.feature_deletes:
            feats.pop(name, None)
        if writes.history is not None:
            self.history.append(writes.history)
        self._state = replace(self._state, keys=keys, features=feats)
        self.changed = True


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _unavailable(display: str, exc: OSError) -> StoreError:
    return StoreError(
        f"cannot use the store {display}: {exc.strerror or exc}",
        hint="check that the folder exists and is writable",
    )


def _raw_skipped(
    doc: dict[str, Any], kind: str, skipped: tuple[str, ...]
) -> list[Any]:
    names = {ref.partition("/")[2] for ref in skipped if ref.startswith(kind + "/")}
    items = doc.get(f"{kind}s", []) if names else []
    return [i for i in items if isinstance(i, dict) and str(i.get("name")) in names]


def _sealed_json(s: Sealed) -> dict[str, str]:
    b64 = base64.b64encode
    return {
        "ciphertext": b64(s.ciphertext).decode(),
        "nonce": b64(s.nonce).decode(),
        "keyId": s.key_id,
    }


def _state_doc(
    state: StoreState, history: list[dict[str, Any]], secrets_name: str
) -> dict[str, Any]:
    keys = []
    for k in sorted(state.keys.values(), key=lambda k: k.name):
        item = asdict(k)
        item.pop("sealed")
        item["models"] = list(k.models)
        keys.append(item)
    feats = [asdict(f) for f in sorted(state.features.values(), key=lambda f: f.name)]
    return {
        "apiVersion": "byok/v1",
        "kind": "Store",
        "storeId": state.store_id,
        "schemaVersion": state.schema_version,
        "secretsFile": secrets_name,
        "keys": keys,
        "features": feats,
        "history": history,
    }


def _state_from(doc: dict[str, Any], secrets: dict[str, Any]) -> StoreState:
    if not isinstance(doc["storeId"], str) or not doc["storeId"]:
        raise ValueError("storeId is not a store id")
    skipped: list[str] = []
    keys = _entries(doc["keys"], "key", lambda i: _key_entry(i, secrets), skipped)
    feats = _entries(doc["features"], "feature", _feature_entry, skipped)
    latest: dict[str, ApplyRecord] = {}
    for h in doc.get("history", []):
        latest[h["source"]] = ApplyRecord(**h)
    version = doc["schemaVersion"]
    if not isinstance(version, int):
        raise ValueError("schemaVersion is not a number")
    return StoreState(
        doc["storeId"], version, keys, feats, latest, skipped=tuple(skipped)
    )


def _entries(
    items: list[Any], kind: str, build: Callable[[Any], Any], skipped: list[str]
) -> dict[str, Any]:
    if not isinstance(items, list):
        raise ValueError(f"{kind}s is not a list")
    out: dict[str, Any] = {}
    for item in items:
        try:
            row = build(item)
        except (RowError, KeyError, TypeError, ValueError, AttributeError) as exc:
            name = item.get("name") if isinstance(item, dict) else None
            source = item.get("source") if isinstance(item, dict) else None
            skip_row(kind, name, source, f"{type(exc).__name__}: {exc}", skipped)
            continue
        out[row.name] = row
    return out


def _key_entry(item: dict[str, Any], secrets: dict[str, Any]) -> KeyRow:
    raw = secrets.get(item["name"])
    sealed = None
    if raw:
        d = base64.b64decode
        sealed = Sealed(d(raw["ciphertext"]), d(raw["nonce"]), raw["keyId"])
    models = item["models"]
    if not isinstance(models, list):
        raise RowError("models is not a list")
    return checked_key(KeyRow(**{**item, "models": tuple(models), "sealed": sealed}))


def _feature_entry(item: dict[str, Any]) -> FeatureRow:
    return checked_feature(FeatureRow(**item))
