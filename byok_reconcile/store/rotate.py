"""Re-encrypt every stored secret under a new store key, in one transaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from byok_reconcile.store import Store
from byok_reconcile.store.crypto import StoreKey, row_aad
from byok_reconcile.store.rows import KeyRow, WriteSet


def rotate_key(store: Store, old: StoreKey, new: StoreKey) -> int:
    """Re-encrypt every secret (of every source) from ``old`` to ``new``.

    Returns how many were re-encrypted. Rows already under ``new`` are left
    alone, so a rotation can be run again safely. If one secret does not
    open with ``old``, nothing is changed.
    """
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with store.transaction() as txn:
        state = txn.state()
        updates = [
            _reseal(row, state.store_id, old, new, now)
            for row in state.keys.values()
            if row.sealed is not None and row.sealed.key_id != new.key_id
        ]
        if updates:
            txn.write(WriteSet(key_updates=updates))
        return len(updates)


def _reseal(
    row: KeyRow, store_id: str, old: StoreKey, new: StoreKey, now: str
) -> KeyRow:
    assert row.sealed is not None
    aad = row_aad(store_id, row.name)
    secret = old.open(row.sealed, aad, what=f"key {row.name!r}")
    drifted = row.drifted
    out = replace(
        row, sealed=new.seal(secret, aad), updated_at=now, revision=row.revision + 1
    )
    # A row someone changed by hand stays marked as drifted.
    return out if drifted else replace(out, content_hash=out.compute_hash())
