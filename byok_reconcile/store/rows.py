"""The records a store holds, as plain frozen dataclasses.

Every backend (SQL, file) reads into and writes from these records, so the
plan and apply logic never sees a database row. ``content_hash`` is written
by apply over a row's content; a row whose recomputed hash differs was
changed by other means (drift).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from byok_reconcile.errors import StoreError
from byok_reconcile.store.crypto import Sealed

log = logging.getLogger("byok")


def canonical(value: Any) -> str:
    """Stable JSON: sorted keys, no spaces, so equal values hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical(value).encode()).hexdigest()


@dataclass(frozen=True)
class KeyRow:
    """A stored Key. ``sealed`` is the encrypted secret, if any.

    ``secret_digest`` is a digest of the secret's ciphertext in git (the
    sops value), when one is knowable: plan compares it when it cannot
    decrypt, to tell an untouched secret from one that may have changed.
    """

    name: str
    source: str | None
    provider: str
    settings: dict[str, Any]
    models: tuple[str, ...]
    deployments: dict[str, str]
    description: str | None
    labels: dict[str, str]
    fingerprint: str | None
    last4: str | None
    sealed: Sealed | None
    verdict: str | None
    created_at: str = ""
    updated_at: str = ""
    revision: int = 0
    content_hash: str | None = None
    secret_digest: str | None = None

    def content(self) -> dict[str, Any]:
        """What the content hash covers: everything but bookkeeping."""
        sealed = self.sealed
        body = {
            "kind": "key",
            "name": self.name,
            "source": self.source,
            "provider": self.provider,
            "settings": self.settings,
            "models": list(self.models),
            "deployments": self.deployments,
            "description": self.description,
            "labels": self.labels,
            "fingerprint": self.fingerprint,
            "last4": self.last4,
            "ciphertext": sealed.ciphertext.hex() if sealed else None,
            "nonce": sealed.nonce.hex() if sealed else None,
            "keyId": sealed.key_id if sealed else None,
            "verdict": self.verdict,
        }
        # Only when set, so rows written before the field keep their hash.
        if self.secret_digest is not None:
            body["secretDigest"] = self.secret_digest
        return body

    def compute_hash(self) -> str:
        """The hash of the row's content as it is now (computed once)."""
        return self._hash

    @cached_property
    def _hash(self) -> str:
        # Rows are never mutated (frozen; replace() makes a new one), so
        # plan, drift and saved-plan checks can share one computation.
        return _digest(self.content())

    @property
    def drifted(self) -> bool:
        return self.content_hash != self.compute_hash()


@dataclass(frozen=True)
class FeatureRow:
    """A stored feature mapping. ``settings`` holds the resolved provider
    and model (for Azure, the model behind the deployment)."""

    name: str
    source: str | None
    key: str
    model: str | None
    deployment: str | None
    settings: dict[str, Any]
    created_at: str = ""
    updated_at: str = ""
    revision: int = 0
    content_hash: str | None = None

    def content(self) -> dict[str, Any]:
        return {
            "kind": "feature",
            "name": self.name,
            "source": self.source,
            "key": self.key,
            "model": self.model,
            "deployment": self.deployment,
            "settings": self.settings,
        }

    def compute_hash(self) -> str:
        """The hash of the row's content as it is now (computed once)."""
        return self._hash

    @cached_property
    def _hash(self) -> str:
        # Rows are never mutated (frozen; replace() makes a new one), so
        # plan, drift and saved-plan checks can share one computation.
        return _digest(self.content())

    @property
    def drifted(self) -> bool:
        return self.content_hash != self.compute_hash()


# -- checking rows read back from a store -----------------------------------

_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "source": (str, type(None)),
    "provider": (str,),
    "settings": (dict,),
    "models": (tuple,),
    "deployments": (dict,),
    "description": (str, type(None)),
    "labels": (dict,),
    "fingerprint": (str, type(None)),
    "last4": (str, type(None)),
    "verdict": (str, type(None)),
    "created_at": (str,),
    "updated_at": (str,),
    "revision": (int,),
    "content_hash": (str, type(None)),
    "secret_digest": (str, type(None)),
}
_FEATURE_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "source": (str, type(None)),
    "key": (str,),
    "model": (str, type(None)),
    "deployment": (str, type(None)),
    "settings": (dict,),
    "created_at": (str,),
    "updated_at": (str,),
    "revision": (int,),
    "content_hash": (str, type(None)),
}


MEMO_LIMIT = 10_000


class RowError(ValueError):
    """A stored row that byok cannot read (hand-made, or damaged)."""


def checked_key(row: KeyRow) -> KeyRow:
    """``row`` if every field has the type byok writes, else :class:`RowError`."""
    _check_types(row, _KEY_TYPES)
    if not all(isinstance(m, str) for m in row.models):
        raise RowError("models is not a list of names")
    return row


def checked_feature(row: FeatureRow) -> FeatureRow:
    """``row`` if every field has the type byok writes, else :class:`RowError`."""
    _check_types(row, _FEATURE_TYPES)
    return row


def _check_types(row: Any, types: dict[str, tuple[type, ...]]) -> None:
    for name, allowed in types.items():
        value = getattr(row, name)
        # bool is an int in Python, but never a revision.
        if not isinstance(value, allowed) or isinstance(value, bool):
            raise RowError(f"{name} has the wrong type ({type(value).__name__})")


def json_column(
    text: Any, name: str, kind: type, memo: dict[Any, Any] | None = None
) -> Any:
    """One JSON column: parsed, and of ``kind``; else :class:`RowError`.

    ``memo`` shares one parsed value between rows holding the same text
    (most features have the same settings); rows are read-only, so sharing
    is safe and saves a parse per row.
    """
    if memo is not None and text in memo:
        return memo[text]
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise RowError(f"{name} is not valid JSON") from None
    if not isinstance(value, kind):
        raise RowError(f"{name} is not a JSON {'object' if kind is dict else 'list'}")
    if memo is not None and isinstance(text, str) and len(memo) < MEMO_LIMIT:
        memo[text] = value
    return value


def skip_row(
    kind: str, name: object, source: object, why: str, skipped: list[str]
) -> None:
    """Warn about an unreadable unmanaged row and note it in ``skipped``;
    a managed one is a :class:`StoreError`, since apply would recreate it."""
    owner = f"source {source!r}" if source else "no source (made outside byok)"
    text = f"{kind} {name!r} ({owner}) cannot be read: {why}"
    if source:
        raise StoreError(
            f"the store holds a damaged row: {text}",
            hint="restore the row, or delete it and apply again",
        )
    log.warning("%s; it is left out", text)
    skipped.append(f"{kind}/{name}")


@dataclass(frozen=True)
class ApplyRecord:
    """One apply in the store's history."""

    applied_at: str
    source: str
    git_revision: str | None
    created: int
    updated: int
    deleted: int
    plan_digest: str
    config_digest: str
    actor: str
    id: int | None = None


@dataclass(frozen=True)
class StoreState:
    """Everything a store holds, loaded with one read per table."""

    store_id: str
    schema_version: int
    keys: dict[str, KeyRow]
    features: dict[str, FeatureRow]
    last_applies: dict[str, ApplyRecord] = field(default_factory=dict)
    # ``kind/name`` of unmanaged rows that could not be read and were left
    # out: their names are still taken.
    skipped: tuple[str, ...] = ()

    def row_digest(self, kind: str, name: str) -> str | None:
        """The recomputed hash of one row, or None when there is none."""
        table: dict[str, Any] = self.keys if kind == "key" else self.features
        row = table.get(name)
        return row.compute_hash() if row is not None else None


@dataclass
class WriteSet:
    """The rows one apply writes; empty means the apply writes nothing."""

    key_inserts: list[KeyRow] = field(default_factory=list)
    key_updates: list[KeyRow] = field(default_factory=list)
    key_deletes: list[str] = field(default_factory=list)
    feature_inserts: list[FeatureRow] = field(default_factory=list)
    feature_updates: list[FeatureRow] = field(default_factory=list)
    feature_deletes: list[str] = field(default_factory=list)
    history: ApplyRecord | None = None

    def __bool__(self) -> bool:
        return any(
            (
                self.key_inserts,
                self.key_updates,
                self.key_deletes,
                self.feature_inserts,
                self.feature_updates,
                self.feature_deletes,
                self.history,
            )
        )
